// libFuzzer target for the ctnetlink decoder (registered with nodescope_fuzz in this folder's
// CMakeLists.txt; conntrack_fuzz_test links this file too and replays testdata/fuzz/ through
// CheckConntrackInput()).
//
// One input is one datagram as recv() on a ctnetlink socket returns it. Beyond "no crash, leak or
// sanitizer report" it checks what must hold for any input, against a netlink walk of its own:
// every message that fits is accounted for once (an entry, an error, ignored, or a DONE / ERROR
// message), a bad header ends the walk with exactly one error, a datagram decodes as its messages
// decoded one by one, a datagram cut short decodes to a prefix of the whole one's entries, error
// texts are single bounded lines, and entries hold only what a message can say (its type and
// dump flag, ports only for protocols that have them, addresses of one of the two shapes).
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "sensor/plugins/conntrack/netlink_decode.h"

namespace nodescope::sensor::conntrack {

std::string CheckConntrackInput(const uint8_t* data, size_t size);  // the unit test calls this too

namespace {

constexpr size_t kMaxErrorText = 160;  // the longest text DecodeMessages writes is ~110

// One message as an independent reading of the netlink framing sees it.
struct Framed {
  size_t offset = 0;
  uint32_t len = 0;
  uint16_t type = 0;
  uint16_t flags = 0;
};

struct Walk {
  std::vector<Framed> messages;  // every message whose header and length fit
  bool bad_tail = false;         // bytes left that are not a whole message
};

Walk WalkDatagram(std::span<const uint8_t> in) {
  Walk w;
  size_t offset = 0;
  while (offset < in.size()) {
    const size_t left = in.size() - offset;
    nlmsghdr h;
    if (left < sizeof(h)) {
      w.bad_tail = true;
      break;
    }
    std::memcpy(&h, in.data() + offset, sizeof(h));
    if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > left) {
      w.bad_tail = true;
      break;
    }
    w.messages.push_back({offset, h.nlmsg_len, h.nlmsg_type, h.nlmsg_flags});
    offset += (size_t{h.nlmsg_len} + 3) & ~size_t{3};  // the next one starts 4-byte aligned
  }
  return w;
}

bool HasPorts(uint8_t protocol) {
  switch (protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_SCTP:
    case IPPROTO_DCCP:
      return true;
    default:
      return false;
  }
}

// An IPv4 address uses its first 4 bytes only; an IPv6 one is never v4-mapped (that is IPv4).
bool WellFormed(const net::IpAddress& a) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!a.v6) {
    for (size_t i = 4; i < a.bytes.size(); ++i) {
      if (a.bytes[i] != 0) return false;
    }
    return true;
  }
  return std::memcmp(a.bytes.data(), kMapped, sizeof(kMapped)) != 0;
}

bool SameEntry(const Entry& a, const Entry& b) {
  return a.type == b.type && a.dump == b.dump && a.protocol == b.protocol && a.orig == b.orig &&
         a.reply == b.reply && a.id == b.id && a.status == b.status;
}

std::string CheckEntry(const Entry& e) {
  if (e.type != Entry::Type::kNew && e.type != Entry::Type::kDestroy) return "an entry type";
  for (const Tuple* t : {&e.orig, &e.reply}) {
    if (!WellFormed(t->src) || !WellFormed(t->dst)) return "a malformed tuple address";
    if (!HasPorts(e.protocol) && (t->src_port != 0 || t->dst_port != 0)) {
      return "ports on protocol " + std::to_string(e.protocol);
    }
  }
  (void)e.IsDnat();
  return "";
}

std::string CheckErrors(const Decoded& d) {
  for (const std::string& e : d.errors) {
    if (e.empty() || e.size() > kMaxErrorText)
      return "an error text of " + std::to_string(e.size());
    if (e.find('\n') != std::string::npos) return "an error text of more than one line: " + e;
  }
  return "";
}

// The one message at `m` decoded alone, from a buffer of its exact size (ASan sees overruns).
Decoded DecodeAlone(std::span<const uint8_t> in, const Framed& m) {
  const std::vector<uint8_t> copy(in.begin() + m.offset, in.begin() + m.offset + m.len);
  return DecodeMessages(copy);
}

