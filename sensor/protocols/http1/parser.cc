#include "sensor/protocols/http1/parser.h"

#include <algorithm>
#include <utility>

namespace nodescope::sensor::http1 {
namespace {

// RFC 9110 section 9.3 plus PATCH (RFC 5789). "PRI" is left out on purpose: it opens the HTTP/2
// connection preface (RFC 9113 section 3.4), which this parser must reject.
constexpr std::string_view kRequestStarts[] = {
    "GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "CONNECT ", "OPTIONS ", "TRACE ", "PATCH ",
};
constexpr std::string_view kResponseStart = "HTTP/1.";
constexpr size_t kDetectBytes = 8;  // the longest of the above

enum class Match { kNo, kPrefix, kYes };

Match MatchStart(std::string_view data, std::string_view token) {
  if (data.size() >= token.size()) return data.starts_with(token) ? Match::kYes : Match::kNo;
  return token.starts_with(data) ? Match::kPrefix : Match::kNo;
}

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool IsUuid(std::string_view s) {  // 8-4-4-4-12 hex digits (RFC 9562 section 4)
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !IsHex(s[i])) return false;
  }
  return true;
}

bool IsIdSegment(std::string_view s) {
  if (s.empty()) return false;
  if (std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return true;
  // 16 hex digits and more: hashes, object ids, trace ids. Shorter runs are too often words
  // ("deadline", "cafe").
  if (s.size() >= 16 && std::all_of(s.begin(), s.end(), IsHex)) return true;
  return IsUuid(s);
}

size_t Index(Direction d) { return d == Direction::kSent ? 0 : 1; }

}  // namespace

Detection Detect(std::span<const char> first_bytes) {
  const std::string_view data(first_bytes.data(), std::min(first_bytes.size(), kDetectBytes));
  if (data.empty()) return Detection::kNeedMore;
  bool maybe = false;
  switch (MatchStart(data, kResponseStart)) {
    case Match::kYes:
      return Detection::kResponse;
    case Match::kPrefix:
      maybe = true;
      break;
    case Match::kNo:
      break;
  }
  for (std::string_view start : kRequestStarts) {
    switch (MatchStart(data, start)) {
      case Match::kYes:
        return Detection::kRequest;
      case Match::kPrefix:
        maybe = true;
        break;
      case Match::kNo:
        break;
    }
  }
  return maybe ? Detection::kNeedMore : Detection::kNotHttp;
}

