#include "sensor/plugins/conntrack/netlink_decode.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <memory>
#include <vector>

namespace nodescope::sensor::conntrack {
namespace {

struct Spec {
  uint8_t type = IPCTNL_MSG_CT_NEW;
  uint16_t flags = NLM_F_CREATE | NLM_F_EXCL;
  uint8_t family = AF_INET;
  const char* orig_src = "198.18.1.1";
  const char* orig_dst = "198.18.100.1";
  uint16_t sport = 40000, dport = 80;
  const char* reply_src = "198.18.1.2";
  uint16_t reply_sport = 8080;
  uint32_t id = 0x1234abcd;
  std::optional<uint32_t> status = IPS_DST_NAT | IPS_CONFIRMED;
  bool with_id = true;
};

void SetAddr(nf_conntrack* ct, uint8_t family, nf_conntrack_attr v4, nf_conntrack_attr v6,
             const char* text) {
  uint8_t raw[16];
  ASSERT_EQ(inet_pton(family, text, raw), 1) << text;
  if (family == AF_INET) {
    nfct_set_attr_u32(ct, v4, *reinterpret_cast<uint32_t*>(raw));
  } else {
    nfct_set_attr(ct, v6, raw);
  }
}

// One ctnetlink message as the kernel sends it, built with libnetfilter_conntrack.
std::vector<uint8_t> Message(const Spec& s) {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | s.type;
  nlh->nlmsg_flags = s.flags;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = s.family;
  nfg->version = NFNETLINK_V0;
  std::unique_ptr<nf_conntrack, decltype(&nfct_destroy)> ct(nfct_new(), &nfct_destroy);
  nfct_set_attr_u8(ct.get(), ATTR_ORIG_L3PROTO, s.family);
  nfct_set_attr_u8(ct.get(), ATTR_REPL_L3PROTO, s.family);
  nfct_set_attr_u8(ct.get(), ATTR_ORIG_L4PROTO, IPPROTO_TCP);
  nfct_set_attr_u8(ct.get(), ATTR_REPL_L4PROTO, IPPROTO_TCP);
  SetAddr(ct.get(), s.family, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC, s.orig_src);
  SetAddr(ct.get(), s.family, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST, s.orig_dst);
  SetAddr(ct.get(), s.family, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC, s.reply_src);
  SetAddr(ct.get(), s.family, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST, s.orig_src);
  nfct_set_attr_u16(ct.get(), ATTR_ORIG_PORT_SRC, htons(s.sport));
  nfct_set_attr_u16(ct.get(), ATTR_ORIG_PORT_DST, htons(s.dport));
  nfct_set_attr_u16(ct.get(), ATTR_REPL_PORT_SRC, htons(s.reply_sport));
  nfct_set_attr_u16(ct.get(), ATTR_REPL_PORT_DST, htons(s.sport));
  if (s.status) nfct_set_attr_u32(ct.get(), ATTR_STATUS, *s.status);
  EXPECT_EQ(nfct_nlmsg_build(nlh, ct.get()), 0);
  // libnetfilter_conntrack builds requests, which carry no id; the kernel's messages do.
  if (s.with_id) mnl_attr_put_u32(nlh, CTA_ID, htonl(s.id));
  buf.resize(nlh->nlmsg_len);
  return buf;
}

std::vector<uint8_t> Concat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<uint8_t> Done() {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = NLMSG_DONE;
  nlh->nlmsg_flags = NLM_F_MULTI;
  *static_cast<int*>(mnl_nlmsg_put_extra_header(nlh, sizeof(int))) = 0;
  buf.resize(nlh->nlmsg_len);
  return buf;
}

TEST(NetlinkDecode, NewEventOfADnatEntry) {
  Decoded d = DecodeMessages(Message({}));
  ASSERT_TRUE(d.errors.empty()) << d.errors[0];
  ASSERT_EQ(d.entries.size(), 1u);
  const Entry& e = d.entries[0];
  EXPECT_EQ(e.type, Entry::Type::kNew);
  EXPECT_FALSE(e.dump);
  EXPECT_EQ(e.protocol, IPPROTO_TCP);
  EXPECT_EQ(e.orig.src.ToString(), "198.18.1.1");
  EXPECT_EQ(e.orig.dst.ToString(), "198.18.100.1");
  EXPECT_EQ(e.orig.src_port, 40000);
  EXPECT_EQ(e.orig.dst_port, 80);
  EXPECT_EQ(e.reply.src.ToString(), "198.18.1.2");
  EXPECT_EQ(e.reply.src_port, 8080);
  EXPECT_EQ(e.reply.dst.ToString(), "198.18.1.1");
  EXPECT_EQ(e.reply.dst_port, 40000);
  EXPECT_EQ(e.id, 0x1234abcdu);
  ASSERT_TRUE(e.status.has_value());
  EXPECT_TRUE(e.IsDnat());
}

TEST(NetlinkDecode, StatusDecidesDnatAndDestroyWithoutStatusUsesTheTuples) {
  Spec plain;
  plain.reply_src = plain.orig_dst;
  plain.reply_sport = plain.dport;
  plain.status = IPS_CONFIRMED;
  Decoded d = DecodeMessages(Message(plain));
  ASSERT_EQ(d.entries.size(), 1u);
  EXPECT_FALSE(d.entries[0].IsDnat());

  Spec destroy;
  destroy.type = IPCTNL_MSG_CT_DELETE;
  destroy.flags = 0;
  destroy.status.reset();  // DESTROY events carry no status
  d = DecodeMessages(Message(destroy));
  ASSERT_EQ(d.entries.size(), 1u);
  EXPECT_EQ(d.entries[0].type, Entry::Type::kDestroy);
  EXPECT_FALSE(d.entries[0].status.has_value());
  EXPECT_TRUE(d.entries[0].IsDnat());
  plain.type = IPCTNL_MSG_CT_DELETE;
  plain.status.reset();
  d = DecodeMessages(Message(plain));
  ASSERT_EQ(d.entries.size(), 1u);
  EXPECT_FALSE(d.entries[0].IsDnat());
}

TEST(NetlinkDecode, Ipv6AndADumpEndingInDone) {
  Spec v6;
  v6.family = AF_INET6;
  v6.orig_src = "fd00:198:18:1::1";
  v6.orig_dst = "fd00:198:18:100::1";
  v6.reply_src = "fd00:198:18:1::2";
  v6.flags = NLM_F_MULTI;
  Spec v4;
  v4.flags = NLM_F_MULTI;
  v4.id = 77;
  Decoded d = DecodeMessages(Concat({Message(v6), Message(v4), Done()}));
  ASSERT_TRUE(d.errors.empty()) << d.errors[0];
  ASSERT_EQ(d.entries.size(), 2u);
  EXPECT_TRUE(d.entries[0].dump);
  EXPECT_EQ(d.entries[0].orig.dst.ToString(), "fd00:198:18:100::1");
  EXPECT_EQ(d.entries[0].reply.src.ToString(), "fd00:198:18:1::2");
  EXPECT_EQ(d.entries[1].id, 77u);
  EXPECT_TRUE(d.done);
}

TEST(NetlinkDecode, MessageWithoutIdOrTupleIsAnErrorAndTheOthersAreKept) {
  Spec no_id;
  no_id.with_id = false;
  Spec first, last;
  first.id = 1;
  last.id = 3;
  Decoded d = DecodeMessages(Concat({Message(first), Message(no_id), Message(last)}));
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_NE(d.errors[0].find("no conntrack id"), std::string::npos) << d.errors[0];
  ASSERT_EQ(d.entries.size(), 2u);
  EXPECT_EQ(d.entries[0].id, 1u);
  EXPECT_EQ(d.entries[1].id, 3u);
}

TEST(NetlinkDecode, CorruptAttributeLengthInsideOneMessage) {
  std::vector<uint8_t> bad = Message({});
  // The first attribute (CTA_TUPLE_ORIG) claims more bytes than the message holds.
  auto* attr = reinterpret_cast<nlattr*>(bad.data() + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)));
  ASSERT_EQ(attr->nla_type & NLA_TYPE_MASK, CTA_TUPLE_ORIG);
  attr->nla_len = 0xfff0;
  Decoded d = DecodeMessages(Concat({bad, Message({})}));
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_NE(d.errors[0].find("original tuple"), std::string::npos) << d.errors[0];
  EXPECT_EQ(d.entries.size(), 1u);  // the next message is not lost
}

