// Replays the config loader's fuzz corpus (testdata/fuzz/: seeds and what fuzz_config found)
// through the fuzzer's own checks, so a fixed bug stays fixed without running the fuzzer.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace nodescope::config {

std::string CheckConfigInput(const uint8_t* data, size_t size);  // config_fuzz.cc

namespace {

TEST(ConfigFuzzCorpus, KeepsItsInvariants) {
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(NS_CONFIG_FUZZ_CORPUS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const std::string bytes = text.str();
    EXPECT_EQ(CheckConfigInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), "")
        << entry.path();
    ++files;
  }
  EXPECT_GE(files, 5u);
}

}  // namespace
}  // namespace nodescope::config
