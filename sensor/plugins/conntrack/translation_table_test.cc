#include "sensor/plugins/conntrack/translation_table.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

namespace nodescope::sensor::conntrack {
namespace {

net::IpAddress Ip(const char* text) { return *net::IpAddress::Parse(text); }

constexpr uint32_t kNetns = 4026532000;
constexpr uint64_t kSecond = 1'000'000'000;

// curl in a client namespace connects to the service address, DNAT'ed to a backend.
Tuple Orig(uint16_t sport = 40000) { return {Ip("198.18.1.1"), Ip("198.18.100.1"), sport, 80}; }
Tuple Reply(const char* backend, uint16_t sport = 40000) {
  return {Ip(backend), Ip("198.18.1.1"), 8080, sport};
}

netflow::NatQuery Query(uint64_t start, uint64_t end = 0, bool handshake = true,
                        uint16_t sport = 40000, uint32_t netns = kNetns) {
  return {.netns = netns,
          .protocol = IPPROTO_TCP,
          .src = Ip("198.18.1.1"),
          .dst = Ip("198.18.100.1"),
          .src_port = sport,
          .dst_port = 80,
          .start_ns = start,
          .end_ns = end,
          .handshake_seen = handshake};
}

std::string Target(const std::optional<netflow::NatTarget>& t) {
  return t ? t->ip.ToString() + ":" + std::to_string(t->port) : "none";
}

TranslationTable Table() { return TranslationTable({.retention_ns = 60 * kSecond}); }

TEST(TranslationTable, ConnectionGetsTheTranslationItsFirstPacketCreated) {
  TranslationTable t = Table();
  ASSERT_TRUE(t.Add(kNetns, IPPROTO_TCP, Orig(), Reply("198.18.1.2"), 7, 100 * kSecond, false));
  EXPECT_EQ(Target(t.Lookup(Query(100 * kSecond - 1000))), "198.18.1.2:8080");
  // Other ports, protocols and namespaces are other tuples.
  EXPECT_EQ(Target(t.Lookup(Query(100 * kSecond - 1000, 0, true, 40001))), "none");
  EXPECT_EQ(Target(t.Lookup(Query(100 * kSecond - 1000, 0, true, 40000, kNetns + 1))), "none");
  netflow::NatQuery udp = Query(100 * kSecond - 1000);
  udp.protocol = IPPROTO_UDP;
  EXPECT_EQ(Target(t.Lookup(udp)), "none");
  EXPECT_EQ(t.size(), 1u);
}

TEST(TranslationTable, NewEventReadAfterTheConnectionWasFirstSeenIsFoundLater) {
  TranslationTable t = Table();
  const uint64_t start = 50 * kSecond;
  EXPECT_EQ(Target(t.Lookup(Query(start))), "none");  // first sight: the event is on its way
  ASSERT_TRUE(t.Add(kNetns, IPPROTO_TCP, Orig(), Reply("198.18.1.2"), 9, start + 3000, false));
  EXPECT_EQ(Target(t.Lookup(Query(start))), "198.18.1.2:8080");  // at the flush
  // A connection that already closed when its NEW event was read.
  EXPECT_EQ(Target(t.Lookup(Query(start, start + 1000))), "198.18.1.2:8080");
}

TEST(TranslationTable, TupleReusedForAnotherServiceDoesNotInheritTheOldTranslation) {
  TranslationTable t = Table();
  // First connection: DNAT to backend .2, closed, entry destroyed.
  ASSERT_TRUE(t.Add(kNetns, IPPROTO_TCP, Orig(), Reply("198.18.1.2"), 1, 10 * kSecond, false));
  ASSERT_TRUE(t.Destroy(kNetns, IPPROTO_TCP, Orig(), 1, 12 * kSecond));
  // The same tuple later: the rule is gone (no translation) ...
  EXPECT_EQ(Target(t.Lookup(Query(20 * kSecond))), "none");
  // ... or now points elsewhere.
  ASSERT_TRUE(t.Add(kNetns, IPPROTO_TCP, Orig(), Reply("198.18.1.3"), 2, 30 * kSecond + 10, false));
  EXPECT_EQ(Target(t.Lookup(Query(30 * kSecond))), "198.18.1.3:8080");
  // The first connection, looked up again (a flush after both), keeps its own.
  EXPECT_EQ(Target(t.Lookup(Query(10 * kSecond - 10, 11 * kSecond))), "198.18.1.2:8080");
  // A connection between the two without NAT stays without.
  EXPECT_EQ(Target(t.Lookup(Query(20 * kSecond, 21 * kSecond))), "none");
}

TEST(TranslationTable, OldEntryLingeringInTimeWaitIsNotInherited) {
  TranslationTable t = Table();
  ASSERT_TRUE(t.Add(kNetns, IPPROTO_TCP, Orig(), Reply("198.18.1.2"), 1, 10 * kSecond, false));
  // A new socket on the same tuple while the old entry is alive (TIME_WAIT): its own NEW event
  // has not been read yet.
  EXPECT_EQ(Target(t.Lookup(Query(15 * kSecond))), "none");
  // The kernel replaces the entry: DESTROY of the old, NEW of the new one.
  ASSERT_TRUE(t.Destroy(kNetns, IPPROTO_TCP, Orig(), 1, 15 * kSecond + 10));
  ASSERT_TRUE(t.Add(kNetns, IPPROTO_TCP, Orig(), Reply("198.18.1.3"), 2, 15 * kSecond + 20, false));
  EXPECT_EQ(Target(t.Lookup(Query(15 * kSecond))), "198.18.1.3:8080");
}

TEST(TranslationTable, DestroyNeedsTheSameIdAndTheTranslationExpiresAfterRetention) {
  TranslationTable t = Table();
  ASSERT_TRUE(t.Add(kNetns, IPPROTO_TCP, Orig(), Reply("198.18.1.2"), 5, 10 * kSecond, false));
  EXPECT_FALSE(t.Add(kNetns, IPPROTO_TCP, Orig(), Reply("198.18.1.2"), 5, 11 * kSecond, false));
  EXPECT_FALSE(t.Destroy(kNetns, IPPROTO_TCP, Orig(), 6, 20 * kSecond));  // another entry
  EXPECT_FALSE(t.Destroy(kNetns, IPPROTO_UDP, Orig(), 5, 20 * kSecond));  // another tuple
  EXPECT_TRUE(t.Destroy(kNetns, IPPROTO_TCP, Orig(), 5, 20 * kSecond));
  EXPECT_FALSE(t.Destroy(kNetns, IPPROTO_TCP, Orig(), 5, 21 * kSecond));  // only once
  // Still known for the connection it served, which a flush may look up after the DESTROY.
  EXPECT_EQ(Target(t.Lookup(Query(10 * kSecond - 5, 19 * kSecond))), "198.18.1.2:8080");
  t.Expire(20 * kSecond + 60 * kSecond);
  EXPECT_EQ(t.size(), 1u);
  t.Expire(20 * kSecond + 60 * kSecond + 1);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(Target(t.Lookup(Query(10 * kSecond - 5, 19 * kSecond))), "none");
  EXPECT_EQ(t.counters().added, 1u);
  EXPECT_EQ(t.counters().destroyed, 1u);
}

TEST(TranslationTable, DumpedEntriesServeConnectionsOlderThanTheDump) {
  TranslationTable t = Table();
  const uint64_t dump = 100 * kSecond;
  ASSERT_TRUE(t.Add(kNetns, IPPROTO_TCP, Orig(), Reply("198.18.1.2"), 3, dump, true));
  EXPECT_EQ(Target(t.Lookup(Query(90 * kSecond))), "198.18.1.2:8080");  // started before
  // First seen by the probe after the dump, mid-life: it is the connection the entry is for.
  EXPECT_EQ(Target(t.Lookup(Query(110 * kSecond, 0, false))), "198.18.1.2:8080");
  // A connection whose handshake the probe saw after the dump made its own entry.
  EXPECT_EQ(Target(t.Lookup(Query(110 * kSecond, 0, true))), "none");
}

TEST(TranslationTable, ResyncDumpEndsEntriesItNoLongerLists) {
  TranslationTable t = Table();
  ASSERT_TRUE(
      t.Add(kNetns, IPPROTO_TCP, Orig(40000), Reply("198.18.1.2", 40000), 1, 10 * kSecond, false));
  ASSERT_TRUE(
      t.Add(kNetns, IPPROTO_TCP, Orig(40001), Reply("198.18.1.2", 40001), 2, 10 * kSecond, false));
  // Events were lost; the dump from t=20s lists only the second entry.
  const uint64_t dump = 20 * kSecond;
  EXPECT_FALSE(
      t.Add(kNetns, IPPROTO_TCP, Orig(40001), Reply("198.18.1.2", 40001), 2, dump + 5, true));
  EXPECT_EQ(t.EndDump(kNetns, dump, dump + 10), 1u);
  EXPECT_EQ(t.EndDump(kNetns, dump, dump + 10), 0u);
  t.Expire(dump + 10 + 61 * kSecond);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(Target(t.Lookup(Query(10 * kSecond - 5, 0, true, 40001))), "198.18.1.2:8080");
}

TEST(TranslationTable, FullTableDropsAndCounts) {
  TranslationTable t({.max_entries = 2});
  EXPECT_TRUE(t.Add(kNetns, IPPROTO_TCP, Orig(1), Reply("198.18.1.2", 1), 1, 1, false));
  EXPECT_TRUE(t.Add(kNetns, IPPROTO_TCP, Orig(2), Reply("198.18.1.2", 2), 2, 2, false));
  EXPECT_FALSE(t.Add(kNetns, IPPROTO_TCP, Orig(3), Reply("198.18.1.2", 3), 3, 3, false));
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.counters().full, 1u);
  t.DropNetns(kNetns);
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace nodescope::sensor::conntrack
