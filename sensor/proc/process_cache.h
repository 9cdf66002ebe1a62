// pid -> process: what every plugin needs to name the process behind an event. Seeded from /proc
// at start, so processes that were running before the sensor are known, then kept current by the
// process probe's exec/fork/exit events.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/status.h"
#include "sensor/proc/users.h"

namespace nodescope::sensor::proc {

struct ProcessInfo {
  uint32_t pid = 0;  // thread-group id
  uint32_t ppid = 0;
  std::string comm;
  std::string filename;  // the executable: last exec'd path, or /proc/<pid>/exe when seeded
  uint32_t uid = 0;      // real uid
  std::string user;
  uint64_t cgroup_id = 0;      // cgroup v2 id (inode of the cgroup directory); 0 if unknown
  uint64_t start_time_ns = 0;  // CLOCK_MONOTONIC, as the kernel's task->start_time
  bool exited = false;
};

class ProcessCache {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::string proc_root = "/proc";
    // Where to find the cgroup2 mount; the sensor's own view (it stats the cgroup directories).
    std::string mountinfo = "/proc/self/mountinfo";
    // Exited processes stay this long, so late events from other probes still resolve.
    std::chrono::nanoseconds exit_grace = std::chrono::seconds(30);
  };

  // HOST_PROC from the environment, else /proc.
  static std::string ProcRootFromEnv();

  ProcessCache(UserResolver* users, Options options);

  // Adds every process of proc_root; returns how many. Processes that exit while being read are
  // skipped; fails only when proc_root cannot be listed.
  Result<size_t> SeedFromProc();
  // One process read from proc_root (not added).
  Result<ProcessInfo> ReadFromProc(uint32_t pid) const;

  std::optional<ProcessInfo> Lookup(uint32_t pid) const;

  // exec: the process now runs info.filename (comm, uid may change too).
  void OnExec(ProcessInfo info);
  // fork: a new process; until it execs it runs its parent's executable.
  void OnFork(ProcessInfo child);
  // exit: kept for exit_grace, then removed by ExpireExited.
  void OnExit(uint32_t pid, Clock::time_point now);
  // Removes processes that exited at least exit_grace before `now`; returns how many.
  size_t ExpireExited(Clock::time_point now);

  size_t size() const;
  UserResolver* users() const { return users_; }

 private:
  struct Entry {
    ProcessInfo info;
    Clock::time_point exited_at;
  };

  Result<uint64_t> CgroupId(const std::string& cgroup_file) const;

  UserResolver* users_;
  const Options options_;
  std::string cgroup2_dir_;   // mount point of cgroup2, empty when none
  std::string cgroup2_root_;  // the hierarchy path mounted there ("/" normally)

  mutable std::mutex mu_;
  std::unordered_map<uint32_t, Entry> entries_;
};

}  // namespace nodescope::sensor::proc
