// A DNS message as the sensor needs it (RFC 1035 4.1): the header, the questions and the answer
// section with A, AAAA and CNAME decoded. Authority and additional records are only walked to
// find the EDNS OPT record, whose extended RCODE bits complete the response code.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nodescope::sensor::dns {

// RR types and classes the sensor interprets (RFC 1035 3.2.2, 3.2.4; RFC 3596 2.1; RFC 6891 6.1.1).
inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kTypeOpt = 41;
inline constexpr uint16_t kClassIn = 1;

// Response codes the records name (RFC 1035 4.1.1, RFC 6895 2.3).
inline constexpr int kRcodeNoError = 0;
inline constexpr int kRcodeServFail = 2;
inline constexpr int kRcodeNxDomain = 3;
inline constexpr int kRcodeRefused = 5;

// Names are in presentation form (RFC 1035 5.1): labels joined by '.', no trailing dot, the root
// as "."; a '.' or '\' inside a label is escaped with '\', any byte outside 0x21..0x7e as \DDD.
// Case is kept as on the wire: a resolver may randomise it (0x20 encoding) and the answer echoes
// it, so only consumers that aggregate (the matcher key, the domain cache) fold it.
struct Question {
  std::string name;
  uint16_t type = 0;
  uint16_t klass = 0;

  bool operator==(const Question&) const = default;
};

struct Answer {
  std::string name;
  uint16_t type = 0;
  uint16_t klass = 0;
  uint32_t ttl = 0;  // as on the wire; consumers apply RFC 2181 8 (MSB set means 0)
  // A (4 bytes) or AAAA (16 bytes) in class IN, network order; address_len is 0 otherwise.
  // A fixed array rather than a vector: answers are parsed on every DNS packet of the node.
  std::array<uint8_t, 16> address{};
  uint8_t address_len = 0;
  std::string target;  // CNAME in class IN: the canonical name

  std::span<const uint8_t> Address() const { return {address.data(), address_len}; }
  bool operator==(const Answer&) const = default;
};

struct Message {
  uint16_t id = 0;
  bool response = false;  // QR
  uint8_t opcode = 0;
  bool authoritative = false;        // AA
  bool truncated = false;            // TC: the sender cut the message (RFC 1035 4.1.1)
  bool recursion_desired = false;    // RD
  bool recursion_available = false;  // RA
  bool authentic_data = false;       // AD (RFC 4035 3.2.3)
  bool checking_disabled = false;    // CD (RFC 4035 3.2.2)
  // 4 bits from the header, widened with the OPT record's upper 8 bits when EDNS is present
  // (RFC 6891 6.1.3): 16 bits so BADVERS (16) or BADCOOKIE (23) are not misread as 0 or 7.
  uint16_t rcode = 0;
  bool edns = false;              // an OPT record was in the additional section
  uint16_t edns_udp_size = 0;     // its CLASS field: the sender's UDP payload size
  uint16_t authority_count = 0;   // NSCOUNT
  uint16_t additional_count = 0;  // ARCOUNT
  // The capture held fewer bytes than the datagram had: the header and questions are complete,
  // the sections after them are parsed only as far as the bytes go.
  bool capture_truncated = false;
  std::vector<Question> questions;
  std::vector<Answer> answers;

  bool operator==(const Message&) const = default;
};

// ASCII-only case fold (RFC 4343 2: DNS compares names case-insensitively in ASCII only).
inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace nodescope::sensor::dns
