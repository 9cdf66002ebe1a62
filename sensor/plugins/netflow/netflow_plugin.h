// The L4 part of ebpf-net (bpf/progs/netflow.bpf.c): every TCP and UDP socket's bytes,
// retransmissions, RTT and lifecycle, folded per aggregation key and emitted once per interval as
// NetflowEvents.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "nodescope/v1/ingest.pb.h"
#include "sensor/bpf/loaded_probe.h"
#include "sensor/plugins/netflow/dns_table.h"
#include "sensor/plugins/netflow/filter.h"
#include "sensor/plugins/netflow/flow_table.h"
#include "sensor/plugins/netflow/http_table.h"
#include "sensor/plugins/netflow/tls_coverage.h"
#include "sensor/transport/event_sink.h"

namespace nodescope::sensor::netflow {

class L7Rings;  // skeleton.h

struct NetflowOptions {
  std::chrono::nanoseconds interval = std::chrono::seconds(60);
  bool ipv6_disabled = false;
  uint16_t ephemeral_port = 32768;
  std::string proc_root = "/proc";  // HOST_PROC: where /proc/<pid>/net/tcp is read
  FilterOptions filter;
  // L7 (httpflow, dnsflow): payload of HTTP and DNS connections, parsed in user space.
  bool httpflow = true;
  bool httpflow_tls = false;  // OpenSSL 3 uprobes (libssl.so.3 of the host)
  bool dnsflow = true;
  uint32_t l7_capture_bytes = 4096;  // copied of each call, at most NS_L7_CAPTURE_MAX
  size_t l7_path_max = 256;
  std::chrono::nanoseconds dns_timeout = std::chrono::seconds(5);
  // ebpf-conntrack: the DNAT join of outgoing netflow and httpflow keys, and a call that returns
  // once the translations the kernel announced so far are in (made before each flush).
  // nullptr: no dst_nat_* (ebpf-conntrack off or unavailable).
  NatLookup nat;
  std::function<void()> nat_sync;
};

class NetflowPlugin {
 public:
  static constexpr std::string_view kProbe = "netflow";

  struct Counters {
    uint64_t records = 0;        // NetflowEvents emitted
    uint64_t closes = 0;         // TCP close events read from the ring buffer
    uint64_t vanished = 0;       // sockets that left the map without a close (LRU eviction)
    uint64_t filtered = 0;       // sockets excluded by ports/ips/hostnames
    uint64_t ringbuf_drops = 0;  // close events the kernel could not queue
    uint64_t map_full = 0;       // sockets the kernel could not start tracking
    uint64_t malformed = 0;      // ring buffer records of an unexpected size
    uint64_t tracked = 0;        // sockets tracked now
    uint64_t http_records = 0, dns_records = 0;
    uint64_t l7_events = 0;         // payload events read
    uint64_t l7_ringbuf_drops = 0;  // payload events the kernel could not queue
    uint64_t l7_no_ring = 0;        // payload events on a CPU that had no ring yet
    uint64_t l7_malformed = 0;      // payload events of a wrong size
    // Left out while shedding for resource limits (SetL7Limit): HTTP connections and their
    // sends/receives, by the step that left them out.
    uint64_t l7_shed_conns_payload = 0, l7_shed_conns_sampled = 0;
    uint64_t l7_shed_calls_payload = 0, l7_shed_calls_sampled = 0;
    HttpTable::Counters http;
    DnsTable::Counters dns;
  };

  NetflowPlugin();
  ~NetflowPlugin();  // Stop()
  NetflowPlugin(const NetflowPlugin&) = delete;
  NetflowPlugin& operator=(const NetflowPlugin&) = delete;

  // fentry (the socket functions: kernels before 6.3 too), tp_btf, then tracepoint (both need
  // the sock_send_length/sock_recv_length tracepoints of Linux 6.3). No kprobe variant: a
  // kernel with BTF but without BPF trampolines (5.5+ x86 has them) is not worth a third path.
  static std::vector<std::string> Strategies();

