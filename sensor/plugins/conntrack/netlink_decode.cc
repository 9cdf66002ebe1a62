#include "sensor/plugins/conntrack/netlink_decode.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <cstring>
#include <memory>

namespace nodescope::sensor::conntrack {
namespace {

using CtPtr = std::unique_ptr<nf_conntrack, decltype(&nfct_destroy)>;

// One address of a tuple: `v4` or `v6`, by the tuple's family.
std::optional<net::IpAddress> Address(const nf_conntrack* ct, uint8_t l3, nf_conntrack_attr v4,
                                      nf_conntrack_attr v6) {
  if (l3 == AF_INET && nfct_attr_is_set(ct, v4)) {
    uint32_t v = nfct_get_attr_u32(ct, v4);
    return net::IpAddress::FromBytes({reinterpret_cast<const uint8_t*>(&v), 4});
  }
  if (l3 == AF_INET6 && nfct_attr_is_set(ct, v6)) {
    return net::IpAddress::FromBytes({static_cast<const uint8_t*>(nfct_get_attr(ct, v6)), 16});
  }
  return std::nullopt;
}

// Ports for TCP, UDP, UDP-Lite, SCTP, DCCP; 0 for protocols without them (ICMP ids are not
// ports and are left out).
bool HasPorts(uint8_t protocol) {
  return protocol == IPPROTO_TCP || protocol == IPPROTO_UDP || protocol == IPPROTO_UDPLITE ||
         protocol == IPPROTO_SCTP || protocol == IPPROTO_DCCP;
}

// Fills one direction; an error text when a part the join needs is missing.
std::string FillTuple(const nf_conntrack* ct, bool reply, uint8_t l3, uint8_t protocol, Tuple* t) {
  const char* dir = reply ? "reply" : "original";
  std::optional<net::IpAddress> src = reply
                                          ? Address(ct, l3, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC)
                                          : Address(ct, l3, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC);
  std::optional<net::IpAddress> dst = reply
                                          ? Address(ct, l3, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST)
                                          : Address(ct, l3, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST);
  if (!src || !dst) return std::string("no ") + dir + " tuple addresses";
  t->src = *src;
  t->dst = *dst;
  if (HasPorts(protocol)) {
    const auto sp = reply ? ATTR_REPL_PORT_SRC : ATTR_ORIG_PORT_SRC;
    const auto dp = reply ? ATTR_REPL_PORT_DST : ATTR_ORIG_PORT_DST;
    if (!nfct_attr_is_set(ct, sp) || !nfct_attr_is_set(ct, dp)) {
      return std::string("no ") + dir + " tuple ports";
    }
    t->src_port = ntohs(nfct_get_attr_u16(ct, sp));
    t->dst_port = ntohs(nfct_get_attr_u16(ct, dp));
  }
  return {};
}

// libnetfilter_conntrack 1.0.9 checks the size of every attribute it knows and, when one is
// wrong, prints "ctnetlink kernel ABI is broken" and calls exit() (its abi_breakage()): one bad
// message would end the sensor. So the same sizes are checked here first, and a message that
// fails is an error like any other. The kernel always sends these sizes; strings must also end
// in a NUL, as the library copies them with strncpy/strdup.
enum class Level {
  kTop,
  kTuple,
  kIp,
  kProto,
  kProtoinfo,
  kTcp,
  kSctp,
  kDccp,
  kCounters,
  kNatSeq,
  kHelp,
  kSecctx,
  kTimestamp,
  kSynproxy
};
constexpr const char* kLevelNames[] = {"message", "tuple",  "tuple ip",  "tuple proto", "protoinfo",
                                       "tcp",     "sctp",   "dccp",      "counters",    "nat seq",
                                       "help",    "secctx", "timestamp", "synproxy"};
constexpr int kNested = -1, kString = -2;  // sizes that are kinds

struct Rule {
  Level level;
  uint16_t type;
  int size;                   // of the payload, in bytes, or a kind
  Level inner = Level::kTop;  // what a nested attribute holds
};

// clang-format off
constexpr Rule kRules[] = {
    {Level::kTop, CTA_TUPLE_ORIG, kNested, Level::kTuple},
    {Level::kTop, CTA_TUPLE_REPLY, kNested, Level::kTuple},
    {Level::kTop, CTA_TUPLE_MASTER, kNested, Level::kTuple},
    {Level::kTop, CTA_NAT_SEQ_ADJ_ORIG, kNested, Level::kNatSeq},
    {Level::kTop, CTA_NAT_SEQ_ADJ_REPLY, kNested, Level::kNatSeq},
    {Level::kTop, CTA_PROTOINFO, kNested, Level::kProtoinfo},
    {Level::kTop, CTA_COUNTERS_ORIG, kNested, Level::kCounters},
    {Level::kTop, CTA_COUNTERS_REPLY, kNested, Level::kCounters},
    {Level::kTop, CTA_HELP, kNested, Level::kHelp},
    {Level::kTop, CTA_SECCTX, kNested, Level::kSecctx},
    {Level::kTop, CTA_TIMESTAMP, kNested, Level::kTimestamp},
    {Level::kTop, CTA_SYNPROXY, kNested, Level::kSynproxy},
    {Level::kTop, CTA_STATUS, 4}, {Level::kTop, CTA_TIMEOUT, 4}, {Level::kTop, CTA_MARK, 4},
    {Level::kTop, CTA_SECMARK, 4}, {Level::kTop, CTA_USE, 4}, {Level::kTop, CTA_ID, 4},
    {Level::kTop, CTA_ZONE, 2},
    {Level::kTuple, CTA_TUPLE_IP, kNested, Level::kIp},
    {Level::kTuple, CTA_TUPLE_PROTO, kNested, Level::kProto},
    {Level::kTuple, CTA_TUPLE_ZONE, 2},
    {Level::kIp, CTA_IP_V4_SRC, 4}, {Level::kIp, CTA_IP_V4_DST, 4},
    {Level::kIp, CTA_IP_V6_SRC, 16}, {Level::kIp, CTA_IP_V6_DST, 16},
    {Level::kProto, CTA_PROTO_NUM, 1}, {Level::kProto, CTA_PROTO_ICMP_TYPE, 1},
    {Level::kProto, CTA_PROTO_ICMP_CODE, 1}, {Level::kProto, CTA_PROTO_ICMPV6_TYPE, 1},
    {Level::kProto, CTA_PROTO_ICMPV6_CODE, 1}, {Level::kProto, CTA_PROTO_SRC_PORT, 2},
    {Level::kProto, CTA_PROTO_DST_PORT, 2}, {Level::kProto, CTA_PROTO_ICMP_ID, 2},
    {Level::kProto, CTA_PROTO_ICMPV6_ID, 2},
    {Level::kProtoinfo, CTA_PROTOINFO_TCP, kNested, Level::kTcp},
    {Level::kProtoinfo, CTA_PROTOINFO_SCTP, kNested, Level::kSctp},
    {Level::kProtoinfo, CTA_PROTOINFO_DCCP, kNested, Level::kDccp},
    {Level::kTcp, CTA_PROTOINFO_TCP_STATE, 1}, {Level::kTcp, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, 1},
    {Level::kTcp, CTA_PROTOINFO_TCP_WSCALE_REPLY, 1},
    {Level::kTcp, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, 2},  // struct nf_ct_tcp_flags
    {Level::kTcp, CTA_PROTOINFO_TCP_FLAGS_REPLY, 2},
    {Level::kSctp, CTA_PROTOINFO_SCTP_STATE, 1}, {Level::kSctp, CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, 4},
    {Level::kSctp, CTA_PROTOINFO_SCTP_VTAG_REPLY, 4},
    {Level::kDccp, CTA_PROTOINFO_DCCP_STATE, 1}, {Level::kDccp, CTA_PROTOINFO_DCCP_ROLE, 1},
    {Level::kDccp, CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ, 8},
    {Level::kCounters, CTA_COUNTERS_PACKETS, 8}, {Level::kCounters, CTA_COUNTERS_BYTES, 8},
    {Level::kCounters, CTA_COUNTERS32_PACKETS, 4}, {Level::kCounters, CTA_COUNTERS32_BYTES, 4},
    {Level::kNatSeq, CTA_NAT_SEQ_CORRECTION_POS, 4}, {Level::kNatSeq, CTA_NAT_SEQ_OFFSET_BEFORE, 4},
    {Level::kNatSeq, CTA_NAT_SEQ_OFFSET_AFTER, 4},
    {Level::kHelp, CTA_HELP_NAME, kString},
    {Level::kSecctx, CTA_SECCTX_NAME, kString},
    {Level::kTimestamp, CTA_TIMESTAMP_START, 8}, {Level::kTimestamp, CTA_TIMESTAMP_STOP, 8},
    {Level::kSynproxy, CTA_SYNPROXY_ISN, 4}, {Level::kSynproxy, CTA_SYNPROXY_ITS, 4},
    {Level::kSynproxy, CTA_SYNPROXY_TSOFF, 4},
};
// clang-format on

// Walks the attributes in `payload` as the library does (stopping at the first one that does not
// fit) and below the nested ones it knows. Empty when every size is right.
std::string CheckAttributes(std::span<const char> payload, Level level) {
  for (size_t at = 0; at < payload.size();) {
    const auto* attr = reinterpret_cast<const nlattr*>(payload.data() + at);
    if (!mnl_attr_ok(attr, static_cast<int>(payload.size() - at))) break;
    const uint16_t type = mnl_attr_get_type(attr);
    const std::span<const char> data(static_cast<const char*>(mnl_attr_get_payload(attr)),
                                     mnl_attr_get_payload_len(attr));
    at += MNL_ALIGN(attr->nla_len);
    const Rule* rule = nullptr;
    for (const Rule& r : kRules) {
      if (r.level == level && r.type == type) {
        rule = &r;
        break;
      }
    }
    if (rule == nullptr) continue;  // a size the library does not check either
    bool ok = rule->size >= 0 && data.size() == static_cast<size_t>(rule->size);
    if (rule->size == kNested) ok = data.empty() || data.size() >= MNL_ATTR_HDRLEN;
    if (rule->size == kString) ok = !data.empty() && data.back() == '\0';
    if (!ok) {
      return std::string(kLevelNames[static_cast<int>(level)]) + " attribute " +
             std::to_string(type) + " has a " + std::to_string(data.size()) + "-byte payload";
    }
    if (rule->size == kNested && !data.empty()) {
      if (std::string err = CheckAttributes(data, rule->inner); !err.empty()) return err;
    }
  }
  return {};
}

std::string DecodeOne(const nlmsghdr* nlh, Entry* e) {
  const uint8_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
  if (type == IPCTNL_MSG_CT_NEW) {
    e->type = Entry::Type::kNew;
  } else if (type == IPCTNL_MSG_CT_DELETE) {
    e->type = Entry::Type::kDestroy;
  } else {
    return "unexpected ctnetlink message type " + std::to_string(type);
  }
  e->dump = (nlh->nlmsg_flags & NLM_F_MULTI) != 0;
  if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(nfgenmsg)) return "message shorter than its header";
  const size_t header = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));
  const std::span<const char> attributes(reinterpret_cast<const char*>(nlh) + header,
                                         nlh->nlmsg_len - header);
  if (std::string err = CheckAttributes(attributes, Level::kTop); !err.empty()) {
    return "malformed attributes: " + err;
  }
  CtPtr ct(nfct_new(), &nfct_destroy);
  if (!ct) return "out of memory";
  if (nfct_nlmsg_parse(nlh, ct.get()) < 0) return "malformed attributes";
  if (!nfct_attr_is_set(ct.get(), ATTR_ORIG_L3PROTO) ||
      !nfct_attr_is_set(ct.get(), ATTR_ORIG_L4PROTO)) {
    return "no original tuple";
  }
  const uint8_t l3 = nfct_get_attr_u8(ct.get(), ATTR_ORIG_L3PROTO);
  e->protocol = nfct_get_attr_u8(ct.get(), ATTR_ORIG_L4PROTO);
  if (std::string err = FillTuple(ct.get(), false, l3, e->protocol, &e->orig); !err.empty()) {
    return err;
  }
  if (std::string err = FillTuple(ct.get(), true, l3, e->protocol, &e->reply); !err.empty()) {
    return err;
  }
  if (!nfct_attr_is_set(ct.get(), ATTR_ID)) return "no conntrack id";
  e->id = nfct_get_attr_u32(ct.get(), ATTR_ID);
  if (nfct_attr_is_set(ct.get(), ATTR_STATUS)) e->status = nfct_get_attr_u32(ct.get(), ATTR_STATUS);
  return {};
}

}  // namespace

