// Sensor events -> records. One function per event type; a plugin adds its event to events.proto,
// a ConvertX here and a case in ConvertEvent.
#pragma once

#include <google/protobuf/repeated_ptr_field.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "aggregator/enrich/metadata_source.h"
#include "aggregator/record_batch.h"
#include "nodescope/v1/events.pb.h"
#include "nodescope/v1/records.pb.h"

namespace nodescope::aggregator::ingest {

// What every record of one sensor batch shares.
struct BatchContext {
  const std::string& node;
  const google::protobuf::RepeatedPtrField<v1::Tag>& extra_tags;
  // Kubernetes names for the src_k8s_*/dst_k8s_* and k8s_* tags; null when enrichment is off.
  const enrich::MetadataSource* metadata = nullptr;
};

// The record source an event becomes ("process", "netflow", "httpflow", "dnsflow"), or "" for an
// event this aggregator does not know (a newer sensor) or that is no record (kernel metrics).
std::string_view SourceOf(const v1::Event& event);

// Appends the record(s) of `event` to `out`. False when the event is not understood, and for a
// kernel metrics event, which is no record (Ingestor hands it to KernelMetrics).
bool ConvertEvent(const v1::Event& event, const BatchContext& context, RecordBatch* out);

// Appends the record of a process lifecycle event. False (nothing appended) when the kind is
// unspecified.
bool ConvertProcess(const v1::ProcessEvent& event, int64_t time_unix_nano,
                    const BatchContext& context, RecordBatch* out);

// Appends the `netflow` record of one aggregation key (tags and fields of docs RECORDS.md). False
// (nothing appended) when an address is neither 4 nor 16 bytes, or the transport or direction is
// unspecified or newer than this aggregator: such a record could not say what it describes.
// ConvertHttpflow and ConvertDnsflow refuse the same events and write the same tuple tags.
bool ConvertNetflow(const v1::NetflowEvent& event, int64_t time_unix_nano,
                    const BatchContext& context, RecordBatch* out);

// Appends the `httpflow` record of one aggregation key. Method and path are bytes from the peer;
// they become valid UTF-8 (U+FFFD for each bad byte) as process names do.
bool ConvertHttpflow(const v1::HttpflowEvent& event, int64_t time_unix_nano,
                     const BatchContext& context, RecordBatch* out);

// Appends the `dnsflow` record of one aggregation key; rcode -1 (no answer) is kept as is.
bool ConvertDnsflow(const v1::DnsflowEvent& event, int64_t time_unix_nano,
                    const BatchContext& context, RecordBatch* out);

// Appends the `bash` record of one line a shell read: tag host; fields cmd, message, pid (a
// string, as the reference collector has it), user, then ppid and cgroup_id (strings like pid),
// tty (when the shell has one) and truncated. The line's bytes become valid UTF-8 as process
// names do. False (nothing appended) for an empty line, which the sensor never sends.
bool ConvertBash(const v1::BashEvent& event, int64_t time_unix_nano, const BatchContext& context,
                 RecordBatch* out);

// Appends the `conntrack` record of one DNAT'ed conntrack entry (ebpf-conntrack): tags host,
// netns, transport, family, src/dst ip and port of the original direction, dst_nat_ip and
// dst_nat_port (the reply's source: where the connection really went); fields event (new,
// destroy, existing), conntrack_id, reply_dst_ip, reply_dst_port. False when an address is
// malformed or the kind unspecified.
bool ConvertConntrack(const v1::ConntrackEvent& event, int64_t time_unix_nano,
                      const BatchContext& context, RecordBatch* out);

// "IPv4" when either address is IPv4 (a dual-stack socket talking to a v4-mapped peer puts IPv4
// on the wire, even when its own address is still the wildcard ::), "IPv6" when both are IPv6,
// "" when an address is malformed.
std::string_view NetflowFamily(const v1::NetflowEvent& event);

// A port tag: the number, or "*" for 0 (the sensor folded the ephemeral side there).
std::string PortText(uint32_t port);

// The listening side's port of a netflow, httpflow or dnsflow event: dst_port of an outgoing one,
// src_port of an incoming one.
template <typename Flow>
uint32_t ServerPort(const Flow& event) {
  return event.direction() == v1::NetflowEvent::INCOMING ? event.src_port() : event.dst_port();
}

// "tcp", "udp"; "" for any other value.
std::string_view TransportName(v1::NetflowEvent::Transport transport);
// "outgoing", "incoming"; "" for any other value.
std::string_view DirectionName(v1::NetflowEvent::Direction direction);

// "exec", "fork", "exit"; "" for KIND_UNSPECIFIED.
std::string_view ProcessEventName(v1::ProcessEvent::Kind kind);

// Appends the sensor's configured tags except those the record already has: a configured tag
// never overrides host or a tag the event itself carries.
void AppendExtraTags(const google::protobuf::RepeatedPtrField<v1::Tag>& extra_tags,
                     RecordWriter* writer);

}  // namespace nodescope::aggregator::ingest
