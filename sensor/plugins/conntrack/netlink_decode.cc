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
  if (len > 0 && len < static_cast<int>(sizeof(nlmsghdr))) {
    out.errors.push_back("truncated netlink header (" + std::to_string(len) + " bytes)");
    return out;
  }
  while (len > 0) {
    if (!mnl_nlmsg_ok(nlh, len)) {
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
        if (err->error != 0) out.error = -err->error;
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
