#include "sensor/plugins/kernel/proc_source.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <unordered_set>

#include "kernel.skel.h"

namespace nodescope::sensor::kernel {
namespace {

// Entries read per bpf_map_lookup_batch call.
constexpr uint32_t kBatch = 1024;
// Collects after a thread group's exit during which entries of its tgid that appear late (a
// thread that exited after the last one was seen, an exec image never read) are still freed.
constexpr int kDeadSweeps = 3;

// The kernel's own account of a map's memory ("memlock:" in the fd's fdinfo; for a hash without
// preallocation, what its elements use now, Linux 6.4+).
std::optional<uint64_t> MapMemlock(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("memlock:", 0) == 0) return std::strtoull(line.c_str() + 8, nullptr, 10);
  }
  return std::nullopt;
}

// What an attached family cannot see, said in status.
std::string Coverage(const std::string& family) {
  if (family == "vfs") {
    return "counts the read, write, open, unlink and fsync syscalls on any descriptor, not the "
           "vfs_* kernel functions (no kprobes); vfs_create counts creat, mknod and opens with "
           "O_CREAT; io_uring, AIO and kernel-internal I/O are not seen";
  }
  if (family == "fd") return "open and close syscalls; io_uring opens and closes are not seen";
  if (family == "socket") {
    return "tcp_retransmits host-wide only: retransmissions run in softirq and timers, not in "
           "the sender's context";
  }
  if (family == "process") return "process_release host-wide only (freed from an RCU callback)";
  if (family == "cachestat") {
    return "misses: pages added to the page cache outside write calls (reads, readahead, page "
           "faults); dirties: folios marked dirty; no hits and no hit ratio: they need "
           "mark_page_accessed, which has no tracepoint (no kprobes here)";
  }
  return "";
}

}  // namespace

const std::array<SlotInfo, NS_K_SLOTS>& Slots() {
  // In enum ns_kernel_slot order (bpf/abi/kernel.h); proc_source_test checks every name against
  // the catalog in common/records/kernel_metrics.h.
  static const std::array<SlotInfo, NS_K_SLOTS> kSlots = {{
      {"process_create", "process", false},
      {"process_thread_create", "process", false},
      {"process_exit", "process", false},
      {"process_release", "process", false},
      {"process_create_errors", "process", true},
      {"fd_open", "fd", false},
      {"fd_open_errors", "fd", true},
      {"fd_close", "fd", false},
      {"fd_close_errors", "fd", true},
      {"vfs_read", "vfs", false},
      {"vfs_write", "vfs", false},
      {"vfs_readv", "vfs", false},
      {"vfs_writev", "vfs", false},
      {"vfs_read_bytes", "vfs", false},
      {"vfs_write_bytes", "vfs", false},
      {"vfs_readv_bytes", "vfs", false},
      {"vfs_writev_bytes", "vfs", false},
      {"vfs_read_errors", "vfs", true},
      {"vfs_write_errors", "vfs", true},
      {"vfs_readv_errors", "vfs", true},
      {"vfs_writev_errors", "vfs", true},
      {"vfs_unlink", "vfs", false},
      {"vfs_unlink_errors", "vfs", true},
      {"vfs_fsync", "vfs", false},
      {"vfs_fsync_errors", "vfs", true},
      {"vfs_open", "vfs", false},
      {"vfs_open_errors", "vfs", false},  // from the same return as vfs_open: both modes
      {"vfs_create", "vfs", false},
      {"vfs_create_errors", "vfs", true},
      {"sync_sync", "sync", false},
      {"sync_syncfs", "sync", false},
      {"sync_fsync", "sync", false},
      {"sync_fdatasync", "sync", false},
      {"sync_msync", "sync", false},
      {"sync_sync_file_range", "sync", false},
      {"mount_mount", "mount", false},
      {"mount_umount", "mount", false},
      {"mount_mount_errors", "mount", true},
      {"mount_umount_errors", "mount", true},
      {"shm_shmget", "shm", false},
      {"shm_shmat", "shm", false},
      {"shm_shmdt", "shm", false},
      {"shm_shmctl", "shm", false},
      {"socket_tcp_send", "socket", false},
      {"socket_tcp_receive", "socket", false},
      {"socket_tcp_send_bytes", "socket", false},
      {"socket_tcp_receive_bytes", "socket", false},
      {"socket_udp_send", "socket", false},
      {"socket_udp_receive", "socket", false},
      {"socket_udp_send_bytes", "socket", false},
      {"socket_udp_receive_bytes", "socket", false},
      {"socket_tcp_retransmits", "socket", false},
      {"socket_connections_inbound", "socket", false},
      {"socket_connections_outbound", "socket", false},
      {"oomkill_kills", "oomkill", false},
      {"cachestat_misses", "cachestat", false},
      {"cachestat_dirties", "cachestat", false},
  }};
  return kSlots;
}

