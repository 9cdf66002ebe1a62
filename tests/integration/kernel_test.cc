// ebpf-kernel through the real pipeline, against ground truth: ns-kernel-workload performs known
// numbers of operations (kernel_workload.h) in a cgroup of its own, and the aggregator's /metrics
// must show exactly those deltas for its application and its cgroup, and at least those host-wide
// (exactly, for operations nothing else on the node does). An OOM kill inside a small memory
// cgroup is counted once for the killed application. Needs root, losetup and mkfs.ext4.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <sstream>
#include <string>

#include "sensor/proc/mountinfo.h"
#include "tests/integration/harness.h"
#include "tests/integration/kernel_workload.h"
#include "tests/integration/node_stack.h"

namespace nodescope::test {
namespace {

using namespace std::chrono_literals;
namespace w = workload;

constexpr char kHost[] = "kernel-node";
constexpr char kApp[] = "ns-kernel-workl";  // the workload's comm: its name cut to 15 bytes

std::string Cgroup2Root() {
  auto mounts = sensor::proc::ReadMountInfo("/proc/self/mountinfo");
  if (!mounts.ok()) return "";
  auto m = sensor::proc::FindMount(*mounts, "cgroup2");
  return m ? m->mount_point : "";
}

// A cgroup made for the test and removed after it (its processes have exited by then).
class TestCgroup {
 public:
  TestCgroup(const std::string& root, const std::string& name)
      : path_(root + "/" + name), name_("/" + name) {
    std::filesystem::create_directory(path_);
  }
  ~TestCgroup() { rmdir(path_.c_str()); }
  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }

 private:
  std::string path_, name_;
};

// A loop device over a sparse file with an empty ext4 on it; detached at the end.
class LoopExt4 {
 public:
  explicit LoopExt4(const std::string& image) : image_(image) {
    std::ofstream(image_).close();
    std::filesystem::resize_file(image_, 64 << 20);
    CommandResult r = RunCommand({"/usr/sbin/losetup", "-f", "--show", image_});
    if (r.exit_code != 0) {
      error_ = "losetup: " + r.err;
      return;
    }
    device_ = r.out.substr(0, r.out.find('\n'));
    r = RunCommand({"/usr/sbin/mkfs.ext4", "-q", "-F", device_});
    if (r.exit_code != 0) error_ = "mkfs.ext4: " + r.err;
  }
  ~LoopExt4() {
    if (!device_.empty()) RunCommand({"/usr/sbin/losetup", "-d", device_});
  }
  const std::string& device() const { return device_; }
  const std::string& error() const { return error_; }