std::string_view PathOfTarget(std::string_view target) {
  if (!target.starts_with('/')) {
    const size_t scheme_end = target.find("://");
    const bool absolute_form = scheme_end != std::string_view::npos && scheme_end > 0 &&
                               std::all_of(target.begin(), target.begin() + scheme_end, [](char c) {
                                 return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                        (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
                               });
    if (!absolute_form) return target;  // authority-form, asterisk-form, or nonsense kept as is
    const size_t path = target.find_first_of("/?#", scheme_end + 3);
    // RFC 9110 section 4.2.3: an empty path is normalized to "/".
    if (path == std::string_view::npos || target[path] != '/') return "/";
    target.remove_prefix(path);
  }
  return target.substr(0, target.find_first_of("?#"));
}

std::string TemplatePath(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (;;) {
    const size_t slash = path.find('/');
    const std::string_view segment = path.substr(0, slash);
    out += IsIdSegment(segment) ? std::string_view("{id}") : segment;
    if (slash == std::string_view::npos) break;
    out += '/';
    path.remove_prefix(slash + 1);
  }
  return out;
}

Connection::Connection(const ConnectionOptions& options)
    : options_(options),
      role_(options.role),
      requests_(/*requests=*/true, options.max_head_bytes),
      responses_(/*requests=*/false, options.max_head_bytes) {}

Counters Connection::counters() const {
  Counters c = counters_;
  c.uncaptured_bytes = requests_.uncaptured_bytes() + responses_.uncaptured_bytes();
  return c;
}

void Connection::Feed(Direction direction, std::span<const char> captured, uint64_t total_len,
                      uint64_t ts_ns) {
  total_len = std::max<uint64_t>(total_len, captured.size());
  if (failed_ || closed_ || upgraded_) {
    counters_.ignored_bytes += total_len;
    return;
  }
  if (total_len == 0) return;
  if (role_ == Role::kUnknown && !LearnRole(direction, captured, total_len, ts_ns)) return;
  const bool requests = (direction == Direction::kSent) == (role_ == Role::kClient);
  Drive(requests, Input{captured.data(), captured.size(), total_len - captured.size(), ts_ns});
}

bool Connection::LearnRole(Direction direction, std::span<const char> captured, uint64_t total_len,
                           uint64_t ts_ns) {
  std::string& stash = stash_[Index(direction)];
  char probe[kDetectBytes];
  const size_t from_stash = std::min(stash.size(), kDetectBytes);
  const size_t from_chunk = std::min(captured.size(), kDetectBytes - from_stash);
  std::copy_n(stash.data(), from_stash, probe);
  std::copy_n(captured.data(), from_chunk, probe + from_stash);
  switch (Detect(std::span<const char>(probe, from_stash + from_chunk))) {
    case Detection::kNeedMore:
      if (total_len > captured.size()) {
        FailBeforeRole("the connection's first bytes are beyond the capture window", total_len);
        return false;
      }
      if (stash.empty()) stash_ts_[Index(direction)] = ts_ns;
      stash.append(captured.data(), captured.size());  // < kDetectBytes, or Detect would know
      return false;
    case Detection::kNotHttp:
      FailBeforeRole("not HTTP/1.x: the first bytes are neither a request line nor a status line",
                     total_len);
      return false;
    case Detection::kRequest:
      role_ = direction == Direction::kSent ? Role::kClient : Role::kServer;
      break;
    case Detection::kResponse:
      role_ = direction == Direction::kSent ? Role::kServer : Role::kClient;
      break;
  }
  // Bytes held back while the role was unknown go first, the other direction's before this
  // one's: both came before the current chunk.
  const Direction other = direction == Direction::kSent ? Direction::kReceived : Direction::kSent;
  for (Direction d : {other, direction}) {
    std::string held = std::move(stash_[Index(d)]);
    stash_[Index(d)].clear();
    if (held.empty()) continue;
    const bool requests = (d == Direction::kSent) == (role_ == Role::kClient);
    Drive(requests, Input{held.data(), held.size(), 0, stash_ts_[Index(d)]});
  }
  if (failed_ || upgraded_) {
    counters_.ignored_bytes += total_len;
    return false;
  }
  return true;
}

void Connection::FailBeforeRole(std::string reason, uint64_t total_len) {
  // Held-back bytes count as ignored too, so the count does not depend on how the first bytes
  // were cut into syscalls.
  counters_.ignored_bytes += total_len + stash_[0].size() + stash_[1].size();
  stash_[0].clear();
  stash_[1].clear();
  Fail(std::move(reason));
}

uint64_t Connection::BodyBytesDue(Direction direction) const {
  if (role_ == Role::kUnknown || failed_ || upgraded_ || closed_) return 0;
  // The client sends requests and receives responses; the server the other way round.
  const bool requests = (role_ == Role::kClient) == (direction == Direction::kSent);
  return (requests ? requests_ : responses_).body_bytes_due();
}

void Connection::Drive(bool requests, Input in) {
  MessageStream& stream = requests ? requests_ : responses_;
  for (;;) {
    if (failed_ || upgraded_) {
      counters_.ignored_bytes += in.size + in.gap;
      return;
    }
    switch (stream.Next(in)) {
      case MessageStream::Event::kNeedInput:
        return;
      case MessageStream::Event::kError:
        Fail(stream.error());
        break;
      case MessageStream::Event::kHead:
        requests ? OnRequestHead() : OnResponseHead();
        break;
      case MessageStream::Event::kMessageEnd:
        requests ? OnRequestEnd() : OnResponseEnd();
        break;
    }
  }
}

Connection::Pending* Connection::Find(uint64_t seq) {
  if (pending_.empty() || seq < pending_.front().seq || seq > pending_.back().seq) return nullptr;
  return &pending_[seq - pending_.front().seq];
}

void Connection::OnRequestHead() {
  const Head& head = requests_.head();
  if (pending_.size() >= std::max<size_t>(options_.max_pending, 1)) {
    // Every queued request has been read in full (the stream parses one at a time), and none
    // was answered: the oldest is the one least likely to still get a response we can pair.
    pending_.pop_front();
    ++counters_.requests_dropped;
  }
  Pending& p = pending_.emplace_back();
  p.seq = next_request_seq_++;
  p.head_request = head.method == "HEAD";
  p.connect_request = head.method == "CONNECT";
  Exchange& e = p.exchange;
  e.method = head.method;
  const std::string_view path = PathOfTarget(head.target);
  e.truncated = path.size() > options_.max_path_len;
  e.path = path.substr(0, options_.max_path_len);
  e.version = {'1', '.', head.minor_version};
  e.request_start_ns = requests_.message_start_ns();
  e.request_offset = requests_.message_offset();

  // RFC 9112 section 6.3: a request without Transfer-Encoding or Content-Length has no body.
  if (head.has_transfer_encoding && !head.chunked) {
    // Rule 4: the server cannot know where this body ends and must close with 400.
    Fail("a request whose final transfer coding is not chunked");
  } else if (head.chunked) {
    requests_.SetBody(BodyKind::kChunked);  // rule 3: it overrides any Content-Length
  } else if (head.has_content_length) {
    requests_.SetBody(BodyKind::kLength, head.content_length);
  } else {
    requests_.SetBody(BodyKind::kNone);
  }
}

void Connection::OnRequestEnd() {
  if (Pending* p = Find(next_request_seq_ - 1)) {
    p->exchange.request_bytes = requests_.message_bytes();
    p->request_done = true;
    EmitReady();
  }
}

void Connection::OnResponseHead() {
  const Head& head = responses_.head();
  // Responses come in the order of the requests (RFC 9112 section 9.3.2), so the next final
  // response answers the oldest unanswered request, if one was read.
  response_answers_ = next_response_seq_ < next_request_seq_;
  // 1xx responses are interim and precede the final one (RFC 9110 section 15.2), except 101,
  // after which the connection no longer speaks HTTP/1.1.
  response_interim_ = head.status < 200 && head.status != 101;
  Pending* p = response_answers_ ? Find(next_response_seq_) : nullptr;
  if (response_interim_) {
    responses_.SetBody(BodyKind::kNone);
    return;
  }
  if (!response_answers_) ++counters_.orphan_responses;
  if (p != nullptr) {
    p->exchange.status_code = head.status;
    p->exchange.response_start_ns = responses_.message_start_ns();
    p->exchange.response_offset = responses_.message_offset();
  }
  const bool connect = p != nullptr && p->connect_request;
  response_switches_ = head.status == 101 || (connect && head.status / 100 == 2);
  // RFC 9112 section 6.3, rules in order. A response to a request that fell off the pending
  // queue is framed as if the request were not HEAD or CONNECT.
  if ((p != nullptr && p->head_request) || head.status < 200 || head.status == 204 ||
      head.status == 304 || response_switches_) {
    responses_.SetBody(BodyKind::kNone);  // rules 1 and 2
  } else if (head.chunked) {
    responses_.SetBody(BodyKind::kChunked);  // rule 3
  } else if (head.has_content_length && !head.has_transfer_encoding) {
    responses_.SetBody(BodyKind::kLength, head.content_length);  // rule 6
  } else {
    // Rule 4 (a final coding other than chunked) and rule 8 (no length at all).
    responses_.SetBody(BodyKind::kUntilClose);
  }
}

void Connection::OnResponseEnd() {
  if (response_answers_) {
    Pending* p = Find(next_response_seq_);
    if (p != nullptr) p->exchange.response_bytes += responses_.message_bytes();
    if (!response_interim_) {
      if (p != nullptr) p->response_done = true;
      ++next_response_seq_;
    }
  }
  if (!response_interim_ && response_switches_) {
    upgraded_ = true;
    Flush();
    return;
  }
  EmitReady();
}

void Connection::EmitReady() {
  while (!pending_.empty() && pending_.front().request_done && pending_.front().response_done) {
    Emit(std::move(pending_.front().exchange));
    pending_.pop_front();
  }
}

void Connection::Emit(Exchange exchange) {
  if (completed_.size() >= options_.max_completed) {
    ++counters_.exchanges_dropped;
    return;
  }
  ++counters_.exchanges;
  completed_.push_back(std::move(exchange));
}

void Connection::Flush() {
  for (size_t i = 0; i < pending_.size(); ++i) {
    Pending& p = pending_[i];
    if (!p.response_done) {
      ++counters_.unanswered_requests;
      continue;
    }
    if (!p.request_done) {
      // Only the request being read can be unfinished; the server answered before its body
      // ended (e.g. 413, or a final status instead of 100 Continue).
      p.exchange.request_bytes = requests_.message_bytes();
      p.exchange.request_incomplete = true;
    }
    Emit(std::move(p.exchange));
  }
  pending_.clear();
}

void Connection::Fail(std::string reason) {
  if (failed_) return;
  failed_ = true;
  failure_ = std::move(reason);
  Flush();
}

void Connection::Close(uint64_t ts_ns) {
  if (closed_) return;
  if (!failed_ && !upgraded_ && responses_.EndAtClose()) OnResponseEnd();
  Flush();
  closed_ = true;
}

std::vector<Exchange> Connection::TakeExchanges() {
  std::vector<Exchange> out;
  TakeExchanges(out);
  return out;
}

void Connection::TakeExchanges(std::vector<Exchange>& out) {
  out.clear();
  out.swap(completed_);
}

}  // namespace nodescope::sensor::http1
