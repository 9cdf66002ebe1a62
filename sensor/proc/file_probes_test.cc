#include "sensor/proc/file_probes.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/testing/temp_dir.h"

namespace nodescope::sensor::proc {
namespace {

namespace fs = std::filesystem;

// A fake proc root where <pid>/files lists, one per line, "<kind> <path>" of files of the temp
// dir; the find function reads it (as a real rule reads exe or maps) and the attach function
// records what it was asked: kind 1 attaches, 2 fails, 3 needs no probe.
class FileProbesTest : public ::testing::Test {
 protected:
  FileProbesTest()
      : probes_(
            "test", "lib ", dir_.File("proc"),
            [](const std::string& proc_root,
               uint32_t pid) -> std::optional<std::vector<FoundFile>> {
              std::ifstream in(proc_root + "/" + std::to_string(pid) + "/files");
              if (!in) return std::nullopt;
              std::vector<FoundFile> out;
              int kind;
              std::string path;
              while (in >> kind >> path) out.push_back({path, path, kind});
              return out;
            },
            [this](const FoundFile& file) -> std::optional<Status> {
              asked_.push_back(file.path);
              if (file.kind == 2) return Status::Error("no symbol SSL_write");
              if (file.kind == 3) return std::nullopt;
              return Status::Ok();
            }) {}

  std::string File(const std::string& name) {
    dir_.Write(name, "ELF of " + name);
    return dir_.File(name);
  }
  void Process(uint32_t pid, const std::vector<std::pair<int, std::string>>& files) {
    std::string text;
    for (const auto& [kind, path] : files) text += std::to_string(kind) + " " + path + "\n";
    dir_.Write("proc/" + std::to_string(pid) + "/files", text);
  }

