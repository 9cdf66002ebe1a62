// Every metric the ebpf-kernel plugin sends (KernelMetricsEvent) and the aggregator serves: the
// one list both sides and README's metric table are checked against. Names follow
// nodescope_<family>_<what>: counters get _total, histograms _seconds, gauges nothing.
#pragma once

#include <array>
#include <string_view>

namespace nodescope::records {

enum class KernelMetricKind { kCounter, kGauge, kHistogram };

struct KernelMetricInfo {
  std::string_view name;    // without nodescope_ and the suffix
  KernelMetricKind kind;
  std::string_view family;  // the ebpf_programs switch that turns it on ("health": always)
  std::string_view help;
};

namespace kernel_metrics_detail {
using K = KernelMetricKind;
}  // namespace kernel_metrics_detail

inline constexpr auto kKernelMetrics = std::to_array<KernelMetricInfo>({
    // process: scheduler tracepoints; errors from the clone/fork syscall returns (return mode)
    {"process_create", kernel_metrics_detail::K::kCounter, "process", "Processes created (fork, vfork, clone without CLONE_THREAD)"},
    {"process_thread_create", kernel_metrics_detail::K::kCounter, "process", "Threads created (clone with CLONE_THREAD)"},
    {"process_exit", kernel_metrics_detail::K::kCounter, "process", "Tasks (threads and processes) that called do_exit"},
    {"process_release", kernel_metrics_detail::K::kCounter, "process", "Tasks whose kernel structures were released (host-wide only)"},
    {"process_create_errors", kernel_metrics_detail::K::kCounter, "process", "fork, vfork, clone and clone3 calls that failed (return mode)"},
    {"process_zombies", kernel_metrics_detail::K::kGauge, "process", "Tasks that exited since the sensor started and are not released yet"},
    // fd
    {"fd_open", kernel_metrics_detail::K::kCounter, "fd", "open, openat, openat2 and creat calls"},
    {"fd_open_errors", kernel_metrics_detail::K::kCounter, "fd", "open calls that failed (return mode)"},
    {"fd_close", kernel_metrics_detail::K::kCounter, "fd", "close calls"},
    {"fd_close_errors", kernel_metrics_detail::K::kCounter, "fd", "close calls that failed (return mode)"},
    // vfs
    {"vfs_read", kernel_metrics_detail::K::kCounter, "vfs", "read and pread64 calls"},
    {"vfs_write", kernel_metrics_detail::K::kCounter, "vfs", "write and pwrite64 calls"},
    {"vfs_readv", kernel_metrics_detail::K::kCounter, "vfs", "readv, preadv and preadv2 calls"},
    {"vfs_writev", kernel_metrics_detail::K::kCounter, "vfs", "writev, pwritev and pwritev2 calls"},
    {"vfs_read_bytes", kernel_metrics_detail::K::kCounter, "vfs", "Bytes returned by read and pread64"},
    {"vfs_write_bytes", kernel_metrics_detail::K::kCounter, "vfs", "Bytes written by write and pwrite64"},
    {"vfs_readv_bytes", kernel_metrics_detail::K::kCounter, "vfs", "Bytes returned by the readv calls"},
    {"vfs_writev_bytes", kernel_metrics_detail::K::kCounter, "vfs", "Bytes written by the writev calls"},
    {"vfs_read_errors", kernel_metrics_detail::K::kCounter, "vfs", "read calls that failed (return mode)"},
    {"vfs_write_errors", kernel_metrics_detail::K::kCounter, "vfs", "write calls that failed (return mode)"},
    {"vfs_readv_errors", kernel_metrics_detail::K::kCounter, "vfs", "readv calls that failed (return mode)"},
    {"vfs_writev_errors", kernel_metrics_detail::K::kCounter, "vfs", "writev calls that failed (return mode)"},
    {"vfs_unlink", kernel_metrics_detail::K::kCounter, "vfs", "unlink and unlinkat calls"},
    {"vfs_unlink_errors", kernel_metrics_detail::K::kCounter, "vfs", "unlink calls that failed (return mode)"},
    {"vfs_fsync", kernel_metrics_detail::K::kCounter, "vfs", "fsync and fdatasync calls"},
    {"vfs_fsync_errors", kernel_metrics_detail::K::kCounter, "vfs", "fsync calls that failed (return mode)"},
    {"vfs_open", kernel_metrics_detail::K::kCounter, "vfs", "open calls that opened a file"},
    {"vfs_open_errors", kernel_metrics_detail::K::kCounter, "vfs", "open calls that failed"},
    {"vfs_create", kernel_metrics_detail::K::kCounter, "vfs", "creat, mknod and open calls with O_CREAT"},
    {"vfs_create_errors", kernel_metrics_detail::K::kCounter, "vfs", "create calls that failed (return mode)"},
    // sync
    {"sync_sync", kernel_metrics_detail::K::kCounter, "sync", "sync calls"},
    {"sync_syncfs", kernel_metrics_detail::K::kCounter, "sync", "syncfs calls"},
    {"sync_fsync", kernel_metrics_detail::K::kCounter, "sync", "fsync calls"},
    {"sync_fdatasync", kernel_metrics_detail::K::kCounter, "sync", "fdatasync calls"},
    {"sync_msync", kernel_metrics_detail::K::kCounter, "sync", "msync calls"},
    {"sync_sync_file_range", kernel_metrics_detail::K::kCounter, "sync", "sync_file_range calls"},
    // mount
    {"mount_mount", kernel_metrics_detail::K::kCounter, "mount", "mount calls"},
    {"mount_umount", kernel_metrics_detail::K::kCounter, "mount", "umount2 calls"},
    {"mount_mount_errors", kernel_metrics_detail::K::kCounter, "mount", "mount calls that failed (return mode)"},
    {"mount_umount_errors", kernel_metrics_detail::K::kCounter, "mount", "umount2 calls that failed (return mode)"},
    // shm
    {"shm_shmget", kernel_metrics_detail::K::kCounter, "shm", "shmget calls"},
    {"shm_shmat", kernel_metrics_detail::K::kCounter, "shm", "shmat calls"},
    {"shm_shmdt", kernel_metrics_detail::K::kCounter, "shm", "shmdt calls"},
    {"shm_shmctl", kernel_metrics_detail::K::kCounter, "shm", "shmctl calls"},
    // socket
    {"socket_tcp_send", kernel_metrics_detail::K::kCounter, "socket", "Sends on TCP sockets (any send or write call)"},
    {"socket_tcp_receive", kernel_metrics_detail::K::kCounter, "socket", "Receives on TCP sockets (any recv or read call)"},
    {"socket_tcp_send_bytes", kernel_metrics_detail::K::kCounter, "socket", "Bytes sent on TCP sockets"},
    {"socket_tcp_receive_bytes", kernel_metrics_detail::K::kCounter, "socket", "Bytes received on TCP sockets"},
    {"socket_udp_send", kernel_metrics_detail::K::kCounter, "socket", "Sends on UDP sockets"},
    {"socket_udp_receive", kernel_metrics_detail::K::kCounter, "socket", "Receives on UDP sockets"},
    {"socket_udp_send_bytes", kernel_metrics_detail::K::kCounter, "socket", "Bytes sent on UDP sockets"},
    {"socket_udp_receive_bytes", kernel_metrics_detail::K::kCounter, "socket", "Bytes received on UDP sockets"},
    {"socket_tcp_retransmits", kernel_metrics_detail::K::kCounter, "socket", "TCP segments retransmitted (host-wide only)"},
    {"socket_connections_inbound", kernel_metrics_detail::K::kCounter, "socket", "TCP connections accepted (accept calls that returned one)"},
    {"socket_connections_outbound", kernel_metrics_detail::K::kCounter, "socket", "TCP connections started (SYN sent)"},
    // oomkill
    {"oomkill_kills", kernel_metrics_detail::K::kCounter, "oomkill", "Processes the OOM killer chose"},
    // hardirq / softirq
    {"hardirq_latency", kernel_metrics_detail::K::kHistogram, "hardirq", "Time spent in each hardware interrupt handler"},
    {"softirq_latency", kernel_metrics_detail::K::kHistogram, "softirq", "Time spent in each softirq vector's handler"},
    // cachestat
    // cachestat: misses and dirties from the filemap and writeback tracepoints; hits and the ratio
    // need mark_page_accessed (a kprobe) and are not sent by this build
    {"cachestat_hits", kernel_metrics_detail::K::kCounter, "cachestat", "Page cache accesses that found the page (needs kprobes: not collected here)"},
    {"cachestat_misses", kernel_metrics_detail::K::kCounter, "cachestat", "Pages added to the page cache outside write calls (reads, readahead, page faults)"},
    {"cachestat_dirties", kernel_metrics_detail::K::kCounter, "cachestat", "Page cache folios marked dirty"},
    {"cachestat_ratio", kernel_metrics_detail::K::kGauge, "cachestat", "Page cache hit ratio over the last update_every (needs kprobes: not collected here)"},
    // dcstat
    {"dcstat_references", kernel_metrics_detail::K::kCounter, "dcstat", "Directory cache lookups"},
    {"dcstat_slow", kernel_metrics_detail::K::kCounter, "dcstat", "Lookups that took the slow path"},
    {"dcstat_misses", kernel_metrics_detail::K::kCounter, "dcstat", "Lookups that found no entry"},
    {"dcstat_ratio", kernel_metrics_detail::K::kGauge, "dcstat", "Directory cache hit ratio over the last update_every"},
    // swap
    {"swap_read", kernel_metrics_detail::K::kCounter, "swap", "Pages read from swap"},
    {"swap_write", kernel_metrics_detail::K::kCounter, "swap", "Pages written to swap"},
    // disk / filesystem / mdflush
    {"disk_io_latency", kernel_metrics_detail::K::kHistogram, "disk", "Block I/O latency per device, issue to completion"},
    {"filesystem_latency", kernel_metrics_detail::K::kHistogram, "filesystem", "Latency of read, write, open and sync calls per filesystem type"},
    {"mdflush_flushes", kernel_metrics_detail::K::kCounter, "mdflush", "Flushes of md (software RAID) devices"},
    // the collector's own health
    {"kernel_map_entries", kernel_metrics_detail::K::kGauge, "health", "Entries in an ebpf-kernel BPF map"},
    {"kernel_map_bytes", kernel_metrics_detail::K::kGauge, "health", "Kernel memory an ebpf-kernel BPF map holds"},
    {"kernel_events_lost", kernel_metrics_detail::K::kCounter, "health", "Events ebpf-kernel could not count, by reason"},
});

inline const KernelMetricInfo* FindKernelMetric(std::string_view name) {
  for (const auto& m : kKernelMetrics) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

}  // namespace nodescope::records
