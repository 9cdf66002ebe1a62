// Real processes on loopback for integration tests: start binaries, wait for them, read their
// output, pick free ports, fetch HTTP pages. Every child is killed when its owner goes out of
// scope, so a failing test leaves nothing running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/testing/temp_dir.h"

namespace nodescope::test {

// The directory holding nodescope-sensor, nodescope-aggregator and nodescope.
std::string BinDir();

class Subprocess {
 public:
  // Starts argv[0] (a path) with argv; stdout and stderr go to `log_path` (appended).
  Subprocess(std::vector<std::string> argv, std::string log_path,
             std::map<std::string, std::string> env = {});
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  // Sends `sig` and waits up to `timeout` for the exit; returns the wait status or -1.
  int Stop(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits for the exit; returns the exit code (128+signal when killed), or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string log_path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs a command to completion (bounded by `timeout`), capturing stdout and stderr.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A TCP port on 127.0.0.1 that nobody listens on right now.
int FreePort();

// GET http://127.0.0.1:port/path; returns the body, or "" with status 0 on connection failure.
std::string HttpGet(int port, const std::string& path, int* status = nullptr);
std::string HttpGet(const std::string& ipv4, int port, const std::string& path,
                    int* status = nullptr);

// The value of one Prometheus series (`name{labels}` exactly as exposed), or -1 when absent.
double MetricValue(const std::string& exposition, const std::string& series);
// The sum of every series of one family (`name` alone or `name{...}`): 0 when it has none.
double MetricSum(const std::string& exposition, const std::string& family);

// Starts nodescope-aggregator with `config` (a file path), its output in `log`, and waits until
// http://127.0.0.1:http_port/readyz answers 200. The Subprocess either way: a caller that finds
// it not Running() (or not ready) reports its Log().
std::unique_ptr<Subprocess> StartAggregator(const std::string& config, const std::string& log,
                                            int http_port, bool* ready);

// Polls `done` every 50 ms until it is true or `timeout` passes.
bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout);

std::string ReadFile(const std::string& path);

// The complete lines of a file another process is appending to: a last line without its newline
// is still being written and is left out.
std::vector<std::string> CompleteLines(const std::string& path);

// pid -> how many exec records of `filename` a jsonl sink file holds so far.
std::map<std::string, int> ExecCounts(const std::string& jsonl_path, const std::string& filename);

// Runs the executable at `path` (no arguments) to completion; returns its pid, which names its
// exec record.
pid_t RunExecutable(const std::string& path);

}  // namespace nodescope::test
