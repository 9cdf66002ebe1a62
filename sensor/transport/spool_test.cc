#include "sensor/transport/spool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/testing/temp_dir.h"

namespace nodescope::sensor {
namespace {

std::unique_ptr<Spool> MustOpen(const std::string& dir, const std::string& instance,
                                uint64_t max_bytes = 1 << 20) {
  auto spool = Spool::Open(dir, instance, max_bytes);
  EXPECT_TRUE(spool.ok()) << spool.status().message();
  return spool.ok() ? std::move(spool).value() : nullptr;
}

TEST(SpoolTest, AppendsLoadsInSeqOrderAndReleases) {
  test::TempDir dir;
  auto spool = MustOpen(dir.path(), "abc123");
  ASSERT_NE(spool, nullptr);
  ASSERT_TRUE(spool->Append(8, 3, {"head-", "eight"}).ok());
  ASSERT_TRUE(spool->Append(7, 2, {"seven"}).ok());
  EXPECT_EQ(spool->batches(), 2u);
  EXPECT_EQ(spool->unloaded_events(), 5u);
  EXPECT_EQ(spool->bytes(), 2 * Spool::kHeaderSize + 10 + 5);
  EXPECT_EQ(spool->first_seq(), 7u);
  EXPECT_EQ(spool->last_seq(), 8u);

  auto first = spool->Load();
  ASSERT_TRUE(first && first->batch);
  EXPECT_EQ(first->batch->seq, 7u);
  EXPECT_EQ(first->batch->events, 2u);
  EXPECT_EQ(first->batch->message, "seven");
  auto second = spool->Load();
  ASSERT_TRUE(second && second->batch);
  EXPECT_EQ(second->batch->message, "head-eight");
  EXPECT_FALSE(spool->Load());
  EXPECT_FALSE(spool->HasUnloaded());
  // Loaded files stay until acknowledged.
  EXPECT_EQ(spool->batches(), 2u);
  spool->Release(7);
  EXPECT_EQ(spool->batches(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/abc123/" + Spool::FileName(7)));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/abc123/" + Spool::FileName(8)));
  spool->Release(8);
  EXPECT_EQ(spool->bytes(), 0u);
  spool.reset();
  // Empty: the directory goes with it.
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/abc123"));
}

TEST(SpoolTest, RefusesWhatExceedsItsSize) {
  test::TempDir dir;
  auto spool = MustOpen(dir.path(), "i1", Spool::kHeaderSize * 2 + 20);
  ASSERT_TRUE(spool->Append(1, 1, {std::string(10, 'a')}).ok());
  ASSERT_TRUE(spool->Append(2, 1, {std::string(10, 'b')}).ok());
  Status full = spool->Append(3, 1, {"c"});
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.message().find("is full"), std::string::npos) << full.message();
  EXPECT_EQ(spool->batches(), 2u);
  ASSERT_TRUE(spool->Load()->batch);
  spool->Release(1);
  EXPECT_TRUE(spool->Append(3, 1, {"c"}).ok());
}

TEST(SpoolTest, ALiveSpoolIsLockedAndAStoppedOneIsAnOrphanToReplay) {
  test::TempDir dir;
  auto live = MustOpen(dir.path(), "live");
  auto stopped = MustOpen(dir.path(), "stopped");
  ASSERT_TRUE(stopped->Append(41, 5, {"forty-one"}).ok());
  ASSERT_TRUE(stopped->Append(42, 6, {"forty-two"}).ok());
  auto twice = Spool::Open(dir.path(), "live", 1 << 20);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("another nodescope-sensor is using it"),
            std::string::npos)
      << twice.status().message();
  EXPECT_TRUE(Spool::Orphans(dir.path()).empty());  // both held
  stopped.reset();
  EXPECT_EQ(Spool::Orphans(dir.path()), std::vector<std::string>{"stopped"});

  // A write the stopped sensor never finished is discarded.
  std::ofstream(dir.path() + "/stopped/" + Spool::FileName(43) + ".tmp") << "partial";
  auto replay = MustOpen(dir.path(), "stopped");
  EXPECT_EQ(replay->batches(), 2u);
  EXPECT_EQ(replay->unloaded_events(), 11u);
  EXPECT_EQ(replay->first_seq(), 41u);
  EXPECT_EQ(replay->last_seq(), 42u);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/stopped/" + Spool::FileName(43) + ".tmp"));
  EXPECT_EQ(replay->Load()->batch->message, "forty-one");
  EXPECT_EQ(replay->Load()->batch->message, "forty-two");
}

TEST(SpoolTest, DamagedFileIsReportedWithItsEventsAndRemoved) {
  test::TempDir dir;
  auto spool = MustOpen(dir.path(), "d");
  ASSERT_TRUE(spool->Append(1, 9, {"payload-one"}).ok());
  ASSERT_TRUE(spool->Append(2, 4, {"payload-two"}).ok());
  spool.reset();
  {
    // Flip one byte of the first batch's message.
    const std::string path = dir.path() + "/d/" + Spool::FileName(1);
    const int fd = open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "X", 1, Spool::kHeaderSize + 3), 1);
    close(fd);
  }
  spool = MustOpen(dir.path(), "d");
  auto damaged = spool->Load();
  ASSERT_TRUE(damaged);
  EXPECT_FALSE(damaged->batch);
  EXPECT_EQ(damaged->lost_seq, 1u);
  EXPECT_EQ(damaged->lost_events, 9u);
  EXPECT_NE(damaged->error.find("checksum"), std::string::npos) << damaged->error;
  EXPECT_FALSE(spool->Contains(1));
  auto good = spool->Load();
  ASSERT_TRUE(good && good->batch);
  EXPECT_EQ(good->batch->message, "payload-two");
}

// The checksum covers the header's event count too: a damaged count is not taken for true.
TEST(SpoolTest, DamagedEventCountIsFound) {
  test::TempDir dir;
  auto spool = MustOpen(dir.path(), "c");
  ASSERT_TRUE(spool->Append(1, 9, {"payload"}).ok());
  spool.reset();
  const std::string path = dir.path() + "/c/" + Spool::FileName(1);
  const int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "\x07", 1, 16), 1);  // the count's low byte: 9 -> 7
  close(fd);
  spool = MustOpen(dir.path(), "c");
  auto loaded = spool->Load();
  ASSERT_TRUE(loaded);
  EXPECT_FALSE(loaded->batch);
  EXPECT_NE(loaded->error.find("checksum"), std::string::npos) << loaded->error;
}

// 20 digits can name more than 2^64 - 1: such a file is not one of ours, and is left alone.
TEST(SpoolTest, FileNamesBeyondTheSeqRangeAreNotBatches) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.path() + "/n");
  std::ofstream(dir.path() + "/n/99999999999999999999.batch") << "not ours";
  std::ofstream(dir.path() + "/n/18446744073709551615.batch") << "seq 2^64 - 1: a batch name";
  auto spool = MustOpen(dir.path(), "n");
  EXPECT_TRUE(spool->Contains(UINT64_MAX));
  auto loaded = spool->Load();
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->lost_seq, UINT64_MAX);  // not a spooled batch: reported lost
  EXPECT_FALSE(spool->Load());
  spool.reset();
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/n/99999999999999999999.batch"));
}

TEST(SpoolTest, RejectsInstanceNamesThatAreNotDirectoryNames) {
  test::TempDir dir;
  for (const char* bad : {"", "../x", "a/b", ".hidden"}) {
    EXPECT_FALSE(Spool::Open(dir.path(), bad, 1 << 20).ok()) << bad;
  }
}

}  // namespace
}  // namespace nodescope::sensor
