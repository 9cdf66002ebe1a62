// bench_kernel: what ebpf-kernel's hooks cost per event, family by family, and the sensor's
// memory with 10,000 processes. Baselines run in the same process, alternating with the measured
// side, and every figure is printed next to its baseline.
//
// 1. Per-event cost: a loop of the syscalls a family counts (open+close for fd, write+read for
//    vfs, send+recv over loopback TCP for socket and softirq, fork+exit for process, ...) runs
//    with a sensor that has no plugin and with a sensor that runs ebpf-kernel with only that
//    family; pairs alternate which side goes first. Printed: loop iterations per second on each
//    side, their ratio (median over the pairs), and the nanoseconds the family adds to one
//    iteration. "other syscalls" runs getppid() with the default families on: what every
//    syscall the families do not count pays for the sys_exit hook's early return.
// 2. Memory: 10,000 processes that each opened and closed a file and wait; the sensor's RSS with
//    ebpf-kernel's default families against a sensor without the plugin, and the per-process
//    table's entries and kernel memory as the sensor reports them (target: RSS <= 64 MiB).
//
// Needs root. Prints figures; never fails on them. Exit 1 when something does not start.
//
//   build/bin/bench_kernel [--pairs 4] [--seconds 2] [--processes 10000]
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fmt/core.h>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "bench/child.h"
#include "bench/stats.h"
#include "tests/integration/harness.h"

namespace nodescope::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Args {
  std::string bin_dir;
  int pairs = 4;
  double seconds = 2;
  int processes = 10000;
};

struct Stack {
  Args args;
  std::filesystem::path dir;
  int grpc_port = 0, http_port = 0;
  std::unique_ptr<ChildProcess> aggregator;
  int starts = 0;
};

// A sensor with `plugins` and `extra` YAML, up when its self endpoint is.
Result<std::unique_ptr<ChildProcess>> StartSensor(Stack& s, const std::string& plugins,
                                                  const std::string& extra) {
  const int n = ++s.starts;
  const std::string config = (s.dir / fmt::format("sensor-{}.yaml", n)).string();
  const std::string log = (s.dir / fmt::format("sensor-{}.log", n)).string();
  std::ofstream(config) << fmt::format(
      "trace_server: 127.0.0.1:{}\npprof_port: {}\nhostname: bench-node\nenabled_plugins: [{}]\n{}",
      s.grpc_port, test::FreePort(), plugins, extra);
  auto sensor = ChildProcess::Spawn({s.args.bin_dir + "/nodescope-sensor", "--config", config}, log);
  if (!sensor.ok()) return sensor.status();
  const bool up = test::WaitFor(
      [&] {
        return test::ReadFile(log).find("self endpoint on") != std::string::npos ||
               !(*sensor)->Running();
      },
      60s);
  if (!up || !(*sensor)->Running()) {
    return Status::Error("the sensor did not start:\n" + test::ReadFile(log));
  }
  if (!plugins.empty() && test::ReadFile(log).find("attached") == std::string::npos) {
    return Status::Error("no kernel probe attached:\n" + test::ReadFile(log));
  }
  std::this_thread::sleep_for(500ms);  // its start-up work (a /proc scan) out of the window
  return sensor;
}

// One loop iteration of a family's syscalls.
struct Loop {
  std::string family;  // ebpf_programs for the measured side
  std::string what;
  std::function<void()> setup, iteration, teardown;
};

