// DomainCache on captured answers (including a real CNAME chain) and on built ones for the limits.
#include "sensor/protocols/dns/domain_cache.h"

#include <gtest/gtest.h>

#include <vector>

#include "sensor/protocols/dns/test_util.h"

namespace nodescope::sensor::dns {
namespace {

using testing::ParseTestdata;

constexpr uint64_t kT0 = 1'763'776'000'000'000'000;
constexpr uint64_t kSecond = 1'000'000'000;

std::vector<uint8_t> V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) { return {a, b, c, d}; }
std::vector<uint8_t> V4Mapped(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d};
}

Answer Address(std::string name, uint32_t ttl, const std::vector<uint8_t>& ip) {
  Answer a{.name = std::move(name),
           .type = ip.size() == 4 ? kTypeA : kTypeAaaa,
           .klass = kClassIn,
           .ttl = ttl,
           .target = {}};
  std::copy(ip.begin(), ip.end(), a.address.begin());
  a.address_len = static_cast<uint8_t>(ip.size());
  return a;
}

Answer Cname(std::string name, uint32_t ttl, std::string target) {
  return Answer{.name = std::move(name),
                .type = kTypeCname,
                .klass = kClassIn,
                .ttl = ttl,
                .target = std::move(target)};
}

Message Response(std::string qname, std::vector<Answer> answers) {
  return Message{.response = true,
                 .questions = {{std::move(qname), kTypeA, kClassIn}},
                 .answers = std::move(answers)};
}

TEST(DnsDomainCache, CapturedAnswer) {
  DomainCache cache;
  EXPECT_EQ(cache.Learn(ParseTestdata("udp_a.response.bin"), kT0), 1u);
  EXPECT_EQ(cache.Lookup(V4(198, 18, 0, 10), kT0), "example.test");
  // The same address as a dual-stack socket reports it.
  EXPECT_EQ(cache.Lookup(V4Mapped(198, 18, 0, 10), kT0), "example.test");
  EXPECT_EQ(cache.Lookup(V4(198, 18, 0, 11), kT0), std::nullopt);
  // TTL 300 s.
  EXPECT_EQ(cache.Lookup(V4(198, 18, 0, 10), kT0 + 300 * kSecond - 1), "example.test");
  EXPECT_EQ(cache.Lookup(V4(198, 18, 0, 10), kT0 + 300 * kSecond), std::nullopt);
  EXPECT_EQ(cache.stats().expired, 1u);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(DnsDomainCache, CapturedCnameChainMapsToTheQueriedName) {
  // alias.example.test (60 s) -> cdn.example.test (120 s) -> edge.example.test (600 s) A
  // 198.18.0.20: the application asked for alias, and the mapping lasts as long as every link.
  DomainCache cache;
  EXPECT_EQ(cache.Learn(ParseTestdata("udp_cname_chain.response.bin"), kT0), 1u);
  EXPECT_EQ(cache.Lookup(V4(198, 18, 0, 20), kT0 + 60 * kSecond - 1), "alias.example.test");
  EXPECT_EQ(cache.Lookup(V4(198, 18, 0, 20), kT0 + 60 * kSecond), std::nullopt);
}

TEST(DnsDomainCache, CapturedAaaaAndAnswersWithoutAddresses) {
  DomainCache cache;
  EXPECT_EQ(cache.Learn(ParseTestdata("udp_aaaa.response.bin"), kT0), 1u);
  const std::vector<uint8_t> v6 = {0xfd, 0, 0x01, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11};
  EXPECT_EQ(cache.Lookup(v6, kT0 + 900 * kSecond - 1), "v6.example.test");
  // A CNAME alone, NXDOMAIN, REFUSED, an MX and a query teach nothing.
  for (const char* f : {"udp_www_cname.response.bin", "udp_nxdomain.response.bin",
                        "udp_refused.response.bin", "udp_mx.response.bin", "udp_a.query.bin"}) {
    EXPECT_EQ(cache.Learn(ParseTestdata(f), kT0), 0u) << f;
  }
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Lookup(std::vector<uint8_t>{1, 2, 3}, kT0), std::nullopt);  // not an address
}

TEST(DnsDomainCache, TtlFloorAndCap) {
  DomainCache cache(DomainCacheOptions{.min_ttl_ns = 5 * kSecond, .max_ttl_ns = 3600 * kSecond});
  cache.Learn(Response("zero.test", {Address("zero.test", 0, V4(10, 0, 0, 1))}), kT0);
  cache.Learn(Response("day.test", {Address("day.test", 86400, V4(10, 0, 0, 2))}), kT0);
  // RFC 2181 8: a TTL with the top bit set counts as 0, so it gets the floor, not 68 years.
  cache.Learn(Response("neg.test", {Address("neg.test", 0x80000000U, V4(10, 0, 0, 3))}), kT0);
  EXPECT_EQ(cache.Lookup(V4(10, 0, 0, 1), kT0 + 5 * kSecond - 1), "zero.test");
  EXPECT_EQ(cache.Lookup(V4(10, 0, 0, 1), kT0 + 5 * kSecond), std::nullopt);
  EXPECT_EQ(cache.Lookup(V4(10, 0, 0, 3), kT0 + 5 * kSecond), std::nullopt);
  EXPECT_EQ(cache.Lookup(V4(10, 0, 0, 2), kT0 + 3600 * kSecond - 1), "day.test");
  EXPECT_EQ(cache.Lookup(V4(10, 0, 0, 2), kT0 + 3600 * kSecond), std::nullopt);
}

