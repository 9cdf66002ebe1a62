// DNS wire format (RFC 1035 4) into Message, and the TCP framing of RFC 1035 4.2.2 / RFC 7766 8.
// Depends on the standard library and common/status.h only: the fuzz target builds these files
// alone with clang.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "sensor/protocols/dns/types.h"

namespace nodescope::sensor::dns {

// Parses one complete message (a UDP payload, or one TCP message without its length prefix).
// Every byte is checked against the message's bounds; names are followed through compression
// pointers only backwards and at most a name's worth of hops. An error names the section, the
// record and the offset that was wrong, in one line.
Result<Message> Parse(std::span<const uint8_t> message);

// The same for a capture that may hold only a prefix of the message: `real_len` is the datagram's
// length as the socket saw it. When the capture is shorter, the header and the questions must
// still be complete (they are what matching needs); the answers are kept as far as whole records
// go and Message::capture_truncated is set. real_len <= captured.size() is Parse(captured).
Result<Message> Parse(std::span<const uint8_t> captured, size_t real_len);

// Reassembles the messages of one direction of a DNS-over-TCP connection: each message follows
// a 2-byte big-endian length (RFC 1035 4.2.2), and a peer may split or coalesce them across
// segments at any byte (RFC 7766 8). Chunks are fed as the socket calls saw them; framing is
// only known from the first byte of the connection, so a stream must start there.
//
// Once framing is lost the stream stays failed and takes nothing more, rather than guessing where
// the next message starts: a length below a header's 12 bytes (0 included) can only be garbage,
// and a chunk whose capture is shorter than what the socket moved leaves a hole of unknown
// content. The pending buffer never exceeds one maximal message, 2 + 65535 bytes.
class TcpStream {
 public:
  static constexpr size_t kMaxFrame = 2 + 65535;
  static constexpr size_t kMinMessage = 12;  // the header (RFC 1035 4.1.1)

  // Appends to *messages each message the chunk completes, without its length prefix.
  // `real_len` is how many bytes the socket call moved; captured.size() < real_len is a gap.
  // Returns the error that failed the stream (this call or an earlier one), else ok.
  Status Feed(std::span<const uint8_t> captured, size_t real_len,
              std::vector<std::vector<uint8_t>>* messages);
  Status Feed(std::span<const uint8_t> chunk, std::vector<std::vector<uint8_t>>* messages) {
    return Feed(chunk, chunk.size(), messages);
  }

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  size_t pending_bytes() const { return pending_.size(); }
  uint64_t stream_offset() const { return offset_; }  // bytes of the stream consumed so far

 private:
  Status Fail(std::string message);

  std::vector<uint8_t> pending_;  // an incomplete frame, its length prefix included
  uint64_t offset_ = 0;           // stream offset of pending_[0]
  std::string error_;
};

}  // namespace nodescope::sensor::dns