// Iterations per second of `loop` over `seconds`.
double Rate(const Loop& loop, double seconds) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  uint64_t n = 0;
  const auto start = Clock::now();
  while (true) {
    for (int i = 0; i < 64; ++i) loop.iteration();
    n += 64;
    if (Clock::now() >= end) break;
  }
  return static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<Loop> Loops(const std::filesystem::path& dir) {
  static int null_fd = -1, zero_fd = -1, file_fd = -1, client = -1, server = -1;
  std::vector<Loop> loops;
  loops.push_back({"fd", "open + close /dev/null", nullptr, [] {
                     int fd = open("/dev/null", O_RDONLY);
                     close(fd);
                   }, nullptr});
  loops.push_back({"vfs", "write /dev/null + read /dev/zero, 1 byte",
                   [] {
                     null_fd = open("/dev/null", O_WRONLY);
                     zero_fd = open("/dev/zero", O_RDONLY);
                   },
                   [] {
                     char c = 0;
                     (void)!write(null_fd, &c, 1);
                     (void)!read(zero_fd, &c, 1);
                   },
                   [] {
                     close(null_fd);
                     close(zero_fd);
                   }});
  const std::string file = (dir / "sync-file").string();
  loops.push_back({"sync", "fdatasync of a file on /tmp",
                   [file] { file_fd = open(file.c_str(), O_CREAT | O_RDWR, 0600); },
                   [] { (void)fdatasync(file_fd); }, [] { close(file_fd); }});
  loops.push_back({"mount", "mount that fails (ENOENT)", nullptr,
                   [] { (void)mount("none", "/nonexistent-nodescope", "tmpfs", 0, nullptr); },
                   nullptr});
  loops.push_back({"shm", "shmget + shmctl(IPC_RMID)", nullptr, [] {
                     int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
                     shmctl(id, IPC_RMID, nullptr);
                   }, nullptr});
  auto tcp_setup = [] {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(listener, 1);
    getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
    client = socket(AF_INET, SOCK_STREAM, 0);
    connect(client, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    server = accept(listener, nullptr, nullptr);
    close(listener);
  };
  auto tcp_iteration = [] {
    char buf[64] = {};
    (void)!send(client, buf, sizeof(buf), 0);
    (void)!recv(server, buf, sizeof(buf), 0);
  };
  auto tcp_teardown = [] {
    close(client);
    close(server);
  };
  loops.push_back({"socket", "send + recv 64 bytes, loopback TCP", tcp_setup, tcp_iteration,
                   tcp_teardown});
  loops.push_back({"softirq", "send + recv 64 bytes, loopback TCP", tcp_setup, tcp_iteration,
                   tcp_teardown});
  loops.push_back({"process", "fork + _exit + waitpid", nullptr, [] {
                     pid_t pid = fork();
                     if (pid == 0) _exit(0);
                     waitpid(pid, nullptr, 0);
                   }, nullptr});
  loops.push_back({"process, fd, vfs, sync, mount, socket, hardirq, softirq, oomkill",
                   "other syscalls: getppid()", nullptr, [] { (void)getppid(); }, nullptr});
  return loops;
}

Status PerEventCost(Stack& s) {
  fmt::print("\nper-event cost ({} pairs of {:.1f} s, median)\n", s.args.pairs, s.args.seconds);
  fmt::print("{:<10} {:<40} {:>12} {:>12} {:>7} {:>10}\n", "family", "loop", "without it/s",
             "with it/s", "ratio", "ns added");
  for (const Loop& loop : Loops(s.dir)) {
    std::vector<double> without, with, ratios;
    for (int pair = 0; pair < s.args.pairs; ++pair) {
      double rate[2] = {0, 0};
      for (int i = 0; i < 2; ++i) {
        const bool on = (i == 0) == (pair % 2 == 1);
        auto sensor = on ? StartSensor(s, "ebpf-kernel",
                                       "ebpf_programs: [" + loop.family + "]\n")
                         : StartSensor(s, "", "");
        if (!sensor.ok()) return sensor.status();
        if (loop.setup) loop.setup();
        rate[on] = Rate(loop, s.args.seconds);
        if (loop.teardown) loop.teardown();
        (*sensor)->Terminate(15s);
      }
      without.push_back(rate[0]);
      with.push_back(rate[1]);
      ratios.push_back(rate[1] / rate[0]);
    }
    const double off = Median(without), on = Median(with);
    const std::string family = loop.family.size() > 10 ? "default" : loop.family;
    fmt::print("{:<10} {:<40} {:>12.0f} {:>12.0f} {:>7.3f} {:>10.0f}\n", family, loop.what, off,
               on, Median(ratios), 1e9 / on - 1e9 / off);
  }
  return Status::Ok();
}

// `n` children that each open and close a file, then wait for SIGKILL.
std::vector<pid_t> SpawnWaiters(int n) {
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open("/dev/null", O_RDONLY);
      close(fd);
      pause();
      _exit(0);
    }
    if (pid > 0) pids.push_back(pid);
  }
  return pids;
}

void KillAll(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids) kill(pid, SIGKILL);
  for (pid_t pid : pids) waitpid(pid, nullptr, 0);
}

