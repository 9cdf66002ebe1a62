#include "aggregator/api/filter.h"

#include <gtest/gtest.h>

#include "common/records/record.h"

namespace nodescope::aggregator::api {
namespace {

v1::Record Flow(const std::string& src_ip, const std::string& dst_port,
                const std::string& process = "curl", int64_t time = 100) {
  v1::Record r;
  r.set_source("netflow");
  r.set_host("node-1");
  r.set_time_unix_nano(time);
  records::AddTag(&r, "host", "node-1");
  records::AddTag(&r, "src_ip", src_ip);
  records::AddTag(&r, "dst_port", dst_port);
  records::AddTag(&r, "process_name", process);
  return r;
}

v1::Match Equals(const std::string& key, const std::string& value) {
  v1::Match m;
  m.set_key(key);
  m.set_equals(value);
  return m;
}
v1::Match InCidr(const std::string& key, const std::string& cidr) {
  v1::Match m;
  m.set_key(key);
  m.set_cidr(cidr);
  return m;
}
v1::Match Prefix(const std::string& key, const std::string& prefix) {
  v1::Match m;
  m.set_key(key);
  m.set_prefix(prefix);
  return m;
}

void AddFilter(google::protobuf::RepeatedPtrField<v1::Filter>* list,
               std::initializer_list<v1::Match> matches) {
  v1::Filter* f = list->Add();
  for (const v1::Match& m : matches) *f->add_matches() = m;
}

Query MustCompile(const v1::SubscribeRequest& request) {
  auto q = Query::Compile(request);
  EXPECT_TRUE(q.ok()) << q.status().message();
  return q.ok() ? *q : Query();
}

TEST(Cidr, Ipv4) {
  auto c = Cidr::Parse("10.1.0.0/16");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->Contains("10.1.0.0"));
  EXPECT_TRUE(c->Contains("10.1.255.255"));
  EXPECT_FALSE(c->Contains("10.2.0.1"));
  EXPECT_FALSE(c->Contains("11.1.0.1"));
  EXPECT_TRUE(c->Contains("::ffff:10.1.2.3"));  // v4-mapped IPv6 is the same address
  EXPECT_FALSE(c->Contains("fd00::1"));
  EXPECT_FALSE(c->Contains("not-an-ip"));
  EXPECT_FALSE(c->Contains(""));
}

TEST(Cidr, OddPrefixLengthsAndHostBits) {
  auto c = Cidr::Parse("192.168.1.77/27");  // host bits are cleared: 192.168.1.64/27
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->Contains("192.168.1.64"));
  EXPECT_TRUE(c->Contains("192.168.1.95"));
  EXPECT_FALSE(c->Contains("192.168.1.63"));
  EXPECT_FALSE(c->Contains("192.168.1.96"));
  auto all = Cidr::Parse("0.0.0.0/0");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->Contains("255.255.255.255"));
  EXPECT_FALSE(all->Contains("2001:db8::1"));
  auto host = Cidr::Parse("198.18.0.1");
  ASSERT_TRUE(host.ok());
  EXPECT_TRUE(host->Contains("198.18.0.1"));
  EXPECT_FALSE(host->Contains("198.18.0.2"));
}

TEST(Cidr, Ipv6) {
  auto c = Cidr::Parse("2001:db8:abcd::/48");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->Contains("2001:db8:abcd::1"));
  EXPECT_TRUE(c->Contains("2001:db8:abcd:ffff:ffff:ffff:ffff:ffff"));
  EXPECT_FALSE(c->Contains("2001:db8:abce::1"));
  EXPECT_FALSE(c->Contains("10.0.0.1"));
  auto odd = Cidr::Parse("fd00::/7");
  ASSERT_TRUE(odd.ok());
  EXPECT_TRUE(odd->Contains("fc00::1"));
  EXPECT_TRUE(odd->Contains("fdff::1"));
  EXPECT_FALSE(odd->Contains("fe00::1"));
  auto loop = Cidr::Parse("::1/128");
  ASSERT_TRUE(loop.ok());
  EXPECT_TRUE(loop->Contains("::1"));
  EXPECT_FALSE(loop->Contains("::2"));
}

