#include "sensor/config.h"

#include "sensor/limits/quantity.h"
#include "sensor/limits/steps.h"
#include "sensor/plugins/kernel/options.h"

namespace nodescope::sensor {

config::Schema BuildSchema(SensorConfig* c) {
  using std::chrono::hours;
  using std::chrono::milliseconds;
  config::Schema s("nodescope-sensor");
  s.String("hostname", &c->hostname,
           "value of the host tag; empty: the node's hostname (in Kubernetes: spec.nodeName)");
  s.Address("trace_server", &c->trace_server, "aggregator address HOST:PORT (gRPC ingest)");
  s.String("pprof_host", &c->pprof_host,
           "address of the sensor's own HTTP endpoint (/metrics, /debug/status)");
  s.Int("pprof_port", &c->pprof_port, 1, 65535, "port of the sensor's own HTTP endpoint");
  s.List("enabled_plugins", &c->enabled_plugins, kKnownPlugins, "plugins to run");
  s.Map("tags", &c->tags, "extra tags added to every record of this node");
  s.Map("probe_strategies", &c->probe_strategies,
        "force an attach strategy per probe, e.g. {process: tracepoint}; default: the first "
        "strategy that loads");
  s.Int("batch_size", &c->batch_size, 1, 65536, "events per batch sent to the aggregator");
  s.Dur("batch_interval", &c->batch_interval, milliseconds(1), hours(1),
        "longest time an event waits in an open batch");
  s.Int("buffer_size", &c->buffer_size, 1, 100'000'000,
        "events kept until the aggregator acknowledges them; beyond it new events are dropped "
        "and counted");
  s.String("spool_dir", &c->spool_dir,
           "directory for batches the aggregator has not acknowledged when memory "
           "(half of buffer_size) is full, and for all of them at stop; replayed in order after "
           "reconnect and at the next start; empty: memory only");
  s.Int("spool_size", &c->spool_size, 1, 1 << 20,
        "MiB the spool may hold on disk; beyond it (and a full buffer) new events are dropped "
        "and counted (reason spool_full)");
  s.Choice("log_level", &c->log_level, {"trace", "debug", "info", "warn", "error"},
           "log verbosity");
  s.String("tls_ca", &c->tls_ca,
           "PEM CA bundle the aggregator's certificate is checked against; when set, TLS to "
           "trace_server (empty: plaintext)");
  s.String("tls_cert", &c->tls_cert,
           "PEM client certificate (chain) for an aggregator with mutual TLS (tls_client_ca)");
  s.String("tls_key", &c->tls_key, "PEM private key of tls_cert");
  s.String("tls_server_name", &c->tls_server_name,
           "name the aggregator's certificate must hold (empty: the host of trace_server)");
  s.Dur("tls_reload_interval", &c->tls_reload_interval, std::chrono::seconds(1), hours(24),
        "how often the TLS files are re-read; the next connection uses a changed one");
  s.Dur("interval", &c->interval, milliseconds(100), hours(24),
        "length of one netflow aggregation interval (one record per key per interval)");
  s.Bool("ipv6_disabled", &c->ipv6_disabled,
         "ignore IPv6 sockets (IPv4-mapped ones count as IPv4)");
  s.Int("ephemeral_port", &c->ephemeral_port, 0, 65535,
        "client ports at or above this are folded into \"*\"; 0: the first port of "
        "/proc/sys/net/ipv4/ip_local_port_range");
  s.String("ports", &c->ports,
           "server ports to report, Netdata syntax: 80 1-1024 !145 !domain (service names from "
           "/etc/services); * = all");
  s.String("ips", &c->ips,
           "remote addresses to report: CIDRs, dash ranges, single addresses, ! to exclude; "
           "* = all");
  s.String("hostnames", &c->hostnames,
           "remote host names to report (resolved at start), simple patterns with *, ! to "
           "exclude; * = all");
  s.Map("service_names", &c->service_names,
        "port -> name for dst_service_name, ahead of /etc/services (Netdata's [service name])");
  s.List("l7net_enabled", &c->l7net_enabled, kKnownL7,
         "L7 parts of ebpf-net: httpflow (HTTP/1.x requests), httpflow-tls (HTTPS through "
         "the host's OpenSSL 3, with httpflow); dnsflow is always on");
  s.Int("l7_capture_bytes", &c->l7_capture_bytes, 64, 4096,
        "bytes of each send/receive on an HTTP or DNS connection copied for parsing; a request "
        "or response head longer than this is not parsed");
  s.Int("l7_path_max", &c->l7_path_max, 1, 4096,
        "longest httpflow path kept; longer ones are cut and marked truncated");
  s.Dur("dns_timeout", &c->dns_timeout, milliseconds(100), std::chrono::minutes(5),
        "a DNS query unanswered this long is reported with rcode -1");
  s.Dur("update_every", &c->update_every, milliseconds(100), hours(1),
        "ebpf-kernel: how often the kernel metrics are read and sent");
  s.List("ebpf_programs", &c->ebpf_programs, kernel::kFamilies,
         "ebpf-kernel families to run (Netdata's [ebpf programs]); default Netdata's: process fd "
         "vfs sync mount socket hardirq softirq oomkill");
  s.Choice("ebpf_load_mode", &c->ebpf_load_mode, {"entry", "return"},
           "ebpf-kernel: entry counts calls; return adds the error dimensions");
  s.Int("pid_table_size", &c->pid_table_size, 64, 4'194'304,
        "ebpf-kernel: most processes counted per application and cgroup at once; beyond it a "
        "process counts host-wide only (counted in nodescope_kernel_events_lost_total)");
  s.Bool("apps", &c->apps, "ebpf-kernel: per-application series");
  s.Bool("cgroups", &c->cgroups, "ebpf-kernel: per-cgroup series");
  s.Map("apps_groups", &c->apps_groups,
        "ebpf-kernel application groups, group -> process name patterns (* wildcards), as in "
        "Netdata's apps_groups.conf; a process no pattern matches is its own application");
  s.String("cpu_limit", &c->cpu_limit,
           "CPU cores the sensor may use (\"2.0\", \"250m\"), measured per limit_window; "
           "empty: no limit",
           [](const std::string& v) { return limits::ParseCpuLimit(v).status(); });
  s.String("mem_limit", &c->mem_limit,
           "resident memory the sensor may use (\"4GiB\", \"512MiB\"); empty: no limit",
           [](const std::string& v) { return limits::ParseMemLimit(v).status(); });
  s.String("net_limit", &c->net_limit,
           "bytes received + sent per second on any network interface (\"100MiB/s\"); empty: "
           "no limit",
           [](const std::string& v) { return limits::ParseNetLimit(v).status(); });
  s.Choice("on_limit", &c->on_limit, {"shed", "exit"},
           "beyond a limit for 3 windows: shed one more step of limit_shed_order (restored one "
           "at a time after 6 windows below 80% of every limit), or exit with code 3");
  s.List("limit_shed_order", &c->limit_shed_order, limits::kSteps,
         "steps shed one at a time beyond a limit: sampling (HTTP payload of 1 in "
         "limit_sampling new connections), l7_payload (no HTTP payload), kernel_families (the "
         "ebpf-kernel family sources, costliest first, one step each)");
  s.Int("limit_sampling", &c->limit_sampling, 2, 1'000'000,
        "the sampling step keeps the HTTP payload of 1 in this many new connections");
  s.Dur("limit_window", &c->limit_window, milliseconds(100), hours(1),
        "how often usage is measured against the limits (CPU and network averaged over it)");
  return s;
}

}  // namespace nodescope::sensor
