#include "sensor/plugins/kernel/filesystem/filesystem_source.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <memory>

#include "bpf/abi/filesystem.h"
#include "filesystem.skel.h"
#include "sensor/bpf/libbpf_log.h"
#include "sensor/bpf/programs.h"
#include "sensor/bpf/strategy.h"

namespace nodescope::sensor::kernel::filesystem {
namespace {

constexpr char kMetric[] = "filesystem_latency";
constexpr char kLost[] = "kernel_events_lost";

// What the attached probe does not see, for its ProbeStatus.
std::string Coverage() {
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

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // bpf_ktime_get_ns()'s clock
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

FilesystemSource::FilesystemSource(std::string forced_strategy)
    : forced_strategy_(std::move(forced_strategy)), probe_(kProbe, NS_FS_CNT_MAX) {}

FilesystemSource::~FilesystemSource() { FilesystemSource::Stop(); }

std::vector<std::string> FilesystemSource::Strategies() {
  return {std::string(bpf::kTpBtf), std::string(bpf::kRawTp)};
}

std::vector<std::string> FilesystemSource::FsTypes() {
  const char* names[] = NS_FS_TYPE_NAMES;
  return {std::begin(names), std::end(names)};
}

std::vector<std::string> FilesystemSource::Ops() {
  const char* names[] = NS_FS_OP_NAMES;
  return {std::begin(names), std::end(names)};
}

nodescope::Status FilesystemSource::Attach(const std::string& strategy) {
  bpf::LibbpfLogCapture capture;
  std::unique_ptr<filesystem_bpf, decltype(&filesystem_bpf__destroy)> skel(
      filesystem_bpf__open(), &filesystem_bpf__destroy);
  if (!skel) return nodescope::Status::Error("open: " + bpf::LibbpfErrorText(errno));
  if (nodescope::Status s = bpf::SelectPrograms(skel->obj, strategy); !s.ok()) return s;
  const std::vector<std::string> types = FsTypes();
  for (size_t i = 0; i < types.size() && i < NS_FS_TYPES; ++i) {
    // The name's first bytes as the program loads them: same machine, same byte order.
    uint64_t key = 0;
    std::memcpy(&key, types[i].data(), std::min(types[i].size(), sizeof(key) - 1));
    skel->rodata->fstype_keys[i] = key;
  }
  if (int err = filesystem_bpf__load(skel.get()); err != 0) {
    return nodescope::Status::Error("load: " + bpf::LibbpfErrorText(err));
  }
  // Exit before entry: an entry hook attached first would store starts of calls whose return
  // nobody sees, which stay in the map until their thread's next call of the kind.
  const bool btf = strategy == bpf::kTpBtf;
  bpf_program* const order[] = {
      btf ? skel->progs.tp_btf__sys_exit : skel->progs.raw_tp__sys_exit,
      btf ? skel->progs.tp_btf__sys_enter : skel->progs.raw_tp__sys_enter};
  std::vector<bpf::LinkPtr> links;
  std::vector<int> fds;
  for (bpf_program* program : order) {
    if (!bpf::ProgramInStrategy(bpf_program__name(program), strategy)) {
      return nodescope::Status::Error(std::string("program ") + bpf_program__name(program) +
                                      " is not of strategy " + strategy);
    }
    bpf_link* link = bpf_program__attach(program);
    if (link == nullptr) {
      const int err = errno;
      return nodescope::Status::Error(std::string("attach ") + bpf_program__name(program) + ": " +
                                      bpf::LibbpfErrorText(err));
    }
    links.emplace_back(link, &bpf_link__destroy);
    fds.push_back(bpf_program__fd(program));
  }
  const int counters_fd = bpf_map__fd(skel->maps.counters);
  filesystem_bpf* raw = skel.release();
  probe_.Adopt([raw] { filesystem_bpf__destroy(raw); }, std::move(links), nullptr, counters_fd);
  skel_ = raw;
  prog_fds_ = std::move(fds);
  return nodescope::Status::Ok();
}

nodescope::Status FilesystemSource::Start(const KernelOptions& options) {
  if (started_) return nodescope::Status::Error("filesystem source already started");
  started_ = true;
  proc_root_ = options.proc_root;
  enabled_ = options.Enabled(kFamily);
  if (!enabled_) return nodescope::Status::Ok();
  nodescope::Status attached = probe_.Select(Strategies(), forced_strategy_,
                                             [this](const std::string& s) { return Attach(s); });
  if (!attached.ok()) spdlog::warn("{}: {}", kProbe, attached.message());
  next_sweep_ = std::chrono::steady_clock::now() + kSweepEvery;
  // A family no hook can serve is reported in Probes(), not as an error of the plugin.
  return nodescope::Status::Ok();
}

uint64_t FilesystemSource::SweepInflight() {
  const int fd = bpf_map__fd(skel_->maps.inflight);
  const uint64_t now = MonotonicNs();
  const uint64_t stale_after = std::chrono::nanoseconds(kStaleAfter).count();
  std::vector<uint64_t> stale;
  uint64_t key = 0, next = 0;
  const void* previous = nullptr;
  while (bpf_map_get_next_key(fd, previous, &next) == 0) {
    ns_fs_start start{};
    if (bpf_map_lookup_elem(fd, &next, &start) == 0 && now > start.ts &&
        now - start.ts > stale_after) {
      const std::string task = proc_root_ + "/" + std::to_string(next >> 32) + "/task/" +
                               std::to_string(next & 0xffffffffu);
      if (access(task.c_str(), F_OK) != 0 && errno == ENOENT) stale.push_back(next);
    }
    key = next;
    previous = &key;
  }
  uint64_t dropped = 0;
  for (uint64_t k : stale) {
    // ENOENT: a new thread with the same id took the entry over meanwhile.
    if (bpf_map_delete_elem(fd, &k) == 0) ++dropped;
  }
  return dropped;
}

void FilesystemSource::Collect(v1::KernelMetricsEvent& out) {
  if (skel_ == nullptr) return;
  const int fd = bpf_map__fd(skel_->maps.hists);
  const int cpus = libbpf_num_possible_cpus();
  // A per-CPU lookup fills one value per possible CPU, each rounded up to 8 bytes, which
  // sizeof(ns_hist) already is.
  static_assert(sizeof(ns_hist) % 8 == 0);
  std::vector<ns_hist> per_cpu(cpus > 0 ? static_cast<size_t>(cpus) : 0);
  const std::vector<std::string> types = FsTypes();
  const std::vector<std::string> ops = Ops();
  for (uint32_t t = 0; t < NS_FS_TYPES && !per_cpu.empty(); ++t) {
    for (uint32_t op = 0; op < NS_FS_OPS; ++op) {
      const uint32_t index = NS_FS_HIST_INDEX(t, op);
      if (bpf_map_lookup_elem(fd, &index, per_cpu.data()) != 0) {
        spdlog::warn("{}: read histogram {}: {}", kProbe, index, std::strerror(errno));
        continue;
      }
      ns_hist sum{};
      for (const ns_hist& h : per_cpu) {
        for (size_t i = 0; i < NS_HIST_SLOTS; ++i) sum.slots[i] += h.slots[i];
        sum.sum_ns += h.sum_ns;
      }
      hists_.Append(std::string(kMetric) + "|" + types[t] + "|" + ops[op], sum, kMetric,
                    ExtraLabels({{"fstype", types[t]}, {"op", ops[op]}}), out);
    }
  }
  if (std::chrono::steady_clock::now() >= next_sweep_) {
    stale_ += SweepInflight();
    next_sweep_ = std::chrono::steady_clock::now() + kSweepEvery;
  }
  uint64_t recursion = 0;
  for (const ProgramStats& p : Programs()) recursion += p.recursion_misses;
  const std::vector<uint64_t> counters = probe_.KernelCounters();
  const std::pair<const char*, uint64_t> lost[] = {
      {"filesystem_inflight_full", counters[NS_FS_CNT_INFLIGHT_FULL]},
      {"filesystem_unmatched", counters[NS_FS_CNT_UNMATCHED]},
      {"filesystem_stale", stale_},
      {"filesystem_recursion", recursion},
  };
  for (const auto& [reason, total] : lost) {
    lost_.Append(std::string(kLost) + "|" + reason, total, kLost, ExtraLabels({{"reason", reason}}),
                 out);
  }
}

std::vector<v1::ProbeStatus> FilesystemSource::Probes() const {
  if (!enabled_) return {};
  v1::ProbeStatus status = probe_.status();
  if (status.state() == "attached") status.set_coverage(Coverage());
  return {status};
}

std::vector<uint64_t> FilesystemSource::KernelCounters() const { return probe_.KernelCounters(); }

std::vector<FilesystemSource::ProgramStats> FilesystemSource::Programs() const {
  std::vector<ProgramStats> programs;
  for (int fd : prog_fds_) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) continue;
    programs.push_back({info.name, info.run_cnt, info.run_time_ns, info.recursion_misses});
  }
  return programs;
}

void FilesystemSource::Stop() {
  probe_.Teardown();
  skel_ = nullptr;
  prog_fds_.clear();
}

}  // namespace nodescope::sensor::kernel::filesystem
