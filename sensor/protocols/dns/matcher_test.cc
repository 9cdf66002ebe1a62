// Matcher on captured exchanges, from the client's side and from the server's.
#include "sensor/protocols/dns/matcher.h"

#include <gtest/gtest.h>

#include "sensor/protocols/dns/test_util.h"

namespace nodescope::sensor::dns {
namespace {

using testing::ParseTestdata;

constexpr uint64_t kT0 = 1'763'776'000'000'000'000;  // a Unix time in ns
constexpr uint64_t kSecond = 1'000'000'000;

Tuple MakeTuple(uint8_t remote_last, uint16_t local_port, uint16_t remote_port = 53) {
  Tuple t;
  t.local_ip = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 5};
  t.remote_ip = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, remote_last};
  t.local_port = local_port;
  t.remote_port = remote_port;
  return t;
}

Message WithId(Message m, uint16_t id) {
  m.id = id;
  return m;
}

TEST(DnsMatcher, ClientSideOutgoing) {
  Matcher matcher;
  const Tuple t = MakeTuple(1, 40000);
  matcher.OnMessage(t, /*sent_by_local=*/true, ParseTestdata("udp_a.query.bin"), kT0);
  EXPECT_EQ(matcher.outstanding(), 1u);
  matcher.OnMessage(t, /*sent_by_local=*/false, ParseTestdata("udp_a.response.bin"), kT0 + 1234);
  EXPECT_EQ(matcher.outstanding(), 0u);
  const std::vector<QueryResult> results = matcher.TakeResults();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0], (QueryResult{.tuple = t,
                                     .direction = Direction::kOutgoing,
                                     .id = 2761,
                                     .name = "example.test",
                                     .qtype = kTypeA,
                                     .rcode = 0,
                                     .query_ts_ns = kT0,
                                     .latency_ns = 1234}));
  EXPECT_TRUE(matcher.TakeResults().empty());
  EXPECT_EQ(matcher.stats().queries, 1u);
  EXPECT_EQ(matcher.stats().matched, 1u);
}

TEST(DnsMatcher, ServerSideIncomingWithRcode) {
  // A DNS server on the node receives the query and sends the answer: incoming.
  Matcher matcher;
  const Tuple t = MakeTuple(77, 53, 51000);
  matcher.OnMessage(t, false, ParseTestdata("udp_nxdomain.query.bin"), kT0);
  matcher.OnMessage(t, true, ParseTestdata("udp_nxdomain.response.bin"), kT0 + 50'000);
  const auto results = matcher.TakeResults();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].direction, Direction::kIncoming);
  EXPECT_EQ(DirectionName(results[0].direction), "incoming");
  EXPECT_EQ(results[0].rcode, kRcodeNxDomain);
  EXPECT_EQ(results[0].name, "nope.nx.test");
  EXPECT_EQ(results[0].latency_ns, 50'000u);
}

TEST(DnsMatcher, DirectionIsPartOfTheKey) {
  // The same query seen as a client would not be answered by an answer sent as a server.
  Matcher matcher;
  const Tuple t = MakeTuple(1, 40000);
  matcher.OnQuery(t, Direction::kOutgoing, ParseTestdata("udp_a.query.bin"), kT0);
  matcher.OnAnswer(t, Direction::kIncoming, ParseTestdata("udp_a.response.bin"), kT0 + 1);
  EXPECT_EQ(matcher.stats().unmatched_answers, 1u);
  EXPECT_EQ(matcher.outstanding(), 1u);
}

TEST(DnsMatcher, TimeoutGivesRcodeMinusOneAndTheLateAnswerIsUnmatched) {
  Matcher matcher(MatcherOptions{.timeout_ns = 2 * kSecond});
  const Tuple t = MakeTuple(1, 40000);
  matcher.OnMessage(t, true, ParseTestdata("udp_aaaa.query.bin"), kT0);
  matcher.Expire(kT0 + 2 * kSecond - 1);
  EXPECT_TRUE(matcher.TakeResults().empty());
  matcher.Expire(kT0 + 2 * kSecond);
  const auto results = matcher.TakeResults();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].rcode, -1);
  EXPECT_EQ(results[0].latency_ns, 0u);
  EXPECT_EQ(results[0].qtype, kTypeAaaa);
  EXPECT_FALSE(results[0].evicted);
  EXPECT_EQ(matcher.stats().timed_out, 1u);
  matcher.OnMessage(t, false, ParseTestdata("udp_aaaa.response.bin"), kT0 + 3 * kSecond);
  EXPECT_TRUE(matcher.TakeResults().empty());
  EXPECT_EQ(matcher.stats().unmatched_answers, 1u);
}

TEST(DnsMatcher, DefaultTimeoutIsFiveSeconds) {
  Matcher matcher;
  matcher.OnMessage(MakeTuple(1, 40000), true, ParseTestdata("udp_a.query.bin"), kT0);
  matcher.Expire(kT0 + 5 * kSecond - 1);
  EXPECT_EQ(matcher.outstanding(), 1u);
  matcher.Expire(kT0 + 5 * kSecond);
  EXPECT_EQ(matcher.outstanding(), 0u);
}

