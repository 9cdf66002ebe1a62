#include "sensor/protocols/http1/message.h"

#include <algorithm>
#include <cstring>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace nodescope::sensor::http1 {
namespace {

// A chunk size needs at most 15 hex digits to stay below 2^60; anything longer is not a size a
// socket will carry and would overflow.
constexpr int kMaxChunkDigits = 15;
// Content-Length values above this are treated as invalid for the same reason.
constexpr uint64_t kMaxContentLength = uint64_t{1} << 60;

bool IsTchar(char c) {  // RFC 9110 section 5.6.2
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The index of the first `c` in p[0, n), or n. A head is a dozen short lines, and memchr's
// call and dispatch per line were a fifth of the sensor's time on keep-alive traffic; this one
// is inlined and looks at 16 bytes per step.
inline size_t FindByte(const char* p, size_t n, char c) {
  size_t i = 0;
#if defined(__SSE2__)
  const __m128i needle = _mm_set1_epi8(c);
  for (; i + 16 <= n; i += 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const int mask = _mm_movemask_epi8(_mm_cmpeq_epi8(block, needle));
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  for (; i < n; ++i) {
    if (p[i] == c) return i;
  }
  return n;
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// `lower` is already lower case.
bool EqualsIgnoreCase(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (Lower(s[i]) != lower[i]) return false;
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {  // OWS = *( SP / HTAB ), RFC 9110 section 5.6.3
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "HTTP/1.x" (RFC 9112 section 2.3); HTTP/2 and later do not use this framing.
bool ParseVersion(std::string_view v, char& minor) {
  if (v.size() != 8 || v.substr(0, 7) != "HTTP/1." || v[7] < '0' || v[7] > '9') return false;
  minor = v[7];
  return true;
}

// Said so that whoever reads it knows a larger capture window would help.
std::string GapError(uint64_t gap, const char* where) {
  return std::to_string(gap) + " bytes beyond the capture window fell inside " + where;
}

}  // namespace

size_t FindSectionEnd(const char* data, size_t size, bool& line_has_content) {
  size_t i = 0;
  while (i < size) {
    const size_t end = i + FindByte(data + i, size - i, '\n');
    // A line of nothing but CR counts as empty: its CR is the CR of a CRLF.
    for (size_t j = i; j < end && !line_has_content; ++j) line_has_content = data[j] != '\r';
    if (end == size) return std::string_view::npos;
    if (!line_has_content) return end + 1;
    line_has_content = false;
    i = end + 1;
  }
  return std::string_view::npos;
}

MessageStream::Event MessageStream::Next(Input& in) {
  for (;;) {
    switch (state_) {
      case State::kFailed:
        return Event::kError;
      case State::kHeadDone:  // the caller skipped SetBody(): no body
      case State::kComplete:
        state_ = State::kHead;
        in_message_ = false;
        return Event::kMessageEnd;
      case State::kUntilClose:
        // RFC 9112 section 6.3 rules 4 and 8: everything up to the close is body.
        uncaptured_bytes_ += in.gap;
        message_bytes_ += in.size + in.gap;
        in = Input{nullptr, 0, 0, in.ts_ns};
        return Event::kNeedInput;
      default:
        break;
    }
    if (in.empty()) return Event::kNeedInput;
    switch (state_) {
      case State::kHead:
        if (ReadHead(in)) return Event::kHead;
        break;
      case State::kBody:
        remaining_ -= ConsumeBody(in, remaining_);
        if (remaining_ == 0) state_ = State::kComplete;
        break;
      case State::kChunkSize:
        ReadChunkSize(in);
        break;
      case State::kChunkData:
        remaining_ -= ConsumeBody(in, remaining_);
        if (remaining_ == 0) {
          state_ = State::kChunkDataEnd;
          crlf_seen_ = 0;
        }
        break;
      case State::kChunkDataEnd:
        ReadChunkDataEnd(in);
        break;
      case State::kTrailers:
        ReadTrailers(in);
        break;
      default:
        break;
    }
  }
}

void MessageStream::SetBody(BodyKind kind, uint64_t length) {
  if (state_ != State::kHeadDone) return;
  switch (kind) {
    case BodyKind::kNone:
      state_ = State::kComplete;
      break;
    case BodyKind::kLength:
      remaining_ = length;
      state_ = length == 0 ? State::kComplete : State::kBody;
      break;
    case BodyKind::kChunked:
      state_ = State::kChunkSize;
      chunk_digits_ = 0;
      chunk_in_ext_ = false;
      remaining_ = 0;
      section_bytes_ = 0;
      break;
    case BodyKind::kUntilClose:
      state_ = State::kUntilClose;
      break;
  }
}

bool MessageStream::EndAtClose() {
  if (state_ != State::kUntilClose) return false;
  state_ = State::kHead;
  in_message_ = false;
  return true;
}

void MessageStream::TakeCaptured(Input& in, size_t n) {
  in.data += n;
  in.size -= n;
  message_bytes_ += n;
}

uint64_t MessageStream::ConsumeBody(Input& in, uint64_t max) {
  const size_t seen = static_cast<size_t>(std::min<uint64_t>(in.size, max));
  TakeCaptured(in, seen);
  const uint64_t unseen = std::min(in.gap, max - seen);
  in.gap -= unseen;
  message_bytes_ += unseen;
  uncaptured_bytes_ += unseen;
  return seen + unseen;
}

bool MessageStream::Fail(std::string reason) {
  state_ = State::kFailed;
  error_ = std::move(reason);
  return false;
}

bool MessageStream::ReadHead(Input& in) {
  if (in.size == 0) {
    // A head has no length to skip by: its end can only be found by reading it.
    return Fail(GapError(in.gap, requests_ ? "a request head" : "a response head"));
  }
  if (!in_message_) {
    in_message_ = true;
    head_started_ = false;
    line_has_content_ = false;
    message_offset_ += message_bytes_;  // the previous message ended where this one starts
    message_bytes_ = 0;
    message_start_ns_ = in.ts_ns;
    buffer_.clear();
    // One large head should not pin its buffer for the life of a long keep-alive connection.
    if (buffer_.capacity() > 4096) buffer_.shrink_to_fit();
  }
  if (!head_started_) {
    // RFC 9112 section 2.2: a server SHOULD ignore at least one empty line before a
    // request-line; some clients send a CRLF after a POST body.
    size_t n = 0;
    while (n < in.size && (in.data[n] == '\r' || in.data[n] == '\n')) ++n;
    TakeCaptured(in, n);
    if (in.size == 0) return false;
    head_started_ = true;
  }
  size_t end = std::string_view::npos;
  bool parsed = false;
  if (buffer_.empty()) {
    // Most heads arrive whole in one call: parsed where they are, in the pass that finds their
    // end (finding the end first and then parsing read every head twice).
    size_t tail = 0;
    end = ScanHead(in.data, in.size, parsed, tail);
    if (end == std::string_view::npos) {
      // The state FindSectionEnd carries into the next chunk, from the unfinished line (which
      // holds no LF, so this only sets the state).
      line_has_content_ = false;
      FindSectionEnd(in.data + tail, in.size - tail, line_has_content_);
    }
  } else {
    end = FindSectionEnd(in.data, in.size, line_has_content_);
  }
  const size_t take = end == std::string_view::npos ? in.size : end;
  if (buffer_.size() + take > max_head_bytes_) {
    // Up to the limit the bytes count as read, so where the failure falls does not depend on
    // how the stream was cut into syscalls.
    TakeCaptured(in, max_head_bytes_ - buffer_.size());
    return Fail("a message head longer than " + std::to_string(max_head_bytes_) + " bytes");
  }
  if (end != std::string_view::npos && buffer_.empty()) {
    TakeCaptured(in, take);
    return HeadParsed(parsed);
  }
  buffer_.append(in.data, take);
  TakeCaptured(in, take);
  if (end == std::string_view::npos) return false;
  size_t tail = 0;
  ScanHead(buffer_.data(), buffer_.size(), parsed, tail);
  return HeadParsed(parsed);
}

size_t MessageStream::ScanHead(const char* data, size_t size, bool& parsed, size_t& tail) {
  head_ = Head{};
  parsed = true;
  bool first = true;
  size_t i = 0;
  while (i < size) {
    const size_t nl = i + FindByte(data + i, size - i, '\n');
    if (nl == size) break;
    // A line of nothing but CR is the empty line (see FindSectionEnd); the start line never is,
    // ReadHead skipped the empty lines before it.
    size_t j = i;
    while (j < nl && data[j] == '\r') ++j;
    if (j == nl && !first) return nl + 1;
    if (parsed) {
      std::string_view line(data + i, nl - i);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      parsed = first ? ParseStartLine(line) : ParseField(line);
    }
    first = false;
    i = nl + 1;
  }
  tail = i;
  return std::string_view::npos;
}

bool MessageStream::HeadParsed(bool parsed) {
  if (!parsed) return Fail(std::move(rejected_));
  state_ = State::kHeadDone;
  return true;
}

bool MessageStream::Reject(std::string reason) {
  rejected_ = std::move(reason);
  return false;
}

bool MessageStream::ParseStartLine(std::string_view line) {
  if (requests_) {
    // request-line = method SP request-target SP HTTP-version (RFC 9112 section 3)
    const size_t sp1 = line.find(' ');
    const size_t sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp1 == 0 || sp2 == sp1 + 1 || sp1 == sp2 ||
        !ParseVersion(line.substr(sp2 + 1), head_.minor_version)) {
      return Reject("the request line is not 'method target HTTP/1.x'");
    }
    head_.method = line.substr(0, sp1);
    if (!std::all_of(head_.method.begin(), head_.method.end(), IsTchar)) {
      return Reject("the request method is not a token");
    }
    head_.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    return true;
  }
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 section 4); the
  // SP before an empty reason is often left out, and section 4 asks recipients to accept that.
  if (line.size() < 12 || !ParseVersion(line.substr(0, 8), head_.minor_version) || line[8] != ' ' ||
      (line.size() > 12 && line[12] != ' ')) {
    return Reject("the status line is not 'HTTP/1.x code reason'");
  }
  int status = 0;
  for (int i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return Reject("the status code is not three digits");
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || status > 599) {  // RFC 9110 section 15
    return Reject("status code " + std::to_string(status) + " is outside 100-599");
  }
  head_.status = status;
  return true;
}

bool MessageStream::ParseField(std::string_view line) {
  // obs-fold (RFC 9112 section 5.2) continues the previous value; neither framing field is
  // ever folded in practice, so continuation lines are skipped.
  if (line.front() == ' ' || line.front() == '\t') return true;
  const size_t colon = FindByte(line.data(), line.size(), ':');
  if (colon == line.size() || colon == 0) {
    return Reject("a header line without 'name:'");
  }
  const std::string_view name = line.substr(0, colon);
  // Only the two framing fields are read: the others' values are not even trimmed.
  if (EqualsIgnoreCase(name, "content-length")) {
    const std::string_view value = TrimOws(line.substr(colon + 1));
    // RFC 9112 section 6.3 rule 5: a list of identical values is one value; anything else is
    // unrecoverable framing.
    uint64_t length = 0;
    std::string_view rest = value;
    bool any = false;
    while (!rest.empty() || !any) {
      const size_t comma = rest.find(',');
      const std::string_view item = TrimOws(rest.substr(0, comma));
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
      uint64_t v = 0;
      if (item.empty() || item.size() > 18) return Reject("an invalid Content-Length");
      for (char c : item) {
        if (c < '0' || c > '9') return Reject("an invalid Content-Length");
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      if (v > kMaxContentLength || (any && v != length)) return Reject("an invalid Content-Length");
      length = v;
      any = true;
    }
    if (head_.has_content_length && head_.content_length != length) {
      return Reject("conflicting Content-Length fields");
    }
    head_.has_content_length = true;
    head_.content_length = length;
  } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
    const std::string_view value = TrimOws(line.substr(colon + 1));
    // Only the final coding decides the framing (RFC 9112 section 6.3 rules 3 and 4); several
    // fields form one list in order (RFC 9110 section 5.3).
    head_.has_transfer_encoding = true;
    std::string_view rest = value;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view item = TrimOws(rest.substr(0, comma));
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
      if (!item.empty()) head_.chunked = EqualsIgnoreCase(item, "chunked");
    }
  }
  return true;
}

void MessageStream::ReadChunkSize(Input& in) {
  // chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF (RFC 9112 section 7.1). The line's
  // length is not known in advance, so a gap here loses the framing.
  if (in.size == 0) {
    Fail(GapError(in.gap, "a chunk-size line"));
    return;
  }
  size_t i = 0;
  bool line_done = false;
  for (; i < in.size; ++i) {
    if (section_bytes_ + i == max_head_bytes_) {
      TakeCaptured(in, i);
      Fail("a chunk-size line longer than " + std::to_string(max_head_bytes_) + " bytes");
      return;
    }
    const char c = in.data[i];
    if (c == '\n') {
      line_done = true;
      ++i;
      break;
    }
    if (chunk_in_ext_) continue;  // extensions carry nothing the parser needs
    const int digit = HexValue(c);
    if (digit >= 0) {
      if (++chunk_digits_ > kMaxChunkDigits) {
        TakeCaptured(in, i);
        Fail("a chunk size of more than 15 hex digits");
        return;
      }
      remaining_ = remaining_ * 16 + static_cast<uint64_t>(digit);
    } else if (chunk_digits_ > 0 && (c == ';' || c == ' ' || c == '\t' || c == '\r')) {
      chunk_in_ext_ = true;
    } else {
      TakeCaptured(in, i);
      Fail("a chunk-size line that does not start with a hex size");
      return;
    }
  }
  section_bytes_ += i;
  TakeCaptured(in, i);
  if (!line_done) return;
  if (chunk_digits_ == 0) {
    Fail("a chunk-size line without a size");
    return;
  }
  chunk_digits_ = 0;
  chunk_in_ext_ = false;
  section_bytes_ = 0;
  if (remaining_ == 0) {  // last-chunk: a trailer section follows
    state_ = State::kTrailers;
    line_has_content_ = false;
  } else {
    state_ = State::kChunkData;
  }
}

void MessageStream::ReadChunkDataEnd(Input& in) {
  if (in.size == 0) {
    // The two bytes after chunk data can only be CRLF (section 7.1), so a gap over them keeps
    // the framing: skip them by count. This is the common case when a server writes size line,
    // data and CRLF in one syscall and the window ends inside the data.
    const uint64_t n = std::min<uint64_t>(in.gap, 2 - crlf_seen_);
    in.gap -= n;
    message_bytes_ += n;
    uncaptured_bytes_ += n;
    crlf_seen_ += static_cast<int>(n);
  } else if (in.data[0] == '\r' && crlf_seen_ == 0) {
    TakeCaptured(in, 1);
    crlf_seen_ = 1;
  } else if (in.data[0] == '\n') {  // a bare LF, as section 2.2 allows to accept
    TakeCaptured(in, 1);
    crlf_seen_ = 2;
  } else {
    Fail("chunk data not followed by CRLF");
    return;
  }
  if (crlf_seen_ == 2) {
    state_ = State::kChunkSize;
    remaining_ = 0;
  }
}

void MessageStream::ReadTrailers(Input& in) {
  if (in.size == 0) {
    Fail(GapError(in.gap, "a trailer section"));
    return;
  }
  const size_t end = FindSectionEnd(in.data, in.size, line_has_content_);
  const size_t take = end == std::string_view::npos ? in.size : end;
  if (section_bytes_ + take > max_head_bytes_) {
    TakeCaptured(in, max_head_bytes_ - section_bytes_);
    Fail("a trailer section longer than " + std::to_string(max_head_bytes_) + " bytes");
    return;
  }
  section_bytes_ += take;
  TakeCaptured(in, take);
  if (end != std::string_view::npos) {
    section_bytes_ = 0;
    state_ = State::kComplete;
  }
}

}  // namespace nodescope::sensor::http1