std::string CheckWhole(std::span<const uint8_t> in, const Decoded& d, const Walk& w) {
  if (std::string why = CheckErrors(d); !why.empty()) return why;
  for (const Entry& e : d.entries) {
    if (std::string why = CheckEntry(e); !why.empty()) return why;
  }
  // Each message is at least a header: an upper bound that needs no framing of its own.
  const size_t accounted = d.entries.size() + d.errors.size() + d.ignored;
  if (accounted > in.size() / sizeof(nlmsghdr) + 1) return "more results than messages fit";

  std::vector<Entry> entries;
  std::vector<std::string> errors;
  size_t ignored = 0;
  bool done = false;
  int error = 0;
  for (const Framed& m : w.messages) {
    const Decoded alone = DecodeAlone(in, m);
    if (m.type == NLMSG_DONE) {
      if (!alone.done || !alone.entries.empty() || !alone.errors.empty()) return "a DONE message";
      done = true;
      continue;
    }
    if (m.type == NLMSG_ERROR) {
      if (!alone.entries.empty() || alone.ignored != 0 || alone.errors.size() > 1) {
        return "an ERROR message";
      }
      if (alone.errors.empty() && m.len < NLMSG_HDRLEN + sizeof(nlmsgerr)) {
        return "a truncated ERROR message taken whole";
      }
      if (alone.error < 0) return "a negative errno";
      if (alone.error != 0) error = alone.error;
      errors.insert(errors.end(), alone.errors.begin(), alone.errors.end());
      continue;
    }
    const bool ctnetlink = m.type != NLMSG_NOOP && m.type >= NLMSG_MIN_TYPE &&
                           NFNL_SUBSYS_ID(m.type) == NFNL_SUBSYS_CTNETLINK;
    if (!ctnetlink) {
      if (alone.ignored != 1 || !alone.entries.empty() || !alone.errors.empty()) {
        return "a message of type " + std::to_string(m.type) + " not ignored";
      }
      ++ignored;
      continue;
    }
    if (alone.entries.size() + alone.errors.size() != 1 || alone.ignored != 0) {
      return "a ctnetlink message that is not one entry or one error";
    }
    if (alone.entries.size() == 1) {
      const Entry& e = alone.entries[0];
      const uint8_t type = NFNL_MSG_TYPE(m.type);
      if (type != IPCTNL_MSG_CT_NEW && type != IPCTNL_MSG_CT_DELETE) {
        return "an entry from message type " + std::to_string(type);
      }
      if ((e.type == Entry::Type::kNew) != (type == IPCTNL_MSG_CT_NEW)) return "an entry's type";
      if (e.dump != ((m.flags & NLM_F_MULTI) != 0)) return "an entry's dump flag";
      entries.push_back(e);
    }
    errors.insert(errors.end(), alone.errors.begin(), alone.errors.end());
  }
  if (d.done != done) return "done differs from the DONE messages";
  if (d.error != error) return "error differs from the last ERROR message";
  if (d.ignored != ignored) return "ignored messages counted differently";
  if (d.entries.size() != entries.size()) return "entries differ from the messages decoded alone";
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!SameEntry(d.entries[i], entries[i])) return "entry " + std::to_string(i) + " differs";
  }
  // A bad header ends the walk with one error of its own, after those of the messages before it.
  if (d.errors.size() != errors.size() + (w.bad_tail ? 1 : 0)) {
    return std::to_string(d.errors.size()) + " errors, expected " +
           std::to_string(errors.size() + (w.bad_tail ? 1 : 0));
  }
  for (size_t i = 0; i < errors.size(); ++i) {
    if (d.errors[i] != errors[i]) return "error " + std::to_string(i) + " differs";
  }
  return "";
}

}  // namespace

std::string CheckConntrackInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  const Decoded whole = DecodeMessages(in);
  if (std::string why = CheckWhole(in, whole, WalkDatagram(in)); !why.empty()) return why;
  if (in.empty()) return "";
  // The first byte picks where a short read would have cut the datagram.
  const std::vector<uint8_t> cut(in.begin(), in.begin() + in[0] % in.size());
  const Decoded part = DecodeMessages(cut);
  if (std::string why = CheckWhole(cut, part, WalkDatagram(cut)); !why.empty()) {
    return "cut to " + std::to_string(cut.size()) + " bytes: " + why;
  }
  if (part.entries.size() > whole.entries.size()) return "a cut datagram with more entries";
  for (size_t i = 0; i < part.entries.size(); ++i) {
    if (!SameEntry(part.entries[i], whole.entries[i])) return "a cut datagram's entries differ";
  }
  return "";
}

}  // namespace nodescope::sensor::conntrack

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string why = nodescope::sensor::conntrack::CheckConntrackInput(data, size);
  if (!why.empty()) {
    std::fprintf(stderr, "invariant broken: %s\n", why.c_str());
    std::abort();
  }
  return 0;
}
