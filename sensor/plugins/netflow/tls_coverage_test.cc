#include "sensor/plugins/netflow/tls_coverage.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/testing/temp_dir.h"

namespace nodescope::sensor::netflow {
namespace {

namespace fs = std::filesystem;

constexpr char kHostLibssl[] = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

TEST(ClassifyTlsLibrary, OpenSsl3OtherVersionsAndOtherLibraries) {
  EXPECT_EQ(ClassifyTlsLibrary("/usr/lib/x86_64-linux-gnu/libssl.so.3"), "");
  EXPECT_EQ(ClassifyTlsLibrary("/opt/app/lib/libssl.so.3.0.11"), "");
  EXPECT_EQ(ClassifyTlsLibrary("libssl.so.1.1"), "OpenSSL libssl.so.1.1: not OpenSSL 3");
  EXPECT_EQ(ClassifyTlsLibrary("/lib/libssl.so.10"), "OpenSSL libssl.so.10: not OpenSSL 3");
  EXPECT_EQ(ClassifyTlsLibrary("/lib/libssl.so.30"), "OpenSSL libssl.so.30: not OpenSSL 3");
  EXPECT_EQ(ClassifyTlsLibrary("/lib/x86_64-linux-gnu/libgnutls.so.30"), "GnuTLS: not OpenSSL 3");
  EXPECT_EQ(ClassifyTlsLibrary("/usr/lib64/libnss3.so"), "NSS: not OpenSSL 3");
  EXPECT_EQ(ClassifyTlsLibrary("/usr/lib/libwolfssl.so.35"), "wolfSSL: not OpenSSL 3");
  EXPECT_EQ(ClassifyTlsLibrary("/usr/lib/libmbedtls.so.14"), "mbed TLS: not OpenSSL 3");
  EXPECT_EQ(ClassifyTlsLibrary("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"), std::nullopt);
  EXPECT_EQ(ClassifyTlsLibrary("/usr/lib/libnss3util.so"), std::nullopt);
  EXPECT_EQ(ClassifyTlsLibrary("/usr/lib/libssl3.so"), std::nullopt);  // NSS's, with libnss3
  EXPECT_EQ(ClassifyTlsLibrary("/opt/libssl.so.3/README"), std::nullopt);
  EXPECT_EQ(ClassifyTlsLibrary("/usr/bin/curl"), std::nullopt);
}

TEST(InspectElf, OpenSslExportsTheFunctionsAProgramLinkedToItDoesNot) {
  Result<ElfTls> lib = InspectElf(kHostLibssl);
  ASSERT_TRUE(lib.ok()) << lib.status().message();
  EXPECT_TRUE(lib->ssl_functions);
  EXPECT_FALSE(lib->go);
  Result<ElfTls> curl = InspectElf("/usr/bin/curl");  // imports SSL_write through libcurl
  ASSERT_TRUE(curl.ok()) << curl.status().message();
  EXPECT_FALSE(curl->ssl_functions);
  EXPECT_FALSE(curl->go);
  EXPECT_FALSE(InspectElf("/etc/hostname").ok());
  EXPECT_FALSE(InspectElf("/no/such/file").ok());
}

TEST(InspectElf, AGoBuildinfoSectionMarksAGoBinary) {
  test::TempDir dir;
  dir.Write("buildinfo", "\xff Go buildinf:");
  const std::string out = dir.File("go-like");
  const std::string cmd =
      "objcopy --add-section .go.buildinfo=" + dir.File("buildinfo") + " /usr/bin/true " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  Result<ElfTls> go = InspectElf(out);
  ASSERT_TRUE(go.ok()) << go.status().message();
  EXPECT_TRUE(go->go);
  EXPECT_FALSE(go->ssl_functions);
}

// A fake proc root: <pid>/maps and <pid>/root/<path> (no map_files, as without CAP_SYS_ADMIN),
// <pid>/exe; the attach function records its targets.
class TlsCoverageTest : public ::testing::Test {
 protected:
  TlsCoverageTest() {
    options_.proc_root = dir_.File("proc");
    options_.exec_delays = {std::chrono::milliseconds(0)};
    options_.rescan_every = std::chrono::hours(1);
    options_.status_files = 2;
  }

  std::unique_ptr<TlsCoverage> Make() {
    return std::make_unique<TlsCoverage>(options_, [this](const std::string& target) {
      attached_.push_back(target);
      return Status::Ok();
    });
  }

  // Process `pid` running `exe` (copied from the host) and mapping the host files `libs`, which
  // sit under its root at the same path.
  void Process(uint32_t pid, const std::string& exe, const std::vector<std::string>& libs) {
    const std::string dir = "proc/" + std::to_string(pid);
    std::string maps;
    uint64_t start = 0x7f0000000000;
    for (const std::string& lib : libs) {
      fs::create_directories(dir_.File(dir + "/root" + fs::path(lib).parent_path().string()));
      if (!fs::exists(dir_.File(dir + "/root" + lib))) {
        fs::copy_file(lib == "/usr/lib/libgnutls.so.30" ? "/usr/bin/true" : kHostLibssl,
                      dir_.File(dir + "/root" + lib));
      }
      char line[512];
      snprintf(line, sizeof(line), "%lx-%lx r-xp 00000000 fe:01 %d   %s\n", start, start + 4096,
               1000 + static_cast<int>(start >> 12 & 0xff), lib.c_str());
      maps += line;
      start += 4096;
    }
    dir_.Write(dir + "/maps", maps);
    fs::create_symlink(exe, dir_.File(dir + "/exe"));
  }

