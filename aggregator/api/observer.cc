#include "aggregator/api/observer.h"

#include <google/protobuf/io/coded_stream.h>
#include <spdlog/spdlog.h>

#include <deque>

#include "aggregator/clock.h"
#include "aggregator/grpc_message.h"

namespace nodescope::aggregator::api {

namespace {

static_assert(v1::SubscribeResponse::kLostEventsFieldNumber == 2);
constexpr uint8_t kLostEventsTag = (2 << 3) | 2;  // field 2, length-delimited

void AppendLostEvents(const v1::LostEvents& lost, std::string* out) {
  std::string bytes = lost.SerializeAsString();
  uint8_t header[1 + 10];
  header[0] = kLostEventsTag;
  uint8_t* end =
      google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(bytes.size(), header + 1);
  out->append(reinterpret_cast<const char*>(header), static_cast<size_t>(end - header));
  out->append(bytes);
}

// Collects record frames (RecordBatch::Frame) into SubscribeResponses and writes them.
class ResponseWriter {
 public:
  ResponseWriter(grpc::ServerWriter<WireResponse>* writer, const ObserverOptions& options)
      : writer_(writer), options_(options) {}

  void Lost(v1::LostEvents lost) { lost_.push_back(std::move(lost)); }

  // False when the client is gone.
  bool Add(std::string_view frame) {
    buffer_.append(frame);
    if (++records_ >= options_.max_records_per_response ||
        buffer_.size() >= options_.max_bytes_per_response) {
      return Flush();
    }
    return true;
  }

  bool Flush() {
    // A response carries one lost_events; earlier ones go alone, the last with the records.
    while (lost_.size() > 1 || (lost_.size() == 1 && records_ == 0)) {
      std::string lost_only;
      AppendLostEvents(lost_.front(), &lost_only);
      lost_.pop_front();
      if (!Write(lost_only)) return false;
    }
    if (records_ == 0) return true;
    if (!lost_.empty()) {
      AppendLostEvents(lost_.front(), &buffer_);  // fields may come in any order
      lost_.pop_front();
    }
    bool ok = Write(buffer_);
    buffer_.clear();
    records_ = 0;
    return ok;
  }

 private:
  bool Write(const std::string& bytes) {
    grpc::Slice slice(bytes.data(), bytes.size());
    WireResponse response{grpc::ByteBuffer(&slice, 1)};
    return writer_->Write(response);
  }

  grpc::ServerWriter<WireResponse>* writer_;
  const ObserverOptions& options_;
  std::string buffer_;
  int records_ = 0;
  std::deque<v1::LostEvents> lost_;
};

class ActiveCount {
 public:
  ActiveCount(std::atomic<int64_t>* count, Metrics* metrics) : count_(count), metrics_(metrics) {}
  ~ActiveCount() { metrics_->SetSubscribers(count_->fetch_sub(1) - 1); }

 private:
  std::atomic<int64_t>* count_;
  Metrics* metrics_;
};

}  // namespace

ObserverService::ObserverService(ObserverOptions options, Hub* hub,
                                 const ingest::SensorRegistry* sensors, Metrics* metrics)
    : options_(options), hub_(hub), sensors_(sensors), metrics_(metrics) {
  // What the generated ObserverService::Service constructor does, with WireResponse in place of
  // SubscribeResponse and the requests' bytes in place of the requests (Admit parses them).
  AddMethod(new grpc::internal::RpcServiceMethod(
      kSubscribeMethod, grpc::internal::RpcMethod::SERVER_STREAMING,
      new grpc::internal::ServerStreamingHandler<ObserverService, grpc::ByteBuffer, WireResponse>(
          [](ObserverService* service, grpc::ServerContext* context, const grpc::ByteBuffer* bytes,
             grpc::ServerWriter<WireResponse>* writer) {
            v1::SubscribeRequest request;
            grpc::Status admitted = service->Admit(context, *bytes, &request);
            if (!admitted.ok()) return admitted;
            return service->Subscribe(context, &request, writer);
          },
          this)));
  AddMethod(new grpc::internal::RpcServiceMethod(
      kStatusMethod, grpc::internal::RpcMethod::NORMAL_RPC,
      new grpc::internal::RpcMethodHandler<ObserverService, grpc::ByteBuffer, v1::StatusResponse,
                                           grpc::ByteBuffer, grpc::protobuf::MessageLite>(
          [](ObserverService* service, grpc::ServerContext* context, const grpc::ByteBuffer* bytes,
             v1::StatusResponse* response) {
            v1::StatusRequest request;
            grpc::Status admitted = service->Admit(context, *bytes, &request);
            if (!admitted.ok()) return admitted;
            return service->Status(context, &request, response);
          },
          this)));
}

grpc::Status ObserverService::Admit(grpc::ServerContext* context, const grpc::ByteBuffer& bytes,
                                    google::protobuf::MessageLite* request) {
  const std::string peer = context->peer();
  if (options_.rate_limiter != nullptr && !options_.rate_limiter->Allow(peer)) {
    metrics_->ApiRefused(kRefusedRateLimited);
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        "too many requests from " + PeerAddress(peer) + " (max_requests_per_second)");
  }
  if (options_.token != nullptr) {
    const auto& metadata = context->client_metadata();
    auto it = metadata.find("authorization");
    std::string value;
    if (it != metadata.end()) value.assign(it->second.data(), it->second.size());
    nodescope::Status checked = options_.token->Check(it != metadata.end() ? &value : nullptr);
    if (!checked.ok()) {
      metrics_->ApiRefused(kRefusedUnauthenticated);
      spdlog::debug("observer call from {} refused: {}", peer, checked.message());
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, checked.message());
    }
  }
  grpc::ByteBuffer copy(bytes);  // shares the slices; the reader needs a mutable buffer
  grpc::Status parsed = ParseMessage(&copy, options_.max_message_size, request);
  if (parsed.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    metrics_->ApiRefused(kRefusedMessageTooLarge);
  }
  return parsed;
}

