#include "sensor/bpf/environment.h"

#include <linux/capability.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sensor/bpf/libbpf_log.h"
#include "sensor/proc/mountinfo.h"

namespace nodescope::sensor::bpf {
namespace {

bool Has(uint64_t caps, int cap) { return (caps >> cap) & 1; }

}  // namespace

Result<uint64_t> EffectiveCapabilities() {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) {
    return Status::Error(std::string("cannot read the process capabilities (capget): ") +
                         std::strerror(errno));
  }
  return (static_cast<uint64_t>(data[1].effective) << 32) | data[0].effective;
}

Status CheckCapabilities(uint64_t effective) {
  if (Has(effective, kCapSysAdmin) || (Has(effective, kCapBpf) && Has(effective, kCapPerfmon))) {
    return Status::Ok();
  }
  std::string missing;
  if (!Has(effective, kCapBpf)) missing += "CAP_BPF ";
  if (!Has(effective, kCapPerfmon)) missing += "CAP_PERFMON ";
  return Status::Error("missing capabilities " + missing +
                       "(or CAP_SYS_ADMIN) to load eBPF programs: run nodescope-sensor as root, "
                       "or in a container with privileged: true");
}

Status CheckBtf(const std::string& btf_path) {
  if (access(btf_path.c_str(), R_OK) == 0) return Status::Ok();
  int err = errno;
  if (err == ENOENT) {
    return Status::Error("kernel has no BTF (CONFIG_DEBUG_INFO_BTF): " + btf_path +
                         " is missing; use a kernel built with CONFIG_DEBUG_INFO_BTF=y "
                         "(the default of current Debian, Ubuntu, RHEL and Fedora kernels)");
  }
  return Status::Error("cannot read the kernel BTF at " + btf_path + ": " + std::strerror(err) +
                       "; run nodescope-sensor as root");
}

Status EnsureMounted(const std::string& mountinfo, const std::string& dir,
                     const std::string& fstype, const std::string& mount_command) {
  Result<std::vector<proc::Mount>> mounts = proc::ReadMountInfo(mountinfo);
  if (!mounts.ok()) return mounts.status();
  if (proc::FindMount(*mounts, fstype, dir)) return Status::Ok();
  if (mount(fstype == "bpf" ? "bpf" : "nodev", dir.c_str(), fstype.c_str(), 0, nullptr) != 0) {
    return Status::Error(fstype + " is not mounted at " + dir +
                         " and mounting it failed: " + std::strerror(errno) + "; mount it (" +
                         mount_command + ") or run nodescope-sensor as root");
  }
  spdlog::info("mounted {} at {}", fstype, dir);
  return Status::Ok();
}

Status PrepareEnvironment(const EnvironmentPaths& paths) {
  InstallLibbpfLogger();
  Result<uint64_t> caps = EffectiveCapabilities();
  if (!caps.ok()) return caps.status();
  if (Status s = CheckCapabilities(*caps); !s.ok()) return s;
  if (Status s = CheckBtf(paths.btf); !s.ok()) return s;
  if (Status s = EnsureMounted(paths.mountinfo, paths.tracefs, "tracefs",
                               "mount -t tracefs nodev " + paths.tracefs);
      !s.ok()) {
    return s;
  }
  return EnsureMounted(paths.mountinfo, paths.bpffs, "bpf", "mount -t bpf bpf " + paths.bpffs);
}

}  // namespace nodescope::sensor::bpf
