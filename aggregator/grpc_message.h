// Requests read as raw bytes and parsed here, so their size is checked against
// max_message_size before parsing and a refusal can be counted.
//
// gRPC's own limit (GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH) ends the call in its message_size
// filter without telling the handler why, so nothing could count it. That filter sees a message
// once the transport has assembled it (1.51 passes whole messages, as slice buffers), so checking
// the same bytes here bounds nothing less, and the refusal shows in nodescope_api_refused_total.
#pragma once

#include <google/protobuf/message_lite.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include <cstdint>

namespace nodescope::aggregator {

// RESOURCE_EXHAUSTED when `bytes` is longer than max_bytes (naming both sizes), INVALID_ARGUMENT
// when it does not parse as `out`'s type.
grpc::Status ParseMessage(grpc::ByteBuffer* bytes, int64_t max_bytes,
                          google::protobuf::MessageLite* out);

}  // namespace nodescope::aggregator
