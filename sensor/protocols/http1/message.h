// Message framing for one direction of an HTTP/1.x connection (RFC 9112): finds where each
// message's head ends, parses the start line and the framing header fields, and then walks the
// body by length, by chunks or until close without keeping any of it. Pairing requests with
// responses, and choosing how a response body is delimited, is Connection's job (parser.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace nodescope::sensor::http1 {

// The part of one Feed() not consumed yet: `size` captured bytes at `data`, followed by `gap`
// bytes beyond the capture window that are known only by their number.
struct Input {
  const char* data = nullptr;
  size_t size = 0;
  uint64_t gap = 0;
  uint64_t ts_ns = 0;

  bool empty() const { return size == 0 && gap == 0; }
};

// What a start line and header section say. The views point into the parser's head buffer or
// into the caller's chunk and live until the next MessageStream::Next().
struct Head {
  std::string_view method;   // requests
  std::string_view target;   // requests
  int status = 0;            // responses
  char minor_version = '1';  // of "HTTP/1.x"
  bool has_transfer_encoding = false;
  bool chunked = false;  // "chunked" is the final transfer coding (RFC 9112 section 6.1)
  bool has_content_length = false;
  uint64_t content_length = 0;
};

enum class BodyKind { kNone, kLength, kChunked, kUntilClose };

class MessageStream {
 public:
  enum class Event {
    kNeedInput,   // the input is used up
    kHead,        // head() is ready; call SetBody() before Next()
    kMessageEnd,  // message_bytes() and message_start_ns() describe the message that ended
    kError,       // error() says why; the stream stays failed
  };

  MessageStream(bool requests, size_t max_head_bytes)
      : requests_(requests), max_head_bytes_(max_head_bytes) {}

  // Consumes input up to the next event. Every call that does not return kNeedInput either
  // consumed bytes or moved to another state, so a caller looping until kNeedInput terminates.
  Event Next(Input& in);
  void SetBody(BodyKind kind, uint64_t length = 0);
  // The peer closed the connection: true when that ended a close-delimited body.
  bool EndAtClose();

  const Head& head() const { return head_; }
  uint64_t message_bytes() const { return message_bytes_; }
  uint64_t message_start_ns() const { return message_start_ns_; }
  // Where the current (or last) message starts among the bytes this stream was fed, gaps
  // included.
  uint64_t message_offset() const { return message_offset_; }
  const std::string& error() const { return error_; }
  uint64_t uncaptured_bytes() const { return uncaptured_bytes_; }
  // Bytes that are certainly body (or chunk data) ahead of the stream: the capture can skip them.
  uint64_t body_bytes_due() const {
    return state_ == State::kBody || state_ == State::kChunkData ? remaining_ : 0;
  }

 private:
  enum class State {
    kHead,
    kHeadDone,
    kBody,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kUntilClose,
    kComplete,
    kFailed,
  };

  bool ReadHead(Input& in);  // true once a head was parsed
  // Parses the lines of a head from the front of data[0, size) into head_, up to the empty line
  // that ends it: returns the index past that line, or npos when the bytes end first (`tail`:
  // where the unfinished line starts). A line that does not parse stops the parse (`parsed`
  // false, rejected_ says why) but not the search for the end: a head longer than the limit
  // fails for its length whatever it holds.
  size_t ScanHead(const char* data, size_t size, bool& parsed, size_t& tail);
  bool HeadParsed(bool parsed);     // the head ScanHead parsed is the message's, or fails it
  bool Reject(std::string reason);  // a line that does not parse: false, kept in rejected_
  bool ParseStartLine(std::string_view line);
  bool ParseField(std::string_view line);
  void ReadChunkSize(Input& in);
  void ReadChunkDataEnd(Input& in);
  void ReadTrailers(Input& in);
  uint64_t ConsumeBody(Input& in, uint64_t max);
  void TakeCaptured(Input& in, size_t n);
  bool Fail(std::string reason);

  bool requests_;
  size_t max_head_bytes_;
  State state_ = State::kHead;
  bool in_message_ = false;        // a byte of the current message was consumed
  bool head_started_ = false;      // past the empty lines a recipient skips before a start line
  bool line_has_content_ = false;  // the unfinished line so far holds more than CRs
  std::string buffer_;             // a head split across chunks; empty when it arrived in one piece
  Head head_;
  uint64_t remaining_ = 0;  // body or chunk-data bytes left
  int chunk_digits_ = 0;
  bool chunk_in_ext_ = false;
  int crlf_seen_ = 0;           // of the CRLF that ends chunk data
  uint64_t section_bytes_ = 0;  // chunk-size line or trailer section so far
  uint64_t message_bytes_ = 0;
  uint64_t message_start_ns_ = 0;
  uint64_t message_offset_ = 0;
  uint64_t uncaptured_bytes_ = 0;
  std::string error_;
  std::string rejected_;
};

// Index just past the LF ending the empty line that closes a header or trailer section, or npos.
// line_has_content carries the state of an unfinished line from one call to the next, so a
// section can be scanned chunk by chunk without rescanning. A bare LF ends a line too, as
// RFC 9112 section 2.2 allows a recipient to accept.
size_t FindSectionEnd(const char* data, size_t size, bool& line_has_content);

}  // namespace nodescope::sensor::http1
