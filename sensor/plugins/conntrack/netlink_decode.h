// ctnetlink messages -> conntrack entries. The attributes are parsed by Debian's
// libnetfilter_conntrack (nfct_nlmsg_parse), after a check of the attribute sizes it would
// otherwise answer with exit(); this file walks the netlink framing, keeps what the DNAT join
// needs and turns every malformed message into one error without losing the messages around it.
// Free of sockets: tested on constructed and captured bytes, and fuzzed (fuzz.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sensor/plugins/conntrack/translation_table.h"

namespace nodescope::sensor::conntrack {

struct Entry {
  enum class Type { kNew, kDestroy };
  Type type = Type::kNew;
  bool dump = false;     // a reply to our dump request (NLM_F_MULTI), not an event
  uint8_t protocol = 0;  // IPPROTO_TCP, IPPROTO_UDP, ...
  Tuple orig, reply;
  uint32_t id = 0;
  std::optional<uint32_t> status;  // IPS_* bits; DESTROY events do not carry them

  // The destination was translated: the status says IPS_DST_NAT, or (DESTROY events carry no
  // status) the reply does not come from where the original went.
  bool IsDnat() const;
};

struct Decoded {
  std::vector<Entry> entries;
  std::vector<std::string> errors;  // one line per message that could not be used
  bool done = false;                // NLMSG_DONE: a dump ended
  int error = 0;                    // errno of an NLMSG_ERROR that is not an ack
  size_t ignored = 0;               // other ctnetlink messages (expectations, ...)
};

// Every netlink message in one datagram. A message with a bad header ends the walk (its length
// cannot be trusted to find the next one); a message whose attributes are malformed or lack a
// tuple is reported and skipped, and the walk goes on.
Decoded DecodeMessages(std::span<const uint8_t> datagram);

}  // namespace nodescope::sensor::conntrack