ProcSource::ProcSource() : probe_(kProbe, NS_KERNEL_CNT_MAX) {}

ProcSource::~ProcSource() { Stop(); }

std::vector<std::string> ProcSource::Strategies() {
  return {std::string(bpf::kTpBtf), std::string(bpf::kRawTp)};
}

bool ProcSource::Wanted(const SlotInfo& slot) const {
  return options_.Enabled(slot.family) && (!slot.error || options_.mode == LoadMode::kReturn);
}

Status ProcSource::Attach(const std::string& strategy) {
  static constexpr bpf::SkeletonOps<kernel_bpf> kOps = {
      .open = [] { return kernel_bpf__open(); },
      .load = [](kernel_bpf* s) { return kernel_bpf__load(s); },
      .destroy = [](kernel_bpf* s) { kernel_bpf__destroy(s); },
      .ring_map = [](kernel_bpf* s) { return s->maps.events; },
      .counters_map = [](kernel_bpf* s) { return s->maps.counters; },
  };
  const KernelOptions& o = options_;
  const bool track = o.apps || o.cgroups;
  auto configure = [&o, &strategy, track](kernel_bpf* s) {
    uint32_t families = 0;
    const std::pair<const char*, uint32_t> bits[] = {
        {"process", NS_KF_PROCESS}, {"fd", NS_KF_FD},         {"vfs", NS_KF_VFS},
        {"sync", NS_KF_SYNC},       {"mount", NS_KF_MOUNT},   {"shm", NS_KF_SHM},
        {"socket", NS_KF_SOCKET},   {"oomkill", NS_KF_OOMKILL}, {"cachestat", NS_KF_CACHESTAT}};
    for (const auto& [name, bit] : bits) {
      if (o.Enabled(name)) families |= bit;
    }
    s->rodata->families = families;
    s->rodata->return_mode = o.mode == LoadMode::kReturn;
    s->rodata->track_procs = track;
    bpf_map__set_max_entries(s->maps.procs, o.pid_table_size);
    const bool socket = o.Enabled("socket");
    const bool process = o.Enabled("process");
    const bool sys_exit = (families & ~(NS_KF_OOMKILL | NS_KF_CACHESTAT)) != 0;
    const bool cachestat = o.Enabled("cachestat");
    const std::pair<const char*, bool> hooks[] = {
        {"sys_exit", sys_exit},
        {"sock_send_length", socket},
        {"sock_recv_length", socket},
        {"tcp_retransmit_skb", socket},
        {"inet_sock_set_state", socket},
        {"sched_process_fork", process},
        {"sched_process_free", process},
        {"sched_process_exit", process || track},
        {"mark_victim", o.Enabled("oomkill")},
        {"mm_filemap_add_to_page_cache", cachestat},
        {"writeback_dirty_folio", cachestat},
    };
    for (const auto& [hook, on] : hooks) {
      if (on) continue;
      const std::string name = strategy + "__" + hook;
      if (bpf_program* p = bpf_object__find_program_by_name(s->obj, name.c_str())) {
        bpf_program__set_autoload(p, false);
      }
    }
    return Status::Ok();
  };
  Result<kernel_bpf*> skel = bpf::LoadSkeleton<kernel_bpf>(
      probe_, kOps, strategy, [this](std::span<const std::byte> r) { OnRecord(r); }, configure);
  if (!skel.ok()) return skel.status();
  skel_ = *skel;
  return Status::Ok();
}

