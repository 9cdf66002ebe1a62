// Replays the connection filters' fuzz corpus (testdata/fuzz/: seeds and what fuzz_netflow_filter
// found) through the fuzzer's own checks, so a fixed bug stays fixed without running the fuzzer.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace nodescope::sensor::netflow {

std::string CheckNetflowFilterInput(const uint8_t* data, size_t size);  // fuzz.cc

namespace {

TEST(NetflowFilterFuzzCorpus, KeepsItsInvariants) {
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(NS_NETFLOW_FUZZ_CORPUS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const std::string bytes = text.str();
    EXPECT_EQ(CheckNetflowFilterInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
              "")
        << entry.path();
    ++files;
  }
  EXPECT_GE(files, 5u);
}

}  // namespace
}  // namespace nodescope::sensor::netflow
