#include "sensor/limits/quantity.h"

#include <gtest/gtest.h>

#include "sensor/limits/usage.h"

namespace nodescope::sensor::limits {
namespace {

TEST(ParseCpuLimit, ReferenceFormsAndMillicores) {
  EXPECT_EQ(ParseCpuLimit("2.0").value(), 2.0);
  EXPECT_EQ(ParseCpuLimit("0.5").value(), 0.5);
  EXPECT_EQ(ParseCpuLimit("3").value(), 3.0);
  EXPECT_EQ(ParseCpuLimit("250m").value(), 0.25);
  EXPECT_EQ(ParseCpuLimit("").value(), 0.0);
  EXPECT_EQ(ParseCpuLimit("0").value(), 0.0);
}

TEST(ParseCpuLimit, RejectsWithTheValue) {
  for (const char* bad : {"two", "-1", "2 cores", "1.2.3", "2.0c", ".", "m"}) {
    Result<double> r = ParseCpuLimit(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(std::string("\"") + bad + "\""), std::string::npos)
        << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  }
}

TEST(ParseMemLimit, BinaryAndDecimalUnits) {
  EXPECT_EQ(ParseMemLimit("4GiB").value(), 4.0 * 1024 * 1024 * 1024);
  EXPECT_EQ(ParseMemLimit("512MiB").value(), 512.0 * 1024 * 1024);
  EXPECT_EQ(ParseMemLimit("1.5GB").value(), 1.5e9);
  EXPECT_EQ(ParseMemLimit("64Mi").value(), 64.0 * 1024 * 1024);
  EXPECT_EQ(ParseMemLimit("100KB").value(), 1e5);
  EXPECT_EQ(ParseMemLimit("10B").value(), 10.0);
  EXPECT_EQ(ParseMemLimit("1TiB").value(), 1024.0 * 1024 * 1024 * 1024);
  EXPECT_EQ(ParseMemLimit("").value(), 0.0);
  EXPECT_EQ(ParseMemLimit("0").value(), 0.0);
}

TEST(ParseMemLimit, RejectsBareNumbersAndUnknownUnits) {
  Result<double> bare = ParseMemLimit("4");
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.status().message().find("the unit is required"), std::string::npos);
  for (const char* bad : {"4gb", "4 GiB", "GiB", "4XB", "-4GiB", "4GiB/s"}) {
    Result<double> r = ParseMemLimit(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(std::string("\"") + bad + "\""), std::string::npos)
        << r.status().message();
  }
}

TEST(ParseNetLimit, NeedsPerSecond) {
  EXPECT_EQ(ParseNetLimit("100MiB/s").value(), 100.0 * 1024 * 1024);
  EXPECT_EQ(ParseNetLimit("1.5MB/s").value(), 1.5e6);
  EXPECT_EQ(ParseNetLimit("0").value(), 0.0);
  EXPECT_EQ(ParseNetLimit("").value(), 0.0);
  for (const char* bad : {"100MiB", "100/s", "100MiB/m", "fast/s", "100Mbit/s"}) {
    Result<double> r = ParseNetLimit(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(std::string("\"") + bad + "\""), std::string::npos)
        << r.status().message();
  }
}

TEST(FormatBytes, PicksTheUnit) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(4.0 * 1024 * 1024 * 1024), "4.0 GiB");
}

// Captured from this machine's /proc/net/dev (the counters shortened).
constexpr char kNetDev[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
    "    lo: 791890678375 542833837    0    0    0     0          0         0 791890678375 "
    "542833837    0    0    0     0       0          0\n"
    "  eth0: 61049652    1825    0    0    0     0          0         0   107429    1314    0    "
    "0    0     0       0          0\n";

TEST(ParseNetDev, ReceivedPlusSentPerInterface) {
  Result<std::map<std::string, uint64_t>> nics = ParseNetDev(kNetDev);
  ASSERT_TRUE(nics.ok()) << nics.status().message();
  ASSERT_EQ(nics->size(), 2u);
  EXPECT_EQ(nics->at("lo"), 2 * 791890678375ULL);
  EXPECT_EQ(nics->at("eth0"), 61049652ULL + 107429ULL);
}

TEST(ParseNetDev, RejectsShortLines) {
  EXPECT_FALSE(ParseNetDev("h1\nh2\n  lo: 1 2 3\n").ok());
  EXPECT_FALSE(ParseNetDev("h1\nh2\ngarbage\n").ok());
}

TEST(ParseStatusRss, KibToBytes) {
  Result<uint64_t> rss = ParseStatusRss("Name:\tcat\nVmHWM:\t    2000 kB\nVmRSS:\t    1936 kB\n");
  ASSERT_TRUE(rss.ok());
  EXPECT_EQ(*rss, 1936u * 1024);
  EXPECT_FALSE(ParseStatusRss("Name:\tcat\n").ok());
  EXPECT_FALSE(ParseStatusRss("VmRSS:\t12 MB\n").ok());
}

TEST(Between, CoresRssAndTheBusiestInterface) {
  Reading a{.time_ns = 1'000'000'000, .cpu_ns = 0, .rss_bytes = 10, .nic_bytes = {}};
  a.nic_bytes = {{"lo", 1000}, {"eth0", 5000}, {"gone", 1}, {"reset", 900}};
  Reading b{.time_ns = 3'000'000'000, .cpu_ns = 500'000'000, .rss_bytes = 20, .nic_bytes = {}};
  b.nic_bytes = {{"lo", 3000}, {"eth0", 9000}, {"new", 1'000'000}, {"reset", 10}};
  Usage u = Between(a, b);
  EXPECT_DOUBLE_EQ(u.cpu_cores, 0.25);  // 0.5 s of CPU in 2 s
  EXPECT_EQ(u.rss_bytes, 20);
  EXPECT_DOUBLE_EQ(u.net_bytes_per_s, 2000);  // eth0: 4000 B in 2 s
  EXPECT_EQ(u.nic, "eth0");
}

TEST(ReadNow, ThisProcess) {
  Result<Reading> r = ReadNow();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_GT(r->rss_bytes, 0u);
  EXPECT_GT(r->cpu_ns, 0);
  EXPECT_TRUE(r->nic_bytes.count("lo"));
}

}  // namespace
}  // namespace nodescope::sensor::limits
