// A child process the bench starts and always takes down again, and CPU-time readings.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace nodescope::bench {

class ChildProcess {
 public:
  // Starts argv[0] with stdout and stderr appended to log_path. Must be called before the
  // process starts threads: between fork and exec only async-signal-safe calls are made. The
  // child is killed by the kernel if this process dies first (PR_SET_PDEATHSIG).
  static Result<std::unique_ptr<ChildProcess>> Spawn(const std::vector<std::string>& argv,
                                                     const std::string& log_path);
  ~ChildProcess();  // Terminate() if still running

  pid_t pid() const { return pid_; }
  // False once the child has exited; its exit status is then in exit_description().
  bool Running();
  std::string exit_description() const { return exit_description_; }
  // SIGTERM, then SIGKILL after `grace`. True when it ended on SIGTERM within the grace.
  bool Terminate(std::chrono::milliseconds grace);
  // utime + stime of the child so far, from /proc/<pid>/stat.
  Result<double> CpuSeconds() const;

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  bool reaped_ = false;
  std::string exit_description_;
};

// CPU time (user + system) of this whole process so far.
double SelfCpuSeconds();
// CPU time of one of this process's threads (by kernel thread id) so far.
Result<double> ThreadCpuSeconds(pid_t tid);
// CPU seconds of every thread of this process by kernel thread id, with the thread's name.
struct ThreadCpu {
  std::string name;
  double seconds = 0;
};
std::map<pid_t, ThreadCpu> AllThreadsCpu();
// A size field of /proc/<pid>/status ("VmRSS", "VmHWM") in KiB; 0 when unreadable.
uint64_t StatusKiB(pid_t pid, const std::string& field);
// The same in MiB.
inline double StatusMiB(pid_t pid, const std::string& field) {
  return static_cast<double>(StatusKiB(pid, field)) / 1024;
}

// utime + stime from a /proc/.../stat file.
Result<double> StatCpuSeconds(const std::string& stat_path);

}  // namespace nodescope::bench
