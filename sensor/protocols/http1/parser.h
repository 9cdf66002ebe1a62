// HTTP/1.0 and 1.1 exchanges from socket payload captured by eBPF.
//
// The probe copies the first N bytes of every read/write on a socket (the capture window) and
// always reports the call's full length. Connection is fed those chunks in order, per direction,
// and pairs requests with responses into Exchanges. Bytes beyond the window are a gap of known
// length: inside a body they are skipped by count; inside a head or a chunk-size line the framing
// is lost and the connection is marked failed instead of guessed.
//
// Memory per connection is bounded whatever the input: body bytes are never kept, a head is
// buffered only when it spans chunks and only up to max_head_bytes, and the queues of pending
// requests and of completed exchanges are capped (what falls off is counted).
//
// Depends on the C++ standard library only: the fuzz target (fuzz.cc) is built with clang
// straight from these sources.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ring_queue.h"
#include "sensor/protocols/http1/message.h"
#include "sensor/protocols/http1/types.h"

namespace nodescope::sensor::http1 {

enum class Detection { kRequest, kResponse, kNotHttp, kNeedMore };

// A cheap look at the first bytes of a connection, so the caller can stop capturing a connection
// that is not HTTP/1.x: a request-line starts with a method from RFC 9110 section 9 (or PATCH)
// and a space, a status-line with "HTTP/1.". At most 8 bytes are looked at.
Detection Detect(std::span<const char> first_bytes);

// The path of a request target (RFC 9112 section 3.2): query and fragment dropped, absolute-form
// ("http://host/p") reduced to its path; authority-form (CONNECT) and "*" kept as they are.
std::string_view PathOfTarget(std::string_view target);

// For metric labels: path segments that are all digits, a UUID, or 16 or more hex digits become
// "{id}", so /users/42/orders/9f1c... does not make one Prometheus series per user.
std::string TemplatePath(std::string_view path);

class Connection {
 public:
  explicit Connection(const ConnectionOptions& options = {});

  // One read or write: `captured` is the copied prefix, `total_len` (>= captured.size()) how
  // many bytes the call moved. Chunks of one direction must come in order; the two directions
  // interleave as the syscalls happened.
  void Feed(Direction direction, std::span<const char> captured, uint64_t total_len,
            uint64_t ts_ns);
  // The connection closed: ends a close-delimited response and reports exchanges whose response
  // is complete. Later Feed() calls are ignored.
  void Close(uint64_t ts_ns);
  // Completed exchanges in request order, handed over once.
  std::vector<Exchange> TakeExchanges();
  // The same into `out` (cleared first), whose buffer the connection keeps for the next ones:
  // no allocation per exchange when the caller passes the same vector every time.
  void TakeExchanges(std::vector<Exchange>& out);

  // Not HTTP/1.x, or the framing was lost; failure() says why. Nothing more is parsed.
  bool failed() const { return failed_; }
  const std::string& failure() const { return failure_; }
  // 101 Switching Protocols or a successful CONNECT: the rest is another protocol.
  bool upgraded() const { return upgraded_; }
  Role role() const { return role_; }
  // Bytes the next calls in `direction` will carry that are body only, known from the framing
  // (a Content-Length or a chunk size); 0 when unknown. The probe need not copy them.
  uint64_t BodyBytesDue(Direction direction) const;
  Counters counters() const;

 private:
  struct Pending {
    uint64_t seq = 0;
    Exchange exchange;
    bool head_request = false;     // its response has no body (RFC 9112 section 6.3 rule 1)
    bool connect_request = false;  // a 2xx response starts a tunnel (section 6.3 rule 2)
    bool request_done = false;
    bool response_done = false;
  };

  bool LearnRole(Direction direction, std::span<const char> captured, uint64_t total_len,
                 uint64_t ts_ns);
  void FailBeforeRole(std::string reason, uint64_t total_len);
  void Drive(bool requests, Input in);
  void OnRequestHead();
  void OnRequestEnd();
  void OnResponseHead();
  void OnResponseEnd();
  Pending* Find(uint64_t seq);
  void EmitReady();
  void Emit(Exchange exchange);
  // Reports what is complete and counts the rest as unanswered; used when nothing more will come.
  void Flush();
  void Fail(std::string reason);

  ConnectionOptions options_;
  Role role_;
  MessageStream requests_;
  MessageStream responses_;
  RingQueue<Pending> pending_;
  uint64_t next_request_seq_ = 0;   // given to the next request head
  uint64_t next_response_seq_ = 0;  // of the request the next final response answers
  bool response_answers_ = false;   // the current response answers a request that was parsed
  bool response_interim_ = false;   // the current response is 1xx (not 101)
  bool response_switches_ = false;  // the current response ends HTTP on this connection
  std::vector<Exchange> completed_;
  // The first bytes of each direction while the role is unknown (< 8 bytes, see Detect()).
  std::string stash_[2];
  uint64_t stash_ts_[2] = {0, 0};
  bool failed_ = false;
  bool closed_ = false;
  bool upgraded_ = false;
  std::string failure_;
  Counters counters_;
};

}  // namespace nodescope::sensor::http1
