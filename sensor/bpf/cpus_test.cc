#include "sensor/bpf/cpus.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

namespace nodescope::sensor::bpf {
namespace {

using Cpus = std::vector<int>;

// The CPUs of `text`, or none with a test failure.
Cpus Parsed(std::string_view text) {
  Result<Cpus> cpus = ParseCpuList(text);
  EXPECT_TRUE(cpus.ok()) << cpus.status().message();
  return cpus.ok() ? *cpus : Cpus{};
}

TEST(ParseCpuList, RangesAndSingleCpusAsTheKernelPrintsThem) {
  EXPECT_EQ(Parsed("0\n"), Cpus({0}));
  EXPECT_EQ(Parsed("0-3\n"), Cpus({0, 1, 2, 3}));
  EXPECT_EQ(Parsed("0-1,4,6-7"), Cpus({0, 1, 4, 6, 7}));
  EXPECT_EQ(Parsed("5-5"), Cpus({5}));
  // Ascending and each once, however the text orders them.
  EXPECT_EQ(Parsed("3,1,1-2"), Cpus({1, 2, 3}));
}

TEST(ParseCpuList, BadTextIsAnErrorThatQuotesIt) {
  for (const char* bad : {"", "\n", "a", "1-", "-1", "1,,2", "1-2-3", "0x1", " 1", "99999"}) {
    Result<Cpus> cpus = ParseCpuList(bad);
    ASSERT_FALSE(cpus.ok()) << "'" << bad << "'";
    EXPECT_NE(cpus.status().message().find("CPU list"), std::string::npos);
  }
  Result<Cpus> backwards = ParseCpuList("3-1");
  ASSERT_FALSE(backwards.ok());
  EXPECT_EQ(backwards.status().message(), "CPU list '3-1': a range that runs backwards");
}

TEST(OnlineCpus, ReadsTheKernelsList) {
  // The machine's own list: at least CPU 0 is online; and a file of our own.
  Result<Cpus> here = OnlineCpus();
  ASSERT_TRUE(here.ok()) << here.status().message();
  ASSERT_FALSE(here->empty());
  const std::string path = ::testing::TempDir() + "/online";
  std::ofstream(path) << "0,2-3\n";
  Result<Cpus> ours = OnlineCpus(path);
  ASSERT_TRUE(ours.ok()) << ours.status().message();
  EXPECT_EQ(*ours, Cpus({0, 2, 3}));
  std::ofstream(path) << "junk\n";
  Result<Cpus> junk = OnlineCpus(path);
  ASSERT_FALSE(junk.ok());
  EXPECT_NE(junk.status().message().find(path), std::string::npos);
  Result<Cpus> missing = OnlineCpus(path + ".missing");
  EXPECT_FALSE(missing.ok());
}

}  // namespace
}  // namespace nodescope::sensor::bpf