TEST(DnsDomainCache, ChainFollowingIgnoresOffChainRecordsAndLoops) {
  DomainCache cache;
  // WWW.Shop.TEST -> cdn.example.net -> 10.1.1.1, plus an address record for a name the chain
  // never reaches (a server may add anything), and a CNAME loop that must end.
  cache.Learn(Response("WWW.Shop.TEST", {Cname("www.shop.test", 300, "CDN.example.net"),
                                         Address("cdn.example.net", 30, V4(10, 1, 1, 1)),
                                         Address("bank.test", 300, V4(10, 9, 9, 9))}),
              kT0);
  EXPECT_EQ(cache.Lookup(V4(10, 1, 1, 1), kT0), "www.shop.test");
  EXPECT_EQ(cache.Lookup(V4(10, 9, 9, 9), kT0), std::nullopt);
  EXPECT_EQ(cache.Lookup(V4(10, 1, 1, 1), kT0 + 30 * kSecond), std::nullopt);

  cache.Learn(Response("a.test", {Cname("a.test", 300, "b.test"), Cname("b.test", 300, "a.test"),
                                  Address("b.test", 300, V4(10, 2, 2, 2))}),
              kT0);
  EXPECT_EQ(cache.Lookup(V4(10, 2, 2, 2), kT0), "a.test");
}

TEST(DnsDomainCache, NewerNameWinsForASharedAddress) {
  DomainCache cache;
  cache.Learn(Response("one.test", {Address("one.test", 300, V4(10, 0, 0, 1))}), kT0);
  cache.Learn(Response("two.test", {Address("two.test", 10, V4(10, 0, 0, 1))}), kT0 + 1);
  EXPECT_EQ(cache.Lookup(V4(10, 0, 0, 1), kT0 + 2), "two.test");
  EXPECT_EQ(cache.Lookup(V4(10, 0, 0, 1), kT0 + 1 + 10 * kSecond), std::nullopt);
  EXPECT_EQ(cache.stats().learned, 2u);
}

TEST(DnsDomainCache, LruBound) {
  DomainCache cache(DomainCacheOptions{.max_entries = 3});
  for (uint8_t i = 1; i <= 3; ++i) {
    cache.Learn(Response("h.test", {Address("h.test", 300, V4(10, 0, 0, i))}), kT0);
  }
  // Use .1, so .2 is now the least recently used and goes when .4 arrives.
  EXPECT_TRUE(cache.Lookup(V4(10, 0, 0, 1), kT0).has_value());
  cache.Learn(Response("h.test", {Address("h.test", 300, V4(10, 0, 0, 4))}), kT0);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.stats().evicted, 1u);
  EXPECT_TRUE(cache.Lookup(V4(10, 0, 0, 1), kT0).has_value());
  EXPECT_FALSE(cache.Lookup(V4(10, 0, 0, 2), kT0).has_value());
  EXPECT_TRUE(cache.Lookup(V4(10, 0, 0, 3), kT0).has_value());
  EXPECT_TRUE(cache.Lookup(V4(10, 0, 0, 4), kT0).has_value());
  // An expired victim is counted as expired, not as an eviction.
  cache.Learn(Response("h.test", {Address("h.test", 300, V4(10, 0, 0, 5))}), kT0 + 301 * kSecond);
  EXPECT_EQ(cache.stats().evicted, 1u);
  EXPECT_EQ(cache.stats().expired, 1u);
  EXPECT_EQ(cache.size(), 3u);
}

TEST(DnsDomainCache, DefaultBoundHolds) {
  DomainCache cache;
  Message m = Response("many.test", {});
  for (uint32_t i = 0; i < 70'000; ++i) {
    m.answers.push_back(Address("many.test", 300,
                                V4(10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8),
                                   static_cast<uint8_t>(i))));
  }
  EXPECT_EQ(cache.Learn(m, kT0), 70'000u);
  EXPECT_EQ(cache.size(), 65'536u);
  EXPECT_EQ(cache.stats().evicted, 70'000u - 65'536u);
  EXPECT_FALSE(cache.Lookup(V4(10, 0, 0, 0), kT0).has_value());
  EXPECT_TRUE(cache.Lookup(V4(10, 1, 0x11, 0x6F), kT0).has_value());  // 69'999
}

}  // namespace
}  // namespace nodescope::sensor::dns
