// What the kernel and the process must offer before any probe loads. Each check fails with one
// line that says what is missing and how to fix it; missing tracefs and bpffs are mounted.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace nodescope::sensor::bpf {

struct EnvironmentPaths {
  std::string btf = "/sys/kernel/btf/vmlinux";
  std::string tracefs = "/sys/kernel/tracing";
  std::string bpffs = "/sys/fs/bpf";
  std::string mountinfo = "/proc/self/mountinfo";
};

// Capability bits as in include/uapi/linux/capability.h (CAP_BPF and CAP_PERFMON: Linux 5.8).
inline constexpr int kCapSysAdmin = 21;
inline constexpr int kCapPerfmon = 38;
inline constexpr int kCapBpf = 39;

// Loading tracing programs needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN.
Status CheckCapabilities(uint64_t effective);
Result<uint64_t> EffectiveCapabilities();

// CO-RE relocates against the kernel's own BTF.
Status CheckBtf(const std::string& btf_path);

// Mounts `fstype` at `dir` unless mountinfo already lists it there.
Status EnsureMounted(const std::string& mountinfo, const std::string& dir,
                     const std::string& fstype, const std::string& mount_command);

// The whole preflight, in order: libbpf logging, capabilities, BTF, tracefs, bpffs.
Status PrepareEnvironment(const EnvironmentPaths& paths = {});

}  // namespace nodescope::sensor::bpf