grpc::Status ObserverService::Subscribe(grpc::ServerContext* context,
                                        const v1::SubscribeRequest* request,
                                        grpc::ServerWriter<WireResponse>* writer) {
  auto query = Query::Compile(*request);
  if (!query.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, query.status().message());
  }
  const int64_t active = active_.fetch_add(1) + 1;
  ActiveCount active_count(&active_, metrics_);
  if (active > options_.max_subscribers) {
    metrics_->ApiRefused(kRefusedTooManySubscribers);
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "too many subscribers (max_subscribers = " +
                            std::to_string(options_.max_subscribers) + ")");
  }
  metrics_->SetSubscribers(active);

  std::unique_ptr<Subscription> subscription =
      hub_->Subscribe(*query, request->last(), request->follow());
  // Lets a client wait (WaitForInitialMetadata) until it is registered for live records.
  writer->SendInitialMetadata();

  ResponseWriter out(writer, options_);
  for (const v1::LostEvents& lost : subscription->history_lost()) out.Lost(lost);
  for (const RecordRef& record : subscription->history()) {
    if (!out.Add(record.frame())) return grpc::Status::OK;
  }
  if (!out.Flush() || !request->follow()) return grpc::Status::OK;

  const int64_t until = request->until_unix_nano();
  std::vector<LiveItem> items;
  std::map<std::string, uint64_t> lost;
  std::vector<v1::LostEvents> sensor_lost;
  while (!context->IsCancelled()) {
    items.clear();
    lost.clear();
    sensor_lost.clear();
    bool open = subscription->Next(std::chrono::milliseconds(200), &items, &lost, &sensor_lost);
    for (v1::LostEvents& event : sensor_lost) out.Lost(std::move(event));
    for (const auto& [source, count] : lost) {
      v1::LostEvents event;
      event.set_reason(v1::LostEvents::SLOW_SUBSCRIBER);
      event.set_count(count);
      event.set_source(source);
      out.Lost(std::move(event));
    }
    for (const LiveItem& item : items) {
      bool ok = true;
      item.ForEach([&](uint32_t i) { ok = ok && out.Add(item.batch->Frame(i)); });
      if (!ok) return grpc::Status::OK;
    }
    if (!out.Flush()) return grpc::Status::OK;
    if (!open) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the aggregator is shutting down");
    }
    // Records are stamped on the nodes; a record can arrive a little after `until` passed here.
    // Ending once the clock is past it is the best a live stream can do.
    if (until != 0 && NowUnixNano() > until) return grpc::Status::OK;
  }
  return grpc::Status::OK;
}

grpc::Status ObserverService::Status(grpc::ServerContext* context, const v1::StatusRequest* request,
                                     v1::StatusResponse* response) {
  for (v1::SensorInfo& info : sensors_->Snapshot()) *response->add_sensors() = std::move(info);
  for (v1::SourceCounters& c : hub_->Sources()) *response->add_sources() = std::move(c);
  response->set_subscribers(static_cast<uint32_t>(active_.load()));
  for (const auto& [reason, count] : metrics_->DroppedByReason()) {
    (*response->mutable_dropped())[reason] = count;
  }
  response->set_version(NODESCOPE_VERSION);
  return grpc::Status::OK;
}

}  // namespace nodescope::aggregator::api
