// ebpf-conntrack: the DNAT translations of the node's conntrack tables, streamed as
// ConntrackEvents and kept in a TranslationTable for the netflow join. kprobes on
// __nf_conntrack_hash_insert/nf_ct_delete and fentry are not available on the kernels this
// runs on (docs KERNEL.md), so the one strategy is the stable interface: ctnetlink NEW and
// DESTROY event groups, one socket per network namespace, and a dump of the table when a
// namespace is subscribed or its events were lost (ENOBUFS).
#pragma once

#include <libmnl/libmnl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"
#include "nodescope/v1/ingest.pb.h"
#include "sensor/plugins/conntrack/netlink_decode.h"
#include "sensor/plugins/conntrack/translation_table.h"
#include "sensor/transport/event_sink.h"

namespace nodescope::sensor::conntrack {

struct ConntrackOptions {
  std::string proc_root = "/proc";       // HOST_PROC: /proc/<pid>/ns/net of every process
  std::string netns_dir = "/run/netns";  // named namespaces (ip netns) that may hold no process
  // Subscribed first, at Start: when that fails, the plugin reports itself failed. Through
  // /proc/self, which needs no access to another process (pid 1 may refuse it, e.g. under a
  // container runtime's init).
  std::string own_netns = "/proc/self/ns/net";
  std::chrono::milliseconds rescan{3000};
  TranslationTable::Options table;
  int receive_buffer = 4 << 20;  // per socket (SO_RCVBUFFORCE); a burst beyond it is an overrun
};

class ConntrackPlugin {
 public:
  static constexpr std::string_view kProbe = "conntrack";
  static constexpr std::string_view kStrategy = "ctnetlink";

  struct Counters {
    uint64_t new_events = 0, destroy_events = 0, existing = 0;  // DNAT'ed entries only
    uint64_t translations = 0;                                  // tracked now
    uint64_t namespaces = 0;                                    // subscribed now
    uint64_t overruns = 0;       // ENOBUFS: events lost, table resynced with a dump
    uint64_t resyncs = 0;        // dumps after an overrun
    uint64_t malformed = 0;      // messages that could not be decoded
    uint64_t socket_errors = 0;  // other netlink errors (open, bind, recv, send)
    uint64_t table_full = 0;     // translations not kept: the table was full
  };

  ConntrackPlugin() = default;
  ~ConntrackPlugin();  // Stop()
  ConntrackPlugin(const ConntrackPlugin&) = delete;
  ConntrackPlugin& operator=(const ConntrackPlugin&) = delete;

  // Subscribes in the sensor's own namespace first: when that fails (no nf_conntrack netlink
  // in this kernel) the status and one log line say so and Start returns Ok with nothing
  // running. Otherwise subscribes in every other namespace and reads from a thread until Stop.
  // `sink` must outlive the plugin.
  Status Start(EventSink* sink, const ConntrackOptions& options);
  void Stop();
  bool running() const { return reader_.joinable(); }

  // The netflow join (called from the netflow thread).
  std::optional<netflow::NatTarget> Lookup(const netflow::NatQuery& query) const;
  // Returns once every event the kernel had queued for the sensor when it was called has been
  // applied (or after `max_wait`): the netflow tables call it before an interval flush.
  void Sync(std::chrono::milliseconds max_wait);

  v1::ProbeStatus probe_status() const;
  Counters counters() const;

 private:
  using SocketPtr = std::unique_ptr<mnl_socket, decltype(&mnl_socket_close)>;
  struct Subscription {
    explicit Subscription(SocketPtr s) : socket(std::move(s)) {}
    SocketPtr socket;
    uint32_t netns = 0;
    uint32_t seq = 0;
    bool dumping = false;
    bool resync_pending = false;
    uint64_t dump_start_ns = 0;
  };

  // Opens and binds a ctnetlink event socket inside the namespace at `path`, on a short-lived
  // thread (setns moves only the calling thread), and reports the namespace's inode.
  Result<SocketPtr> OpenIn(const std::string& path, uint32_t* inode);
  void Subscribe(const std::string& path, uint32_t inode);
  void RequestDump(Subscription& sub);
  void Rescan();
  void ReaderLoop();
  // Reads until the socket is empty.
  void Drain(Subscription& sub);
  void Apply(Subscription& sub, const Entry& entry, uint64_t now_ns);
  void EmitEvent(v1::ConntrackEvent::Kind kind, uint32_t netns, const Entry& entry,
                 uint64_t now_ns);
  void SetStatus(const std::string& state, const std::string& error);

  EventSink* sink_ = nullptr;
  ConntrackOptions options_;
  std::unique_ptr<TranslationTable> table_;
  std::map<uint32_t, std::unique_ptr<Subscription>> subs_;  // by netns inode; reader thread only
  std::set<uint32_t> failed_;  // namespaces whose socket could not be opened (logged once)
  std::vector<uint8_t> buffer_;
  int wake_fd_ = -1;  // eventfd: Stop and Sync wake the reader
  std::thread reader_;
  std::atomic<bool> stop_{false};

  std::atomic<uint64_t> sync_requested_{0};
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  uint64_t synced_ = 0;  // under sync_mu_

  mutable std::mutex status_mu_;
  v1::ProbeStatus status_;
  std::atomic<uint64_t> new_events_{0}, destroy_events_{0}, existing_{0}, namespaces_{0},
      overruns_{0}, resyncs_{0}, malformed_{0}, socket_errors_{0};
};

}  // namespace nodescope::sensor::conntrack
