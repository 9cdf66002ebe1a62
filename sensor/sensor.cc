#include "sensor/sensor.h"

#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "sensor/bpf/clock.h"
#include "sensor/capabilities.h"
#include "sensor/plugins/kernel/apps.h"
#include "sensor/plugins/netflow/listeners.h"
#include "sensor/proc/cgroup_paths.h"
#include "sensor/tls_options.h"

namespace nodescope::sensor {
namespace {

// One nodescope_sensor_events_total sample: the `event`s of `source` the probes observed.
Sample EventsSample(const char* source, const char* event, double value) {
  return {"nodescope_sensor_events_total",
          "events observed by the sensor's probes",
          true,
          {{"source", source}, {"event", event}},
          value};
}

std::string NodeName(const std::string& configured) {
  if (!configured.empty()) return configured;
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

}  // namespace

Result<netflow::NetflowOptions> NetflowOptionsFrom(const SensorConfig& config) {
  netflow::NetflowOptions o;
  o.interval = config.interval;
  o.ipv6_disabled = config.ipv6_disabled;
  o.proc_root = proc::ProcessCache::ProcRootFromEnv();
  if (config.ephemeral_port != 0) {
    o.ephemeral_port = static_cast<uint16_t>(config.ephemeral_port);
  } else {
    Result<uint16_t> start = netflow::EphemeralPortStart(o.proc_root);
    if (!start.ok()) return Status::Error("ephemeral_port: " + start.status().message());
    o.ephemeral_port = *start;
  }
  o.filter.ports = config.ports;
  o.filter.ips = config.ips;
  o.filter.hostnames = config.hostnames;
  o.filter.service_names = config.service_names;
  auto enabled = [&](const char* part) {
    return std::find(config.l7net_enabled.begin(), config.l7net_enabled.end(), part) !=
           config.l7net_enabled.end();
  };
  o.httpflow_tls = enabled("httpflow-tls");
  o.httpflow = enabled("httpflow") || o.httpflow_tls;  // HTTPS records are httpflow records
  o.l7_capture_bytes = static_cast<uint32_t>(config.l7_capture_bytes);
  o.l7_path_max = static_cast<size_t>(config.l7_path_max);
  o.dns_timeout = config.dns_timeout;
  if (Result<netflow::ConnectionFilter> f = netflow::ConnectionFilter::Build(o.filter); !f.ok()) {
    return f.status();
  }
  if (Result<netflow::ServiceNames> n = netflow::ServiceNames::Build(o.filter.service_names);
      !n.ok()) {
    return n.status();
  }
  return o;
}

Result<kernel::KernelOptions> KernelOptionsFrom(const SensorConfig& config) {
  kernel::KernelOptions o;
  o.update_every = config.update_every;
  o.families = std::set<std::string>(config.ebpf_programs.begin(), config.ebpf_programs.end());
  o.mode = config.ebpf_load_mode == "return" ? kernel::LoadMode::kReturn : kernel::LoadMode::kEntry;
  o.pid_table_size = static_cast<uint32_t>(config.pid_table_size);
  o.apps = config.apps;
  o.cgroups = config.cgroups;
  o.apps_groups = config.apps_groups;
  o.proc_root = proc::ProcessCache::ProcRootFromEnv();
  // The host's cgroup2 hierarchy (hybrid v1/v2 hosts mount it at /sys/fs/cgroup/unified), as
  // the container sink walks it, so both name a cgroup the same way.
  const proc::Cgroup2Mount cgroup2 = proc::FindCgroup2(proc::UserResolver::HostRootFromEnv(),
                                                       proc::ProcessCache::ProcRootFromEnv());
  o.cgroup_root = cgroup2.dir;
  o.cgroup_prefix = cgroup2.prefix;
  auto forced = config.probe_strategies.find("kernel");
  if (forced != config.probe_strategies.end()) o.forced_strategy = forced->second;
  if (Result<kernel::AppGroups> g = kernel::AppGroups::Build(o.apps_groups); !g.ok()) {
    return g.status();
  }
  return o;
}

Sensor::Sensor(SensorConfig config)
    : config_(std::move(config)),
      node_(NodeName(config_.hostname)),
      started_unix_nano_(bpf::NowUnixNano()),
      users_(proc::UserResolver::HostRootFromEnv()),
      cache_(&users_, {.proc_root = proc::ProcessCache::ProcRootFromEnv()}),
      limits_(LimitOptionsFrom(config_)) {}

Sensor::~Sensor() { Stop(std::chrono::steady_clock::now()); }

Status Sensor::Start() {
  auto seeded = cache_.SeedFromProc();
  if (!seeded.ok()) return seeded.status();
  spdlog::info("process cache: {} processes from {}", seeded.value(),
               proc::ProcessCache::ProcRootFromEnv());

  TransportOptions options;
  options.trace_server = config_.trace_server;
  options.node = node_;
  options.extra_tags = config_.tags;
  options.batch_size = static_cast<size_t>(config_.batch_size);
  options.batch_interval = config_.batch_interval;
  options.buffer_size = static_cast<size_t>(config_.buffer_size);
  auto security = tls::MakeChannelSecurity(ClientTlsOptions(config_));
  if (!security.ok()) return security.status();
  options.security = std::move(security).value();
  if (options.security.tls()) {
    spdlog::info("transport: TLS to {}, its certificate checked against {}, {}",
                 config_.trace_server, config_.tls_ca,
                 config_.tls_cert.empty() ? "no client certificate"
                                          : "client certificate " + config_.tls_cert);
  }
  options.spool_dir = config_.spool_dir;
  options.spool_size = static_cast<uint64_t>(config_.spool_size) << 20;
  // Orphans are looked for before this sensor's own spool directory exists.
  replayer_ = std::make_unique<SpoolReplayer>(options, [this] { return status(); });
  auto transport = Transport::Create(options, [this] { return status(); });
  if (!transport.ok()) return transport.status();
  transport_ = std::move(transport).value();
  // Every plugin emits through it: one place sets the records' container.
  const proc::Cgroup2Mount cgroup2 = proc::FindCgroup2(proc::UserResolver::HostRootFromEnv(),
                                                       proc::ProcessCache::ProcRootFromEnv());
  if (cgroup2.dir.empty()) {
    spdlog::warn("no cgroup2 mount found: records carry no container");
  } else {
    spdlog::info("containers: cgroup2 hierarchy at {}", cgroup2.dir);
  }
  containers_ = std::make_unique<proc::ContainerSink>(transport_.get(), proc::CgroupPaths(cgroup2));

  // New bash and libssl files are found through the execs the process probe sees; set before
  // it starts so none is missed (they queue until the probes run).
  const bool bash_execs = Enabled("ebpf-bash");
  const bool tls_execs =
      Enabled("ebpf-net") && std::find(config_.l7net_enabled.begin(), config_.l7net_enabled.end(),
                                       "httpflow-tls") != config_.l7net_enabled.end();
  if (bash_execs || tls_execs) {
    process_.SetExecObserver(
        [this, bash_execs, tls_execs](uint32_t pid, std::string_view filename) {
          if (bash_execs) bash_.OnExec(pid, filename);
          if (tls_execs) netflow_.OnExec(pid);
        });
  }
  auto forced = config_.probe_strategies.find(std::string(process::ProcessPlugin::kProbe));
  Status started = process_.Start(
      containers_.get(), &cache_,
      forced == config_.probe_strategies.end() ? std::string_view() : forced->second);
  if (!started.ok()) return started;
  if (Enabled("ebpf-conntrack")) {
    // Before netflow, so the translations of connections older than the sensor are in the
    // table (a dump per namespace) when netflow folds its first keys.
    conntrack::ConntrackOptions ct;
    ct.proc_root = proc::ProcessCache::ProcRootFromEnv();
    // A closed connection is looked up again at the next flush: keep translations for two
    // intervals after their entry is gone, and at least two minutes.
    ct.table.retention_ns = static_cast<uint64_t>(
        std::max<std::chrono::nanoseconds>(2 * config_.interval, std::chrono::minutes(2)).count());
    if (Status s = conntrack_.Start(containers_.get(), ct); !s.ok()) {
      spdlog::error("probe {}: {}", conntrack::ConntrackPlugin::kProbe, s.message());
    }
  }
  if (Enabled("ebpf-net")) {
    Result<netflow::NetflowOptions> options = NetflowOptionsFrom(config_);
    if (!options.ok()) return options.status();
    if (conntrack_.running()) {
      options->nat = [this](const netflow::NatQuery& q) { return conntrack_.Lookup(q); };
      options->nat_sync = [this] { conntrack_.Sync(std::chrono::milliseconds(200)); };
    }
    forced = config_.probe_strategies.find(std::string(netflow::NetflowPlugin::kProbe));
    Status net = netflow_.Start(
        containers_.get(), *options,
        forced == config_.probe_strategies.end() ? std::string_view() : forced->second);
    // A probe this kernel refuses is reported (status, log, probe state "failed"); the other
    // probes keep running.
    if (!net.ok()) spdlog::error("probe {}: {}", netflow::NetflowPlugin::kProbe, net.message());
  }
  if (Enabled("ebpf-bash")) {
    forced = config_.probe_strategies.find(std::string(bash::BashPlugin::kProbe));
    Status bash =
        bash_.Start(containers_.get(), &cache_, proc::ProcessCache::ProcRootFromEnv(),
                    proc::UserResolver::HostRootFromEnv(),
                    forced == config_.probe_strategies.end() ? std::string_view() : forced->second);
    if (!bash.ok()) spdlog::error("probe {}: {}", bash::BashPlugin::kProbe, bash.message());
  }
  if (Enabled("ebpf-kernel")) {
    Result<kernel::KernelOptions> options = KernelOptionsFrom(config_);
    if (!options.ok()) return options.status();
    if (Status k = kernel_.Start(containers_.get(), *options); !k.ok()) {
      spdlog::error("plugin ebpf-kernel: {}", k.message());
    }
  }
  for (const auto& plugin : config_.enabled_plugins) {
    if (std::find(kBuiltPlugins.begin(), kBuiltPlugins.end(), plugin) == kBuiltPlugins.end()) {
      spdlog::warn("plugin {} is enabled but not part of this build; running without it", plugin);
    }
  }
  for (const auto& part : config_.l7net_enabled) {
    if (std::find(kBuiltL7.begin(), kBuiltL7.end(), part) == kBuiltL7.end()) {
      spdlog::warn("l7net_enabled: {} is not part of this build; running without it", part);
    }
  }
  StartLimits();
  transport_->StatusChanged();

  const std::string address =
      config_.pprof_host.find(':') != std::string::npos
          ? "[" + config_.pprof_host + "]:" + std::to_string(config_.pprof_port)
          : config_.pprof_host + ":" + std::to_string(config_.pprof_port);
  http::Handlers handlers;
  handlers["/metrics"] = [this] {
    return http::HttpResponse{200, http::kMetricsContentType, RenderPrometheus(Samples())};
  };
  handlers["/debug/status"] = [this] {
    std::string body;
    google::protobuf::util::JsonPrintOptions json;
    json.add_whitespace = true;
    json.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(status(), &body, json);
    return http::HttpResponse{200, "application/json", body};
  };
  handlers["/healthz"] = [] { return http::HttpResponse{200, "text/plain", "ok\n"}; };
  auto server = http::HttpServer::Start(address, std::move(handlers));
  if (!server.ok()) return server.status();
  http_ = std::move(server).value();
  spdlog::info("self endpoint on http://{}/metrics and /debug/status", address);
  // Last: everything that needs root's whole set (loads, cgroup attachments, mounts, the port)
  // is done; what runs from here on needs only the kept set (sensor/capabilities.cc says why).
  Result<uint64_t> kept = DropUnneededCapabilities(config_);
  if (!kept.ok()) return kept.status();
  kept_capabilities_ = *kept;
  return Status::Ok();
}

void Sensor::RefreshStatus() {
  if (transport_) transport_->StatusChanged();
}

void Sensor::ReportLosses() {
  if (!transport_) return;
  for (const Sample& sample : Samples()) {
    if (sample.name != "nodescope_sensor_dropped_total") continue;
    std::string reason, probe;
    for (const auto& [key, value] : sample.labels) {
      if (key == "reason") reason = value;
      if (key == "probe") probe = value;
    }
    // Losses at stop happen after the last batch could be sent.
    if (reason == "stopped" || reason == "unacked_at_stop") continue;
    const auto total = static_cast<uint64_t>(sample.value);
    uint64_t& reported = losses_reported_[{reason, probe}];
    if (total <= reported) continue;
    v1::Event event;
    event.set_time_unix_nano(bpf::NowUnixNano());
    v1::LostEvent* lost = event.mutable_lost();
    lost->set_reason(reason);
    lost->set_probe(probe);
    lost->set_count(total - reported);
    if (transport_->EmitIfRoom(std::move(event))) reported = total;
  }
}

void Sensor::Stop(std::chrono::steady_clock::time_point deadline) {
  if (stopped_) return;
  stopped_ = true;
  http_.reset();    // first: no scrape may race with what follows
  limits_.Stop();   // sheds or restores nothing while the plugins stop
  netflow_.Stop();  // emits the last partial interval, so before the transport flush
  // After netflow, which looks translations up until its last report.
  conntrack_.Stop();
  bash_.Stop();    // delivers the lines still queued, so before the transport flush
  kernel_.Stop();  // sends the last partial interval, so before the transport flush
  process_.Stop();
  ReportLosses();  // the plugins' last drops, with the last batches
  if (replayer_) replayer_->Stop();
  if (transport_ && !transport_->Stop(deadline) &&
      transport_->Stats().dropped_unacked_at_stop > 0) {
    spdlog::warn(
        "stopped with {} events not acknowledged by the aggregator (counted as "
        "dropped, reason unacked_at_stop)",
        transport_->Stats().dropped_unacked_at_stop);
  }
}

bool Sensor::Enabled(std::string_view plugin) const {
  return std::find(config_.enabled_plugins.begin(), config_.enabled_plugins.end(), plugin) !=
         config_.enabled_plugins.end();
}

std::vector<v1::ProbeStatus> Sensor::Probes() const {
  std::vector<v1::ProbeStatus> probes = {process_.probe_status()};
  if (Enabled("ebpf-net")) {
    probes.push_back(netflow_.probe_status());
    if (std::find(config_.l7net_enabled.begin(), config_.l7net_enabled.end(), "httpflow-tls") !=
        config_.l7net_enabled.end()) {
      probes.push_back(netflow_.tls_status());
    }
  }
  if (Enabled("ebpf-bash")) probes.push_back(bash_.probe_status());
  if (Enabled("ebpf-conntrack")) probes.push_back(conntrack_.probe_status());
  if (Enabled("ebpf-kernel")) {
    for (auto& p : kernel_.Probes()) probes.push_back(std::move(p));
  }
  if (limits_.enabled()) probes.push_back(limits_.status());
  for (const auto& plugin : config_.enabled_plugins) {
    if (std::find(kBuiltPlugins.begin(), kBuiltPlugins.end(), plugin) != kBuiltPlugins.end()) {
      continue;
    }
    v1::ProbeStatus p;
    p.set_probe(plugin);
    p.set_state("not_built");
    p.set_error("enabled in the configuration but not part of this build");
    probes.push_back(std::move(p));
  }
  return probes;
}

std::vector<Sample> Sensor::Samples() const {
  std::vector<Sample> s;
  for (const auto& probe : Probes()) {
    if (probe.state() != "attached") continue;
    s.push_back({"nodescope_probe_info",
                 "attach strategy each probe runs with (always 1)",
                 false,
                 {{"probe", probe.probe()}, {"strategy", probe.strategy()}},
                 1});
  }
  const auto pc = process_.counters();
  s.push_back(EventsSample("process", "exec", double(pc.exec)));
  s.push_back(EventsSample("process", "fork", double(pc.fork)));
  s.push_back(EventsSample("process", "exit", double(pc.exit)));
  const char* dropped_help = "events lost before reaching the aggregator, by reason";
  if (transport_) {
    const TransportStats t = transport_->Stats();
    for (const auto& [reason, n] : t.Dropped()) {
      s.push_back(
          {"nodescope_sensor_dropped_total", dropped_help, true, {{"reason", reason}}, double(n)});
    }
    s.push_back({"nodescope_sensor_batches_sent_total",
                 "batches sent the first time",
                 true,
                 {},
                 double(t.batches_sent)});
    s.push_back({"nodescope_sensor_batches_acked_total",
                 "batches the aggregator acknowledged",
                 true,
                 {},
                 double(t.batches_acked)});
    s.push_back({"nodescope_sensor_batches_resent_total",
                 "batches sent again after a reconnect",
                 true,
                 {},
                 double(t.resent)});
    s.push_back({"nodescope_sensor_buffered_events",
                 "events held until the aggregator acknowledges them",
                 false,
                 {},
                 double(t.buffered_events)});
    s.push_back({"nodescope_sensor_connected",
                 "1 while the stream to the aggregator is up",
                 false,
                 {},
                 t.connected ? 1.0 : 0.0});
    s.push_back({"nodescope_sensor_reconnects_total",
                 "streams opened after one broke",
                 true,
                 {},
                 double(t.reconnects)});
    AppendSpoolSamples(t, s);
  }
  s.push_back({"nodescope_sensor_dropped_total",
               dropped_help,
               true,
               {{"reason", "ringbuf_full"}, {"probe", "process"}},
               double(pc.ringbuf_drops)});
  s.push_back({"nodescope_sensor_dropped_total",
               dropped_help,
               true,
               {{"reason", "fork_unresolved"}, {"probe", "process"}},
               double(pc.fork_unresolved)});
  s.push_back({"nodescope_sensor_malformed_events_total",
               "kernel records of an unexpected size (kernel/user ABI skew)",
               true,
               {{"probe", "process"}},
               double(pc.malformed)});
  for (int cap = 0; cap < 64; ++cap) {
    if (((kept_capabilities_ >> cap) & 1) == 0) continue;
    s.push_back({"nodescope_sensor_capability",
                 "capabilities the sensor kept after loading its probes (always 1)",
                 false,
                 {{"capability", CapabilityName(cap)}},
                 1});
  }
  AppendNetflowSamples(s);
  AppendConntrackSamples(s);
  AppendBashSamples(s);
  limits_.AppendSamples(s);
  s.push_back({"nodescope_sensor_process_cache_entries",
               "processes the pid cache knows",
               false,
               {},
               double(cache_.size())});
  return s;
}

void Sensor::AppendSpoolSamples(const TransportStats& t, std::vector<Sample>& s) const {
  if (config_.spool_dir.empty()) return;
  s.push_back({"nodescope_sensor_spooled_events",
               "events on disk in spool_dir waiting to be sent",
               false,
               {},
               double(t.spooled_events)});
  s.push_back({"nodescope_sensor_spool_bytes",
               "bytes of this sensor's spool files",
               false,
               {},
               double(t.spool_bytes)});
  s.push_back({"nodescope_sensor_spool_batches_total",
               "batches written to the spool (write) and read back from it (read)",
               true,
               {{"op", "write"}},
               double(t.batches_spooled)});
  s.push_back({"nodescope_sensor_spool_batches_total",
               "batches written to the spool (write) and read back from it (read)",
               true,
               {{"op", "read"}},
               double(t.batches_unspooled)});
  if (!replayer_) return;
  const SpoolReplayer::Stats r = replayer_->stats();
  s.push_back({"nodescope_sensor_spool_replayed_batches_total",
               "batches stopped sensors left in spool_dir, sent and acknowledged",
               true,
               {},
               double(r.batches_acked)});
  s.push_back({"nodescope_sensor_spool_replay_pending_events",
               "events stopped sensors left in spool_dir, not sent yet",
               false,
               {},
               double(r.pending_events)});
  s.push_back({"nodescope_sensor_dropped_total",
               "events lost before reaching the aggregator, by reason",
               true,
               {{"reason", "spool_damaged"}, {"probe", "replay"}},
               double(r.dropped_spool_damaged)});
}

void Sensor::AppendConntrackSamples(std::vector<Sample>& s) const {
  if (!Enabled("ebpf-conntrack")) return;
  const auto c = conntrack_.counters();
  s.push_back(EventsSample("conntrack", "new", double(c.new_events)));
  s.push_back(EventsSample("conntrack", "destroy", double(c.destroy_events)));
  s.push_back(EventsSample("conntrack", "existing", double(c.existing)));
  s.push_back({"nodescope_sensor_conntrack_translations",
               "DNAT translations the sensor tracks for the netflow join",
               false,
               {},
               double(c.translations)});
  s.push_back({"nodescope_sensor_conntrack_namespaces",
               "network namespaces whose conntrack events the sensor reads",
               false,
               {},
               double(c.namespaces)});
  const char* errors_help =
      "ctnetlink problems, by reason: overrun (ENOBUFS: events lost, the table is read again "
      "with a dump), malformed (messages that could not be decoded), socket (open, bind, "
      "recv, send failures)";
  for (const auto& [reason, n] : {std::pair<const char*, uint64_t>{"overrun", c.overruns},
                                  {"malformed", c.malformed},
                                  {"socket", c.socket_errors}}) {
    s.push_back({"nodescope_sensor_conntrack_netlink_errors_total",
                 errors_help,
                 true,
                 {{"reason", reason}},
                 double(n)});
  }
  s.push_back({"nodescope_sensor_conntrack_resyncs_total",
               "conntrack table dumps after lost events",
               true,
               {},
               double(c.resyncs)});
  s.push_back({"nodescope_sensor_dropped_total",
               "events lost before reaching the aggregator, by reason",
               true,
               {{"reason", "table_full"}, {"probe", "conntrack"}},
               double(c.table_full)});
}

void Sensor::AppendNetflowSamples(std::vector<Sample>& s) const {
  if (!Enabled("ebpf-net")) return;
  const auto nc = netflow_.counters();
  s.push_back(EventsSample("netflow", "record", double(nc.records)));
  s.push_back(EventsSample("netflow", "tcp_close", double(nc.closes)));
  const char* dropped_help = "events lost before reaching the aggregator, by reason";
  s.push_back({"nodescope_sensor_dropped_total",
               dropped_help,
               true,
               {{"reason", "ringbuf_full"}, {"probe", "netflow"}},
               double(nc.ringbuf_drops)});
  s.push_back({"nodescope_sensor_dropped_total",
               dropped_help,
               true,
               {{"reason", "map_full"}, {"probe", "netflow"}},
               double(nc.map_full)});
  s.push_back({"nodescope_sensor_dropped_total",
               dropped_help,
               true,
               {{"reason", "evicted"}, {"probe", "netflow"}},
               double(nc.vanished)});
  s.push_back({"nodescope_sensor_malformed_events_total",
               "kernel records of an unexpected size (kernel/user ABI skew)",
               true,
               {{"probe", "netflow"}},
               double(nc.malformed)});
  s.push_back({"nodescope_sensor_netflow_filtered_sockets_total",
               "sockets the ports/ips/hostnames filters excluded",
               true,
               {},
               double(nc.filtered)});
  s.push_back({"nodescope_sensor_netflow_tracked_sockets",
               "sockets the netflow probe tracks (bounded by the BPF map, 65536)",
               false,
               {},
               double(nc.tracked)});

  s.push_back(EventsSample("httpflow", "record", double(nc.http_records)));
  s.push_back(EventsSample("httpflow", "exchange", double(nc.http.exchanges)));
  s.push_back(EventsSample("httpflow", "exchange_mirrored", double(nc.http.mirrored)));
  s.push_back(
      EventsSample("httpflow", "exchange_mirrored_server_time", double(nc.http.mirror_stood_in)));
  s.push_back(EventsSample("dnsflow", "record", double(nc.dns_records)));
  s.push_back(EventsSample("dnsflow", "message", double(nc.dns.messages)));
  s.push_back(EventsSample("l7", "payload", double(nc.l7_events)));
  s.push_back({"nodescope_sensor_dropped_total",
               dropped_help,
               true,
               {{"reason", "ringbuf_full"}, {"probe", "l7"}},
               double(nc.l7_ringbuf_drops)});
  s.push_back({"nodescope_sensor_dropped_total",
               dropped_help,
               true,
               {{"reason", "no_ring"}, {"probe", "l7"}},
               double(nc.l7_no_ring)});
  s.push_back({"nodescope_sensor_malformed_events_total",
               "kernel records of an unexpected size (kernel/user ABI skew)",
               true,
               {{"probe", "l7"}},
               double(nc.l7_malformed)});
  const char* l7_help =
      "L7 payload not turned into records, by reason: not_http (a connection that began like "
      "HTTP but is not, or lost framing past the capture window), http_unanswered (requests "
      "without a response when their connection ended), http_evicted (connections dropped to "
      "stay within 16384), dns_malformed (DNS-port payload that does not parse), "
      "dns_unmatched (answers without a query seen), dns_uncaptured (datagrams whose bytes "
      "could not be copied)";
  auto l7 = [&](const char* reason, uint64_t n) {
    s.push_back(
        {"nodescope_sensor_l7_unparsed_total", l7_help, true, {{"reason", reason}}, double(n)});
  };
  l7("not_http", nc.http.failed);
  l7("http_unanswered", nc.http.unanswered);
  l7("http_evicted", nc.http.evicted);
  l7("dns_malformed", nc.dns.malformed);
  l7("dns_unmatched", nc.dns.unmatched_answers);
  l7("dns_uncaptured", nc.dns.uncaptured);
}

void Sensor::AppendBashSamples(std::vector<Sample>& s) const {
  if (!Enabled("ebpf-bash")) return;
  const auto bc = bash_.counters();
  s.push_back(EventsSample("bash", "line", double(bc.lines)));
  s.push_back({"nodescope_sensor_bash_truncated_lines_total",
               "bash lines longer than 4096 bytes, sent cut at 4096 and marked truncated",
               true,
               {},
               double(bc.truncated)});
  const char* dropped_help = "events lost before reaching the aggregator, by reason";
  s.push_back({"nodescope_sensor_dropped_total",
               dropped_help,
               true,
               {{"reason", "ringbuf_full"}, {"probe", "bash"}},
               double(bc.ringbuf_drops)});
  s.push_back({"nodescope_sensor_dropped_total",
               dropped_help,
               true,
               {{"reason", "read_failed"}, {"probe", "bash"}},
               double(bc.read_failed)});
  s.push_back({"nodescope_sensor_malformed_events_total",
               "kernel records of an unexpected size (kernel/user ABI skew)",
               true,
               {{"probe", "bash"}},
               double(bc.malformed)});
  s.push_back({"nodescope_sensor_bash_duplicate_lines_total",
               "bash lines seen by a second uprobe on the same real file (overlayfs mounts of "
               "one image) and sent once",
               true,
               {},
               double(bc.duplicates)});
  s.push_back({"nodescope_sensor_bash_binaries",
               "bash executable files (inodes) by whether the readline uprobe is on them",
               false,
               {{"state", "attached"}},
               double(bc.binaries_attached)});
  s.push_back({"nodescope_sensor_bash_binaries",
               "bash executable files (inodes) by whether the readline uprobe is on them",
               false,
               {{"state", "failed"}},
               double(bc.binaries_failed)});
}

v1::SensorStatus Sensor::status() const {
  v1::SensorStatus st;
  for (auto& probe : Probes()) *st.add_probes() = std::move(probe);
  for (const auto& [k, v] : ToCounters(Samples())) (*st.mutable_counters())[k] = v;
  st.set_version(NODESCOPE_VERSION);
  st.set_started_unix_nano(started_unix_nano_);
  return st;
}

}  // namespace nodescope::sensor