TEST(DnsMatcher, SameIdOnDifferentTuples) {
  // Two sockets (or two servers) happen to pick the same id; answers come back crossed.
  Matcher matcher;
  const Message query = ParseTestdata("udp_a.query.bin");
  const Message answer = ParseTestdata("udp_a.response.bin");
  const Tuple a = MakeTuple(1, 40000), b = MakeTuple(1, 40001), c = MakeTuple(2, 40000);
  matcher.OnMessage(a, true, query, kT0);
  matcher.OnMessage(b, true, query, kT0 + 10);
  matcher.OnMessage(c, true, query, kT0 + 20);
  Tuple udp_over_tcp = a;
  udp_over_tcp.transport = Transport::kTcp;
  matcher.OnMessage(udp_over_tcp, false, answer, kT0 + 25);  // no such query over TCP
  matcher.OnMessage(c, false, answer, kT0 + 1000);
  matcher.OnMessage(a, false, answer, kT0 + 2000);
  matcher.OnMessage(b, false, answer, kT0 + 3000);
  const auto results = matcher.TakeResults();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].tuple, c);
  EXPECT_EQ(results[0].latency_ns, 980u);
  EXPECT_EQ(results[1].tuple, a);
  EXPECT_EQ(results[1].latency_ns, 2000u);
  EXPECT_EQ(results[2].tuple, b);
  EXPECT_EQ(results[2].latency_ns, 2990u);
  EXPECT_EQ(matcher.stats().unmatched_answers, 1u);
}

TEST(DnsMatcher, SameIdSameTupleDifferentQuestion) {
  // Answer for A arrives; the AAAA with the same id on the same socket stays outstanding, and an
  // answer for another name does not match either.
  Matcher matcher;
  const Tuple t = MakeTuple(1, 40000);
  Message a = WithId(ParseTestdata("udp_a.query.bin"), 7);
  Message aaaa = a;
  aaaa.questions[0].type = kTypeAaaa;
  matcher.OnQuery(t, Direction::kOutgoing, a, kT0);
  matcher.OnQuery(t, Direction::kOutgoing, aaaa, kT0 + 1);
  Message other = WithId(ParseTestdata("udp_www_cname.response.bin"), 7);
  matcher.OnAnswer(t, Direction::kOutgoing, other, kT0 + 2);
  EXPECT_EQ(matcher.stats().unmatched_answers, 1u);
  matcher.OnAnswer(t, Direction::kOutgoing, WithId(ParseTestdata("udp_a.response.bin"), 7),
                   kT0 + 100);
  const auto results = matcher.TakeResults();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].qtype, kTypeA);
  EXPECT_EQ(matcher.outstanding(), 1u);
}

TEST(DnsMatcher, QuestionCaseIsFolded) {
  // A resolver using 0x20 randomisation sends mixed case; a server that lower-cases its echo
  // still answers the same question (RFC 4343).
  Matcher matcher;
  const Tuple t = MakeTuple(1, 40000);
  Message query = ParseTestdata("udp_a.query.bin");
  query.questions[0].name = "ExAmPlE.tEsT";
  matcher.OnMessage(t, true, query, kT0);
  matcher.OnMessage(t, false, ParseTestdata("udp_a.response.bin"), kT0 + 5);
  const auto results = matcher.TakeResults();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].name, "example.test");
}

TEST(DnsMatcher, RetransmissionKeepsTheFirstTimestamp) {
  Matcher matcher;
  const Tuple t = MakeTuple(1, 40000);
  const Message query = ParseTestdata("udp_a.query.bin");
  matcher.OnMessage(t, true, query, kT0);
  matcher.OnMessage(t, true, query, kT0 + kSecond);
  matcher.OnMessage(t, false, ParseTestdata("udp_a.response.bin"), kT0 + kSecond + 500);
  const auto results = matcher.TakeResults();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].latency_ns, kSecond + 500);
  EXPECT_EQ(matcher.stats().duplicate_queries, 1u);
}

TEST(DnsMatcher, AnswerWithoutQuestionMatchesALoneQuery) {
  Matcher matcher;
  const Tuple t = MakeTuple(1, 40000);
  matcher.OnMessage(t, true, ParseTestdata("udp_a.query.bin"), kT0);
  Message formerr = ParseTestdata("udp_a.response.bin");
  formerr.questions.clear();
  formerr.answers.clear();
  formerr.rcode = 1;
  matcher.OnMessage(t, false, formerr, kT0 + 10);
  const auto results = matcher.TakeResults();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].rcode, 1);
  EXPECT_EQ(results[0].name, "example.test");
}

TEST(DnsMatcher, OutstandingCapExpiresTheOldestEarly) {
  Matcher matcher(MatcherOptions{.max_outstanding = 3});
  const Message query = ParseTestdata("udp_a.query.bin");
  for (uint16_t i = 0; i < 5; ++i) {
    matcher.OnMessage(MakeTuple(1, static_cast<uint16_t>(40000 + i)), true, query, kT0 + i);
  }
  EXPECT_EQ(matcher.outstanding(), 3u);
  EXPECT_EQ(matcher.stats().evicted, 2u);
  auto results = matcher.TakeResults();
  ASSERT_EQ(results.size(), 2u);
  for (uint16_t i = 0; i < 2; ++i) {
    EXPECT_EQ(results[i].tuple.local_port, 40000 + i);
    EXPECT_EQ(results[i].rcode, -1);
    EXPECT_TRUE(results[i].evicted);
  }
  // The three kept still match.
  matcher.OnMessage(MakeTuple(1, 40004), false, ParseTestdata("udp_a.response.bin"), kT0 + 100);
  results = matcher.TakeResults();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].latency_ns, 96u);
  EXPECT_EQ(matcher.outstanding(), 2u);
}

TEST(DnsMatcher, TruncatedAnswerIsFlagged) {
  Matcher matcher;
  const Tuple t = MakeTuple(1, 40000);
  matcher.OnMessage(t, true, ParseTestdata("udp_a.query.bin"), kT0);
  Message tc = ParseTestdata("udp_a.response.bin");
  tc.truncated = true;
  tc.answers.clear();
  matcher.OnMessage(t, false, tc, kT0 + 10);
  const auto results = matcher.TakeResults();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].truncated);
  EXPECT_EQ(results[0].rcode, 0);
}

}  // namespace
}  // namespace nodescope::sensor::dns
