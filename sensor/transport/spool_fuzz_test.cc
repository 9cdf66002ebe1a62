// Replays the spool fuzz corpus (testdata/spool_fuzz/: seeds and what fuzz_spool_file found)
// through the fuzzer's own checks, so a fixed bug stays fixed without running the fuzzer. Each
// file is a control byte (see spool_fuzz.cc) and the bytes of one spool file.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "common/testing/temp_dir.h"
#include "sensor/transport/spool.h"

namespace nodescope::sensor {

std::string CheckSpoolInput(const uint8_t* data, size_t size);  // spool_fuzz.cc

namespace {

std::string Seed(const std::string& name) {
  std::ifstream in(std::string(NS_SPOOL_FUZZ_CORPUS) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in) << name;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(SpoolFuzzCorpus, KeepsItsInvariants) {
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(NS_SPOOL_FUZZ_CORPUS)) {
    const std::string bytes = Seed(entry.path().filename());
    EXPECT_EQ(CheckSpoolInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), "")
        << entry.path();
    ++files;
  }
  EXPECT_GE(files, 6u);
}

// The valid seed is what Spool::Append writes today for batch 5: if the file format changes,
// this fails and the seeds are to be written again (the damaged ones are edits of this one).
TEST(SpoolFuzzCorpus, ValidSeedIsWhatAppendWrites) {
  // An encoded SensorMessage: node "node-b", sensor_instance "seed", batch {seq 5}.
  const std::string message("\x1a\x06node-b\x22\x04seed\x0a\x02\x18\x05", 18);
  test::TempDir dir;
  {
    auto spool = Spool::Open(dir.path(), "s", 1 << 20);
    ASSERT_TRUE(spool.ok()) << spool.status().message();
    ASSERT_TRUE((*spool)->Append(5, 2, {message.substr(0, 7), message.substr(7)}).ok());
  }
  std::ifstream in(dir.path() + "/s/" + Spool::FileName(5), std::ios::binary);
  const std::string written{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  EXPECT_EQ(written.size(), Spool::kHeaderSize + message.size());
  for (const char* name :
       {"valid.bin", "valid_with_valid_before.bin", "valid_with_valid_after.bin"}) {
    const std::string seed = Seed(name);
    ASSERT_FALSE(seed.empty()) << name;
    EXPECT_EQ(seed.substr(1), written) << name;
  }
}

}  // namespace
}  // namespace nodescope::sensor
