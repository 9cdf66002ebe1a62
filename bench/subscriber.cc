#include "bench/subscriber.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nodescope/v1/observer.grpc.pb.h"

namespace nodescope::bench {
namespace {

using google::protobuf::internal::WireFormatLite;

constexpr char kSubscribeMethod[] = "/nodescope.v1.ObserverService/Subscribe";
// Field numbers of observer.proto / records.proto the wire walk reads.
constexpr int kResponseRecords = 1;
constexpr int kResponseLostEvents = 2;
constexpr int kRecordTime = 2;

}  // namespace

ResponseCounts CountResponse(grpc::ByteBuffer* response, int64_t threshold) {
  ResponseCounts counts;
  grpc::ProtoBufferReader reader(response);
  google::protobuf::io::CodedInputStream in(&reader);
  in.SetTotalBytesLimit(INT32_MAX);
  while (const uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const bool delimited =
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    if (field == kResponseRecords && delimited) {
      uint32_t length = 0;
      if (!in.ReadVarint32(&length)) return {.ok = false};
      const auto limit = in.PushLimit(static_cast<int>(length));
      int64_t time = 0;
      while (const uint32_t inner = in.ReadTag()) {
        if (WireFormatLite::GetTagFieldNumber(inner) == kRecordTime &&
            WireFormatLite::GetTagWireType(inner) == WireFormatLite::WIRETYPE_VARINT) {
          uint64_t value = 0;
          if (!in.ReadVarint64(&value)) return {.ok = false};
          time = static_cast<int64_t>(value);
        } else if (!WireFormatLite::SkipField(&in, inner)) {
          return {.ok = false};
        }
      }
      if (!in.ConsumedEntireMessage()) return {.ok = false};
      in.PopLimit(limit);
      ++(time >= threshold ? counts.measured : counts.other);
    } else if (field == kResponseLostEvents && delimited) {
      std::string bytes;
      uint32_t length = 0;
      v1::LostEvents lost;
      if (!in.ReadVarint32(&length) || !in.ReadString(&bytes, static_cast<int>(length)) ||
          !lost.ParseFromString(bytes)) {
        return {.ok = false};
      }
      counts.lost += lost.count();
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return {.ok = false};
    }
  }
  counts.ok = in.ConsumedEntireMessage();
  return counts;
}

ResponseCounts DecodeAndCountResponse(grpc::ByteBuffer* response, int64_t threshold) {
  // Reused across calls, as a client reading a stream would: parsing into a cleared message
  // reuses its records and strings.
  thread_local v1::SubscribeResponse decoded;
  ResponseCounts counts;
  grpc::ProtoBufferReader reader(response);
  if (!decoded.ParseFromZeroCopyStream(&reader)) return {.ok = false};
  for (const v1::Record& record : decoded.records()) {
    ++(record.time_unix_nano() >= threshold ? counts.measured : counts.other);
  }
  counts.lost = decoded.lost_events().count();
  return counts;
}

Subscriber::Subscriber(std::shared_ptr<grpc::Channel> channel, ChildProcess* aggregator,
                       bool decode)
    : channel_(std::move(channel)), aggregator_(aggregator), decode_(decode) {
  thread_ = std::thread([this] { Run(); });
}

Subscriber::~Subscriber() {
  context_.TryCancel();
  thread_.join();
}

void Subscriber::Measure(int64_t threshold, uint64_t target) {
  std::lock_guard lock(mu_);
  threshold_ = threshold;
  target_ = target;
}

pid_t Subscriber::tid() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return tid_ != 0; });
  return tid_;
}

bool Subscriber::Wait(std::chrono::steady_clock::duration stall, End* end) {
  std::unique_lock lock(mu_);
  uint64_t last = measured_;
  while (!done_) {
    if (!changed_.wait_for(lock, stall, [&] { return done_ || finished_ || measured_ != last; }) ||
        (finished_ && !done_)) {
      return false;
    }
    last = measured_;
  }
  *end = end_;
  return true;
}

std::string Subscriber::error() {
  std::lock_guard lock(mu_);
  return error_;
}

void Subscriber::Run() {
  pthread_setname_np(pthread_self(), "subscriber");
  {
    std::lock_guard lock(mu_);
    tid_ = static_cast<pid_t>(syscall(SYS_gettid));
    changed_.notify_all();
  }
  v1::SubscribeRequest request;
  request.add_sources("process");
  request.set_follow(true);
  // Read as raw bytes (the generated stub would decode every record first); the factory is the
  // one generated code uses.
  const grpc::internal::RpcMethod method(kSubscribeMethod,
                                         grpc::internal::RpcMethod::SERVER_STREAMING, channel_);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel_.get(), method,
                                                                    &context_, request));
  grpc::ByteBuffer response;
  while (reader->Read(&response)) {
    const int64_t threshold = threshold_;
    const ResponseCounts counts = decode_ ? DecodeAndCountResponse(&response, threshold)
                                          : CountResponse(&response, threshold);
    std::lock_guard lock(mu_);
    if (!counts.ok) {
      error_ = "a response is not a valid SubscribeResponse";
      break;
    }
    warm_ += counts.other;
    lost_ += counts.lost;
    measured_ += counts.measured;
    if (!done_ && target_ > 0 && measured_ + lost_ >= target_) {
      end_.at = std::chrono::steady_clock::now();
      end_.self_cpu = SelfCpuSeconds();
      auto aggregator_cpu = aggregator_->CpuSeconds();
      end_.aggregator_cpu = aggregator_cpu.ok() ? *aggregator_cpu : 0;
      auto own = ThreadCpuSeconds(tid_);
      end_.subscriber_cpu = own.ok() ? *own : 0;
      done_ = true;
    }
    changed_.notify_all();
  }
  if (!error_.empty()) context_.TryCancel();
  const grpc::Status status = reader->Finish();
  std::lock_guard lock(mu_);
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED && error_.empty()) {
    error_ = status.error_message();
  }
  finished_ = true;
  changed_.notify_all();
}

}  // namespace nodescope::bench