Status ProcSource::Start(const KernelOptions& options) {
  options_ = options;
  if (std::none_of(kProcFamilies.begin(), kProcFamilies.end(),
                   [&](const std::string& f) { return options_.Enabled(f); })) {
    return Status::Ok();
  }
  Result<AppGroups> apps =
      AppGroups::Build(options_.apps_groups.empty() ? kDefaultAppsGroups : options_.apps_groups);
  if (!apps.ok()) return apps.status();
  apps_ = std::move(apps).value();
  cgroups_ = std::make_unique<proc::CgroupPaths>(options_.cgroup_root, options_.cgroup_prefix);
  Status s = probe_.Select(Strategies(), options_.forced_strategy,
                           [this](const std::string& name) { return Attach(name); });
  if (!s.ok()) return s;
  proc_check_.Start();
  started_ = true;
  return Status::Ok();
}

void ProcSource::OnRecord(std::span<const std::byte> record) {
  if (record.size() != sizeof(ns_kernel_exit_event)) return;
  ns_kernel_exit_event e;
  std::memcpy(&e, record.data(), sizeof(e));
  exited_.push_back(e.tgid);
}

void ProcSource::Fold(const Key& key, const ns_kernel_proc& entry) {
  auto [it, inserted] = last_.try_emplace(key);
  Seen& seen = it->second;
  if (inserted) {
    const char* comm = reinterpret_cast<const char*>(entry.comm);
    seen.app = apps_->GroupOf(std::string_view(comm, strnlen(comm, NS_KERNEL_COMM_LEN)));
  }
  Totals* app = options_.apps ? &app_deltas_[seen.app] : nullptr;
  Totals* cgroup = options_.cgroups ? &cgroup_deltas_[key.cgroup_id] : nullptr;
  for (size_t i = 0; i < NS_K_SLOTS; ++i) {
    const uint64_t delta = entry.v[i] - seen.totals[i];
    if (delta == 0) continue;
    if (app) (*app)[i] += delta;
    if (cgroup) (*cgroup)[i] += delta;
    seen.totals[i] = entry.v[i];
  }
}

void ProcSource::ReadTable() {
  const int fd = bpf_map__fd(skel_->maps.procs);
  std::vector<Key> keys(kBatch);
  std::vector<ns_kernel_proc> values(kBatch);
  Key cursor{};
  bool first = true;
  for (;;) {
    uint32_t n = kBatch;
    Key next{};
    int err = bpf_map_lookup_batch(fd, first ? nullptr : &cursor, &next, keys.data(),
                                   values.data(), &n, nullptr);
    const bool done = err != 0;
    if (err != 0 && errno != ENOENT) {
      spdlog::warn("probe {}: reading the process table: {}", kProbe, std::strerror(errno));
    }
    for (uint32_t i = 0; i < n; ++i) Fold(keys[i], values[i]);
    if (done) break;
    cursor = next;
    first = false;
  }
}

void ProcSource::FreeDeadEntries() {
  // Every entry of a group that exited goes, earlier exec images included, and for a few reads
  // more the entries that turn up late (a thread that counted after the last one's exit).
  for (uint32_t tgid : exited_) dead_tgids_[tgid] = kDeadSweeps + 1;  // one read is this one
  exited_.clear();
  std::unordered_set<Key, KeyHash, KeyEq> gone;
  for (const auto& [key, seen] : last_) {
    if (dead_tgids_.count(key.tgid)) gone.insert(key);
  }
  for (auto it = dead_tgids_.begin(); it != dead_tgids_.end();) {
    it = --it->second <= 0 ? dead_tgids_.erase(it) : std::next(it);
  }
  // A lost exit event (its ring was full) would leave a dead process's entries for good: now
  // and then, entries of thread groups /proc no longer has go too.
  proc_check_.Run([&] {
    std::unordered_map<uint32_t, bool> alive;
    for (const auto& [key, seen] : last_) {
      auto [it, inserted] = alive.try_emplace(key.tgid, true);
      if (inserted) {
        struct stat st {};
        it->second = stat((options_.proc_root + "/" + std::to_string(key.tgid)).c_str(), &st) == 0;
      }
      if (!it->second) gone.insert(key);
    }
    return uint64_t{0};
  });
  const int fd = bpf_map__fd(skel_->maps.procs);
  for (const Key& key : gone) {
    bpf_map_delete_elem(fd, &key);
    last_.erase(key);
  }
}

