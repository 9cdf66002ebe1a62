// ObserverService: Subscribe (history, then live records, in responses of many records) and
// Status (sensors, sources, subscribers, drops).
//
// Registered by hand rather than through the generated ObserverService::Service so that
// Subscribe can write responses that are already in wire form: records are written once, at
// ingest, as SubscribeResponse `records` entries (RecordWriter) and a response is these frames
// concatenated. The wire format is exactly SubscribeResponse; clients use the generated stub.
// Requests arrive as bytes too: each call is admitted (rate per client address, bearer token,
// request size against max_message_size) before its request is parsed.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/impl/service_type.h>
#include <grpcpp/support/method_handler.h>
#include <grpcpp/support/sync_stream.h>

#include <atomic>
#include <cstdint>

#include "aggregator/api/bearer_token.h"
#include "aggregator/api/hub.h"
#include "aggregator/api/rate_limit.h"
#include "aggregator/ingest/sensors.h"
#include "aggregator/metrics.h"
#include "nodescope/v1/observer.pb.h"

namespace nodescope::aggregator::api {

// A SubscribeResponse in wire form.
struct WireResponse {
  grpc::ByteBuffer bytes;
};

struct ObserverOptions {
  int64_t max_subscribers = 64;
  // Responses carry up to this many records or about this many bytes, whichever comes first;
  // the byte bound keeps them well below gRPC's default 4 MiB receive limit.
  int max_records_per_response = 1024;
  size_t max_bytes_per_response = 1 << 20;
  // Admission (null: not checked). Refusals are counted in nodescope_api_refused_total.
  BearerToken* token = nullptr;
  RateLimiter* rate_limiter = nullptr;
  int64_t max_message_size = 64 << 20;
};

class ObserverService final : public grpc::Service {
 public:
  static constexpr char kSubscribeMethod[] = "/nodescope.v1.ObserverService/Subscribe";
  static constexpr char kStatusMethod[] = "/nodescope.v1.ObserverService/Status";

  ObserverService(ObserverOptions options, Hub* hub, const ingest::SensorRegistry* sensors,
                  Metrics* metrics);

  grpc::Status Subscribe(grpc::ServerContext* context, const v1::SubscribeRequest* request,
                         grpc::ServerWriter<WireResponse>* writer);
  grpc::Status Status(grpc::ServerContext* context, const v1::StatusRequest* request,
                      v1::StatusResponse* response);

 private:
  // OK, or why the call is refused: RESOURCE_EXHAUSTED over the client's rate, UNAUTHENTICATED
  // without the right bearer token, RESOURCE_EXHAUSTED for a request over max_message_size.
  // Parses the request into `request` when admitted.
  grpc::Status Admit(grpc::ServerContext* context, const grpc::ByteBuffer& bytes,
                     google::protobuf::MessageLite* request);

  const ObserverOptions options_;
  Hub* const hub_;
  const ingest::SensorRegistry* const sensors_;
  Metrics* const metrics_;
  std::atomic<int64_t> active_{0};
};

}  // namespace nodescope::aggregator::api

template <>
class grpc::SerializationTraits<nodescope::aggregator::api::WireResponse, void> {
 public:
  static grpc::Status Serialize(const nodescope::aggregator::api::WireResponse& message,
                                grpc::ByteBuffer* buffer, bool* own_buffer) {
    *buffer = message.bytes;  // shares the slices
    *own_buffer = true;
    return grpc::Status::OK;
  }
  static grpc::Status Deserialize(grpc::ByteBuffer* buffer,
                                  nodescope::aggregator::api::WireResponse* message) {
    message->bytes.Swap(buffer);
    return grpc::Status::OK;
  }
};
