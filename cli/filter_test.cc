#include "cli/filter.h"

#include <gtest/gtest.h>

namespace nodescope::cli {
namespace {

constexpr int64_t kNow = 1'763'776'000'000'000'000;

TEST(ParseMatchTest, Equals) {
  auto match = ParseMatch("process_name=bash");
  ASSERT_TRUE(match.ok()) << match.status().message();
  EXPECT_EQ(match->key(), "process_name");
  EXPECT_EQ(match->op_case(), v1::Match::kEquals);
  EXPECT_EQ(match->equals(), "bash");
}

TEST(ParseMatchTest, ValueMayHoldOperatorCharacters) {
  auto match = ParseMatch("path=/a?b=c@d^=e");
  ASSERT_TRUE(match.ok());
  EXPECT_EQ(match->key(), "path");
  EXPECT_EQ(match->equals(), "/a?b=c@d^=e");
  auto empty = ParseMatch("user=");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->op_case(), v1::Match::kEquals);
  EXPECT_EQ(empty->equals(), "");
}

TEST(ParseMatchTest, Prefix) {
  auto match = ParseMatch("filename^=/usr/bin/");
  ASSERT_TRUE(match.ok());
  EXPECT_EQ(match->key(), "filename");
  EXPECT_EQ(match->op_case(), v1::Match::kPrefix);
  EXPECT_EQ(match->prefix(), "/usr/bin/");
}

TEST(ParseMatchTest, Cidr) {
  for (const char* text : {"dst_ip@10.0.0.0/8", "dst_ip@fd00::/8", "src_ip@192.168.1.7",
                           "src_ip@0.0.0.0/0", "src_ip@::1/128"}) {
    auto match = ParseMatch(text);
    ASSERT_TRUE(match.ok()) << text << ": " << match.status().message();
    EXPECT_EQ(match->op_case(), v1::Match::kCidr);
    EXPECT_EQ(match->cidr(), std::string(text).substr(std::string(text).find('@') + 1));
  }
}

TEST(ParseMatchTest, Errors) {
  const std::pair<const char*, const char*> cases[] = {
      {"=bash", "filter '=bash': no key (expected key=value, key^=prefix or key@cidr)"},
      {"pid", "filter 'pid': no operator (expected key=value, key^=prefix or key@cidr)"},
      {"pid~1",
       "filter 'pid~1': unexpected '~' after key (expected key=value, key^=prefix or "
       "key@cidr)"},
      {"path^=", "filter 'path^=': empty prefix (expected key=value, key^=prefix or key@cidr)"},
      {"dst_ip@10.0.0.0/33",
       "filter 'dst_ip@10.0.0.0/33': prefix length '33' must be 0-32 "
       "(expected key=value, key^=prefix or key@cidr)"},
      {"dst_ip@fd00::/129",
       "filter 'dst_ip@fd00::/129': prefix length '129' must be 0-128 "
       "(expected key=value, key^=prefix or key@cidr)"},
      {"dst_ip@example.com",
       "filter 'dst_ip@example.com': 'example.com' is not an IPv4 or IPv6 "
       "address (expected key=value, key^=prefix or key@cidr)"},
      {"dst_ip@10.0.0.0/",
       "filter 'dst_ip@10.0.0.0/': prefix length '' must be 0-32 "
       "(expected key=value, key^=prefix or key@cidr)"},
      {"1x=y",
       "filter '1x=y': a key starts with a letter or '_' (expected key=value, key^=prefix or "
       "key@cidr)"},
  };
  for (const auto& [text, message] : cases) {
    auto match = ParseMatch(text);
    ASSERT_FALSE(match.ok()) << text;
    EXPECT_EQ(match.status().message(), message);
  }
}

TEST(BuildRequestTest, FlagsBecomeTheRequest) {
  ObserveOptions options;
  options.sources = {"process", "netflow"};
  options.follow = true;
  options.since = "5m";
  options.until = "500ms";
  options.filters = {"process_name=bash", "dst_ip@10.0.0.0/8"};
  options.denies = {"user=root", "filename^=/usr/sbin/"};
  auto request = BuildRequest(options, kNow);
  ASSERT_TRUE(request.ok()) << request.status().message();
  EXPECT_EQ(request->sources_size(), 2);
  EXPECT_EQ(request->sources(1), "netflow");
  EXPECT_TRUE(request->follow());
  EXPECT_EQ(request->since_unix_nano(), kNow - 300'000'000'000);
  EXPECT_EQ(request->until_unix_nano(), kNow - 500'000'000);
  EXPECT_EQ(request->last(), 0u) << "since given: no default last";
  ASSERT_EQ(request->allow_size(), 1) << "--filter flags are ANDed into one filter";
  ASSERT_EQ(request->allow(0).matches_size(), 2);
  EXPECT_EQ(request->allow(0).matches(0).equals(), "bash");
  EXPECT_EQ(request->allow(0).matches(1).cidr(), "10.0.0.0/8");
  ASSERT_EQ(request->deny_size(), 2) << "each --deny is its own filter";
  EXPECT_EQ(request->deny(0).matches(0).key(), "user");
  EXPECT_EQ(request->deny(1).matches(0).prefix(), "/usr/sbin/");
}

TEST(BuildRequestTest, DefaultLastOnlyWithoutOtherSelection) {
  ObserveOptions options;
  auto bare = BuildRequest(options, kNow);
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->last(), kDefaultLast);
  EXPECT_FALSE(bare->follow());
  EXPECT_EQ(bare->allow_size(), 0);
  EXPECT_EQ(bare->since_unix_nano(), 0);

  options.follow = true;
  auto follow = BuildRequest(options, kNow);
  ASSERT_TRUE(follow.ok());
  EXPECT_EQ(follow->last(), 0u);

  options.last = 1000;
  auto last = BuildRequest(options, kNow);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->last(), 1000u);
}

TEST(BuildRequestTest, Errors) {
  ObserveOptions options;
  options.since = "5";
  auto bad_since = BuildRequest(options, kNow);
  ASSERT_FALSE(bad_since.ok());
  EXPECT_EQ(bad_since.status().message().rfind("--since: expected a duration", 0), 0u)
      << bad_since.status().message();

  options.since = "1m";
  options.until = "5m";
  auto reversed = BuildRequest(options, kNow);
  ASSERT_FALSE(reversed.ok());
  EXPECT_EQ(reversed.status().message(), "--until 5m lies before --since 1m");

  options = ObserveOptions();
  options.filters = {"ok=1", "bad"};
  EXPECT_FALSE(BuildRequest(options, kNow).ok());
  options.filters.clear();
  options.denies = {"x@y"};
  EXPECT_FALSE(BuildRequest(options, kNow).ok());
}

}  // namespace
}  // namespace nodescope::cli
