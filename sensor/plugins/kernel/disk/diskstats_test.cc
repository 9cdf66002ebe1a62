#include "sensor/plugins/kernel/disk/diskstats.h"

#include <gtest/gtest.h>

#include "bpf/abi/disk.h"

namespace nodescope::sensor::kernel::disk {
namespace {

// /proc/diskstats of a Linux 6.18 VM (17 fields), as read.
constexpr std::string_view kLinux618 =
    "   7       0 loop0 164 1 6910 34 101 85 54116 50 0 52 115 2 0 524290 0 25 29\n"
    "   7       1 loop1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    " 254       0 vda 759696 54463 31086882 960622 156946 135399 160332960 461087 0 209292 "
    "1454913 110850 22 141978456 33078 1999 124\n"
    " 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

TEST(Diskstats, ParsesEveryFieldOfALinux6Line) {
  Result<std::vector<DiskStats>> parsed = ParseDiskstats(kLinux618);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_EQ(parsed->size(), 4u);
  const DiskStats& loop0 = (*parsed)[0];
  EXPECT_EQ(loop0.major, 7u);
  EXPECT_EQ(loop0.minor, 0u);
  EXPECT_EQ(loop0.name, "loop0");
  EXPECT_EQ(loop0.reads, 164u);
  EXPECT_EQ(loop0.reads_merged, 1u);
  EXPECT_EQ(loop0.read_sectors, 6910u);
  EXPECT_EQ(loop0.read_ms, 34u);
  EXPECT_EQ(loop0.writes, 101u);
  EXPECT_EQ(loop0.writes_merged, 85u);
  EXPECT_EQ(loop0.write_sectors, 54116u);
  EXPECT_EQ(loop0.write_ms, 50u);
  EXPECT_EQ(loop0.in_flight, 0u);
  EXPECT_EQ(loop0.io_ms, 52u);
  EXPECT_EQ(loop0.weighted_io_ms, 115u);
  EXPECT_EQ(loop0.discards, 2u);
  EXPECT_EQ(loop0.discards_merged, 0u);
  EXPECT_EQ(loop0.discard_sectors, 524290u);
  EXPECT_EQ(loop0.discard_ms, 0u);
  EXPECT_EQ(loop0.flushes, 25u);
  EXPECT_EQ(loop0.flush_ms, 29u);
  const DiskStats& vda = (*parsed)[2];
  EXPECT_EQ(vda.major, 254u);
  EXPECT_EQ(vda.name, "vda");
  EXPECT_EQ(vda.write_sectors, 160332960u);
  EXPECT_EQ(vda.discard_sectors, 141978456u);
  EXPECT_EQ(vda.flushes, 1999u);
}

TEST(Diskstats, OlderKernelsLeaveTheNewerFieldsZero) {
  // Linux 4.15 (11 fields) and 5.4 (15 fields: discards, no flushes); a partition.
  Result<std::vector<DiskStats>> parsed = ParseDiskstats(
      "   8       0 sda 9573 1187 601650 4312 2741 3378 178546 21396 0 5112 25708\n"
      "   8       1 sda1 9379 1187 593978 4260 2693 3378 178546 21380 0 5060 25640 7 0 4096 12\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].weighted_io_ms, 25708u);
  EXPECT_EQ((*parsed)[0].discards, 0u);
  EXPECT_EQ((*parsed)[0].flushes, 0u);
  EXPECT_EQ((*parsed)[1].name, "sda1");
  EXPECT_EQ((*parsed)[1].discards, 7u);
  EXPECT_EQ((*parsed)[1].discard_ms, 12u);
  EXPECT_EQ((*parsed)[1].flushes, 0u);
}

TEST(Diskstats, FieldsALaterKernelAddsAreIgnored) {
  Result<std::vector<DiskStats>> parsed =
      ParseDiskstats("259 0 nvme0n1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ((*parsed)[0].flush_ms, 17u);
}

TEST(Diskstats, NoTrailingNewlineAndBlankLines) {
  Result<std::vector<DiskStats>> parsed =
      ParseDiskstats("\n   7 3 loop3 1 0 8 0 0 0 0 0 0 0 0 0 0 0 0 0 0");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ((*parsed)[0].name, "loop3");
  EXPECT_EQ((*parsed)[0].read_sectors, 8u);
}

TEST(Diskstats, RejectsWhatIsNotDiskstats) {
  EXPECT_FALSE(ParseDiskstats("major minor name\n").ok());
  EXPECT_FALSE(ParseDiskstats("7 0 loop0 1 2 3\n").ok());                    // too few fields
  EXPECT_FALSE(ParseDiskstats("7 0 loop0 1 2 3 4 5 x 7 8 9 10 11\n").ok());  // not a number
  EXPECT_FALSE(ParseDiskstats("7 0\n").ok());                                // no name
  EXPECT_FALSE(ParseDiskstats("-7 0 loop0 1 2 3 4 5 6 7 8 9 10 11\n").ok());
}

TEST(Diskstats, NamesByKernelDevT) {
  Result<std::vector<DiskStats>> parsed = ParseDiskstats(kLinux618);
  ASSERT_TRUE(parsed.ok());
  std::map<uint32_t, std::string> names = KernelDevNames(*parsed);
  EXPECT_EQ(names.size(), 4u);
  EXPECT_EQ(names[(7u << 20) | 1u], "loop1");
  EXPECT_EQ(names[254u << 20], "vda");
  EXPECT_EQ(names[253u << 20], "zram0");
  // Minors above 255 (the 21st loop device, nvme namespaces) are not folded into the major.
  Result<std::vector<DiskStats>> big = ParseDiskstats("7 300 loop300 0 0 0 0 0 0 0 0 0 0 0\n");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(KernelDevNames(*big).at((7u << 20) | 300u), "loop300");
}

TEST(Diskstats, UnnamedDeviceLabel) {
  EXPECT_EQ(DevLabel((259u << 20) | 7u), "259:7");
  EXPECT_EQ(DevLabel(0), "0:0");
}

}  // namespace
}  // namespace nodescope::sensor::kernel::disk
