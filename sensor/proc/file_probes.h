// Which files carry a probe. A uprobe belongs to a file (an inode), not to a path: one on
// /usr/bin/bash or /usr/lib/.../libssl.so.3 covers every process that maps that file, those
// started later included, while a copy (a container's image, a private tmpfs, a directory on
// LD_LIBRARY_PATH) is a different file and needs its own. Files are found through the processes
// that run or map them: the process probe's execs, and a scan of /proc. What to look for in a
// process (its executable, its mapped libraries) and how to probe a file are the caller's; this
// registry attaches once per (st_dev, st_ino) and remembers failures, so each is logged once.
#pragma once

#include <sys/types.h>

#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nodescope::sensor::proc {

// A file as the kernel knows it: (st_dev, st_ino) of what the link or path reaches.
struct FileId {
  uint64_t dev = 0;
  uint64_t ino = 0;
  auto operator<=>(const FileId&) const = default;
};

// A file a process runs or maps.
struct FoundFile {
  // What the sensor opens to reach the file in the process's mount namespace: <proc>/<pid>/exe,
  // <proc>/<pid>/map_files/<range>, <proc>/<pid>/root/<path>, or a host path.
  std::string target;
  std::string path;  // as the process names it, for messages and status
  int kind = 0;      // the caller's: which rule found it
};

class FileProbes {
 public:
  // The files of process `pid` under `proc_root` worth a look; nullopt when the process is gone.
  using FindFn = std::function<std::optional<std::vector<FoundFile>>(const std::string& proc_root,
                                                                     uint32_t pid)>;
  // Called once per new file: Ok when probed, an error (why it is not) when it cannot be,
  // nullopt when it needs no probe after all (remembered, not listed, not logged).
  using AttachFn = std::function<std::optional<Status>(const FoundFile& file)>;

  // `probe` and `subject` only word the log lines: "probe <probe>: <subject><path> (dev ...".
  FileProbes(std::string probe, std::string subject, std::string proc_root, FindFn find,
             AttachFn attach);
  // Before the first Offer or Scan (not thread-safe).
  void set_proc_root(std::string proc_root) { proc_root_ = std::move(proc_root); }
  const std::string& proc_root() const { return proc_root_; }

  enum class Outcome {
    kNoMatch,   // nothing of interest in the process
    kGone,      // the process (or the file) went away before it could be looked at
    kKnown,     // every file was seen before (probed, failed, or needing none)
    kAttached,  // at least one new file, now probed
    kFailed,    // a new file that could not be probed (logged once), none attached
  };
  // Looks at process `pid`, attaching once per new file.
  Outcome Offer(uint32_t pid);
  // Offers every process of proc_root; returns how many new files were attached.
  size_t Scan();
  // Offers the file at `path` itself (a host library before any process maps it); kGone when
  // there is no such regular file.
  Outcome OfferFile(const std::string& path, int kind = 0);

  struct File {
    FileId id;
    std::string path;  // as the first process seen with it named it
    int kind = 0;
    bool attached = false;
    std::string error;       // why it is not probed
    uint64_t processes = 0;  // distinct pids seen with it (bounded, see kMaxPids)
  };
  // Every file probed or refused so far. Thread-safe.
  std::vector<File> Files() const;
  size_t attached() const;
  size_t failed() const;

 private:
  // Distinct pids remembered per file, for the count; past it the count stops growing.
  static constexpr size_t kMaxPids = 65536;

  Outcome Consider(const FoundFile& file, const std::string& found, std::optional<uint32_t> pid);

  const std::string probe_, subject_;
  std::string proc_root_;
  const FindFn find_;
  const AttachFn attach_;
  mutable std::mutex mu_;  // files_, ignored_, pids_: Offer runs on one thread, Files() on any
  std::map<FileId, File> files_;
  std::set<FileId> ignored_;
  std::map<FileId, std::set<uint32_t>> pids_;
};

// The pids of proc_root's numeric entries.
std::vector<uint32_t> ListPids(const std::string& proc_root);

// One line of /proc/<pid>/maps that maps a file.
struct MappedFile {
  std::string range;  // "start-end", the name of its /proc/<pid>/map_files entry
  uint64_t inode = 0;
  std::string path;  // " (deleted)" removed
  bool deleted = false;
};
// The file-backed lines of a maps file's text, one per distinct path (its first range).
std::vector<MappedFile> ParseMaps(std::string_view text);

}  // namespace nodescope::sensor::proc