 private:
  std::string image_, device_, error_;
};

// Runs the workload in `cgroup` (the child moves itself there before the exec, so the program
// counts from its first instruction in that cgroup); returns its exit code.
int RunWorkload(const std::string& cgroup_procs, std::vector<std::string> args,
                const std::string& memory_cgroup_procs = "") {
  pid_t pid = fork();
  if (pid == 0) {
    for (const std::string& procs : {cgroup_procs, memory_cgroup_procs}) {
      if (procs.empty()) continue;
      int fd = open(procs.c_str(), O_WRONLY);
      if (fd < 0 || write(fd, "0", 1) != 1) _exit(120);
      close(fd);
    }
    std::vector<char*> argv;
    std::string bin = BinDir() + "/ns-kernel-workload";
    argv.push_back(bin.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(121);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

// The parameter: the attach strategy the sensor is made to use (probe_strategies), so the raw_tp
// fallback is held to the same numbers as the BTF tracepoints this kernel picks by default.
class Kernel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    cgroup2_ = Cgroup2Root();
    ASSERT_FALSE(cgroup2_.empty()) << "no cgroup2 hierarchy mounted";
    ASSERT_TRUE(stack_.StartAggregator().ok());
    stack_.sensor_http_port = FreePort();
    stack_.dir.Write("sensor.yaml",
                     "trace_server: 127.0.0.1:" + std::to_string(stack_.grpc_port) +
                         "\npprof_port: " + std::to_string(stack_.sensor_http_port) +
                         "\nhostname: " + kHost +
                         "\nenabled_plugins: [ebpf-kernel]\n"
                         "ebpf_programs: [process, fd, vfs, sync, mount, shm, socket, oomkill]\n"
                         "ebpf_load_mode: return\nupdate_every: 250ms\n"
                         "probe_strategies: {kernel: " + GetParam() + "}\n");
    stack_.sensor = std::make_unique<Subprocess>(
        std::vector<std::string>{BinDir() + "/nodescope-sensor", "--config",
                                 stack_.dir.File("sensor.yaml")},
        stack_.dir.File("sensor.log"));
    ASSERT_TRUE(WaitFor(
        [&] {
          return stack_.sensor->Log().find("probe kernel: attached with strategy " + GetParam()) !=
                 std::string::npos;
        },
        60s))
        << stack_.sensor->Log();
  }
  void TearDown() override { stack_.Stop(); }

  std::string Scrape() { return HttpGet(stack_.http_port, "/metrics"); }
  // 0 when the series does not exist (yet).
  static double Value(const std::string& text, const std::string& metric,
                      const std::string& labels) {
    double v = MetricValue(text, "nodescope_" + metric + "{" + labels + "}");
    return v < 0 ? 0 : v;
  }
  static std::string AppLabels(const std::string& app) {
    return "app=\"" + app + "\",host=\"" + kHost + "\"";
  }
  static std::string CgroupLabels(const std::string& cgroup) {
    return "cgroup=\"" + cgroup + "\",host=\"" + kHost + "\"";
  }
  static std::string HostLabels() { return std::string("host=\"") + kHost + "\""; }

  // The ops run's arguments: a work directory and a mount point of the test's own.
  std::vector<std::string> OpsArgs(const LoopExt4& loop) {
    const std::string work = stack_.dir.File("work"), mnt = stack_.dir.File("mnt");
    std::filesystem::create_directories(work);
    std::filesystem::create_directories(mnt);
    return {"ops", work, loop.device(), mnt};
  }
  // Waits until the cgroup's series counted `exits` task exits: a run's last counts arrived.
  bool WaitExits(const std::string& cgroup, double exits) {
    return WaitFor(
        [&] { return Value(Scrape(), "process_exit_total", CgroupLabels(cgroup)) >= exits; }, 20s);
  }

  std::string cgroup2_;
  NodeStack stack_;
};

TEST_P(Kernel, KnownOperationsGiveExactDeltasPerApplicationAndCgroup) {
  const std::string tag = std::to_string(getpid());
  TestCgroup base(cgroup2_, "nodescope-kernel-base-" + tag);
  TestCgroup ops(cgroup2_, "nodescope-kernel-ops-" + tag);
  LoopExt4 loop(stack_.dir.File("ext4.img"));
  ASSERT_TRUE(loop.error().empty()) << loop.error();
  const std::vector<std::string> ops_args = OpsArgs(loop);

  // The base run: the program's own start and exit, which the ops run repeats.
  ASSERT_EQ(RunWorkload(base.path() + "/cgroup.procs", {"base", ops_args[1]}), 0);
  ASSERT_TRUE(WaitExits(base.name(), 1)) << "the base run's exit never showed\n" << Scrape();
  const std::string before = Scrape();

  ASSERT_EQ(RunWorkload(ops.path() + "/cgroup.procs", ops_args), 0);
  ASSERT_TRUE(WaitExits(ops.name(), 1 + w::kForks + w::kThreads)) << Scrape();
  std::this_thread::sleep_for(600ms);  // two more update_every: nothing may still move
  const std::string after = Scrape();

  const std::map<std::string, double> expected = {
      {"fd_open_total", w::kCreates + w::kOpenFails},
      {"fd_open_errors_total", w::kOpenFails},
      {"fd_close_total", w::kCreates + 4},  // the files and four sockets
      {"fd_close_errors_total", 0},
      {"vfs_open_total", w::kCreates},
      {"vfs_open_errors_total", w::kOpenFails},
      {"vfs_create_total", w::kCreates},
      {"vfs_write_total", w::kWrites},
      {"vfs_write_bytes_total", w::kWrites * w::kWriteBytes},
      {"vfs_read_total", w::kReads},
      {"vfs_read_bytes_total", w::kReads * w::kReadBytes},
      {"vfs_writev_total", w::kWritevs},
      {"vfs_writev_bytes_total", w::kWritevs * 100},
      {"vfs_readv_total", w::kPreadvs},
      {"vfs_readv_bytes_total", w::kPreadvs * 100},
      {"vfs_fsync_total", w::kFsyncs + w::kFdatasyncs},
      {"vfs_unlink_total", w::kUnlinks + w::kUnlinkFails},
      {"vfs_unlink_errors_total", w::kUnlinkFails},
      {"sync_fsync_total", w::kFsyncs},
      {"sync_fdatasync_total", w::kFdatasyncs},
      {"sync_sync_total", w::kSyncs},
      {"sync_syncfs_total", 1},
      {"sync_msync_total", 1},
      {"sync_sync_file_range_total", 1},
      {"process_create_total", w::kForks},
      {"process_thread_create_total", w::kThreads},
      {"process_exit_total", w::kForks + w::kThreads},
      {"process_create_errors_total", 0},
      {"mount_mount_total", 2},
      {"mount_mount_errors_total", 1},
      {"mount_umount_total", 1},
      {"mount_umount_errors_total", 0},
      {"shm_shmget_total", 1},
      {"shm_shmat_total", 1},
      {"shm_shmdt_total", 1},
      {"shm_shmctl_total", 1},
      {"socket_connections_outbound_total", 1},
      {"socket_connections_inbound_total", 1},
      {"socket_tcp_send_total", w::kTcpChunks},
      {"socket_tcp_send_bytes_total", w::kTcpChunks * w::kTcpChunk},
      {"socket_tcp_receive_bytes_total", w::kTcpChunks * w::kTcpChunk},
      {"socket_udp_send_total", w::kUdpDatagrams},
      {"socket_udp_send_bytes_total", w::kUdpDatagrams * w::kUdpBytes},
      {"socket_udp_receive_total", w::kUdpDatagrams},
      {"socket_udp_receive_bytes_total", w::kUdpDatagrams * w::kUdpBytes},
  };
  // Nothing else on a test node mounts, uses System V shared memory or calls sync, syncfs, msync
  // or sync_file_range: those must match host-wide exactly too.
  const std::set<std::string> rare = {"mount_mount_total",   "mount_mount_errors_total",
                                      "mount_umount_total",  "shm_shmget_total",
                                      "shm_shmat_total",     "shm_shmdt_total",
                                      "shm_shmctl_total",    "sync_sync_total",
                                      "sync_syncfs_total",   "sync_msync_total",
                                      "sync_sync_file_range_total"};
  for (const auto& [metric, want] : expected) {
    const double base_value = Value(after, metric, CgroupLabels(base.name()));
    EXPECT_EQ(Value(after, metric, CgroupLabels(ops.name())) - base_value, want)
        << metric << " in the ops cgroup, less the base run's";
    // The application series holds both runs, each with the program's own start and exit, and
    // not what the test's forked child did in the cgroup before its exec (another image).
    const double app_base = Value(before, metric, AppLabels(kApp));
    EXPECT_EQ(Value(after, metric, AppLabels(kApp)) - 2 * app_base, want)
        << metric << " of application " << kApp;
    const double host = Value(after, metric, HostLabels()) - Value(before, metric, HostLabels());
    if (rare.count(metric)) {
      EXPECT_EQ(host, want) << metric << " host-wide";
    } else {
      EXPECT_GE(host, want) << metric << " host-wide";
    }
  }
  // recv() returns what has arrived, so its call count is only bounded.
  EXPECT_GE(Value(after, "socket_tcp_receive_total", CgroupLabels(ops.name())) -
                Value(after, "socket_tcp_receive_total", CgroupLabels(base.name())),
            w::kTcpChunks);
}

// The OOM killer picks the workload in a 32 MiB memory cgroup: one kill for its application and
// its cgroup, one host-wide.
TEST_P(Kernel, OomKillCountsOnceForTheKilledApplication) {
  const std::string tag = std::to_string(getpid());
  TestCgroup cg(cgroup2_, "nodescope-kernel-oom-" + tag);
  // Memory limits: the v2 controller where it is enabled, else the v1 memory hierarchy.
  std::string memory_procs;
  std::unique_ptr<TestCgroup> v1;
  if (std::ifstream(cg.path() + "/memory.max").good()) {
    std::ofstream(cg.path() + "/memory.max") << (32 << 20);
    std::ofstream(cg.path() + "/memory.swap.max") << 0;
  } else {
    ASSERT_TRUE(std::filesystem::exists("/sys/fs/cgroup/memory"))
        << "neither cgroup2 memory.max nor a v1 memory hierarchy";
    v1 = std::make_unique<TestCgroup>("/sys/fs/cgroup/memory", "nodescope-kernel-oom-" + tag);
    std::ofstream(v1->path() + "/memory.limit_in_bytes") << (32 << 20);
    std::ofstream(v1->path() + "/memory.memsw.limit_in_bytes") << (32 << 20);
    memory_procs = v1->path() + "/cgroup.procs";
  }
  const std::string before = Scrape();
  const double host_before = Value(before, "oomkill_kills_total", HostLabels());
  EXPECT_EQ(RunWorkload(cg.path() + "/cgroup.procs", {"oom", stack_.dir.path()}, memory_procs),
            128 + SIGKILL);
  ASSERT_TRUE(WaitFor(
      [&] { return Value(Scrape(), "oomkill_kills_total", CgroupLabels(cg.name())) >= 1; }, 20s))
      << Scrape();
  std::this_thread::sleep_for(600ms);
  const std::string after = Scrape();
  EXPECT_EQ(Value(after, "oomkill_kills_total", CgroupLabels(cg.name())), 1);
  EXPECT_EQ(Value(after, "oomkill_kills_total", AppLabels(kApp)), 1);
  EXPECT_EQ(Value(after, "oomkill_kills_total", HostLabels()) - host_before, 1);
}

// libbpf-tools on the same run: syscount and exitsnoop filtered on the workload's cgroup and
// opensnoop on its name must agree with the cgroup's series call for call.
TEST_P(Kernel, AgreesWithLibbpfToolsOnTheSameRun) {
  for (const char* tool : {"/usr/sbin/syscount", "/usr/sbin/exitsnoop", "/usr/sbin/opensnoop"}) {
    ASSERT_EQ(access(tool, X_OK), 0) << tool << " is needed (libbpf-tools)";
  }
  const std::string tag = std::to_string(getpid());
  TestCgroup cg(cgroup2_, "nodescope-kernel-peers-" + tag);
  LoopExt4 loop(stack_.dir.File("ext4.img"));
  ASSERT_TRUE(loop.error().empty()) << loop.error();
  const std::vector<std::string> ops_args = OpsArgs(loop);

  // Line-buffered (stdbuf): the tools' headers say when they are attached.
  Subprocess syscount({"/usr/bin/stdbuf", "-oL", "/usr/sbin/syscount", "-c", cg.path(), "-T", "200"},
                      stack_.dir.File("syscount.log"));
  Subprocess exitsnoop({"/usr/bin/stdbuf", "-oL", "/usr/sbin/exitsnoop", "-c", cg.path(), "-T"},
                       stack_.dir.File("exitsnoop.log"));
  Subprocess opensnoop({"/usr/bin/stdbuf", "-oL", "/usr/sbin/opensnoop", "-n", kApp},
                       stack_.dir.File("opensnoop.log"));
  ASSERT_TRUE(WaitFor(
      [&] {
        return syscount.Log().find("Tracing syscalls") != std::string::npos &&
               exitsnoop.Log().find("PCOMM") != std::string::npos &&
               opensnoop.Log().find("PATH") != std::string::npos;
      },
      30s))
      << syscount.Log() << exitsnoop.Log() << opensnoop.Log();

  ASSERT_EQ(RunWorkload(cg.path() + "/cgroup.procs", ops_args), 0);
  ASSERT_TRUE(WaitExits(cg.name(), 1 + w::kForks + w::kThreads)) << Scrape();
  std::this_thread::sleep_for(600ms);
  const std::string after = Scrape();
  for (Subprocess* p : {&syscount, &exitsnoop, &opensnoop}) p->Stop(SIGINT);

  // syscount's summary: "SYSCALL COUNT" and one line per syscall.
  std::map<std::string, double> calls;
  std::istringstream lines(syscount.Log());
  std::string line;
  bool table = false;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string name;
    double count = 0;
    if (!(fields >> name)) continue;
    if (name == "SYSCALL") {
      table = true;
      continue;
    }
    if (table && fields >> count) calls[name] += count;
  }
  ASSERT_FALSE(calls.empty()) << syscount.Log();
  auto sum = [&](std::initializer_list<const char*> names) {
    double n = 0;
    for (const char* name : names) n += calls.count(name) ? calls[name] : 0;
    return n;
  };
  const std::string labels = CgroupLabels(cg.name());
  const std::vector<std::pair<std::string, double>> pairs = {
      {"fd_open_total", sum({"open", "openat", "openat2", "creat"})},
      {"fd_close_total", sum({"close"})},
      {"vfs_read_total", sum({"read", "pread64"})},
      {"vfs_write_total", sum({"write", "pwrite64"})},
      {"vfs_readv_total", sum({"readv", "preadv", "preadv2"})},
      {"vfs_writev_total", sum({"writev", "pwritev", "pwritev2"})},
      {"vfs_unlink_total", sum({"unlink", "unlinkat"})},
      {"sync_fsync_total", sum({"fsync"})},
      {"sync_fdatasync_total", sum({"fdatasync"})},
      {"sync_sync_total", sum({"sync"})},
      {"sync_syncfs_total", sum({"syncfs"})},
      {"sync_msync_total", sum({"msync"})},
      {"sync_sync_file_range_total", sum({"sync_file_range"})},
      {"mount_mount_total", sum({"mount"})},
      {"mount_umount_total", sum({"umount2"})},
      {"shm_shmget_total", sum({"shmget"})},
      {"shm_shmat_total", sum({"shmat"})},
      {"shm_shmdt_total", sum({"shmdt"})},
      {"shm_shmctl_total", sum({"shmctl"})},
      {"socket_connections_inbound_total", sum({"accept", "accept4"})},
  };
  for (const auto& [metric, peer] : pairs) {
    EXPECT_GT(peer, 0) << metric << ": syscount saw none\n" << syscount.Log();
    EXPECT_EQ(Value(after, metric, labels), peer) << metric << " against syscount";
  }
  // exitsnoop -T: one line per task that exited, the process itself and its threads.
  size_t exit_lines = 0;
  std::istringstream ex(exitsnoop.Log());
  while (std::getline(ex, line)) exit_lines += line.rfind(kApp, 0) == 0;
  EXPECT_EQ(Value(after, "process_exit_total", labels), exit_lines) << exitsnoop.Log();
  // opensnoop: one line per open call of the workload's image (the test's child, which opens
  // cgroup.procs before its exec, has another name).
  size_t open_lines = 0;
  std::istringstream op(opensnoop.Log());
  while (std::getline(op, line)) open_lines += line.find(kApp) != std::string::npos;
  EXPECT_EQ(Value(after, "fd_open_total", labels), open_lines) << opensnoop.Log();
}

INSTANTIATE_TEST_SUITE_P(Strategies, Kernel, ::testing::Values("tp_btf", "raw_tp"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace nodescope::test
