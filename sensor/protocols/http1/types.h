// What the HTTP/1.x parser hands to the httpflow plugin: one Exchange per request/response pair.
// Plain structs on purpose: the plugin aggregates them into httpflow records (docs/RECORDS.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace nodescope::sensor::http1 {

// Who wrote the bytes of a chunk, from the point of view of the process the probe is attached to.
enum class Direction { kSent, kReceived };

// The local process's part in the connection. kClient: it sends requests (curl); kServer: it
// receives them (nginx). kUnknown: learnt from the first bytes of either direction.
enum class Role { kUnknown, kClient, kServer };

struct Exchange {
  std::string method;      // as sent: "GET", "POST", ...
  std::string path;        // request target without query and fragment, at most max_path_len bytes
  bool truncated = false;  // path was cut at max_path_len
  std::string version;     // of the request line: "1.0" or "1.1"
  int status_code = 0;     // of the final (non-1xx) response
  // Whole messages as they crossed the socket: start line, header section and body, including
  // the parts beyond the capture window that are known only by length. response_bytes includes
  // interim 1xx responses (e.g. "100 Continue"), as nginx's $bytes_sent does.
  uint64_t request_bytes = 0;
  uint64_t response_bytes = 0;
  uint64_t request_start_ns = 0;  // timestamp of the chunk holding the request's first byte
  // Timestamp of the chunk holding the first byte of the final response: an interim 100 Continue
  // is sent before the handler runs, so it says nothing about the server's latency.
  uint64_t response_start_ns = 0;
  // Where the request and the final response start among the bytes of their direction the
  // parser was fed (gaps included): the client and the server of one connection agree on them.
  uint64_t request_offset = 0;
  uint64_t response_offset = 0;
  // The request's body had not ended when the exchange was reported (the server answered early
  // and the connection closed or failed): request_bytes is what was seen until then.
  bool request_incomplete = false;

  bool operator==(const Exchange&) const = default;
};

// Why bytes or messages were not turned into exchanges; all monotonic.
struct Counters {
  uint64_t exchanges = 0;            // completed and queued for TakeExchanges()
  uint64_t requests_dropped = 0;     // pending-request FIFO full (deep pipelining): oldest dropped
  uint64_t unanswered_requests = 0;  // no response when the connection closed or failed
  uint64_t orphan_responses = 0;     // a response with no request to pair with
  uint64_t exchanges_dropped = 0;    // completed but not taken before max_completed piled up
  uint64_t uncaptured_bytes = 0;     // beyond the capture window, consumed as body by length
  uint64_t ignored_bytes = 0;        // fed after a failure, Close() or a protocol switch

  bool operator==(const Counters&) const = default;
};

struct ConnectionOptions {
  Role role = Role::kUnknown;
  size_t max_path_len = 256;
  // RFC 9112 section 2.3 leaves the limit to the implementation; nginx's default
  // large_client_header_buffers allow 4 x 8 KiB, most real heads fit in 1-2 KiB.
  size_t max_head_bytes = 16 * 1024;
  size_t max_pending = 64;      // requests waiting for a response (pipelining depth)
  size_t max_completed = 1024;  // exchanges waiting for TakeExchanges()
};

}  // namespace nodescope::sensor::http1
