#include "aggregator/grpc_message.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <string>

namespace nodescope::aggregator {

grpc::Status ParseMessage(grpc::ByteBuffer* bytes, int64_t max_bytes,
                          google::protobuf::MessageLite* out) {
  const size_t length = bytes->Length();
  if (max_bytes >= 0 && length > static_cast<size_t>(max_bytes)) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "message of " + std::to_string(length) +
                            " bytes is over max_message_size (" + std::to_string(max_bytes) + ")");
  }
  grpc::ProtoBufferReader reader(bytes);
  if (!reader.status().ok()) return reader.status();
  if (!out->ParseFromZeroCopyStream(&reader)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "cannot parse the message as " + out->GetTypeName());
  }
  return grpc::Status::OK;
}

}  // namespace nodescope::aggregator