void ProcSource::Collect(v1::KernelMetricsEvent& out) {
  if (!started_) return;
  // Exit events first: the table read that follows then holds the final totals of every group
  // that exited, which can count nothing more.
  (void)probe_.ring()->Poll(std::chrono::milliseconds(0));
  if (options_.apps || options_.cgroups) {
    ReadTable();
    FreeDeadEntries();
  }

  // Host-wide: the per-CPU array summed.
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<ns_kernel_host> per_cpu(ncpu > 0 ? ncpu : 1);
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.host), &zero, per_cpu.data()) == 0) {
    host_totals_.fill(0);
    for (const auto& cpu : per_cpu) {
      for (size_t i = 0; i < NS_K_SLOTS; ++i) host_totals_[i] += cpu.v[i];
    }
  }
  const auto& slots = Slots();
  const v1::KernelLabels host_labels;
  for (size_t i = 0; i < NS_K_SLOTS; ++i) {
    if (Wanted(slots[i])) host_.Append(slots[i].name, host_totals_[i], slots[i].name, host_labels, out);
  }
  auto append = [&](const Totals& deltas, const v1::KernelLabels& labels) {
    for (size_t i = 0; i < NS_K_SLOTS; ++i) {
      if (deltas[i] == 0 || !Wanted(slots[i])) continue;
      v1::KernelCounter* c = out.add_counters();
      c->set_name(slots[i].name);
      *c->mutable_labels() = labels;
      c->set_delta(deltas[i]);
    }
  };
  for (const auto& [app, deltas] : app_deltas_) {
    v1::KernelLabels labels;
    labels.set_app(app);
    append(deltas, labels);
  }
  for (const auto& [id, deltas] : cgroup_deltas_) {
    v1::KernelLabels labels;
    labels.set_cgroup_id(id);
    labels.set_cgroup(cgroups_->PathOf(id));
    append(deltas, labels);
  }
  app_deltas_.clear();
  cgroup_deltas_.clear();

  if (options_.Enabled("process")) {
    const uint64_t exits = host_totals_[NS_K_PROCESS_EXIT];
    const uint64_t released = host_totals_[NS_K_PROCESS_RELEASE];
    v1::KernelGauge* g = out.add_gauges();
    g->set_name("process_zombies");
    // Tasks that exited before the sensor started are released without having been counted.
    g->set_value(exits > released ? static_cast<double>(exits - released) : 0.0);
  }
  v1::KernelGauge* entries = out.add_gauges();
  entries->set_name("kernel_map_entries");
  (*entries->mutable_labels()->mutable_extra())["map"] = "procs";
  entries->set_value(static_cast<double>(last_.size()));
  if (std::optional<uint64_t> memlock = MapMemlock(bpf_map__fd(skel_->maps.procs))) {
    v1::KernelGauge* bytes = out.add_gauges();
    bytes->set_name("kernel_map_bytes");
    (*bytes->mutable_labels()->mutable_extra())["map"] = "procs";
    bytes->set_value(static_cast<double>(*memlock));
  }
  const std::vector<uint64_t> lost = probe_.KernelCounters();
  host_.Append("lost/ringbuf_full", lost[NS_KERNEL_CNT_RINGBUF_DROPS], "kernel_events_lost",
               ExtraLabels({{"reason", "exit_ringbuf_full"}}), out);
  host_.Append("lost/pid_table_full", lost[NS_KERNEL_CNT_PID_TABLE_FULL], "kernel_events_lost",
               ExtraLabels({{"reason", "pid_table_full"}}), out);
}

std::vector<v1::ProbeStatus> ProcSource::Probes() const {
  std::vector<v1::ProbeStatus> probes;
  const v1::ProbeStatus base = probe_.status();
  for (const std::string& family : kProcFamilies) {
    if (!options_.Enabled(family)) continue;
    v1::ProbeStatus p = base;
    p.set_probe("kernel/" + family);
    if (p.state() == "attached") p.set_coverage(Coverage(family));
    probes.push_back(std::move(p));
  }
  return probes;
}

void ProcSource::Stop() {
  started_ = false;
  probe_.Teardown();
  skel_ = nullptr;
}

}  // namespace nodescope::sensor::kernel
