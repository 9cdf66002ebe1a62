#include "aggregator/ingest/convert.h"

#include <concepts>
#include <limits>
#include <optional>
#include <span>

#include "common/net/ip.h"

namespace nodescope::aggregator::ingest {

namespace {

constexpr std::string_view kProcessSource = "process";
constexpr std::string_view kNetflowSource = "netflow";
constexpr std::string_view kHttpflowSource = "httpflow";
constexpr std::string_view kDnsflowSource = "dnsflow";
constexpr std::string_view kConntrackSource = "conntrack";
constexpr std::string_view kBashSource = "bash";

std::optional<net::IpAddress> Address(const std::string& raw) {
  return net::IpAddress::FromBytes(
      std::span(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
}

std::string_view FamilyOf(const net::IpAddress& src, const net::IpAddress& dst) {
  return src.v6 && dst.v6 ? "IPv6" : "IPv4";
}

// Counters are uint64 on the wire and int fields in records; beyond int64 (8 EiB in one interval)
// is not real, but it must not turn negative either.
int64_t IntField(uint64_t value) {
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(value > kMax ? kMax : value);
}

// NetflowEvent, HttpflowEvent and DnsflowEvent carry the connection tuple under the same field
// names, so one check and one tag writer serve the three sources.
template <typename E>
concept FlowEvent = requires(const E& e) {
  { e.transport() } -> std::same_as<v1::NetflowEvent::Transport>;
  { e.direction() } -> std::same_as<v1::NetflowEvent::Direction>;
  { e.src_ip() } -> std::same_as<const std::string&>;
  { e.dst_ip() } -> std::same_as<const std::string&>;
  { e.src_port() } -> std::same_as<uint32_t>;
  { e.dst_port() } -> std::same_as<uint32_t>;
  { e.pid() } -> std::same_as<uint32_t>;
  { e.process_name() } -> std::same_as<const std::string&>;
  { e.netns() } -> std::same_as<uint32_t>;
  { e.dst_domain() } -> std::same_as<const std::string&>;
};

struct FlowTuple {
  std::string_view transport;
  std::string_view direction;
  net::IpAddress src;
  net::IpAddress dst;
};

// Checked before a RecordWriter exists: constructing one already appends the record.
template <FlowEvent E>
std::optional<FlowTuple> CheckTuple(const E& event) {
  const std::string_view transport = TransportName(event.transport());
  const std::string_view direction = DirectionName(event.direction());
  std::optional<net::IpAddress> src = Address(event.src_ip());
  std::optional<net::IpAddress> dst = Address(event.dst_ip());
  if (transport.empty() || direction.empty() || !src || !dst) return std::nullopt;
  return FlowTuple{transport, direction, *src, *dst};
}

// The tags the three flow sources share, in this order; the caller adds its own, then the extra
// tags (which must come last: they never override).
template <FlowEvent E>
void WriteFlowTags(const E& event, const FlowTuple& tuple, const BatchContext& context,
                   RecordWriter* b) {
  b->Tag("host", context.node);
  b->Tag("direction", tuple.direction);
  b->Tag("src_ip", tuple.src.ToString());
  b->Tag("dst_ip", tuple.dst.ToString());
  b->Tag("src_port", PortText(event.src_port()));
  b->Tag("dst_port", PortText(event.dst_port()));
  b->Tag("src_ip_type", net::IpTypeName(net::Classify(tuple.src)));
  b->Tag("dst_ip_type", net::IpTypeName(net::Classify(tuple.dst)));
  b->Tag("family", FamilyOf(tuple.src, tuple.dst));
  b->Tag("transport", tuple.transport);
  if (event.pid() != 0) b->Tag("pid", uint64_t{event.pid()});
  b->Tag("process_name", event.process_name());
  b->Tag("netns", uint64_t{event.netns()});
  if (!event.dst_domain().empty()) b->Tag("dst_domain", event.dst_domain());
}

// dst_nat_ip/dst_nat_port of netflow and httpflow: the sensor joined the connections of the
// key with their DNAT translation (ebpf-conntrack) before folding; absent when there was none.
template <typename E>
void WriteNatTags(const E& event, RecordWriter* b) {
  if (event.dst_nat_port() == 0) return;
  std::optional<net::IpAddress> nat = Address(event.dst_nat_ip());
  if (!nat) return;
  b->Tag("dst_nat_ip", nat->ToString());
  b->Tag("dst_nat_port", PortText(event.dst_nat_port()));
}

// The local side (src) is named by the process's container when the sensor saw one (the only way
// for a host-network pod, whose address is its node's), else by address like the remote side.
// With a DNAT translation the remote pod is the NAT target and the service the one dialled.
template <FlowEvent E>
void WriteK8sFlowTags(const E& event, const FlowTuple& tuple, int64_t time,
                      const BatchContext& context, RecordWriter* b) {
  if (!event.container().id().empty()) b->Tag("container_id", event.container().id());
  if (context.metadata == nullptr) return;
  const enrich::MetadataSource& m = *context.metadata;
  enrich::K8sNames src;
  if (event.has_container())
    src = m.ByContainer(event.container().id(), event.container().pod_uid());
  if (src.empty()) src = m.ByIp(tuple.src, time);
  enrich::K8sNames dst = m.ByIp(tuple.dst, time);
  if constexpr (requires { event.dst_nat_ip(); }) {
    if (event.dst_nat_port() != 0) {
      if (std::optional<net::IpAddress> nat = Address(event.dst_nat_ip())) {
        enrich::K8sNames target = m.ByIp(*nat, time);
        if (!target.empty()) {
          if (target.service.empty()) target.service = dst.service;
          dst = std::move(target);
        }
      }
    }
  }
  auto write = [b](std::string_view side, const enrich::K8sNames& names) {
    auto tag = [&](std::string_view what, const std::string& value) {
      if (value.empty()) return;
      std::string key(side);
      key.append("_k8s_").append(what);
      b->Tag(key, value);
    };
    tag("namespace", names.ns);
    tag("pod_name", names.pod);
    tag("service_name", names.service);
    tag("deployment_name", names.deployment);
  };
  write("src", src);
  write("dst", dst);
  if (!src.container.empty()) b->Tag("k8s_container_name", src.container);
  if (!src.empty() || !dst.empty()) b->Tag("sub_source", "K8s");
}

// process and bash records: the process's own pod (tags k8s_namespace, k8s_pod_name,
// k8s_container_name, k8s_deployment_name) from the container the sensor saw it in.
void WriteK8sProcessTags(const v1::Container& container, const BatchContext& context,
                         RecordWriter* b) {
  if (container.id().empty() && container.pod_uid().empty()) return;
  if (!container.id().empty()) b->Tag("container_id", container.id());
  if (context.metadata == nullptr) return;
  enrich::K8sNames names = context.metadata->ByContainer(container.id(), container.pod_uid());
  if (names.empty()) return;
  b->Tag("k8s_namespace", names.ns);
  b->Tag("k8s_pod_name", names.pod);
  if (!names.container.empty()) b->Tag("k8s_container_name", names.container);
  if (!names.deployment.empty()) b->Tag("k8s_deployment_name", names.deployment);
  b->Tag("sub_source", "K8s");
}

std::string_view ConntrackKindName(v1::ConntrackEvent::Kind kind) {
  switch (kind) {
    case v1::ConntrackEvent::NEW:
      return "new";
    case v1::ConntrackEvent::DESTROY:
      return "destroy";
    case v1::ConntrackEvent::EXISTING:
      return "existing";
    default:
      return {};
  }
}

}  // namespace

std::string_view SourceOf(const v1::Event& event) {
  switch (event.payload_case()) {
    case v1::Event::kProcess:
      return kProcessSource;
    case v1::Event::kNetflow:
      return kNetflowSource;
    case v1::Event::kHttpflow:
      return kHttpflowSource;
    case v1::Event::kDnsflow:
      return kDnsflowSource;
    case v1::Event::kConntrack:
      return kConntrackSource;
    case v1::Event::kBash:
      return kBashSource;
    case v1::Event::kKernel:  // not a record: KernelMetrics
    case v1::Event::kLost:    // not a record: lost_events to subscribers
    case v1::Event::PAYLOAD_NOT_SET:
      break;
  }
  return {};
}

std::string_view ProcessEventName(v1::ProcessEvent::Kind kind) {
  switch (kind) {
    case v1::ProcessEvent::EXEC:
      return "exec";
    case v1::ProcessEvent::FORK:
      return "fork";
    case v1::ProcessEvent::EXIT:
      return "exit";
    default:
      return {};
  }
}

void AppendExtraTags(const google::protobuf::RepeatedPtrField<v1::Tag>& extra_tags,
                     RecordWriter* writer) {
  for (const v1::Tag& extra : extra_tags) {
    if (!writer->HasTag(extra.key())) writer->Tag(extra.key(), extra.value());
  }
}

bool ConvertProcess(const v1::ProcessEvent& event, int64_t time_unix_nano,
                    const BatchContext& context, RecordBatch* out) {
  std::string_view name = ProcessEventName(event.kind());
  if (name.empty()) return false;
  RecordWriter b(out, kProcessSource, time_unix_nano, context.node);
  b.Tag("host", context.node);
  b.Tag("pid", uint64_t{event.pid()});
  b.Tag("ppid", uint64_t{event.ppid()});
  b.Tag("process_name", event.process_name());
  b.Tag("user", event.user());
  b.Tag("cgroup_id", uint64_t{event.cgroup_id()});
  WriteK8sProcessTags(event.container(), context, &b);
  AppendExtraTags(context.extra_tags, &b);

  b.Field("event", name);
  if (!event.filename().empty()) b.Field("filename", event.filename());
  if (event.kind() == v1::ProcessEvent::EXIT) {
    b.Field("exit_code", int64_t{event.exit_code()});
    if (event.signal() != 0) b.Field("signal", int64_t{event.signal()});
    // duration_ns is unsigned on the wire; a lifetime beyond int64 (292 years) is not real.
    b.Field("duration", static_cast<int64_t>(event.duration_ns()));
  }
  return true;
}

std::string PortText(uint32_t port) { return port == 0 ? "*" : std::to_string(port); }

std::string_view TransportName(v1::NetflowEvent::Transport transport) {
  switch (transport) {
    case v1::NetflowEvent::TCP:
      return "tcp";
    case v1::NetflowEvent::UDP:
      return "udp";
    default:
      return {};
  }
}

std::string_view DirectionName(v1::NetflowEvent::Direction direction) {
  switch (direction) {
    case v1::NetflowEvent::OUTGOING:
      return "outgoing";
    case v1::NetflowEvent::INCOMING:
      return "incoming";
    default:
      return {};
  }
}

std::string_view NetflowFamily(const v1::NetflowEvent& event) {
  std::optional<net::IpAddress> src = Address(event.src_ip());
  std::optional<net::IpAddress> dst = Address(event.dst_ip());
  if (!src || !dst) return {};
  return FamilyOf(*src, *dst);
}

bool ConvertNetflow(const v1::NetflowEvent& event, int64_t time_unix_nano,
                    const BatchContext& context, RecordBatch* out) {
  const std::optional<FlowTuple> tuple = CheckTuple(event);
  if (!tuple) return false;
  RecordWriter b(out, kNetflowSource, time_unix_nano, context.node);
  WriteFlowTags(event, *tuple, context, &b);
  WriteNatTags(event, &b);
  WriteK8sFlowTags(event, *tuple, time_unix_nano, context, &b);
  if (!event.dst_service_name().empty()) b.Tag("dst_service_name", event.dst_service_name());
  AppendExtraTags(context.extra_tags, &b);

  b.Field("bytes_read", IntField(event.bytes_read()));
  b.Field("bytes_written", IntField(event.bytes_written()));
  b.Field("retransmits", IntField(event.retransmits()));
  b.Field("rtt", IntField(event.rtt_us()));
  b.Field("rtt_var", IntField(event.rtt_var_us()));
  b.Field("tcp_established", IntField(event.tcp_established()));
  b.Field("tcp_closed", IntField(event.tcp_closed()));
  return true;
}

bool ConvertHttpflow(const v1::HttpflowEvent& event, int64_t time_unix_nano,
                     const BatchContext& context, RecordBatch* out) {
  const std::optional<FlowTuple> tuple = CheckTuple(event);
  if (!tuple) return false;
  RecordWriter b(out, kHttpflowSource, time_unix_nano, context.node);
  WriteFlowTags(event, *tuple, context, &b);
  WriteNatTags(event, &b);
  WriteK8sFlowTags(event, *tuple, time_unix_nano, context, &b);
  AppendExtraTags(context.extra_tags, &b);

  b.Field("bytes_read", IntField(event.bytes_read()));
  b.Field("bytes_written", IntField(event.bytes_written()));
  b.Field("count", IntField(event.count()));
  b.Field("http_version", event.http_version());
  b.Field("latency", IntField(event.latency_ns()));
  b.Field("method", event.method());
  b.Field("path", event.path());
  b.Field("status_code", int64_t{event.status_code()});
  b.Field("truncated", event.truncated());
  return true;
}

bool ConvertDnsflow(const v1::DnsflowEvent& event, int64_t time_unix_nano,
                    const BatchContext& context, RecordBatch* out) {
  const std::optional<FlowTuple> tuple = CheckTuple(event);
  if (!tuple) return false;
  RecordWriter b(out, kDnsflowSource, time_unix_nano, context.node);
  WriteFlowTags(event, *tuple, context, &b);
  WriteK8sFlowTags(event, *tuple, time_unix_nano, context, &b);
  AppendExtraTags(context.extra_tags, &b);

  b.Field("count", IntField(event.count()));
  b.Field("latency", IntField(event.latency_ns()));
  b.Field("latency_max", IntField(event.latency_max_ns()));
  b.Field("rcode", int64_t{event.rcode()});
  return true;
}

bool ConvertBash(const v1::BashEvent& event, int64_t time_unix_nano, const BatchContext& context,
                 RecordBatch* out) {
  if (event.cmd().empty()) return false;
  RecordWriter b(out, kBashSource, time_unix_nano, context.node);
  b.Tag("host", context.node);
  WriteK8sProcessTags(event.container(), context, &b);
  AppendExtraTags(context.extra_tags, &b);

  // The reference collector's fields (pid is a string there), then ours.
  b.Field("cmd", event.cmd());
  b.Field("message", event.message());
  b.Field("pid", std::to_string(event.pid()));
  b.Field("user", event.user());
  b.Field("ppid", std::to_string(event.ppid()));
  if (!event.tty().empty()) b.Field("tty", event.tty());
  b.Field("cgroup_id", std::to_string(event.cgroup_id()));
  b.Field("truncated", event.truncated());
  return true;
}

bool ConvertConntrack(const v1::ConntrackEvent& event, int64_t time_unix_nano,
                      const BatchContext& context, RecordBatch* out) {
  const std::string_view kind = ConntrackKindName(event.kind());
  std::optional<net::IpAddress> src = Address(event.orig_src_ip());
  std::optional<net::IpAddress> dst = Address(event.orig_dst_ip());
  std::optional<net::IpAddress> nat = Address(event.reply_src_ip());
  std::optional<net::IpAddress> reply_dst = Address(event.reply_dst_ip());
  if (kind.empty() || !src || !dst || !nat || !reply_dst) return false;
  RecordWriter b(out, kConntrackSource, time_unix_nano, context.node);
  b.Tag("host", context.node);
  b.Tag("netns", uint64_t{event.netns()});
  const std::string_view transport = TransportName(event.transport());
  b.Tag("transport", transport.empty() ? std::string_view("other") : transport);
  b.Tag("family", FamilyOf(*src, *dst));
  b.Tag("src_ip", src->ToString());
  b.Tag("src_port", std::to_string(event.orig_src_port()));
  b.Tag("dst_ip", dst->ToString());
  b.Tag("dst_port", std::to_string(event.orig_dst_port()));
  b.Tag("dst_nat_ip", nat->ToString());
  b.Tag("dst_nat_port", std::to_string(event.reply_src_port()));
  AppendExtraTags(context.extra_tags, &b);

  b.Field("event", kind);
  b.Field("conntrack_id", int64_t{event.conntrack_id()});
  b.Field("reply_dst_ip", reply_dst->ToString());
  b.Field("reply_dst_port", int64_t{event.reply_dst_port()});
  return true;
}

bool ConvertEvent(const v1::Event& event, const BatchContext& context, RecordBatch* out) {
  switch (event.payload_case()) {
    case v1::Event::kProcess:
      return ConvertProcess(event.process(), event.time_unix_nano(), context, out);
    case v1::Event::kNetflow:
      return ConvertNetflow(event.netflow(), event.time_unix_nano(), context, out);
    case v1::Event::kHttpflow:
      return ConvertHttpflow(event.httpflow(), event.time_unix_nano(), context, out);
    case v1::Event::kDnsflow:
      return ConvertDnsflow(event.dnsflow(), event.time_unix_nano(), context, out);
    case v1::Event::kConntrack:
      return ConvertConntrack(event.conntrack(), event.time_unix_nano(), context, out);
    case v1::Event::kBash:
      return ConvertBash(event.bash(), event.time_unix_nano(), context, out);
    case v1::Event::kKernel:  // not a record: KernelMetrics
    case v1::Event::kLost:    // not a record: lost_events to subscribers
    case v1::Event::PAYLOAD_NOT_SET:
      break;
  }
  return false;
}

}  // namespace nodescope::aggregator::ingest