TEST(Cidr, Invalid) {
  for (const char* bad : {"10.0.0/8", "10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/x",
                          "example.com/8", "", "/8", "10.0.0.0/-1"}) {
    EXPECT_FALSE(Cidr::Parse(bad).ok()) << bad;
  }
  // Found by fuzz_observer_filter: text after a NUL was ignored, in a CIDR and in a tag value.
  using namespace std::string_view_literals;
  EXPECT_FALSE(Cidr::Parse("10.0.0.0\0junk/8"sv).ok());
  EXPECT_FALSE(Cidr::Parse("10.0.0.0/8"sv)->Contains("10.1.2.3\0junk"sv));
}

TEST(Query, EmptyRequestMatchesAll) {
  Query q = MustCompile(v1::SubscribeRequest());
  EXPECT_TRUE(q.MatchesAll());
  EXPECT_TRUE(q.Matches(Flow("10.0.0.1", "80")));
  EXPECT_TRUE(q.WantsSource("anything"));
}

TEST(Query, Sources) {
  v1::SubscribeRequest req;
  req.add_sources("process");
  req.add_sources("dnsflow");
  Query q = MustCompile(req);
  EXPECT_FALSE(q.MatchesAll());
  EXPECT_FALSE(q.Matches(Flow("10.0.0.1", "80")));
  EXPECT_TRUE(q.WantsSource("dnsflow"));
  EXPECT_FALSE(q.WantsSource("netflow"));
}

TEST(Query, EqualsOnTagSourceAndHost) {
  v1::SubscribeRequest req;
  AddFilter(req.mutable_allow(),
            {Equals("source", "netflow"), Equals("host", "node-1"), Equals("dst_port", "443")});
  Query q = MustCompile(req);
  EXPECT_TRUE(q.Matches(Flow("10.0.0.1", "443")));
  EXPECT_FALSE(q.Matches(Flow("10.0.0.1", "4430")));
  v1::Record other_host = Flow("10.0.0.1", "443");
  other_host.set_host("node-2");
  EXPECT_FALSE(q.Matches(other_host));
}

TEST(Query, MissingTagNeverMatches) {
  v1::SubscribeRequest req;
  AddFilter(req.mutable_allow(), {Prefix("dst_domain", "")});
  Query q = MustCompile(req);
  EXPECT_FALSE(q.Matches(Flow("10.0.0.1", "443")));
}

TEST(Query, AllowIsOrOfAndFilters) {
  v1::SubscribeRequest req;
  // (src_ip in 10/8 AND dst_port == 80) OR process_name starts with "ngi"
  AddFilter(req.mutable_allow(), {InCidr("src_ip", "10.0.0.0/8"), Equals("dst_port", "80")});
  AddFilter(req.mutable_allow(), {Prefix("process_name", "ngi")});
  Query q = MustCompile(req);
  EXPECT_TRUE(q.Matches(Flow("10.9.8.7", "80")));
  EXPECT_FALSE(q.Matches(Flow("10.9.8.7", "443")));
  EXPECT_FALSE(q.Matches(Flow("192.168.0.1", "80")));
  EXPECT_TRUE(q.Matches(Flow("192.168.0.1", "443", "nginx")));
  EXPECT_FALSE(q.Matches(Flow("192.168.0.1", "443", "ng")));
}

TEST(Query, DenyRemovesWhatAllowPassed) {
  v1::SubscribeRequest req;
  AddFilter(req.mutable_allow(), {InCidr("src_ip", "fd00::/8")});
  AddFilter(req.mutable_allow(), {InCidr("src_ip", "10.0.0.0/8")});
  AddFilter(req.mutable_deny(), {InCidr("src_ip", "fd00:1::/32")});
  AddFilter(req.mutable_deny(), {Equals("dst_port", "22")});
  Query q = MustCompile(req);
  EXPECT_TRUE(q.Matches(Flow("fd00:2::5", "80")));
  EXPECT_FALSE(q.Matches(Flow("fd00:1::5", "80")));  // denied by the first deny filter
  EXPECT_FALSE(q.Matches(Flow("10.0.0.1", "22")));   // denied by the second
  EXPECT_TRUE(q.Matches(Flow("10.0.0.1", "23")));
  EXPECT_FALSE(q.Matches(Flow("2001:db8::1", "80")));  // not allowed
}

