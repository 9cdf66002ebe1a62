#include "aggregator/ingest/dedup.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include "common/testing/temp_dir.h"
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

namespace nodescope::aggregator::ingest {
namespace {

constexpr int64_t kHour = 3'600'000'000'000;

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using nodescope::test::TempDir;

uint64_t ReadSeqFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t seq = 0;
  in.read(reinterpret_cast<char*>(&seq), sizeof(seq));
  EXPECT_EQ(in.gcount(), 8) << path;
  return seq;
}

// The check an ingest stream does: a batch is new when its seq is above the last committed.
bool CommitIfNew(SeqStore* store, const std::string& instance, uint64_t seq) {
  SeqStore::Guard guard = store->Lock(instance, Now());
  if (seq <= guard.last()) return false;
  EXPECT_TRUE(guard.Commit(seq).ok());
  return true;
}

TEST(SeqStore, InMemoryDuplicates) {
  auto store = SeqStore::Open("");
  ASSERT_TRUE(store.ok()) << store.status().message();
  SeqStore& s = **store;
  EXPECT_TRUE(CommitIfNew(&s, "a", 1));
  EXPECT_TRUE(CommitIfNew(&s, "a", 2));
  EXPECT_FALSE(CommitIfNew(&s, "a", 2));
  EXPECT_FALSE(CommitIfNew(&s, "a", 1));
  EXPECT_TRUE(CommitIfNew(&s, "b", 1));  // instances are independent
  EXPECT_TRUE(CommitIfNew(&s, "a", 7));  // a gap (restart without state) is accepted
  EXPECT_FALSE(CommitIfNew(&s, "a", 6));
  EXPECT_EQ(s.size(), 2u);
}

TEST(SeqStore, FileNames) {
  EXPECT_EQ(SeqStore::FileName("3f2a-9c.x_1"), "3f2a-9c.x_1.seq");
  EXPECT_EQ(SeqStore::FileName("a/b"), "612f62.hseq");
  EXPECT_EQ(SeqStore::FileName(".."), "2e2e.hseq");
  EXPECT_EQ(SeqStore::FileName(""), ".hseq");
}

TEST(SeqStore, StateSurvivesARestart) {
  TempDir dir;
  {
    auto store = SeqStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status().message();
    for (uint64_t seq = 1; seq <= 41; ++seq)
      ASSERT_TRUE(CommitIfNew(store->get(), "sensor-a", seq));
    ASSERT_TRUE(CommitIfNew(store->get(), "odd id/with space", 9));
  }
  EXPECT_EQ(ReadSeqFile(dir.path() + "/sensor-a.seq"), 41u);
  EXPECT_EQ(std::filesystem::file_size(dir.path() + "/sensor-a.seq"), 8u);
  EXPECT_EQ(ReadSeqFile(dir.path() + "/" + SeqStore::FileName("odd id/with space")), 9u);

  auto again = SeqStore::Open(dir.path());
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ((*again)->size(), 2u);
  // What the sensor resends after the restart is a duplicate; what follows is new.
  EXPECT_FALSE(CommitIfNew(again->get(), "sensor-a", 40));
  EXPECT_FALSE(CommitIfNew(again->get(), "sensor-a", 41));
  EXPECT_TRUE(CommitIfNew(again->get(), "sensor-a", 42));
  EXPECT_FALSE(CommitIfNew(again->get(), "odd id/with space", 9));
  EXPECT_TRUE(CommitIfNew(again->get(), "odd id/with space", 10));
  EXPECT_EQ(ReadSeqFile(dir.path() + "/sensor-a.seq"), 42u);
}

TEST(SeqStore, CreatesTheDirectory) {
  TempDir dir;
  const std::string nested = dir.path() + "/a/b";
  auto store = SeqStore::Open(nested);
  ASSERT_TRUE(store.ok()) << store.status().message();
  ASSERT_TRUE(CommitIfNew(store->get(), "s", 1));
  EXPECT_TRUE(std::filesystem::exists(nested + "/s.seq"));
}

TEST(SeqStore, UnwritableDirectoryIsAnError) {
  auto store = SeqStore::Open("/proc/nodescope-state");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("state_dir /proc/nodescope-state: cannot create"),
            std::string::npos)
      << store.status().message();
}

TEST(SeqStore, ForgetsIdleInstances) {
  TempDir dir;
  auto store = SeqStore::Open(dir.path(), std::chrono::hours(24));
  ASSERT_TRUE(store.ok());
  const int64_t t0 = Now();
  {
    auto g = (*store)->Lock("old", t0);
    ASSERT_TRUE(g.Commit(5).ok());
  }
  {
    auto g = (*store)->Lock("fresh", t0 + 20 * kHour);
    ASSERT_TRUE(g.Commit(3).ok());
  }
  EXPECT_EQ((*store)->ForgetIdle(t0 + 23 * kHour), 0u);
  EXPECT_EQ((*store)->ForgetIdle(t0 + 25 * kHour), 1u);
  EXPECT_EQ((*store)->size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/old.seq"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/fresh.seq"));
  // Forgotten means a fresh start: seq 1 is new again.
  EXPECT_TRUE(CommitIfNew(store->get(), "old", 1));
}

TEST(SeqStore, StaleFilesAreDeletedAtLoad) {
  TempDir dir;
  {
    auto store = SeqStore::Open(dir.path());
    ASSERT_TRUE(CommitIfNew(store->get(), "stale", 8));
    ASSERT_TRUE(CommitIfNew(store->get(), "recent", 8));
  }
  const std::string stale = dir.path() + "/stale.seq";
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = time(nullptr) - 25 * 3600;
  times[0].tv_nsec = times[1].tv_nsec = 0;
  ASSERT_EQ(utimensat(AT_FDCWD, stale.c_str(), times, 0), 0);
  // Not ours: left alone.
  std::ofstream(dir.path() + "/README") << "hello";

  auto store = SeqStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_EQ((*store)->size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/README"));
  EXPECT_TRUE(CommitIfNew(store->get(), "stale", 1));
  EXPECT_FALSE(CommitIfNew(store->get(), "recent", 8));
}

TEST(SeqStore, TwoStreamsOfOneInstanceCommitEachBatchOnce) {
  auto store = SeqStore::Open("");
  ASSERT_TRUE(store.ok());
  std::vector<std::atomic<int>> commits(2001);
  auto resend_all = [&] {
    for (uint64_t seq = 1; seq <= 2000; ++seq) {
      if (CommitIfNew(store->get(), "racing", seq)) commits[seq].fetch_add(1);
    }
  };
  std::thread a(resend_all);
  std::thread b(resend_all);
  a.join();
  b.join();
  // Both streams send 1..2000 in order: the first commit of any seq >= k happens after its
  // thread passed k, so every seq is committed by exactly one of them.
  for (uint64_t seq = 1; seq <= 2000; ++seq) ASSERT_EQ(commits[seq].load(), 1) << seq;
  auto guard = (*store)->Lock("racing", Now());
  EXPECT_EQ(guard.last(), 2000u);
}

}  // namespace
}  // namespace nodescope::aggregator::ingest
