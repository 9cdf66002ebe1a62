#include "aggregator/ingest/service.h"

#include <google/protobuf/arena.h>
#include <spdlog/spdlog.h>

#include "aggregator/clock.h"
#include "aggregator/grpc_message.h"
#include "aggregator/ingest/dedup.h"

namespace nodescope::aggregator::ingest {

namespace {
// About a batch of 1,500 process events.
constexpr size_t kArenaInitialBlock = 512 * 1024;
}  // namespace

SensorService::SensorService(Ingestor* ingestor, SensorRegistry* sensors, Metrics* metrics,
                             int64_t max_message_size)
    : ingestor_(ingestor),
      sensors_(sensors),
      metrics_(metrics),
      max_message_size_(max_message_size) {
  AddMethod(new grpc::internal::RpcServiceMethod(
      kStreamMethod, grpc::internal::RpcMethod::BIDI_STREAMING,
      new grpc::internal::BidiStreamingHandler<SensorService, grpc::ByteBuffer,
                                               v1::AggregatorMessage>(
          [](SensorService* service, grpc::ServerContext* context,
             grpc::ServerReaderWriter<v1::AggregatorMessage, grpc::ByteBuffer>* stream) {
            return service->Stream(context, stream);
          },
          this)));
}

grpc::Status SensorService::Stream(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::AggregatorMessage, grpc::ByteBuffer>* stream) {
  {
    std::lock_guard lock(mu_);
    if (cancelled_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the aggregator is shutting down");
    }
    streams_.insert(context);
  }
  // Each message is parsed onto an arena that is reset after it: a batch's thousands of events
  // and strings cost a few block allocations instead of one malloc each. The initial block is
  // ours, so Reset keeps it and a typical batch allocates nothing at all.
  auto initial_block = std::make_unique<char[]>(kArenaInitialBlock);
  google::protobuf::ArenaOptions arena_options;
  arena_options.initial_block = initial_block.get();
  arena_options.initial_block_size = kArenaInitialBlock;
  arena_options.max_block_size = 1 << 20;
  google::protobuf::Arena arena(arena_options);
  v1::AggregatorMessage reply;
  std::string node;
  std::string instance;
  bool opened = false;
  grpc::Status result = grpc::Status::OK;

  grpc::ByteBuffer bytes;
  for (;; arena.Reset()) {
    if (!stream->Read(&bytes)) break;
    auto& message = *google::protobuf::Arena::CreateMessage<v1::SensorMessage>(&arena);
    result = ParseMessage(&bytes, max_message_size_, &message);
    bytes.Clear();
    if (!result.ok()) {
      if (result.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        metrics_->ApiRefused(kRefusedMessageTooLarge);
      }
      spdlog::warn("sensor stream from {} refused: {}", context->peer(), result.error_message());
      break;
    }
    if (!opened) {
      node = !message.node().empty() ? message.node() : message.batch().node();
      instance = !message.sensor_instance().empty() ? message.sensor_instance()
                                                    : message.batch().sensor_instance();
      if (instance.empty() || instance.size() > kMaxInstanceIdLength) {
        result = grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            "sensor_instance must be 1-" + std::to_string(kMaxInstanceIdLength) + " bytes");
        break;
      }
      if (node.empty()) {
        result = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "node is empty");
        break;
      }
      sensors_->StreamOpened(node, instance, NowUnixNano());
      metrics_->SetSensorsConnected(sensors_->connected());
      opened = true;
      spdlog::info("sensor {} (instance {}) connected from {}", node, instance, context->peer());
    }
    if (message.has_status()) {
      sensors_->SetStatus(instance, message.status(), NowUnixNano());
      metrics_->SetProbes(node, message.status());
    }
    if (message.has_batch()) {
      Ingestor::Outcome outcome = ingestor_->Commit(message.batch(), instance, NowUnixNano());
      reply.mutable_ack()->set_seq(outcome.ack);
      if (!stream->Write(reply)) break;
    }
  }
  if (opened) {
    sensors_->StreamClosed(instance, NowUnixNano());
    metrics_->SetSensorsConnected(sensors_->connected());
    spdlog::info("sensor {} (instance {}) disconnected", node, instance);
  }
  std::lock_guard lock(mu_);
  streams_.erase(context);
  return result;
}

void SensorService::CancelAll() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  for (grpc::ServerContext* context : streams_) context->TryCancel();
}

}  // namespace nodescope::aggregator::ingest
