// Loading one strategy's programs out of an object that holds several: one program the kernel
// rejects fails the whole object load, so programs of other strategies must not be loaded.
#pragma once

#include <bpf/libbpf.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nodescope::sensor::bpf {

using LinkPtr = std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)>;

// Programs named "cgroup__*" belong to every strategy: helpers hooked to the cgroup v2 root
// (cgroup/sendmsg4, ...), which have no alternative hook and no automatic attach.
inline constexpr std::string_view kCgroupPrefix = "cgroup__";
// Programs loaded with every strategy and never attached: user space runs them
// (BPF_PROG_TEST_RUN), as netflow's flush__l7.
inline constexpr std::string_view kRunPrefix = "flush__";

// Before load: autoload exactly the programs named "<strategy>__*" and "cgroup__*". Fails if
// there are none of the strategy.
Status SelectPrograms(bpf_object* object, std::string_view strategy);

// After load: the loaded programs of `strategy` (not the cgroup__ ones) in the order to attach
// them: those `attach_first` picks (an entry hook before its exit, say) first, each group in the
// object's order; all in the object's order when it is null.
std::vector<bpf_program*> StrategyPrograms(
    bpf_object* object, std::string_view strategy,
    bool (*attach_first)(std::string_view program) = nullptr);
// Attaches `programs` in order; on failure the links made so far are destroyed. The links must be
// destroyed before the object.
Result<std::vector<LinkPtr>> AttachPrograms(std::span<bpf_program* const> programs);
// After load: attaches every loaded program of `strategy` (not the cgroup__ ones), in the
// object's order.
Result<std::vector<LinkPtr>> AttachPrograms(bpf_object* object, std::string_view strategy);
// After load: attaches every cgroup__ program to the cgroup v2 directory `cgroup_path` (the root
// covers every process). All or nothing.
Result<std::vector<LinkPtr>> AttachCgroupPrograms(bpf_object* object,
                                                  const std::string& cgroup_path);

// A loaded program's figures from the kernel (bpf_prog_info); run_count and run_time_ns move only
// while BPF statistics are on (sysctl kernel.bpf_stats_enabled or BPF_ENABLE_STATS).
struct ProgramStats {
  std::string name;  // the kernel's copy, cut to BPF_OBJ_NAME_LEN - 1 characters
  uint64_t run_count = 0;
  uint64_t run_time_ns = 0;
  uint64_t recursion_misses = 0;  // runs skipped: a program was already running on the CPU
};
Result<ProgramStats> ReadProgramStats(const bpf_program* program);

// "Permission denied (libbpf: prog 'x': BPF program load failed: ...)": the error of a libbpf
// call plus the root cause libbpf logged on this thread under the innermost LibbpfLogCapture.
std::string LibbpfErrorText(int err);

}  // namespace nodescope::sensor::bpf
