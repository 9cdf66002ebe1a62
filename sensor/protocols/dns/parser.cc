#include "sensor/protocols/dns/parser.h"

#include <algorithm>
#include <string_view>
#include <type_traits>
#include <utility>

namespace nodescope::sensor::dns {
namespace {

constexpr size_t kHeaderSize = 12;    // RFC 1035 4.1.1
constexpr size_t kMaxNameWire = 255;  // RFC 1035 2.3.4: length octets and the root included
// A 255-byte name has at most 127 labels. A run of pointers longer than that cannot spell a real
// name; it only makes the parser walk (pointers go strictly backwards, so it does end).
constexpr int kMaxPointers = 127;
// The smallest wire sizes: a question is a root name, TYPE and CLASS (RFC 1035 4.1.2); a record
// adds TTL and RDLENGTH (4.1.3). A count that needs more bytes than the message has is rejected
// before anything is reserved for it.
constexpr size_t kMinQuestion = 1 + 4;
constexpr size_t kMinRecord = 1 + 10;

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}

void Append(std::string& s, const char* v) { s += v; }
template <typename T>
requires std::is_integral_v<T>
void Append(std::string& s, T v) { s += std::to_string(v); }

template <typename... Args>
Status Err(const Args&... args) {
  std::string s;
  (Append(s, args), ...);
  return Status::Error(std::move(s));
}

// Presentation form of one label (RFC 1035 5.1): '.' and '\' escaped, other bytes outside the
// printable range as \DDD, so a hostile label can neither fake a name boundary nor put control
// characters into a record.
void AppendLabel(const uint8_t* p, size_t len, std::string* out) {
  for (size_t i = 0; i < len; ++i) {
    uint8_t c = p[i];
    if (c == '.' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c < 0x21 || c > 0x7e) {
      out->push_back('\\');
      out->push_back(static_cast<char>('0' + c / 100));
      out->push_back(static_cast<char>('0' + c / 10 % 10));
      out->push_back(static_cast<char>('0' + c % 10));
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
}

// Reads the (possibly compressed, RFC 1035 4.1.4) name at `pos`. *next is set to the offset after
// the name's bytes in place, i.e. after the first pointer if there is one. `out` may be null to
// only validate. A pointer must land before the start of the labels that led to it, so every jump
// goes to a strictly lower offset: no loop, no forward reference, nothing into the header.
Status ReadName(std::span<const uint8_t> msg, size_t pos, size_t* next, std::string* out) {
  const size_t start = pos;
  size_t limit = pos;
  size_t wire_len = 1;  // the root label
  int pointers = 0;
  bool jumped = false;
  if (out != nullptr) out->clear();
  for (;;) {
    if (pos >= msg.size()) {
      return Err("name at offset ", start, " runs past the end of the ", msg.size(),
                 "-byte message");
    }
    const uint8_t len = msg[pos];
    // The two top bits tell a label (00: so at most 63 bytes, RFC 1035 2.3.4) from a pointer (11).
    if ((len & 0xC0) == 0xC0) {
      if (pos + 1 >= msg.size()) {
        return Err("compression pointer at offset ", pos, " is cut off by the end of the message");
      }
      const size_t target = Be16(&msg[pos]) & 0x3FFF;
      if (target < kHeaderSize) {
        return Err("compression pointer at offset ", pos, " points into the header (offset ",
                   target, ")");
      }
      if (target >= limit) {
        return Err("compression pointer at offset ", pos, " points to offset ", target,
                   ", not before offset ", limit, ": a loop or a forward reference");
      }
      if (++pointers > kMaxPointers) {
        return Err("name at offset ", start, " follows more than ", kMaxPointers,
                   " compression pointers");
      }
      if (!jumped) *next = pos + 2;
      jumped = true;
      limit = pos = target;
      continue;
    }
    if ((len & 0xC0) != 0) {
      // 01 and 10 were EDNS0's extended label types, deprecated since (RFC 6891 5).
      return Err("label at offset ", pos, " has unsupported type bits ",
                 (len & 0xC0) == 0x40 ? "01" : "10",
                 " (only plain labels and compression pointers are defined)");
    }
    if (len == 0) {
      if (!jumped) *next = pos + 1;
      break;
    }
    wire_len += 1 + len;
    if (wire_len > kMaxNameWire) {
      return Err("name at offset ", start, " is longer than ", kMaxNameWire, " bytes");
    }
    if (pos + 1 + len > msg.size()) {
      return Err("label at offset ", pos, " of ", len, " bytes runs past the end of the ",
                 msg.size(), "-byte message");
    }
    if (out != nullptr) {
      if (!out->empty()) out->push_back('.');
      AppendLabel(&msg[pos + 1], len, out);
    }
    pos += 1 + len;
  }
  if (out != nullptr && out->empty()) *out = ".";
  return Status::Ok();
}

struct RecordHeader {
  uint16_t type = 0;
  uint16_t klass = 0;
  uint32_t ttl = 0;
  size_t rdata = 0;  // offset
  uint16_t rdlength = 0;
};

// One resource record's fixed part (RFC 1035 4.1.3); *pos moves past its RDATA.
Status ReadRecord(std::span<const uint8_t> msg, size_t* pos, std::string* name, RecordHeader* h) {
  size_t p = 0;
  if (Status s = ReadName(msg, *pos, &p, name); !s.ok()) return s;
  if (p + 10 > msg.size()) {
    return Err("TYPE/CLASS/TTL/RDLENGTH at offset ", p, " run past the end of the ", msg.size(),
               "-byte message");
  }
  h->type = Be16(&msg[p]);
  h->klass = Be16(&msg[p + 2]);
  h->ttl = Be32(&msg[p + 4]);
  h->rdlength = Be16(&msg[p + 8]);
  h->rdata = p + 10;
  if (h->rdata + h->rdlength > msg.size()) {
    return Err("RDATA of ", h->rdlength, " bytes at offset ", h->rdata,
               " runs past the end of the ", msg.size(), "-byte message");
  }
  *pos = h->rdata + h->rdlength;
  return Status::Ok();
}

Status ReadAnswer(std::span<const uint8_t> msg, size_t* pos, Answer* a) {
  RecordHeader h;
  if (Status s = ReadRecord(msg, pos, &a->name, &h); !s.ok()) return s;
  a->type = h.type;
  a->klass = h.klass;
  a->ttl = h.ttl;
  // A and AAAA are addresses only in class IN (RFC 1035 3.4 lists them as Internet-specific;
  // a Chaosnet A record holds a 16-bit Chaosnet address).
  if (h.klass != kClassIn) return Status::Ok();
  if (h.type == kTypeA || h.type == kTypeAaaa) {
    const size_t want = h.type == kTypeA ? 4 : 16;  // RFC 1035 3.4.1, RFC 3596 2.2
    if (h.rdlength != want) {
      return Err(h.type == kTypeA ? "A" : "AAAA", " record with RDLENGTH ", h.rdlength,
                 " at offset ", h.rdata, " (an address is ", want, " bytes)");
    }
    std::copy_n(&msg[h.rdata], want, a->address.begin());
    a->address_len = static_cast<uint8_t>(want);
  } else if (h.type == kTypeCname) {
    // The target may itself be compressed (RFC 1035 3.3.1, RFC 3597 4); it must fill RDATA.
    size_t end = 0;
    if (Status s = ReadName(msg, h.rdata, &end, &a->target); !s.ok()) {
      return s.Prefixed("CNAME target: ");
    }
    if (end != h.rdata + h.rdlength) {
      return Err("CNAME target at offset ", h.rdata, " ends at ", end, ", RDLENGTH says ",
                 h.rdata + h.rdlength);
    }
  }
  return Status::Ok();
}

Result<Message> ParseImpl(std::span<const uint8_t> msg, size_t real_len) {
  if (msg.size() < kHeaderSize) {
    return Err("message of ", msg.size(), " bytes is shorter than the ", kHeaderSize,
               "-byte header");
  }
  Message m;
  const uint8_t* p = msg.data();
  m.id = Be16(p);
  m.response = (p[2] & 0x80) != 0;
  m.opcode = static_cast<uint8_t>((p[2] >> 3) & 0x0F);
  m.authoritative = (p[2] & 0x04) != 0;
  m.truncated = (p[2] & 0x02) != 0;
  m.recursion_desired = (p[2] & 0x01) != 0;
  m.recursion_available = (p[3] & 0x80) != 0;
  m.authentic_data = (p[3] & 0x20) != 0;
  m.checking_disabled = (p[3] & 0x10) != 0;
  m.rcode = p[3] & 0x0F;
  const uint16_t qdcount = Be16(p + 4);
  const uint16_t ancount = Be16(p + 6);
  m.authority_count = Be16(p + 8);
  m.additional_count = Be16(p + 10);
  m.capture_truncated = real_len > msg.size();

  // A sender that set TC may have kept the counts of the records it dropped; its questions
  // must still be there, and the records are then bounded by the parse itself.
  const size_t records = size_t{ancount} + m.authority_count + m.additional_count;
  const size_t need = qdcount * kMinQuestion + (m.truncated ? 0 : records * kMinRecord);
  if (need > real_len - kHeaderSize) {
    return Err("section counts (", qdcount, " questions, ", ancount, " answers, ",
               m.authority_count, " authority, ", m.additional_count, " additional) need at least ",
               need, " bytes after the header, the message has ", real_len - kHeaderSize);
  }

  size_t pos = kHeaderSize;
  m.questions.resize(qdcount);
  for (size_t i = 0; i < qdcount; ++i) {
    Question& q = m.questions[i];
    size_t next = 0;
    Status s = ReadName(msg, pos, &next, &q.name);
    if (s.ok() && next + 4 > msg.size()) {
      s = Err("TYPE/CLASS at offset ", next, " run past the end of the ", msg.size(),
              "-byte message");
    }
    if (!s.ok()) {
      std::string where = "question " + std::to_string(i + 1);
      if (m.capture_truncated) {
        where += " (capture of " + std::to_string(msg.size()) + " of " + std::to_string(real_len) +
                 " bytes)";
      }
      return s.Prefixed(where + ": ");
    }
    q.type = Be16(&msg[next]);
    q.klass = Be16(&msg[next + 2]);
    pos = next + 4;
  }

  // Past the questions, a message cut by the capture or by its sender (TC, RFC 2181 9) ends
  // wherever it ends: what was whole is kept, the first broken record stops the parse.
  const bool lenient = m.capture_truncated || m.truncated;
  m.answers.reserve(std::min<size_t>(ancount, (msg.size() - pos) / kMinRecord));
  for (size_t i = 0; i < ancount; ++i) {
    Answer a;
    if (Status s = ReadAnswer(msg, &pos, &a); !s.ok()) {
      if (lenient) return m;
      return s.Prefixed("answer " + std::to_string(i + 1) + ": ");
    }
    m.answers.push_back(std::move(a));
  }
  const size_t others = size_t{m.authority_count} + m.additional_count;
  for (size_t i = 0; i < others; ++i) {
    RecordHeader h;
    if (Status s = ReadRecord(msg, &pos, nullptr, &h); !s.ok()) {
      if (lenient) return m;
      const bool authority = i < m.authority_count;
      return s.Prefixed(std::string(authority ? "authority record " : "additional record ") +
                        std::to_string(authority ? i + 1 : i + 1 - m.authority_count) + ": ");
    }
    if (i >= m.authority_count && h.type == kTypeOpt && !m.edns) {
      // RFC 6891 6.1.3: CLASS is the UDP payload size, TTL's top byte the upper 8 RCODE bits.
      m.edns = true;
      m.edns_udp_size = h.klass;
      m.rcode = static_cast<uint16_t>(m.rcode | (h.ttl >> 24) << 4);
    }
  }
  // Bytes after the last record are ignored, as resolvers do with UDP padding.
  return m;
}

}  // namespace

Result<Message> Parse(std::span<const uint8_t> message) {
  return ParseImpl(message, message.size());
}

Result<Message> Parse(std::span<const uint8_t> captured, size_t real_len) {
  return ParseImpl(captured, std::max(real_len, captured.size()));
}

Status TcpStream::Fail(std::string message) {
  error_ = std::move(message);
  pending_.clear();
  pending_.shrink_to_fit();
  return Status::Error(error_);
}

Status TcpStream::Feed(std::span<const uint8_t> captured, size_t real_len,
                       std::vector<std::vector<uint8_t>>* messages) {
  if (failed()) return Status::Error(error_);
  real_len = std::max(real_len, captured.size());
  std::span<const uint8_t> in = captured;
  auto bad_length = [this](size_t len) {
    return Fail("TCP frame at stream offset " + std::to_string(offset_) + " has length " +
                std::to_string(len) + ", below the " + std::to_string(kMinMessage) +
                "-byte DNS header: not a DNS stream or framing lost");
  };
  while (!in.empty()) {
    if (pending_.empty() && in.size() >= 2) {
      // Whole frames straight out of the chunk, the common case of one send per message.
      const size_t len = Be16(in.data());
      if (len < kMinMessage) return bad_length(len);
      if (in.size() >= 2 + len) {
        messages->emplace_back(in.begin() + 2, in.begin() + 2 + static_cast<ptrdiff_t>(len));
        in = in.subspan(2 + len);
        offset_ += 2 + len;
        continue;
      }
    }
    if (pending_.size() < 2) {
      pending_.push_back(in[0]);
      in = in.subspan(1);
      if (pending_.size() == 2 && Be16(pending_.data()) < kMinMessage) {
        return bad_length(Be16(pending_.data()));
      }
      continue;
    }
    const size_t frame = 2 + size_t{Be16(pending_.data())};  // <= kMaxFrame by construction
    const size_t take = std::min(frame - pending_.size(), in.size());
    pending_.insert(pending_.end(), in.begin(), in.begin() + static_cast<ptrdiff_t>(take));
    in = in.subspan(take);
    if (pending_.size() == frame) {
      messages->emplace_back(pending_.begin() + 2, pending_.end());
      offset_ += frame;
      pending_.clear();
    }
  }
  if (captured.size() < real_len) {
    return Fail("gap at stream offset " + std::to_string(offset_ + pending_.size()) +
                ": the capture holds " + std::to_string(captured.size()) + " of the " +
                std::to_string(real_len) + " bytes the socket moved; framing lost");
  }
  return Status::Ok();
}

}  // namespace nodescope::sensor::dns
