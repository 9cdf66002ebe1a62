#include "sensor/proc/procfs.h"

#include <gtest/gtest.h>
#include <time.h>
#include <unistd.h>

namespace nodescope::sensor::proc {
namespace {

TEST(ParseStat, CommWithSpacesAndParentheses) {
  // A real line of /proc/<pid>/stat with comm "a) (b c" (prctl PR_SET_NAME allows it).
  const char* line =
      "4242 (a) (b c) S 17 4242 17 34816 4242 4194304 120 0 0 0 0 0 0 0 20 0 1 0 987654 "
      "2584576 224 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  std::optional<StatFields> stat = ParseStat(line);
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->comm, "a) (b c");
  EXPECT_EQ(stat->ppid, 17u);
  EXPECT_EQ(stat->start_ticks, 987654u);
}

TEST(ParseStat, Rejects) {
  EXPECT_FALSE(ParseStat(""));
  EXPECT_FALSE(ParseStat("1 (x S 0"));
  EXPECT_FALSE(ParseStat("1 (x) S 0 1 2"));
  EXPECT_FALSE(ParseStat("1 (x) S notanumber 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"));
}

TEST(ParseStatusUid, RealUidIsTheFirst) {
  EXPECT_EQ(ParseStatusUid("Name:\tsu\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n"),
            1000u);
  EXPECT_FALSE(ParseStatusUid("Name:\tx\n"));
  EXPECT_FALSE(ParseStatusUid("Uid:\t\n"));
}

TEST(ParseCgroupV2Path, HybridAndPure) {
  EXPECT_EQ(ParseCgroupV2Path("9:name=systemd:/\n4:memory:/x\n0::/system.slice/a.service\n"),
            "/system.slice/a.service");
  EXPECT_EQ(ParseCgroupV2Path("0::/\n"), "/");
  EXPECT_FALSE(ParseCgroupV2Path("4:memory:/x\n"));
}

TEST(BootTicksToMonotonicNs, OurOwnStartIsInThePast) {
  Result<std::string> text = ReadWholeFile("/proc/self/stat");
  ASSERT_TRUE(text.ok());
  std::optional<StatFields> stat = ParseStat(*text);
  ASSERT_TRUE(stat);
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t now_ns = static_cast<uint64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
  uint64_t start = BootTicksToMonotonicNs(stat->start_ticks);
  EXPECT_GT(start, 0u);
  EXPECT_LE(start, now_ns);
  // This test process started less than a minute ago.
  EXPECT_LT(now_ns - start, 60'000'000'000ull);
}

TEST(ReadWholeFile, MissingFileNamesIt) {
  Result<std::string> r = ReadWholeFile("/nonexistent/file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "open /nonexistent/file: No such file or directory");
}

}  // namespace
}  // namespace nodescope::sensor::proc
