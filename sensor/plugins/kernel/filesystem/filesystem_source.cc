#include "sensor/plugins/kernel/filesystem/filesystem_source.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>

#include "bpf/abi/filesystem.h"
#include "filesystem.skel.h"
#include "sensor/bpf/clock.h"
#include "sensor/bpf/strategy.h"

namespace nodescope::sensor::kernel::filesystem {
namespace {

constexpr char kMetric[] = "filesystem_latency";

// What the attached probe does not see, for its ProbeStatus.
std::string Coverage(std::string_view strategy) {
  std::string types;
  for (const std::string& t : FilesystemSource::FsTypes()) types += (types.empty() ? "" : ", ") + t;
  return "calls on regular files of " + types +
         ", timed from syscall entry to return as the application sees them (page cache hits "
         "included): read, pread64, readv, preadv, preadv2; write, pwrite64, writev, pwritev, "
         "pwritev2; open, openat, openat2, creat that returned a descriptor; fsync, fdatasync, "
         "sync_file_range. Not seen: I/O through mmap, io_uring, AIO and "
         "sendfile/splice/copy_file_range, the kernel's own writeback and readahead, 32-bit "
         "(ia32) syscalls; a container's files count as overlay, not as the filesystem under "
         "it; tmpfs is not measured";
}

constexpr bpf::SkeletonOps<filesystem_bpf> kOps = {
    .open = filesystem_bpf__open,
    .load = filesystem_bpf__load,
    .destroy = filesystem_bpf__destroy,
    .counters_map = [](filesystem_bpf* s) { return s->maps.counters; },
    // Exit before entry: an entry hook attached first would store starts of calls whose return
    // nobody sees, which stay in the map until their thread's next call of the kind.
    .attach_first = [](std::string_view program) { return program.ends_with("__sys_exit"); },
};

Status SetTypeKeys(filesystem_bpf* s, std::string_view) {
  const std::vector<std::string> types = FilesystemSource::FsTypes();
  for (size_t i = 0; i < types.size() && i < NS_FS_TYPES; ++i) {
    // The name's first bytes as the program loads them: same machine, same byte order.
    uint64_t key = 0;
    std::memcpy(&key, types[i].data(), std::min(types[i].size(), sizeof(key) - 1));
    s->rodata->fstype_keys[i] = key;
  }
  return Status::Ok();
}

}  // namespace

FilesystemSource::FilesystemSource(std::string forced_strategy)
    : probe_(kFamily, NS_FS_CNT_MAX, bpf::kRawTp, std::move(forced_strategy)) {}

FilesystemSource::~FilesystemSource() { FilesystemSource::Stop(); }

std::vector<std::string> FilesystemSource::FsTypes() {
  const char* names[] = NS_FS_TYPE_NAMES;
  return {std::begin(names), std::end(names)};
}

std::vector<std::string> FilesystemSource::Ops() {
  const char* names[] = NS_FS_OP_NAMES;
  return {std::begin(names), std::end(names)};
}

nodescope::Status FilesystemSource::Start(const KernelOptions& options) {
  if (started_) return nodescope::Status::Error("filesystem source already started");
  started_ = true;
  proc_root_ = options.proc_root;
  if (!options.Enabled(kFamily)) return nodescope::Status::Ok();
  probe_.Start(kOps, SetTypeKeys);
  sweep_.Start();
  return nodescope::Status::Ok();
}

uint64_t FilesystemSource::SweepInflight() {
  const uint64_t now = bpf::MonotonicNs();
  const uint64_t stale_after = std::chrono::nanoseconds(kStaleAfter).count();
  // ENOENT on delete: a new thread with the same id took the entry over meanwhile.
  return DeleteEntries<uint64_t, ns_fs_start>(
      bpf_map__fd(probe_.skel()->maps.inflight), [&](uint64_t tid, const ns_fs_start& start) {
        if (now <= start.ts || now - start.ts <= stale_after) return false;
        const std::string task = proc_root_ + "/" + std::to_string(tid >> 32) + "/task/" +
                                 std::to_string(tid & 0xffffffffu);
        return access(task.c_str(), F_OK) != 0 && errno == ENOENT;
      });
}

void FilesystemSource::Collect(v1::KernelMetricsEvent& out) {
  if (probe_.skel() == nullptr) return;
  PerCpuHists per_cpu(bpf_map__fd(probe_.skel()->maps.hists));
  const std::vector<std::string> types = FsTypes();
  const std::vector<std::string> ops = Ops();
  for (uint32_t t = 0; t < NS_FS_TYPES && per_cpu.ok(); ++t) {
    for (uint32_t op = 0; op < NS_FS_OPS; ++op) {
      const uint32_t index = NS_FS_HIST_INDEX(t, op);
      ns_hist sum{};
      if (!per_cpu.Read(index, sum)) {
        spdlog::warn("kernel/filesystem: read histogram {}: {}", index, std::strerror(errno));
        continue;
      }
      hists_.Append(std::string(kMetric) + "|" + types[t] + "|" + ops[op], sum, kMetric,
                    ExtraLabels({{"fstype", types[t]}, {"op", ops[op]}}), out);
    }
  }
  const uint64_t swept = sweep_.Run([this] { return SweepInflight(); });
  const std::vector<uint64_t> counters = KernelCounters();
  const std::pair<const char*, uint64_t> lost[] = {
      {"filesystem_inflight_full", counters[NS_FS_CNT_INFLIGHT_FULL]},
      {"filesystem_unmatched", counters[NS_FS_CNT_UNMATCHED]},
      {"filesystem_stale", swept},
      {"filesystem_recursion", probe_.probe().RecursionMisses()},
  };
  for (const auto& [reason, total] : lost) AppendLost(lost_, reason, total, out);
}

std::vector<v1::ProbeStatus> FilesystemSource::Probes() const { return probe_.Probes(Coverage); }

void FilesystemSource::Stop() { probe_.Stop(); }

}  // namespace nodescope::sensor::kernel::filesystem