  test::TempDir dir_;
  std::vector<std::string> asked_;
  FileProbes probes_;
};

TEST_F(FileProbesTest, OneAttachPerInodeCountingTheProcessesSeen) {
  const std::string lib = File("usr/lib/libssl.so.3");
  const std::string copy = File("tmp/copy/libssl.so.3");
  fs::create_directories(dir_.File("hard"));
  fs::create_hard_link(lib, dir_.File("hard/libssl.so.3"));
  Process(100, {{1, lib}});
  Process(101, {{1, lib}});
  Process(102, {{1, dir_.File("hard/libssl.so.3")}, {1, copy}});
  EXPECT_EQ(probes_.Offer(100), FileProbes::Outcome::kAttached);
  EXPECT_EQ(probes_.Offer(101), FileProbes::Outcome::kKnown);
  EXPECT_EQ(probes_.Offer(101), FileProbes::Outcome::kKnown);  // the same pid counts once
  EXPECT_EQ(probes_.Offer(102), FileProbes::Outcome::kAttached);
  EXPECT_EQ(asked_, (std::vector<std::string>{lib, copy}));
  EXPECT_EQ(probes_.attached(), 2u);
  EXPECT_EQ(probes_.failed(), 0u);

  std::vector<FileProbes::File> files = probes_.Files();
  ASSERT_EQ(files.size(), 2u);
  std::map<std::string, FileProbes::File> by_path;
  for (const FileProbes::File& f : files) by_path[f.path] = f;
  struct stat st {};
  ASSERT_EQ(stat(lib.c_str(), &st), 0);
  EXPECT_EQ(by_path[lib].id.dev, static_cast<uint64_t>(st.st_dev));
  EXPECT_EQ(by_path[lib].id.ino, static_cast<uint64_t>(st.st_ino));
  EXPECT_EQ(by_path[lib].processes, 3u);  // 100, 101, and 102 through the hard link
  EXPECT_TRUE(by_path[lib].attached);
  EXPECT_EQ(by_path[copy].processes, 1u);
  EXPECT_EQ(by_path[copy].kind, 1);
}

TEST_F(FileProbesTest, AFailureIsTriedOnceAndANeedlessFileIsNotListed) {
  const std::string gnutls = File("usr/lib/libgnutls.so.30");
  const std::string plain = File("usr/bin/ls");
  Process(100, {{2, gnutls}, {3, plain}});
  Process(101, {{2, gnutls}, {3, plain}});
  EXPECT_EQ(probes_.Offer(100), FileProbes::Outcome::kFailed);
  EXPECT_EQ(probes_.Offer(101), FileProbes::Outcome::kKnown);
  EXPECT_EQ(asked_, (std::vector<std::string>{gnutls, plain}));
  EXPECT_EQ(probes_.failed(), 1u);
  std::vector<FileProbes::File> files = probes_.Files();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_FALSE(files[0].attached);
  EXPECT_EQ(files[0].error, "no symbol SSL_write");
  EXPECT_EQ(files[0].processes, 2u);
}

TEST_F(FileProbesTest, GoneProcessesAndFilesAndEmptyProcesses) {
  EXPECT_EQ(probes_.Offer(999), FileProbes::Outcome::kGone);
  Process(100, {{1, dir_.File("nothing/here.so")}});
  EXPECT_EQ(probes_.Offer(100), FileProbes::Outcome::kGone);
  Process(101, {});
  EXPECT_EQ(probes_.Offer(101), FileProbes::Outcome::kNoMatch);
  Process(102, {{1, dir_.File("proc")}});  // a directory is no file to probe
  EXPECT_EQ(probes_.Offer(102), FileProbes::Outcome::kGone);
  EXPECT_TRUE(asked_.empty());
  EXPECT_TRUE(probes_.Files().empty());
}

TEST_F(FileProbesTest, AHostFileOfferedByPathIsTheFileItsProcessesMap) {
  const std::string lib = File("usr/lib/libssl.so.3");
  EXPECT_EQ(probes_.OfferFile(lib, 1), FileProbes::Outcome::kAttached);
  EXPECT_EQ(probes_.OfferFile(dir_.File("usr/lib64/libssl.so.3"), 1), FileProbes::Outcome::kGone);
  Process(7, {{1, lib}});
  EXPECT_EQ(probes_.Offer(7), FileProbes::Outcome::kKnown);
  ASSERT_EQ(probes_.Files().size(), 1u);
  EXPECT_EQ(probes_.Files()[0].processes, 1u);  // the host offer is no process
}

TEST_F(FileProbesTest, ScanOffersEveryNumericEntry) {
  Process(1, {{1, File("a.so")}});
  Process(20, {{1, File("b.so")}, {2, File("c.so")}});
  Process(21, {{1, dir_.File("a.so")}});
  fs::create_directories(dir_.File("proc/self"));
  fs::create_directories(dir_.File("proc/12x"));
  EXPECT_EQ(probes_.Scan(), 2u);  // processes with a new attached file
  EXPECT_EQ(probes_.attached(), 2u);
  EXPECT_EQ(probes_.failed(), 1u);
  std::vector<uint32_t> pids = ListPids(dir_.File("proc"));
  std::sort(pids.begin(), pids.end());
  EXPECT_EQ(pids, (std::vector<uint32_t>{1, 20, 21}));
  EXPECT_TRUE(ListPids(dir_.File("no-proc")).empty());
}

TEST(ParseMaps, FileBackedLinesOncePerPath) {
  const std::string maps =
      "55d0c0a00000-55d0c0a28000 r--p 00000000 fe:01 1835101                    /usr/bin/curl\n"
      "55d0c0a28000-55d0c0a8a000 r-xp 00028000 fe:01 1835101                    /usr/bin/curl\n"
      "55d0c1e5e000-55d0c1f9e000 rw-p 00000000 00:00 0                          [heap]\n"
      "7f2a3c000000-7f2a3c021000 rw-p 00000000 00:00 0 \n"
      "7f2a3d200000-7f2a3d25e000 r--p 00000000 00:2a 77                         "
      "/tmp/nodescope test/libssl.so.3\n"
      "7f2a3d25e000-7f2a3d3b7000 r-xp 0005e000 00:2a 77                         "
      "/tmp/nodescope test/libssl.so.3\n"
      "7f2a3d400000-7f2a3d4b0000 r-xp 00000000 00:2b 78                         "
      "/tmp/old/libcrypto.so.3 (deleted)\n"
      "7ffd5a9f2000-7ffd5a9f4000 r-xp 00000000 00:00 0                          [vdso]\n"
      "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n"
      "garbage\n"
      "7f2a3d4b0000-7f2a3d4b1000 r--p 00000000 fe:01 99 anon_inode:[perf_event]\n";
  std::vector<MappedFile> files = ParseMaps(maps);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].range, "55d0c0a00000-55d0c0a28000");
  EXPECT_EQ(files[0].inode, 1835101u);
  EXPECT_EQ(files[0].path, "/usr/bin/curl");
  EXPECT_FALSE(files[0].deleted);
  EXPECT_EQ(files[1].range, "7f2a3d200000-7f2a3d25e000");
  EXPECT_EQ(files[1].path, "/tmp/nodescope test/libssl.so.3");
  EXPECT_EQ(files[1].inode, 77u);
  EXPECT_EQ(files[2].path, "/tmp/old/libcrypto.so.3");
  EXPECT_TRUE(files[2].deleted);
  EXPECT_TRUE(ParseMaps("").empty());
}

TEST(ParseMaps, TheSensorsOwnMapsHoldItsExecutable) {
  std::ifstream in("/proc/self/maps");
  std::stringstream text;
  text << in.rdbuf();
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0);
  struct stat st {};
  ASSERT_EQ(stat("/proc/self/exe", &st), 0);
  bool found = false;
  for (const MappedFile& f : ParseMaps(text.str())) {
    if (f.path == std::string(exe, static_cast<size_t>(n))) {
      found = true;
      EXPECT_EQ(f.inode, static_cast<uint64_t>(st.st_ino));
      struct stat mapped {};
      EXPECT_EQ(stat(("/proc/self/map_files/" + f.range).c_str(), &mapped), 0);
      EXPECT_EQ(mapped.st_ino, st.st_ino);
    }
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace nodescope::sensor::proc
