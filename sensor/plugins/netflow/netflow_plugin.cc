#include "sensor/plugins/netflow/netflow_plugin.h"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <numeric>

#include "sensor/bpf/clock.h"
#include "sensor/bpf/cpus.h"
#include "sensor/plugins/netflow/listeners.h"
#include "sensor/plugins/netflow/skeleton.h"
#include "sensor/plugins/netflow/tls_coverage.h"
#include "sensor/proc/mountinfo.h"

namespace nodescope::sensor::netflow {
namespace {

constexpr std::chrono::milliseconds kPollTimeout{100};
// Plain names in `hostnames` are resolved again this often (addresses of a name change).
constexpr std::chrono::minutes kResolveEvery{10};
// How soon a CPU brought online gets its payload ring: its events are lost until then.
constexpr std::chrono::seconds kCpuCheckEvery{1};

}  // namespace

NetflowPlugin::NetflowPlugin() : probe_(kProbe, NS_NETFLOW_CNT_MAX) {}

NetflowPlugin::~NetflowPlugin() { Stop(); }

std::vector<std::string> NetflowPlugin::Strategies() {
  return {std::string(bpf::kFentry), std::string(bpf::kTpBtf), std::string(bpf::kTracepoint)};
}

Status NetflowPlugin::Attach(std::string_view strategy) {
  Result<netflow_bpf*> skel = bpf::LoadSkeleton<netflow_bpf>(
      probe_, kSkeleton, strategy, [this](std::span<const std::byte> record) { OnRecord(record); },
      [this](netflow_bpf* s) {
        s->rodata->ipv6_disabled = options_.ipv6_disabled;
        s->rodata->l7_capture =
            (options_.httpflow ? NS_L7_HTTP_ON : 0) | (options_.dnsflow ? NS_L7_DNS_ON : 0);
        s->rodata->l7_capture_bytes = options_.l7_capture_bytes;
        s->rodata->l7_tls = options_.httpflow && options_.httpflow_tls;
        if (s->rodata->l7_tls) {
          bpf_program* program = nullptr;
          bpf_object__for_each_program(program, s->obj) {
            if (std::string_view(bpf_program__name(program)).starts_with("tls__")) {
              bpf_program__set_autoload(program, true);
            }
          }
        }
        return SizeL7Rings(s);
      });
  if (!skel.ok()) return skel.status();
  conns_fd_ = bpf_map__fd((*skel)->maps.conns);
  l7_skip_fd_ = bpf_map__fd((*skel)->maps.l7_skip);
  l7_limit_fd_ = bpf_map__fd((*skel)->maps.l7_limit);
  // Rings for the CPUs online; without the list (no sysfs), for every possible CPU.
  Result<std::vector<int>> online = bpf::OnlineCpus();
  if (!online.ok()) {
    spdlog::warn("probe {}: {}; a payload ring for every possible CPU", kProbe,
                 online.status().message());
    online = std::vector<int>(bpf_map__max_entries((*skel)->maps.l7_rings));
    std::iota(online->begin(), online->end(), 0);
  }
  Result<std::unique_ptr<L7Rings>> rings = L7Rings::Start(
      *skel, *probe_.ring(), [this](std::span<const std::byte> record) { OnL7Record(record); },
      *online);
  if (!rings.ok()) return rings.status();
  l7_rings_ = std::move(*rings);
  if (!l7_rings_->batched()) {
    spdlog::info(
        "probe {}: payload events go to the rings one by one (the flush program that batches "
        "need does not run)",
        kProbe);
  }

  // Per-peer records of unconnected UDP sockets need the cgroup hooks; without them (no cgroup
  // v2 mounted) such a socket is one record with an unknown peer, and the log says why.
  std::string cgroup_root;
  if (Result<std::vector<proc::Mount>> mounts = proc::ReadMountInfo("/proc/self/mountinfo");
      mounts.ok()) {
    if (std::optional<proc::Mount> v2 = proc::FindMount(*mounts, "cgroup2")) {
      cgroup_root = v2->mount_point;
    }
  }
  Result<std::vector<bpf::LinkPtr>> cgroup_links =
      cgroup_root.empty() ? Result<std::vector<bpf::LinkPtr>>(Status::Error("no cgroup2 mount"))
                          : bpf::AttachCgroupPrograms((*skel)->obj, cgroup_root);
  if (cgroup_links.ok()) {
    probe_.AdoptLinks(std::move(cgroup_links).value());
  } else {
    spdlog::warn("probe {}: unconnected UDP sockets are not split per peer: {}", kProbe,
                 cgroup_links.status().message());
  }
  // Last: nothing fails after it, so its thread never outlives a skeleton another strategy
  // replaced.
  if (options_.httpflow && options_.httpflow_tls) AttachTls((*skel)->obj);
  return Status::Ok();
}

Status NetflowPlugin::Start(EventSink* sink, const NetflowOptions& options,
                            std::string_view forced_strategy) {
  if (poller_.joinable()) return Status::Error("netflow probe already started");
  sink_ = sink;
  options_ = options;
  Result<ConnectionFilter> filter = ConnectionFilter::Build(options_.filter);
  if (!filter.ok()) return filter.status();
  filter_ = std::make_unique<ConnectionFilter>(std::move(filter).value());
  if (!filter_->resolve_status().ok()) {
    spdlog::warn("probe {}: {}", kProbe, filter_->resolve_status().message());
  }
  Result<ServiceNames> services = ServiceNames::Build(options_.filter.service_names);
  if (!services.ok()) return services.status();
  services_ = std::make_unique<ServiceNames>(std::move(services).value());

  FlowTable::Options table;
  table.ephemeral_port = options_.ephemeral_port;
  table.filter = filter_.get();
  table.services = services_.get();
  table.has_listener = [this](const ns_conn& conn) { return HasListener(conn); };
  table.nat = options_.nat;
  if (Result<HostsMap> hosts = ReadHosts(); hosts.ok()) hosts_ = std::move(hosts).value();
  table.remote_name = [this](const net::IpAddress& address) {
    if (dns_) {
      if (std::optional<std::string> name = dns_->DomainOf(address, bpf::MonotonicNs()))
        return *name;
    }
    auto found = hosts_.find(address);
    return found == hosts_.end() || found->second.empty() ? std::string() : found->second[0];
  };
  table_ = std::make_unique<FlowTable>(std::move(table));
  http_.reset();
  dns_.reset();
  if (options_.httpflow) {
    HttpTable::Options http{.ephemeral_port = options_.ephemeral_port,
                            .max_path_len = options_.l7_path_max};
    http.nat = options_.nat;
    http.skip_hint = [this](uint64_t sk, uint64_t peer, const ns_l7_skip& skip) {
      const ns_conn_key key{sk, peer};
      // Best effort: a failed update only means the body is copied after all.
      if (l7_skip_fd_ >= 0) bpf_map_update_elem(l7_skip_fd_, &key, &skip, BPF_ANY);
    };
    http.socket_state = [this](uint64_t sk, uint64_t start_ns) -> std::optional<ns_l7_runs> {
      const ns_conn_key key{sk, 0};  // HTTP is TCP: never a peer key
      ns_conn conn;
      if (conns_fd_ < 0 || bpf_map_lookup_elem(conns_fd_, &key, &conn) != 0 ||
          conn.start_ns != start_ns) {
        return std::nullopt;
      }
      ns_l7_runs state{};
      state.moved[0] = conn.bytes_written;
      state.moved[1] = conn.bytes_read;
      for (size_t d = 0; d < 2; ++d) {  // meaningful for a mirroring client only
        state.ts[d] = conn.l7_run_ts[d];
        state.off[d] = conn.l7_run_off[d];
      }
      return state;
    };
    http_ = std::make_unique<HttpTable>(std::move(http));
  }
  if (options_.dnsflow) {
    DnsTable::Options dns;
    dns.ephemeral_port = options_.ephemeral_port;
    dns.timeout_ns = static_cast<uint64_t>(options_.dns_timeout.count());
    dns_ = std::make_unique<DnsTable>(dns);
  }

  Status attached = probe_.Select(Strategies(), forced_strategy,
                                  [this](const std::string& name) { return Attach(name); });
  if (!attached.ok()) return attached;
  stop_ = false;
  poller_ = std::thread([this] { PollLoop(); });
  return Status::Ok();
}

void NetflowPlugin::OnRecord(std::span<const std::byte> record) {
  if (record.size() != sizeof(ns_conn_close)) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  ns_conn_close close;
  std::memcpy(&close, record.data(), sizeof(close));
  closes_.fetch_add(1, std::memory_order_relaxed);
  table_->Closed(ns_conn_key{close.sk, close.peer}, close.conn, close.ts_ns);
}

void NetflowPlugin::OnL7Record(std::span<const std::byte> record) {
  ns_l7_event event;
  if (record.size() < sizeof(event)) {
    l7_malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::memcpy(&event, record.data(), sizeof(event));
  if (event.captured > NS_L7_CAPTURE_MAX || record.size() != sizeof(event) + event.captured) {
    l7_malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  l7_events_.fetch_add(1, std::memory_order_relaxed);
  const std::byte* data = record.data() + sizeof(event);
  // The plaintext of a TLS connection is its own stream: socket addresses are 8-byte aligned,
  // so the low bit tells it from the connection's ciphertext.
  if (event.flags & NS_L7_TLS) event.sk |= 1;
  if (event.flags & NS_L7_CLOSED) {
    if (http_) http_->OnClose(event);
    if (dns_) dns_->OnClose(event);
  } else if (event.l7 == NS_L7_HTTP && http_) {
    http_->OnEvent(event, {reinterpret_cast<const char*>(data), event.captured});
  } else if (event.l7 == NS_L7_DNS && dns_) {
    dns_->OnEvent(event, {reinterpret_cast<const uint8_t*>(data), event.captured});
  }
}

namespace {

// The tls__ uprobes on the file at `target` (pid -1: every process that maps it).
Result<std::vector<bpf::LinkPtr>> AttachTlsPrograms(bpf_object* object, const std::string& target) {
  std::vector<bpf::LinkPtr> links;
  bpf_program* program = nullptr;
  bpf_object__for_each_program(program, object) {
    std::string_view name = bpf_program__name(program);
    if (!name.starts_with("tls__")) continue;
    // tls__ssl_read_ex_ret -> SSL_read_ex, a uretprobe.
    std::string_view hook = name.substr(5);
    const bool ret = hook.ends_with("_ret");
    if (ret) hook.remove_suffix(4);
    std::string function = "SSL_" + std::string(hook.substr(4));
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = ret, .func_name = function.c_str());
    bpf_link* link = bpf_program__attach_uprobe_opts(program, -1, target.c_str(), 0, &opts);
    if (link == nullptr) return Status::Error(function + ": " + bpf::LibbpfErrorText(errno));
    links.emplace_back(link, &bpf_link__destroy);
  }
  return links;
}

}  // namespace

void NetflowPlugin::AttachTls(bpf_object* object) {
  // Every libssl.so.3 file processes map, the host's first (tls_coverage.h); what the uprobes
  // cannot see is listed in the status and logged once per file.
  {
    std::lock_guard<std::mutex> lock(l7_mu_);
    if (tls_) tls_->Stop();
    tls_status_ = v1::ProbeStatus();
    tls_status_.set_probe("httpflow-tls");
    tls_status_.set_strategy("uprobe");
    tls_status_.set_state("attached");
  }
  TlsCoverage::Options options;
  options.proc_root = options_.proc_root;
  auto tls = std::make_shared<TlsCoverage>(options, [this, object](const std::string& target) {
    Result<std::vector<bpf::LinkPtr>> links = AttachTlsPrograms(object, target);
    if (!links.ok()) return links.status();
    probe_.AdoptLinks(std::move(links).value());
    return Status::Ok();
  });
  {
    // Published before the scan: execs during it are queued, not lost.
    std::lock_guard<std::mutex> lock(l7_mu_);
    tls_ = tls;
  }
  const std::string root = options_.proc_root == "/proc" ? "" : options_.proc_root + "/1/root";
  std::vector<std::string> host;
  for (const char* candidate : {"/usr/lib/x86_64-linux-gnu/libssl.so.3", "/lib64/libssl.so.3",
                                "/usr/lib64/libssl.so.3", "/usr/lib/libssl.so.3"}) {
    host.push_back(root + candidate);
  }
  tls->Start(host);
  spdlog::info("probe {}: httpflow-tls: {}", kProbe, tls->Coverage());
}

void NetflowPlugin::OnExec(uint32_t pid) {
  std::shared_ptr<TlsCoverage> tls;
  {
    std::lock_guard<std::mutex> lock(l7_mu_);
    tls = tls_;
  }
  if (tls) tls->OnExec(pid);
}

void NetflowPlugin::Emit(v1::Event event) {
  event.set_time_unix_nano(bpf::NowUnixNano());
  sink_->Emit(std::move(event));
}

bool NetflowPlugin::HasListener(const ns_conn& conn) {
  auto cached = listeners_.find(conn.netns);
  if (cached == listeners_.end()) {
    std::set<uint16_t> ports;
    if (conn.flags & NS_CONN_PID_SET) {
      Result<std::set<uint16_t>> read = ListeningPorts(options_.proc_root, conn.pid);
      if (read.ok()) ports = std::move(read).value();
    }
    cached = listeners_.emplace(conn.netns, std::move(ports)).first;
  }
  return cached->second.count(conn.sport) > 0;
}

void NetflowPlugin::DrainEnded() {
  if (Result<int> drained = probe_.ring()->Poll(std::chrono::milliseconds(0)); !drained.ok()) {
    spdlog::warn("probe {}: {}", kProbe, drained.status().message());
  }
}

void NetflowPlugin::Report(std::chrono::nanoseconds interval) {
  const int fd = conns_fd_;
  // The conntrack events queued so far are read before sockets are folded into keys.
  if (options_.nat_sync) options_.nat_sync();
  listeners_.clear();
  // Entries that ended since the last report first: a new socket may already hold an ended
  // one's key (UDP addresses are reused), and the walk must not take it for the old one.
  DrainEnded();
  table_->BeginWalk();
  // A hash map walk restarts from the first key when the current one is deleted under it, so it
  // may see a socket twice (harmless: the second delta is zero); the bound stops a walk that
  // keeps restarting.
  ns_conn_key key{}, next{};
  const void* prev = nullptr;
  ns_conn conn;
  for (int steps = 0; steps < 2 * NS_NETFLOW_MAX_CONNS; ++steps) {
    if (bpf_map_get_next_key(fd, prev, &next) != 0) break;
    if (bpf_map_lookup_elem(fd, &next, &conn) == 0) table_->Observe(next, conn);
    key = next;
    prev = &key;
  }
  // Sockets that closed during the walk are in the ring buffer, not the map: settle them before
  // EndWalk takes "not in the map" for "evicted".
  DrainEnded();
  table_->EndWalk();
  for (const ns_conn_key& sk : table_->IdleUdp()) {
    if (bpf_map_lookup_and_delete_elem(fd, &sk, &conn) == 0) table_->Closed(sk, conn);
  }
  std::vector<v1::NetflowEvent> events = table_->Flush(interval.count());
  const uint64_t mono = bpf::MonotonicNs();
  // The name of the remote side, from DNS answers seen on this node.
  auto domain = [&](const std::string& raw) {
    std::optional<net::IpAddress> ip = net::IpAddress::FromBytes(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
    std::optional<std::string> name = dns_ && ip ? dns_->DomainOf(*ip, mono) : std::nullopt;
    return name ? *name : std::string();
  };
  // Every record kind names the remote side the same way and goes out the same way.
  auto emit = [&](auto& records, auto* (v1::Event::*payload)()) {
    for (auto& e : records) {
      v1::Event event;
      e.set_dst_domain(domain(e.dst_ip()));
      *(event.*payload)() = std::move(e);
      Emit(std::move(event));
    }
    return records.size();
  };
  records_.fetch_add(emit(events, &v1::Event::mutable_netflow), std::memory_order_relaxed);
  if (http_) {
    std::vector<v1::HttpflowEvent> http = http_->Flush(interval.count());
    http_records_.fetch_add(emit(http, &v1::Event::mutable_httpflow), std::memory_order_relaxed);
    // Once per newly failed connection, not on every report.
    if (http_->counters().failed > http_counters_.failed) {
      spdlog::debug("probe {}: not parsed as HTTP: {}", kProbe, http_->last_failure());
    }
  }
  if (dns_) {
    std::vector<v1::DnsflowEvent> dns = dns_->Flush(interval.count(), mono);
    dns_records_.fetch_add(emit(dns, &v1::Event::mutable_dnsflow), std::memory_order_relaxed);
  }
  {
    std::lock_guard<std::mutex> lock(l7_mu_);
    if (http_) http_counters_ = http_->counters();
    if (dns_) dns_counters_ = dns_->counters();
  }
  FlowTable::Counters c = table_->counters();
  vanished_.store(c.vanished, std::memory_order_relaxed);
  filtered_.store(c.filtered, std::memory_order_relaxed);
  tracked_.store(table_->tracked(), std::memory_order_relaxed);
}

void NetflowPlugin::PollLoop() {
  auto interval_start = std::chrono::steady_clock::now();
  auto next_report = interval_start + options_.interval;
  next_resolve_ = interval_start + kResolveEvery;
  next_cpu_check_ = interval_start + kCpuCheckEvery;
  while (!stop_.load(std::memory_order_relaxed)) {
    Result<int> polled = probe_.ring()->Poll(kPollTimeout);
    if (!polled.ok()) {
      spdlog::error("probe {}: {}; no more netflow records", kProbe, polled.status().message());
      return;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= next_cpu_check_) {
      CoverNewCpus();
      next_cpu_check_ = now + kCpuCheckEvery;
    }
    if (now >= next_resolve_) {
      // On this thread: Refresh must not run while Allows does (FlowTable calls it here too).
      if (Status s = filter_->Refresh(); !s.ok()) spdlog::warn("probe {}: {}", kProbe, s.message());
      next_resolve_ = now + kResolveEvery;
    }
    if (now >= next_report) {
      Report(now - interval_start);
      interval_start = now;
      next_report = now + options_.interval;
    }
  }
  // The last, partial interval: what happened since the last report is not lost on shutdown.
  Report(std::chrono::steady_clock::now() - interval_start);
}

void NetflowPlugin::CoverNewCpus() {
  Result<std::vector<int>> online = bpf::OnlineCpus();
  if (!online.ok()) return;  // said at start; the rings made then go on
  Result<std::vector<int>> added = l7_rings_->Cover(*online);
  if (!added.ok()) {
    spdlog::warn("probe {}: {}; that CPU's payload events are counted as lost (no_ring)", kProbe,
                 added.status().message());
    return;
  }
  for (int cpu : *added)
    spdlog::info("probe {}: CPU {} came online: its payload ring made", kProbe, cpu);
}

void NetflowPlugin::Stop() {
  stop_ = true;
  if (poller_.joinable()) poller_.join();
  std::shared_ptr<TlsCoverage> tls;
  {
    std::lock_guard<std::mutex> lock(l7_mu_);
    tls = tls_;
  }
  if (tls) tls->Stop();  // no uprobe is attached after the teardown
  probe_.Teardown();
  conns_fd_ = -1;
  l7_skip_fd_ = -1;
  l7_limit_fd_ = -1;
}

Status NetflowPlugin::SetL7Limit(bool payload_off, uint32_t keep_one_in) {
  if (l7_limit_fd_ < 0) return Status::Error("netflow probe not attached");
  const uint32_t zero = 0;
  const ns_l7_limit limit{.payload_off = payload_off ? 1u : 0u, .keep_one_in = keep_one_in};
  if (bpf_map_update_elem(l7_limit_fd_, &zero, &limit, BPF_ANY) != 0) {
    return Status::Error(std::string("l7_limit: ") + std::strerror(errno));
  }
  return Status::Ok();
}

NetflowPlugin::Counters NetflowPlugin::counters() const {
  std::vector<uint64_t> kernel = probe_.KernelCounters();
  Counters counters;
  counters.ringbuf_drops = kernel[NS_NETFLOW_CNT_RINGBUF_DROPS];
  counters.map_full = kernel[NS_NETFLOW_CNT_MAP_FULL];
  counters.records = records_.load(std::memory_order_relaxed);
  counters.closes = closes_.load(std::memory_order_relaxed);
  counters.malformed = malformed_.load(std::memory_order_relaxed);
  counters.vanished = vanished_.load(std::memory_order_relaxed);
  counters.filtered = filtered_.load(std::memory_order_relaxed);
  counters.tracked = tracked_.load(std::memory_order_relaxed);
  counters.http_records = http_records_.load(std::memory_order_relaxed);
  counters.dns_records = dns_records_.load(std::memory_order_relaxed);
  counters.l7_events = l7_events_.load(std::memory_order_relaxed);
  counters.l7_malformed = l7_malformed_.load(std::memory_order_relaxed);
  counters.l7_ringbuf_drops = kernel[NS_NETFLOW_CNT_L7_RINGBUF_DROPS];
  counters.l7_no_ring = kernel[NS_NETFLOW_CNT_L7_NO_RING];
  counters.l7_shed_conns_payload = kernel[NS_NETFLOW_CNT_L7_SHED_CONNS_PAYLOAD];
  counters.l7_shed_conns_sampled = kernel[NS_NETFLOW_CNT_L7_SHED_CONNS_SAMPLED];
  counters.l7_shed_calls_payload = kernel[NS_NETFLOW_CNT_L7_SHED_CALLS_PAYLOAD];
  counters.l7_shed_calls_sampled = kernel[NS_NETFLOW_CNT_L7_SHED_CALLS_SAMPLED];
  std::lock_guard<std::mutex> lock(l7_mu_);
  counters.http = http_counters_;
  counters.dns = dns_counters_;
  return counters;
}

v1::ProbeStatus NetflowPlugin::probe_status() const { return probe_.status(); }

v1::ProbeStatus NetflowPlugin::tls_status() const {
  std::lock_guard<std::mutex> lock(l7_mu_);
  v1::ProbeStatus status = tls_status_;
  if (tls_) status.set_coverage(tls_->Coverage());
  return status;
}

}  // namespace nodescope::sensor::netflow