TEST(NetlinkDecode, BadMessageLengthEndsTheDatagramWithAnError) {
  std::vector<uint8_t> good = Message({});
  std::vector<uint8_t> bad = Message({});
  reinterpret_cast<nlmsghdr*>(bad.data())->nlmsg_len = 0x7000;
  Decoded d = DecodeMessages(Concat({good, bad}));
  EXPECT_EQ(d.entries.size(), 1u);
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_NE(d.errors[0].find("does not fit"), std::string::npos) << d.errors[0];
}

// Every truncation of a valid datagram: never a crash or a read past the end, and an entry only
// when the whole message is there.
TEST(NetlinkDecode, EveryPrefixOfAMessageDecodesSafely) {
  const std::vector<uint8_t> full = Concat({Message({}), Message({.id = 2})});
  const size_t first = Message({}).size();
  for (size_t n = 0; n <= full.size(); ++n) {
    std::vector<uint8_t> prefix(full.begin(), full.begin() + n);  // exact size: ASan sees overruns
    Decoded d = DecodeMessages(prefix);
    const size_t expected = n == full.size() ? 2 : n >= first ? 1 : 0;
    EXPECT_EQ(d.entries.size(), expected) << n;
    if (n != 0 && n != first && n != full.size()) {
      EXPECT_FALSE(d.errors.empty()) << n;
    }
  }
}

TEST(NetlinkDecode, ErrorsAndOtherMessagesAreNotEntries) {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = NLMSG_ERROR;
  auto* err = static_cast<nlmsgerr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nlmsgerr)));
  err->error = -EBUSY;
  buf.resize(nlh->nlmsg_len);
  Decoded d = DecodeMessages(buf);
  EXPECT_EQ(d.error, EBUSY);
  EXPECT_TRUE(d.entries.empty());
  std::vector<uint8_t> other = Message({});
  reinterpret_cast<nlmsghdr*>(other.data())->nlmsg_type = (NFNL_SUBSYS_CTNETLINK_EXP << 8);
  d = DecodeMessages(other);
  EXPECT_EQ(d.ignored, 1u);
  EXPECT_TRUE(d.entries.empty());
  EXPECT_TRUE(d.errors.empty());
}

}  // namespace
}  // namespace nodescope::sensor::conntrack