  test::TempDir dir_;
  TlsCoverage::Options options_;
  std::vector<std::string> attached_;
};

TEST_F(TlsCoverageTest, LibsslCopiesAreProbedOtherLibrariesListedAsNotCovered) {
  std::unique_ptr<TlsCoverage> tls = Make();
  Process(10, "/usr/bin/curl", {"/opt/a/libssl.so.3", "/usr/lib/libgnutls.so.30"});
  Process(11, "/usr/bin/curl", {"/opt/b/libssl.so.3.0.9"});
  tls->Start({dir_.File("no/host/libssl.so.3")});
  std::sort(attached_.begin(), attached_.end());  // /proc is scanned in directory order
  EXPECT_EQ(attached_, (std::vector<std::string>{dir_.File("proc/10/root/opt/a/libssl.so.3"),
                                                 dir_.File("proc/11/root/opt/b/libssl.so.3.0.9")}));
  EXPECT_EQ(tls->files().attached(), 2u);
  EXPECT_EQ(tls->files().failed(), 1u);
  const std::string coverage = tls->Coverage();
  EXPECT_NE(coverage.find("/opt/a/libssl.so.3 (1 process)"), std::string::npos) << coverage;
  EXPECT_NE(coverage.find("/opt/b/libssl.so.3.0.9 (1 process)"), std::string::npos) << coverage;
  EXPECT_NE(coverage.find("not covered: /usr/lib/libgnutls.so.30 (GnuTLS: not OpenSSL 3, "
                          "1 process)"),
            std::string::npos)
      << coverage;

  // An exec: looked at when its delay is over (RunDue here, the thread in the sensor).
  Process(12, "/usr/bin/curl", {"/opt/a/libssl.so.3"});
  fs::copy_file(kHostLibssl, dir_.File("proc/12/root/opt/a/libssl.so.3"),
                fs::copy_options::overwrite_existing);  // its own root: another file
  tls->OnExec(12);
  tls->RunDue(std::chrono::steady_clock::now());
  EXPECT_EQ(attached_.size(), 3u);
  tls->Stop();
  tls->OnExec(10);  // ignored after Stop
  tls->RunDue(std::chrono::steady_clock::now());
  EXPECT_EQ(attached_.size(), 3u);
}

TEST_F(TlsCoverageTest, ExecutablesWithOpenSslBuiltInAreProbedGoIsNotCovered) {
  // An "executable" exporting SSL_read and SSL_write: libssl itself stands in for a static build.
  dir_.Write("buildinfo", "\xff Go buildinf:");
  const std::string go = dir_.File("gobin");
  ASSERT_EQ(std::system(("objcopy --add-section .go.buildinfo=" + dir_.File("buildinfo") +
                         " /usr/bin/true " + go)
                            .c_str()),
            0);
  std::unique_ptr<TlsCoverage> tls = Make();
  Process(20, kHostLibssl, {});
  Process(21, go, {});
  Process(22, "/usr/bin/true", {});
  Process(23, go, {});
  tls->Start({});
  EXPECT_EQ(attached_, std::vector<std::string>{dir_.File("proc/20/exe")});
  std::vector<proc::FileProbes::File> files = tls->files().Files();
  ASSERT_EQ(files.size(), 2u);  // /usr/bin/true needs nothing and is not listed
  const std::string coverage = tls->Coverage();
  EXPECT_NE(coverage.find(std::string(kHostLibssl) + " (1 process, OpenSSL built in)"),
            std::string::npos)
      << coverage;
  EXPECT_NE(coverage.find(go + " (Go binary: crypto/tls is not covered, 2 processes)"),
            std::string::npos)
      << coverage;
}

TEST_F(TlsCoverageTest, TheNotCoveredListIsBoundedAndTheRestCounted) {
  std::unique_ptr<TlsCoverage> tls = Make();  // status_files = 2
  Process(30, "/usr/bin/true", {"/usr/lib/libgnutls.so.30"});
  for (uint32_t pid : {31u, 32u, 33u}) {
    Process(pid, "/usr/bin/true", {"/usr/lib/libgnutls.so.30"});
    // Each process its own copy: a file of its own.
  }
  tls->Start({});
  EXPECT_EQ(tls->files().failed(), 4u);
  const std::string coverage = tls->Coverage();
  EXPECT_NE(coverage.find("and 2 more files"), std::string::npos) << coverage;
  EXPECT_NE(coverage.find("no libssl.so.3 found yet"), std::string::npos) << coverage;
  EXPECT_TRUE(attached_.empty());
}

}  // namespace
}  // namespace nodescope::sensor::netflow