  // Builds the filters (a bad filter fails here, before anything loads), loads and attaches with
  // the first strategy that works (or only `forced_strategy`), then emits from a thread until
  // Stop(). `sink` must outlive the plugin.
  Status Start(EventSink* sink, const NetflowOptions& options,
               std::string_view forced_strategy = {});
  // Detaches, reports the last partial interval, joins the thread, frees everything.
  void Stop();

  v1::ProbeStatus probe_status() const;
  // httpflow-tls's uprobes: which libssl files they watch, and what they cannot see; state
  // "disabled" when httpflow-tls is off.
  v1::ProbeStatus tls_status() const;
  // An exec seen by the process probe, on its thread: with httpflow-tls, the process's libssl
  // is looked for a short while later. Safe before Start and after Stop (ignored).
  void OnExec(uint32_t pid);
  Counters counters() const;
  // Resource limits (sensor/limits/): copy no HTTP payload (`payload_off`: connections being
  // parsed end where they are), or that of 1 in `keep_one_in` new connections (1: all).
  // Connections left out stay so until they close. DNS is never left out. After Start.
  Status SetL7Limit(bool payload_off, uint32_t keep_one_in);

 private:
  Status Attach(std::string_view strategy);
  void OnRecord(std::span<const std::byte> record);
  void OnL7Record(std::span<const std::byte> record);
  // Uprobes on every libssl.so.3 processes map (tls_coverage.h); what they cannot cover is
  // logged and in tls_status().
  void AttachTls(bpf_object* object);
  void PollLoop();
  // Gives a CPU brought online since the last look its payload ring (poll thread).
  void CoverNewCpus();
  void Emit(v1::Event event);
  // Walks the map, settles close events and idle UDP sockets, emits the interval's records.
  // Applies the close events in the ring now (the report's thread).
  void DrainEnded();
  void Report(std::chrono::nanoseconds interval);
  bool HasListener(const ns_conn& conn);

  EventSink* sink_ = nullptr;
  NetflowOptions options_;
  std::unique_ptr<ConnectionFilter> filter_;
  std::unique_ptr<ServiceNames> services_;
  std::unique_ptr<FlowTable> table_;  // used by the poll thread only (and Stop after the join)
  std::unique_ptr<HttpTable> http_;   // the same; null when httpflow is off
  std::unique_ptr<DnsTable> dns_;     // the same; null when dnsflow is off
  HostsMap hosts_;  // /etc/hosts (HOST_ROOT): names for the hostnames filter's patterns
  std::chrono::steady_clock::time_point next_resolve_;
  // netns inode -> its listening ports, refreshed once per walk.
  std::map<uint32_t, std::set<uint16_t>> listeners_;

  bpf::LoadedProbe probe_;
  int conns_fd_ = -1;                  // the `conns` map, read once per interval
  int l7_skip_fd_ = -1;                // `l7_skip`: bodies the probe need not copy
  int l7_limit_fd_ = -1;               // `l7_limit`: shedding for resource limits
  std::unique_ptr<L7Rings> l7_rings_;  // used by the poll thread only, after Start
  std::chrono::steady_clock::time_point next_cpu_check_;

  std::thread poller_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> records_{0}, closes_{0}, malformed_{0}, vanished_{0}, filtered_{0},
      tracked_{0}, http_records_{0}, dns_records_{0}, l7_events_{0}, l7_malformed_{0};
  // Copies of the tables' counters, for counters() from other threads.
  mutable std::mutex l7_mu_;
  HttpTable::Counters http_counters_;
  v1::ProbeStatus tls_status_;        // under l7_mu_
  std::shared_ptr<TlsCoverage> tls_;  // under l7_mu_; null without httpflow-tls
  DnsTable::Counters dns_counters_;
};

}  // namespace nodescope::sensor::netflow
