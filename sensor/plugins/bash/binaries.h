// Which bash executables carry the readline uprobe: bash's rule (a process whose executable is
// bash or rbash) over the per-inode registry of sensor/proc/file_probes.h. Files are found
// through the processes that run them: the process probe's execs, and a scan of /proc at start
// for shells that were already running.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "sensor/proc/file_probes.h"

namespace nodescope::sensor::bash {

using proc::FileId;

class Binaries {
 public:
  // Attaches the probe to the executable behind `exe` (a <proc_root>/<pid>/exe link, which
  // reaches the file in whatever mount namespace the process runs). `path` is the file's name
  // as that process sees it, for messages.
  using AttachFn = std::function<Status(const std::string& exe, const std::string& path)>;
  using Outcome = proc::FileProbes::Outcome;
  using File = proc::FileProbes::File;

  Binaries(std::string proc_root, AttachFn attach);
  // Before the first Offer or Scan (not thread-safe).
  void set_proc_root(std::string proc_root) { files_.set_proc_root(std::move(proc_root)); }

  // Whether an exec of `filename` may have started bash: its base name is bash or rbash, or sh
  // (the /bin/sh of some distributions is bash). Cheap: called for every exec on the node.
  static bool Candidate(std::string_view filename);
  // Whether the target of an exe link (as readlink gives it) is a bash binary.
  static bool IsBash(std::string_view exe_target);

  // Looks at the executable of process `pid` (kNoMatch: not bash), attaching once per new file.
  Outcome Offer(uint32_t pid) { return files_.Offer(pid); }
  // Offers every process of proc_root; returns how many new files were attached.
  size_t Scan() { return files_.Scan(); }
  // Offers the file at `path` itself (the host's bash under HOST_ROOT, before any shell runs
  // it); kGone when there is no such file.
  Outcome OfferFile(const std::string& path) { return files_.OfferFile(path); }

  // Every file seen so far, attached or not. Thread-safe.
  std::vector<File> Files() const { return files_.Files(); }
  size_t attached() const { return files_.attached(); }
  size_t failed() const { return files_.failed(); }

 private:
  proc::FileProbes files_;
};

}  // namespace nodescope::sensor::bash
