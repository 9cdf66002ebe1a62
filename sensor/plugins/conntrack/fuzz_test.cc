// Replays the ctnetlink fuzz corpus (testdata/fuzz/: seeds and what fuzz_conntrack_netlink found)
// through the fuzzer's own checks, so a fixed bug stays fixed without running the fuzzer. The
// kernel_* seeds are datagrams a 6.18 kernel sent on a ctnetlink socket in a scratch network
// namespace (NEW and DESTROY events of a TCP connection DNAT'ed by nftables from 198.18.100.1:80
// to 198.18.1.2:8080, of UDP and of IPv6 TCP on ::1, a dump reply with its NLMSG_DONE, and the
// EINVAL answer to a GET without a tuple); they are checked here to decode as what they are.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "sensor/plugins/conntrack/netlink_decode.h"

namespace nodescope::sensor::conntrack {

std::string CheckConntrackInput(const uint8_t* data, size_t size);  // fuzz.cc

namespace {

std::vector<uint8_t> Seed(const std::string& name) {
  std::ifstream in(std::string(NS_CONNTRACK_FUZZ_CORPUS) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in) << name;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(ConntrackFuzzCorpus, KeepsItsInvariants) {
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(NS_CONNTRACK_FUZZ_CORPUS)) {
    const std::vector<uint8_t> bytes = Seed(entry.path().filename());
    EXPECT_EQ(CheckConntrackInput(bytes.data(), bytes.size()), "") << entry.path();
    ++files;
  }
  EXPECT_GE(files, 12u);
}

TEST(ConntrackFuzzCorpus, KernelEventsDecodeAsCaptured) {
  Decoded d = DecodeMessages(Seed("kernel_new_tcp4_dnat.bin"));
  ASSERT_TRUE(d.errors.empty()) << d.errors[0];
  ASSERT_EQ(d.entries.size(), 1u);
  const Entry e = d.entries[0];  // a copy: `d` is reused below
  EXPECT_EQ(e.type, Entry::Type::kNew);
  EXPECT_FALSE(e.dump);
  EXPECT_EQ(e.protocol, IPPROTO_TCP);
  EXPECT_EQ(e.orig.dst.ToString(), "198.18.100.1");
  EXPECT_EQ(e.orig.dst_port, 80);
  EXPECT_EQ(e.reply.src.ToString(), "198.18.1.2");
  EXPECT_EQ(e.reply.src_port, 8080);
  EXPECT_EQ(e.reply.dst_port, e.orig.src_port);
  ASSERT_TRUE(e.status.has_value());
  EXPECT_TRUE(e.IsDnat());

  d = DecodeMessages(Seed("kernel_destroy_tcp4_dnat.bin"));
  ASSERT_TRUE(d.errors.empty()) << d.errors[0];
  ASSERT_EQ(d.entries.size(), 1u);
  EXPECT_EQ(d.entries[0].type, Entry::Type::kDestroy);
  EXPECT_EQ(d.entries[0].id, e.id);  // the same connection
  EXPECT_EQ(d.entries[0].orig, e.orig);
  EXPECT_TRUE(d.entries[0].IsDnat());

  d = DecodeMessages(Seed("kernel_new_udp4.bin"));
  ASSERT_EQ(d.entries.size(), 1u);
  EXPECT_EQ(d.entries[0].protocol, IPPROTO_UDP);
  EXPECT_EQ(d.entries[0].orig.dst.ToString(), "127.0.0.1");
  EXPECT_EQ(d.entries[0].orig.dst_port, 9);
  EXPECT_FALSE(d.entries[0].IsDnat());

  d = DecodeMessages(Seed("kernel_new_tcp6.bin"));
  ASSERT_EQ(d.entries.size(), 1u);
  EXPECT_EQ(d.entries[0].orig.dst.ToString(), "::1");
  EXPECT_EQ(d.entries[0].orig.dst_port, 8081);
  EXPECT_FALSE(d.entries[0].IsDnat());
}

TEST(ConntrackFuzzCorpus, KernelDumpAndErrorDecodeAsCaptured) {
  Decoded d = DecodeMessages(Seed("kernel_dump_done.bin"));
  ASSERT_TRUE(d.errors.empty()) << d.errors[0];
  EXPECT_EQ(d.entries.size(), 3u);
  for (const Entry& e : d.entries) EXPECT_TRUE(e.dump);
  EXPECT_TRUE(d.done);

  d = DecodeMessages(Seed("kernel_error_einval.bin"));
  EXPECT_EQ(d.error, EINVAL);
  EXPECT_TRUE(d.entries.empty());
  EXPECT_TRUE(d.errors.empty());

  d = DecodeMessages(Seed("hand_error_short.bin"));
  EXPECT_EQ(d.error, 0);
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_EQ(d.errors[0], "truncated netlink error message");

  // Cut inside its second message: the first is kept, the rest is one error.
  d = DecodeMessages(Seed("cut_dump_300.bin"));
  EXPECT_EQ(d.entries.size(), 1u);
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_NE(d.errors[0].find("does not fit"), std::string::npos) << d.errors[0];
}

TEST(ConntrackFuzzCorpus, WhatTheFuzzerFoundIsAnErrorNotACrash) {
  // A header of 1 byte after a whole message: it was read as 4 (past the end of the datagram).
  Decoded d = DecodeMessages(Seed("found_header_tail_1_byte.bin"));
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_EQ(d.errors[0], "truncated netlink header (1 bytes)");
  // A length of 2 GiB or more passed libmnl's (signed) check, and the walk jumped out of the
  // datagram.
  d = DecodeMessages(Seed("found_length_over_2gib.bin"));
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_NE(d.errors[0].find("length 3395518574 does not fit"), std::string::npos) << d.errors[0];
  // A 1-byte CTA_TUPLE_IP, which libnetfilter_conntrack answered with exit().
  d = DecodeMessages(Seed("found_attribute_size_exit.bin"));
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_NE(d.errors[0].find("malformed attributes: tuple attribute 1 has a 1-byte payload"),
            std::string::npos)
      << d.errors[0];
  // Error codes that are no -errno: one was reported as a negative errno, INT_MIN overflowed.
  // (The found one ends in 3 more bytes: a second error, of a truncated header.)
  for (const char* name : {"found_error_code_positive.bin", "hand_error_int_min.bin"}) {
    d = DecodeMessages(Seed(name));
    EXPECT_EQ(d.error, 0) << name;
    ASSERT_FALSE(d.errors.empty()) << name;
    EXPECT_NE(d.errors[0].find("not an errno"), std::string::npos) << d.errors[0];
  }
}

// Every attribute type (0..31) of every size (0..20 bytes) at every level libnetfilter_conntrack
// parses, added to a captured NEW event: the library exit()s on sizes it does not expect, so a
// level or type the pre-check misses ends this test binary. Each message is one entry or one error.
TEST(ConntrackFuzzCorpus, NoAttributeSizeEndsTheProcess) {
  const std::vector<uint8_t> seed = Seed("kernel_new_tcp4_dnat.bin");
  const std::vector<std::vector<uint16_t>> paths = {
      {},
      {CTA_TUPLE_ORIG},
      {CTA_TUPLE_REPLY, CTA_TUPLE_IP},
      {CTA_TUPLE_MASTER, CTA_TUPLE_PROTO},
      {CTA_PROTOINFO},
      {CTA_PROTOINFO, CTA_PROTOINFO_TCP},
      {CTA_PROTOINFO, CTA_PROTOINFO_SCTP},
      {CTA_PROTOINFO, CTA_PROTOINFO_DCCP},
      {CTA_COUNTERS_ORIG},
      {CTA_NAT_SEQ_ADJ_REPLY},
      {CTA_HELP},
      {CTA_SECCTX},
      {CTA_TIMESTAMP},
      {CTA_SYNPROXY},
  };
  const std::vector<uint8_t> fill(20, 'a');
  size_t errors = 0;
  for (const auto& path : paths) {
    for (uint16_t type = 0; type < 32; ++type) {
      for (size_t size = 0; size <= fill.size(); ++size) {
        std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
        std::copy(seed.begin(), seed.end(), buf.begin());
        auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
        std::vector<nlattr*> nests;
        for (uint16_t level : path) nests.push_back(mnl_attr_nest_start(nlh, level));
        mnl_attr_put(nlh, type, size, fill.data());
        for (auto it = nests.rbegin(); it != nests.rend(); ++it) mnl_attr_nest_end(nlh, *it);
        buf.resize(nlh->nlmsg_len);
        const Decoded d = DecodeMessages(buf);
        ASSERT_EQ(d.entries.size() + d.errors.size(), 1u) << type << " " << size;
        errors += d.errors.size();
      }
    }
  }
  EXPECT_GT(errors, 0u);
}

}  // namespace
}  // namespace nodescope::sensor::conntrack