TEST(Query, DenyAloneAllowsTheRest) {
  v1::SubscribeRequest req;
  AddFilter(req.mutable_deny(), {Prefix("process_name", "sshd")});
  Query q = MustCompile(req);
  EXPECT_TRUE(q.Matches(Flow("10.0.0.1", "80", "curl")));
  EXPECT_FALSE(q.Matches(Flow("10.0.0.1", "80", "sshd-session")));
}

TEST(Query, TimeWindow) {
  v1::SubscribeRequest req;
  req.set_since_unix_nano(100);
  req.set_until_unix_nano(200);
  Query q = MustCompile(req);
  EXPECT_FALSE(q.Matches(Flow("10.0.0.1", "80", "curl", 99)));
  EXPECT_TRUE(q.Matches(Flow("10.0.0.1", "80", "curl", 100)));
  EXPECT_TRUE(q.Matches(Flow("10.0.0.1", "80", "curl", 200)));
  EXPECT_FALSE(q.Matches(Flow("10.0.0.1", "80", "curl", 201)));
}

TEST(Query, BatchAndRecordFormsAgree) {
  std::vector<v1::Record> records = {Flow("10.0.0.1", "80", "curl", 50),
                                     Flow("10.0.0.1", "443", "nginx", 150),
                                     Flow("fd00::1", "22", "sshd", 250)};
  records[2].set_source("other");
  auto batch = MakeBatch(records);
  std::vector<v1::SubscribeRequest> requests(5);
  requests[1].add_sources("netflow");
  requests[2].set_since_unix_nano(100);
  requests[2].set_until_unix_nano(200);
  AddFilter(requests[3].mutable_allow(), {InCidr("src_ip", "10.0.0.0/8")});
  AddFilter(requests[4].mutable_deny(), {Prefix("process_name", "ng")});
  std::vector<std::vector<bool>> expected = {{true, true, true},
                                             {true, true, false},
                                             {false, true, false},
                                             {true, true, false},
                                             {true, false, true}};
  for (size_t q = 0; q < requests.size(); ++q) {
    Query query = MustCompile(requests[q]);
    for (size_t i = 0; i < records.size(); ++i) {
      EXPECT_EQ(query.Matches(*batch, i), expected[q][i]) << "request " << q << " record " << i;
      EXPECT_EQ(query.Matches(records[i]), expected[q][i]) << "request " << q << " record " << i;
    }
  }
}

TEST(Query, BadRequestsNameTheBadPart) {
  auto error = [](const v1::SubscribeRequest& req) {
    auto q = Query::Compile(req);
    EXPECT_FALSE(q.ok());
    return q.status().message();
  };
  v1::SubscribeRequest bad_cidr;
  AddFilter(bad_cidr.mutable_allow(), {Equals("pid", "1")});
  AddFilter(bad_cidr.mutable_allow(), {Equals("pid", "1"), InCidr("src_ip", "10.0.0/8")});
  EXPECT_EQ(error(bad_cidr),
            "allow[1].matches[1]: invalid CIDR '10.0.0/8' for key 'src_ip': not an IP address");

  v1::SubscribeRequest bad_key;
  AddFilter(bad_key.mutable_deny(), {Equals("src ip", "1")});
  EXPECT_EQ(error(bad_key),
            "deny[0].matches[0]: invalid key 'src ip' (a tag name, \"source\" or \"host\")");

  v1::SubscribeRequest no_op;
  v1::Match m;
  m.set_key("pid");
  AddFilter(no_op.mutable_allow(), {m});
  EXPECT_EQ(error(no_op),
            "allow[0].matches[0]: key 'pid' has no condition (equals, cidr or prefix)");

  v1::SubscribeRequest empty_filter;
  empty_filter.add_allow();
  EXPECT_EQ(error(empty_filter), "allow[0]: filter without matches");

  v1::SubscribeRequest bad_window;
  bad_window.set_since_unix_nano(200);
  bad_window.set_until_unix_nano(100);
  EXPECT_EQ(error(bad_window), "until: before since");

  v1::SubscribeRequest bad_source;
  bad_source.add_sources("");
  EXPECT_EQ(error(bad_source), "sources: invalid source name ''");
}

}  // namespace
}  // namespace nodescope::aggregator::api
