// SensorService.Stream: status and batches in, acks out.
#pragma once

#include <mutex>
#include <set>

#include "aggregator/ingest/ingestor.h"
#include "aggregator/ingest/sensors.h"
#include "aggregator/metrics.h"
#include "nodescope/v1/ingest.grpc.pb.h"

namespace nodescope::aggregator::ingest {

class SensorService final : public v1::SensorService::Service {
 public:
  SensorService(Ingestor* ingestor, SensorRegistry* sensors, Metrics* metrics);

  grpc::Status Stream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::AggregatorMessage, v1::SensorMessage>* stream) override;

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
};

}  // namespace nodescope::aggregator::ingest
