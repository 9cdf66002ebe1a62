#include "sensor/plugins/bash/binaries.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/testing/temp_dir.h"

namespace nodescope::sensor::bash {
namespace {

namespace fs = std::filesystem;

// A fake proc root whose <pid>/exe links point at files of the temp dir, and an attach function
// that records what it was asked and fails for paths in `refuse`.
class BinariesTest : public ::testing::Test {
 protected:
  BinariesTest()
      : binaries_(dir_.File("proc"), [this](const std::string& exe, const std::string& path) {
          attached_.push_back(path);
          exes_.push_back(exe);
          return path == refuse_ ? Status::Error("no symbol readline") : Status::Ok();
        }) {}

  // An executable file under the temp dir.
  std::string Binary(const std::string& name) {
    dir_.Write(name, "ELF of " + name);
    return dir_.File(name);
  }
  void Process(uint32_t pid, const std::string& target) {
    fs::create_directories(dir_.File("proc/" + std::to_string(pid)));
    fs::create_symlink(target, dir_.File("proc/" + std::to_string(pid) + "/exe"));
  }

  test::TempDir dir_;
  std::vector<std::string> attached_, exes_;
  std::string refuse_;
  Binaries binaries_;
};

TEST(BinariesCandidate, BashRbashAndSh) {
  EXPECT_TRUE(Binaries::Candidate("/usr/bin/bash"));
  EXPECT_TRUE(Binaries::Candidate("bash"));
  EXPECT_TRUE(Binaries::Candidate("/bin/rbash"));
  EXPECT_TRUE(Binaries::Candidate("/bin/sh"));
  EXPECT_FALSE(Binaries::Candidate("/usr/bin/dash"));
  EXPECT_FALSE(Binaries::Candidate("/usr/bin/bashbug"));
  EXPECT_FALSE(Binaries::Candidate("/home/bash/ls"));
  EXPECT_FALSE(Binaries::Candidate(""));
}

TEST(BinariesIsBash, TargetsOfExeLinks) {
  EXPECT_TRUE(Binaries::IsBash("/usr/bin/bash"));
  EXPECT_TRUE(Binaries::IsBash("/usr/bin/bash (deleted)"));
  EXPECT_TRUE(Binaries::IsBash("/tmp/x/rbash"));
  EXPECT_FALSE(Binaries::IsBash("/usr/bin/dash"));  // /bin/sh on Debian
  EXPECT_FALSE(Binaries::IsBash("/usr/bin/zsh"));
}

TEST_F(BinariesTest, OneAttachPerFileHoweverManyProcessesRunIt) {
  const std::string bash = Binary("usr/bin/bash");
  Process(100, bash);
  Process(101, bash);
  EXPECT_EQ(binaries_.Offer(100), Binaries::Outcome::kAttached);
  EXPECT_EQ(binaries_.Offer(101), Binaries::Outcome::kKnown);
  EXPECT_EQ(binaries_.Offer(100), Binaries::Outcome::kKnown);
  EXPECT_EQ(attached_, std::vector<std::string>{bash});
  EXPECT_EQ(exes_, std::vector<std::string>{dir_.File("proc/100/exe")});
  EXPECT_EQ(binaries_.attached(), 1u);

  std::vector<Binaries::File> files = binaries_.Files();
  ASSERT_EQ(files.size(), 1u);
  struct stat st {};
  ASSERT_EQ(stat(bash.c_str(), &st), 0);
  EXPECT_EQ(files[0].id.dev, static_cast<uint64_t>(st.st_dev));
  EXPECT_EQ(files[0].id.ino, static_cast<uint64_t>(st.st_ino));
  EXPECT_EQ(files[0].path, bash);
  EXPECT_TRUE(files[0].attached);
}

TEST_F(BinariesTest, ACopyIsAnotherFileAndAHardLinkIsNot) {
  const std::string bash = Binary("usr/bin/bash");
  const std::string copy = Binary("other/root/bin/bash");
  fs::create_directories(dir_.File("hard"));
  fs::create_hard_link(bash, dir_.File("hard/bash"));
  Process(100, bash);
  Process(200, copy);
  Process(300, dir_.File("hard/bash"));
  EXPECT_EQ(binaries_.Offer(100), Binaries::Outcome::kAttached);
  EXPECT_EQ(binaries_.Offer(200), Binaries::Outcome::kAttached);
  EXPECT_EQ(binaries_.Offer(300), Binaries::Outcome::kKnown);
  EXPECT_EQ(attached_, (std::vector<std::string>{bash, copy}));
  EXPECT_EQ(binaries_.attached(), 2u);
}

TEST_F(BinariesTest, OtherProgramsAndGoneProcessesAreLeftAlone) {
  Process(100, Binary("usr/bin/dash"));
  EXPECT_EQ(binaries_.Offer(100), Binaries::Outcome::kNoMatch);
  EXPECT_EQ(binaries_.Offer(999), Binaries::Outcome::kGone);
  Process(101, dir_.File("usr/bin/bash"));  // a dangling link: the file is gone
  EXPECT_EQ(binaries_.Offer(101), Binaries::Outcome::kGone);
  EXPECT_TRUE(attached_.empty());
  EXPECT_TRUE(binaries_.Files().empty());
}

TEST_F(BinariesTest, AFailedFileIsTriedOnceAndReported) {
  const std::string bash = Binary("static/bash");
  refuse_ = bash;
  Process(100, bash);
  Process(101, bash);
  EXPECT_EQ(binaries_.Offer(100), Binaries::Outcome::kFailed);
  EXPECT_EQ(binaries_.Offer(101), Binaries::Outcome::kKnown);
  EXPECT_EQ(attached_.size(), 1u);
  EXPECT_EQ(binaries_.attached(), 0u);
  EXPECT_EQ(binaries_.failed(), 1u);
  std::vector<Binaries::File> files = binaries_.Files();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_FALSE(files[0].attached);
  EXPECT_EQ(files[0].error, "no symbol readline");
}

TEST_F(BinariesTest, AFileOfferedByPathIsTheSameFileItsShellsRun) {
  const std::string bash = Binary("usr/bin/bash");
  fs::create_directories(dir_.File("bin"));
  fs::create_symlink(bash, dir_.File("bin/bash"));  // merged /usr: the same file
  EXPECT_EQ(binaries_.OfferFile(bash), Binaries::Outcome::kAttached);
  EXPECT_EQ(binaries_.OfferFile(dir_.File("bin/bash")), Binaries::Outcome::kKnown);
  EXPECT_EQ(binaries_.OfferFile(dir_.File("usr/local/bin/bash")), Binaries::Outcome::kGone);
  EXPECT_EQ(binaries_.OfferFile(dir_.File("usr")), Binaries::Outcome::kGone);  // not a file
  Process(100, bash);
  EXPECT_EQ(binaries_.Offer(100), Binaries::Outcome::kKnown);
  EXPECT_EQ(attached_, std::vector<std::string>{bash});
  EXPECT_EQ(exes_, std::vector<std::string>{bash});
}

TEST_F(BinariesTest, ScanOffersEveryNumericEntry) {
  const std::string bash = Binary("usr/bin/bash");
  const std::string copy = Binary("ns/bash");
  Process(1, Binary("sbin/init"));
  Process(10, bash);
  Process(11, bash);
  Process(12, copy);
  fs::create_directories(dir_.File("proc/self"));
  fs::create_directories(dir_.File("proc/12x"));
  EXPECT_EQ(binaries_.Scan(), 2u);
  EXPECT_EQ(binaries_.attached(), 2u);
  EXPECT_EQ(attached_.size(), 2u);
}

}  // namespace
}  // namespace nodescope::sensor::bash
