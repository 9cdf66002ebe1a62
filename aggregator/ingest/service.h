// SensorService.Stream: status and batches in, acks out.
//
// Registered by hand rather than through the generated SensorService::Service so that messages
// arrive as bytes: their size is checked against max_message_size before they are parsed (see
// aggregator/grpc_message.h). The wire format is exactly SensorMessage.
#pragma once

#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/impl/service_type.h>
#include <grpcpp/support/method_handler.h>

#include <mutex>
#include <set>

#include "aggregator/ingest/ingestor.h"
#include "aggregator/ingest/sensors.h"
#include "aggregator/metrics.h"
#include "nodescope/v1/ingest.grpc.pb.h"

namespace nodescope::aggregator::ingest {

class SensorService final : public grpc::Service {
 public:
  static constexpr char kStreamMethod[] = "/nodescope.v1.SensorService/Stream";

  SensorService(Ingestor* ingestor, SensorRegistry* sensors, Metrics* metrics,
                int64_t max_message_size = 64 << 20);

  grpc::Status Stream(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<v1::AggregatorMessage, grpc::ByteBuffer>* stream);

  // Ends every open stream now (shutdown): a sensor blocked in nothing but its next batch would
  // otherwise hold the server's shutdown until its deadline. New streams are refused.
  void CancelAll();

 private:
  std::mutex mu_;
  std::set<grpc::ServerContext*> streams_;
  bool cancelled_ = false;

  Ingestor* ingestor_;
  SensorRegistry* sensors_;
  Metrics* metrics_;
  const int64_t max_message_size_;
};

}  // namespace nodescope::aggregator::ingest
