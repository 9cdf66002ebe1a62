#include "common/net/ip.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace nodescope::net {
namespace {

IpAddress Ip(std::string_view text) {
  auto address = IpAddress::Parse(text);
  EXPECT_TRUE(address.has_value()) << text;
  return address.value_or(IpAddress{});
}

std::vector<uint8_t> Bytes(const IpAddress& address) {
  auto raw = address.Raw();
  return {raw.begin(), raw.end()};
}

TEST(IpAddress, FromBytesV4) {
  const uint8_t raw[] = {198, 18, 0, 1};
  auto address = IpAddress::FromBytes(raw);
  ASSERT_TRUE(address.has_value());
  EXPECT_FALSE(address->v6);
  EXPECT_EQ(Bytes(*address), (std::vector<uint8_t>{198, 18, 0, 1}));
  EXPECT_EQ(address->ToString(), "198.18.0.1");
}

TEST(IpAddress, FromBytesV4MappedBecomesV4) {
  const uint8_t raw[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  auto address = IpAddress::FromBytes(raw);
  ASSERT_TRUE(address.has_value());
  EXPECT_FALSE(address->v6);
  EXPECT_EQ(address->Raw().size(), 4u);
  EXPECT_EQ(address->ToString(), "127.0.0.1");
  EXPECT_EQ(*address, Ip("127.0.0.1"));
}

TEST(IpAddress, FromBytesV6) {
  const uint8_t raw[] = {0xfd, 0, 0x01, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  auto address = IpAddress::FromBytes(raw);
  ASSERT_TRUE(address.has_value());
  EXPECT_TRUE(address->v6);
  EXPECT_EQ(Bytes(*address), std::vector<uint8_t>(std::begin(raw), std::end(raw)));
  EXPECT_EQ(address->ToString(), "fd00:198:18::1");
  // Almost mapped (0xfffe instead of 0xffff) stays IPv6.
  const uint8_t near[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 127, 0, 0, 1};
  EXPECT_TRUE(IpAddress::FromBytes(near)->v6);
}

TEST(IpAddress, FromBytesOtherLengths) {
  const uint8_t raw[17] = {};
  EXPECT_FALSE(IpAddress::FromBytes(std::span<const uint8_t>(raw, 0)).has_value());
  EXPECT_FALSE(IpAddress::FromBytes(std::span<const uint8_t>(raw, 3)).has_value());
  EXPECT_FALSE(IpAddress::FromBytes(std::span<const uint8_t>(raw, 5)).has_value());
  EXPECT_FALSE(IpAddress::FromBytes(std::span<const uint8_t>(raw, 15)).has_value());
  EXPECT_FALSE(IpAddress::FromBytes(std::span<const uint8_t>(raw, 17)).has_value());
}

TEST(IpAddress, ParseToStringRoundTrip) {
  for (const char* text :
       {"198.18.0.1", "0.0.0.0", "255.255.255.255", "127.0.0.1", "fd00:198:18::1", "::", "::1",
        "fe80::1", "2001:db8:0:1:1:1:1:1", "ff02::1:ff00:1"}) {
    auto address = IpAddress::Parse(text);
    ASSERT_TRUE(address.has_value()) << text;
    EXPECT_EQ(address->ToString(), text);
    EXPECT_EQ(IpAddress::Parse(address->ToString()), address) << text;
    EXPECT_EQ(IpAddress::FromBytes(address->Raw()), address) << text;
  }
}

TEST(IpAddress, ParseNormalizes) {
  EXPECT_EQ(Ip("FD00:0198:0018:0000:0000:0000:0000:0001").ToString(), "fd00:198:18::1");
  auto mapped = Ip("::ffff:127.0.0.1");
  EXPECT_FALSE(mapped.v6);
  EXPECT_EQ(mapped.ToString(), "127.0.0.1");
  EXPECT_EQ(Ip("::ffff:c612:1"), Ip("198.18.0.1"));
  EXPECT_EQ(Ip("0:0:0:0:0:ffff:198.18.0.1"), Ip("198.18.0.1"));
  // IPv4-compatible (deprecated, not mapped) stays IPv6.
  EXPECT_TRUE(Ip("::198.18.0.1").v6);
}

TEST(IpAddress, ParseRejects) {
  for (std::string_view text :
       {"", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.4 ", " 1.2.3.4", "fe80::1%eth0", "hello",
        "1.2.3.4/8", "1.2.3.4-1.2.3.5", ":::", "fd00::1::2", "12345::", "localhost"}) {
    EXPECT_FALSE(IpAddress::Parse(text).has_value()) << "'" << text << "'";
  }
  EXPECT_FALSE(IpAddress::Parse(std::string_view("1.2.3.4\0x", 9)).has_value());
  EXPECT_FALSE(IpAddress::Parse(std::string(100, '1')).has_value());
}

TEST(IpAddress, Ordering) {
  EXPECT_LT(Ip("10.0.0.1"), Ip("10.0.0.2"));
  EXPECT_LT(Ip("9.255.255.255"), Ip("10.0.0.0"));
  EXPECT_LT(Ip("fd00::1"), Ip("fd00::1:0"));
  EXPECT_NE(Ip("::1"), Ip("0.0.0.1"));
}

struct ClassifyCase {
  const char* text;
  IpType type;
};

TEST(Classify, EveryRangeBoundary) {
  const ClassifyCase cases[] = {
      {"9.255.255.255", IpType::kOther},
      {"10.0.0.0", IpType::kPrivate},
      {"10.255.255.255", IpType::kPrivate},
      {"11.0.0.0", IpType::kOther},
      {"172.15.255.255", IpType::kOther},
      {"172.16.0.0", IpType::kPrivate},
      {"172.31.255.255", IpType::kPrivate},
      {"172.32.0.0", IpType::kOther},
      {"192.167.255.255", IpType::kOther},
      {"192.168.0.0", IpType::kPrivate},
      {"192.168.255.255", IpType::kPrivate},
      {"192.169.0.0", IpType::kOther},
      {"100.63.255.255", IpType::kOther},
      {"100.64.0.0", IpType::kPrivate},
      {"100.127.255.255", IpType::kPrivate},
      {"100.128.0.0", IpType::kOther},
      {"126.255.255.255", IpType::kOther},
      {"127.0.0.0", IpType::kPrivate},
      {"127.255.255.255", IpType::kPrivate},
      {"128.0.0.0", IpType::kOther},
      {"169.253.255.255", IpType::kOther},
      {"169.254.0.0", IpType::kPrivate},
      {"169.254.255.255", IpType::kPrivate},
      {"169.255.0.0", IpType::kOther},
      {"223.255.255.255", IpType::kOther},
      {"224.0.0.0", IpType::kMulticast},
      {"239.255.255.255", IpType::kMulticast},
      {"240.0.0.0", IpType::kOther},
      {"255.255.255.254", IpType::kOther},
      {"255.255.255.255", IpType::kMulticast},
      {"0.0.0.0", IpType::kOther},
      {"198.18.0.1", IpType::kOther},
      {"8.8.8.8", IpType::kOther},
      // fc00::/7
      {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", IpType::kOther},
      {"fc00::", IpType::kPrivate},
      {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", IpType::kPrivate},
      {"fe00::", IpType::kOther},
      // fe80::/10
      {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", IpType::kOther},
      {"fe80::", IpType::kPrivate},
      {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", IpType::kPrivate},
      {"fec0::", IpType::kOther},
      // ::1 alone
      {"::", IpType::kOther},
      {"::1", IpType::kPrivate},
      {"::2", IpType::kOther},
      // ff00::/8
      {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", IpType::kOther},
      {"ff00::", IpType::kMulticast},
      {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", IpType::kMulticast},
      {"2001:db8::1", IpType::kOther},
      // v4-mapped: classified as the IPv4 address it is.
      {"::ffff:10.0.0.1", IpType::kPrivate},
      {"::ffff:224.0.0.1", IpType::kMulticast},
      {"::ffff:198.18.0.1", IpType::kOther},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Classify(Ip(c.text)), c.type) << c.text;
  }
}

TEST(Classify, MappedBytesBuiltByHand) {
  IpAddress mapped;
  mapped.v6 = true;
  mapped.bytes = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 1};
  EXPECT_EQ(Classify(mapped), IpType::kPrivate);
}

TEST(Classify, Names) {
  EXPECT_EQ(IpTypeName(IpType::kPrivate), "private");
  EXPECT_EQ(IpTypeName(IpType::kMulticast), "multicast");
  EXPECT_EQ(IpTypeName(IpType::kOther), "other");
}

IpRange Range(std::string_view text) {
  std::string error;
  auto range = IpRange::Parse(text, &error);
  EXPECT_TRUE(range.has_value()) << text << ": " << error;
  EXPECT_EQ(error, "") << text;
  return range.value_or(IpRange{});
}

void ExpectBounds(std::string_view text, const char* first, const char* last) {
  IpRange range = Range(text);
  EXPECT_EQ(range.first().ToString(), first) << text;
  EXPECT_EQ(range.last().ToString(), last) << text;
}

TEST(IpRange, CidrBounds) {
  ExpectBounds("10.0.0.0/8", "10.0.0.0", "10.255.255.255");
  ExpectBounds("127.0.0.1/8", "127.0.0.0", "127.255.255.255");  // host bits ignored
  ExpectBounds("198.18.0.0/15", "198.18.0.0", "198.19.255.255");
  ExpectBounds("172.16.0.0/12", "172.16.0.0", "172.31.255.255");
  ExpectBounds("198.18.0.1", "198.18.0.1", "198.18.0.1");
  ExpectBounds("198.18.0.1/32", "198.18.0.1", "198.18.0.1");
  ExpectBounds("0.0.0.0/0", "0.0.0.0", "255.255.255.255");
  ExpectBounds("fd00::/8", "fd00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  ExpectBounds("fc00::/7", "fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  ExpectBounds("fd00:198:18::/48", "fd00:198:18::", "fd00:198:18:ffff:ffff:ffff:ffff:ffff");
  ExpectBounds("2001:db8::/127", "2001:db8::", "2001:db8::1");
  ExpectBounds("::1", "::1", "::1");
  ExpectBounds("::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  ExpectBounds("::ffff:10.0.0.0/8", "10.0.0.0", "10.255.255.255");  // mapped: IPv4 lengths
}

TEST(IpRange, CidrContains) {
  IpRange v4 = Range("198.18.0.0/15");
  EXPECT_FALSE(v4.Contains(Ip("198.17.255.255")));
  EXPECT_TRUE(v4.Contains(Ip("198.18.0.0")));
  EXPECT_TRUE(v4.Contains(Ip("198.19.255.255")));
  EXPECT_FALSE(v4.Contains(Ip("198.20.0.0")));
  EXPECT_TRUE(v4.Contains(Ip("::ffff:198.18.3.4")));
  EXPECT_FALSE(v4.Contains(Ip("::ffff:0:0")));  // mapped 0.0.0.0
  EXPECT_FALSE(v4.Contains(Ip("c612::")));      // same leading bytes, other family

  IpRange v6 = Range("fd00:198:18::/48");
  EXPECT_FALSE(v6.Contains(Ip("fd00:198:17:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_TRUE(v6.Contains(Ip("fd00:198:18::")));
  EXPECT_TRUE(v6.Contains(Ip("fd00:198:18::1")));
  EXPECT_TRUE(v6.Contains(Ip("fd00:198:18:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(v6.Contains(Ip("fd00:198:19::")));
  EXPECT_FALSE(v6.Contains(Ip("253.0.1.152")));

  IpRange all_v4 = Range("0.0.0.0/0");
  EXPECT_TRUE(all_v4.Contains(Ip("255.255.255.255")));
  EXPECT_FALSE(all_v4.Contains(Ip("::")));
  IpRange all_v6 = Range("::/0");
  EXPECT_TRUE(all_v6.Contains(Ip("::1")));
  EXPECT_FALSE(all_v6.Contains(Ip("0.0.0.0")));

  IpRange one = Range("::1");
  EXPECT_TRUE(one.Contains(Ip("::1")));
  EXPECT_FALSE(one.Contains(Ip("::2")));
  EXPECT_FALSE(one.Contains(Ip("::")));
}

TEST(IpRange, DashRanges) {
  IpRange v4 = Range("198.18.0.1-198.18.0.9");
  EXPECT_EQ(v4.first(), Ip("198.18.0.1"));
  EXPECT_EQ(v4.last(), Ip("198.18.0.9"));
  EXPECT_FALSE(v4.Contains(Ip("198.18.0.0")));
  EXPECT_TRUE(v4.Contains(Ip("198.18.0.1")));
  EXPECT_TRUE(v4.Contains(Ip("198.18.0.5")));
  EXPECT_TRUE(v4.Contains(Ip("198.18.0.9")));
  EXPECT_FALSE(v4.Contains(Ip("198.18.0.10")));
  EXPECT_FALSE(v4.Contains(Ip("198.18.1.5")));

  IpRange across = Range("198.18.0.250-198.18.1.3");  // crosses an octet boundary
  EXPECT_TRUE(across.Contains(Ip("198.18.0.255")));
  EXPECT_TRUE(across.Contains(Ip("198.18.1.0")));
  EXPECT_FALSE(across.Contains(Ip("198.18.1.4")));
  EXPECT_FALSE(across.Contains(Ip("198.18.0.249")));

  IpRange v6 = Range("fd00:198:18::10-fd00:198:18::1:0");
  EXPECT_FALSE(v6.Contains(Ip("fd00:198:18::f")));
  EXPECT_TRUE(v6.Contains(Ip("fd00:198:18::10")));
  EXPECT_TRUE(v6.Contains(Ip("fd00:198:18::ffff")));
  EXPECT_TRUE(v6.Contains(Ip("fd00:198:18::1:0")));
  EXPECT_FALSE(v6.Contains(Ip("fd00:198:18::1:1")));
  EXPECT_FALSE(v6.Contains(Ip("0.0.0.16")));

  IpRange single = Range("198.18.0.7-198.18.0.7");
  EXPECT_TRUE(single.Contains(Ip("198.18.0.7")));
  EXPECT_FALSE(single.Contains(Ip("198.18.0.8")));
}

void ExpectError(std::string_view text, const std::string& want) {
  std::string error;
  EXPECT_FALSE(IpRange::Parse(text, &error).has_value()) << text;
  EXPECT_EQ(error, want) << text;
}

TEST(IpRange, Errors) {
  ExpectError("", "empty address range");
  ExpectError("10.0.0.0/33", "prefix length 33 is out of range for IPv4 (0-32)");
  ExpectError("fd00::/129", "prefix length 129 is out of range for IPv6 (0-128)");
  ExpectError("::ffff:10.0.0.0/40", "prefix length 40 is out of range for IPv4 (0-32)");
  ExpectError("10.0.0.0/", "prefix length \"\" is not a number");
  ExpectError("10.0.0.0/x", "prefix length \"x\" is not a number");
  ExpectError("10.0.0.0/-1", "prefix length \"-1\" is not a number");
  ExpectError("10.0.0.0/+8", "prefix length \"+8\" is not a number");
  ExpectError("10.0.0.0/8/8", "prefix length \"8/8\" is not a number");
  ExpectError("10.0.0.0/99999999999", "prefix length 99999999999 is out of range for IPv4 (0-32)");
  ExpectError("10.0.0.300/8", "\"10.0.0.300\" is not an IPv4 or IPv6 address");
  ExpectError("/8", "\"\" is not an IPv4 or IPv6 address");
  ExpectError("example.com", "\"example.com\" is not an IPv4 or IPv6 address");
  ExpectError("1.2.3.4-fd00::1", "the ends of the range are of different families");
  ExpectError("1.2.3.9-1.2.3.1", "the range starts after it ends");
  ExpectError("fd00::2-fd00::1", "the range starts after it ends");
  ExpectError("1.2.3.4-", "\"\" is not an IPv4 or IPv6 address");
  ExpectError("-1.2.3.4", "\"\" is not an IPv4 or IPv6 address");
  ExpectError("1.2.3.4-1.2.3.5-1.2.3.6", "\"1.2.3.5-1.2.3.6\" is not an IPv4 or IPv6 address");
  ExpectError("1.2.3.0/24-1.2.3.9", "prefix length \"24-1.2.3.9\" is not a number");
  // A caller that does not want the reason.
  EXPECT_FALSE(IpRange::Parse("10.0.0.0/33", nullptr).has_value());
}

}  // namespace
}  // namespace nodescope::net