Status Memory(Stack& s) {
  fmt::print("\nsensor memory with {} processes\n", s.args.processes);
  fmt::print("{:<52} {:>12} {:>12}\n", "", "no plugin", "ebpf-kernel");
  uint64_t rss[2][2] = {};
  double entries = -1, map_bytes = -1;
  for (int on = 0; on < 2; ++on) {
    auto sensor = on ? StartSensor(s, "ebpf-kernel", "") : StartSensor(s, "", "");
    if (!sensor.ok()) return sensor.status();
    std::this_thread::sleep_for(2s);
    rss[on][0] = StatusKiB((*sensor)->pid(), "VmRSS");
    std::vector<pid_t> pids = SpawnWaiters(s.args.processes);
    std::this_thread::sleep_for(4s);  // several update_every: every process read
    rss[on][1] = StatusKiB((*sensor)->pid(), "VmRSS");
    if (on) {
      const std::string metrics = test::HttpGet(s.http_port, "/metrics");
      entries = test::MetricValue(metrics,
                                  "nodescope_kernel_map_entries{host=\"bench-node\",map=\"procs\"}");
      map_bytes = test::MetricValue(metrics,
                                    "nodescope_kernel_map_bytes{host=\"bench-node\",map=\"procs\"}");
    }
    KillAll(pids);
    (*sensor)->Terminate(15s);
  }
  fmt::print("{:<52} {:>9} KiB {:>9} KiB\n", "sensor RSS before", rss[0][0], rss[1][0]);
  fmt::print("{:<52} {:>9} KiB {:>9} KiB   ratio {:.2f} (target <= 64 MiB)\n",
             fmt::format("sensor RSS with {} more processes", s.args.processes), rss[0][1],
             rss[1][1], static_cast<double>(rss[1][1]) / std::max<uint64_t>(1, rss[0][1]));
  fmt::print("{:<52} {:>12} {:>12.0f}\n", "per-process table entries (reported)", "",
             entries);
  fmt::print("{:<52} {:>12} {:>8.1f} MiB\n", "per-process table kernel memory (reported)", "",
             map_bytes / (1 << 20));
  return Status::Ok();
}

int Run(const Args& args) {
  Stack s;
  s.args = args;
  s.dir = std::filesystem::temp_directory_path() / fmt::format("nodescope-bench-kernel-{}", getpid());
  std::filesystem::create_directories(s.dir);
  s.grpc_port = test::FreePort();
  s.http_port = test::FreePort();
  const std::string config = (s.dir / "aggregator.yaml").string();
  std::ofstream(config) << fmt::format("listen: 127.0.0.1:{}\nhttp_listen: 127.0.0.1:{}\nlog_level: warn\n",
                                       s.grpc_port, s.http_port);
  auto aggregator = ChildProcess::Spawn(
      {args.bin_dir + "/nodescope-aggregator", "--config", config}, (s.dir / "aggregator.log").string());
  if (!aggregator.ok()) {
    fmt::print(stderr, "{}\n", aggregator.status().message());
    return 1;
  }
  s.aggregator = std::move(aggregator).value();
  int status = 0;
  test::WaitFor([&] {
    test::HttpGet(s.http_port, "/readyz", &status);
    return status == 200;
  }, 30s);
  Status done = PerEventCost(s);
  if (done.ok()) done = Memory(s);
  s.aggregator->Terminate(15s);
  std::filesystem::remove_all(s.dir);
  if (!done.ok()) {
    fmt::print(stderr, "{}\n", done.message());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace nodescope::bench

int main(int argc, char** argv) {
  nodescope::bench::Args args;
  args.bin_dir = std::filesystem::path(argv[0]).parent_path().string();
  CLI::App app("bench_kernel: ebpf-kernel's cost per event and the sensor's memory");
  app.add_option("--bin-dir", args.bin_dir, "where nodescope-sensor and nodescope-aggregator are");
  app.add_option("--pairs", args.pairs, "pairs per family (baseline + family on)")
      ->check(CLI::Range(1, 50));
  app.add_option("--seconds", args.seconds, "length of one measured loop")->check(CLI::Range(0.1, 60.0));
  app.add_option("--processes", args.processes, "processes for the memory figure")
      ->check(CLI::Range(1, 100000));
  CLI11_PARSE(app, argc, argv);
  return nodescope::bench::Run(args);
}