bool Entry::IsDnat() const {
  if (status) return (*status & IPS_DST_NAT) != 0;
  return reply.src != orig.dst || reply.src_port != orig.dst_port;
}

Decoded DecodeMessages(std::span<const uint8_t> datagram) {
  Decoded out;
  int len = static_cast<int>(datagram.size());
  // libmnl's walk checks each header against what is left of the buffer.
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data());
  while (len > 0) {
    // Not only before the first message: a datagram can end a few bytes after a whole one.
    if (len < static_cast<int>(sizeof(nlmsghdr))) {
      out.errors.push_back("truncated netlink header (" + std::to_string(len) + " bytes)");
      break;
    }
    // libmnl compares the length as an int: one of 2 GiB or more passes its check.
    if (!mnl_nlmsg_ok(nlh, len) || nlh->nlmsg_len > static_cast<uint32_t>(len)) {
      out.errors.push_back("netlink message length " + std::to_string(nlh->nlmsg_len) +
                           " does not fit the " + std::to_string(len) +
                           " bytes left; rest of the datagram dropped");
      break;
    }
    if (nlh->nlmsg_type == NLMSG_DONE) {
      out.done = true;
    } else if (nlh->nlmsg_type == NLMSG_ERROR) {
      if (nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(nlmsgerr)) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        // The kernel sends -errno (at most 4095); negating anything else is no errno, and
        // negating INT_MIN overflows.
        if (err->error < 0 && err->error >= -4095) {
          out.error = -err->error;
        } else if (err->error != 0) {
          out.errors.push_back("netlink error message with code " + std::to_string(err->error) +
                               ", not an errno");
        }
      } else {
        out.errors.push_back("truncated netlink error message");
      }
    } else if (nlh->nlmsg_type == NLMSG_NOOP || nlh->nlmsg_type < NLMSG_MIN_TYPE) {
      ++out.ignored;
    } else if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_CTNETLINK) {
      ++out.ignored;  // expectations, other subsystems: not asked for
    } else {
      Entry e;
      if (std::string err = DecodeOne(nlh, &e); !err.empty()) {
        out.errors.push_back("ctnetlink message (type " + std::to_string(nlh->nlmsg_type) + ", " +
                             std::to_string(nlh->nlmsg_len) + " bytes): " + err);
      } else {
        out.entries.push_back(std::move(e));
      }
    }
    nlh = mnl_nlmsg_next(nlh, &len);
  }
  return out;
}

}  // namespace nodescope::sensor::conntrack
