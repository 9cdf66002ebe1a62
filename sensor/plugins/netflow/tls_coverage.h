// Where httpflow-tls's OpenSSL uprobes go, and what they cannot see. Every libssl.so.3 file a
// process maps gets the tls__ uprobes once per inode (pid -1: every process mapping that file,
// later ones too), found through the process probe's execs (looked at a short while after the
// exec, once ld.so has mapped the libraries), a scan of /proc at start and a slow rescan for
// libraries loaded later with dlopen. Processes that do TLS another way are listed as not
// covered: other TLS libraries and OpenSSL versions, Go binaries, executables with OpenSSL built
// in (probed in the executable when it exports SSL_read and SSL_write).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"
#include "nodescope/v1/ingest.pb.h"
#include "sensor/proc/file_probes.h"

namespace nodescope::sensor::netflow {

// What FoundFile::kind means here.
enum TlsFileKind : int {
  kTlsLibssl3 = 1,     // an OpenSSL 3 libssl: probed
  kTlsOtherLib = 2,    // another TLS library or OpenSSL version: not covered
  kTlsExecutable = 3,  // a process's executable: probed, not covered, or of no concern
};

// For a mapped file's path: nullopt when it is no TLS library, "" for OpenSSL 3's libssl
// (libssl.so.3, or with a suffix: libssl.so.3.0.2), else why it is not covered.
std::optional<std::string> ClassifyTlsLibrary(std::string_view path);

// What an ELF executable says about its TLS.
struct ElfTls {
  bool ssl_functions = false;  // defines SSL_read and SSL_write (OpenSSL or BoringSSL built in)
  bool go = false;             // a .go.buildinfo section or a runtime.main symbol
};
Result<ElfTls> InspectElf(const std::string& path);

// The TLS files of process `pid`: its mapped TLS libraries (reached through
// <proc_root>/<pid>/map_files/<range>, or <proc_root>/<pid>/root/<path> when that cannot be
// read) and its executable; nullopt when the process is gone.
std::optional<std::vector<proc::FoundFile>> FindTlsFiles(const std::string& proc_root,
                                                         uint32_t pid);

class TlsCoverage {
 public:
  // Attaches the tls__ uprobes to the file at `target` (pid -1).
  using AttachFn = std::function<Status(const std::string& target)>;

  struct Options {
    std::string proc_root = "/proc";
    // When after an exec the process's maps are read: ld.so maps the libraries after the exec
    // returns (a few ms); an early look catches short-lived programs, a later one slower
    // loaders. A process that does TLS before the look on a libssl file no earlier process
    // mapped is not seen until then.
    std::vector<std::chrono::milliseconds> exec_delays{std::chrono::milliseconds(30),
                                                       std::chrono::milliseconds(250)};
    // The rescan of every process, for libraries opened with dlopen after that look.
    std::chrono::milliseconds rescan_every{30000};
    size_t status_files = 32;  // not-covered files listed in the status; the rest are counted
  };

  TlsCoverage(Options options, AttachFn attach);
  ~TlsCoverage();  // Stop()
  TlsCoverage(const TlsCoverage&) = delete;
  TlsCoverage& operator=(const TlsCoverage&) = delete;

  // Offers the host's libraries in `host_libraries` (paths; missing ones are skipped), scans
  // every process, then follows execs and rescans on a thread until Stop().
  void Start(const std::vector<std::string>& host_libraries);
  // An exec seen by the process probe: looked at after each of exec_delays. Cheap; safe before
  // Start (queued) and after Stop (ignored).
  void OnExec(uint32_t pid);
  void Stop();
  // Looks at the processes whose delay is over, and rescans when due (the thread's step; public
  // for tests that run without the thread).
  void RunDue(std::chrono::steady_clock::time_point now);

  // coverage: the libssl files probed (and how many processes were seen with each) and what is
  // not covered, bounded to status_files entries.
  std::string Coverage() const;
  const proc::FileProbes& files() const { return files_; }

 private:
  std::optional<Status> AttachFile(const proc::FoundFile& file);
  void Loop();

  static constexpr size_t kMaxPending = 4096;
  Options options_;
  AttachFn attach_;
  proc::FileProbes files_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::multimap<std::chrono::steady_clock::time_point, uint32_t> pending_;  // under mu_
  bool stopped_ = false;                                                    // under mu_
  std::chrono::steady_clock::time_point next_rescan_;                       // the thread's
  std::thread thread_;
};

}  // namespace nodescope::sensor::netflow
