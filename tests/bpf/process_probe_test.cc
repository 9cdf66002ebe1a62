// Loads the process probe with each attach strategy, runs real children and checks every field
// of their exec/fork/exit events against what this test did. Needs root.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sensor/bpf/environment.h"
#include "sensor/plugins/process/process_plugin.h"
#include "sensor/proc/mountinfo.h"
#include "tests/bpf/capturing_sink.h"

namespace nodescope::sensor::process {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Kind = v1::ProcessEvent::Kind;

int64_t Now(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Names and ids of the BPF programs loaded in the kernel right now.
std::vector<std::pair<uint32_t, std::string>> LoadedPrograms() {
  std::vector<std::pair<uint32_t, std::string>> programs;
  uint32_t id = 0;
  while (bpf_prog_get_next_id(id, &id) == 0) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;  // unloaded meanwhile
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) programs.emplace_back(id, info.name);
    close(fd);
  }
  return programs;
}

uint64_t Inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

class ProcessProbeTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    Status env = bpf::PrepareEnvironment();
    ASSERT_TRUE(env.ok()) << env.message();
  }

  void SetUp() override {
    // Children move into a cgroup of their own before exec, so exec and exit carry a cgroup id
    // different from the fork's (which is the parent's, ours).
    Result<std::vector<proc::Mount>> mounts = proc::ReadMountInfo("/proc/self/mountinfo");
    ASSERT_TRUE(mounts.ok());
    std::optional<proc::Mount> cgroup2 = proc::FindMount(*mounts, "cgroup2");
    ASSERT_TRUE(cgroup2) << "this test needs a cgroup2 mount";
    std::ifstream cgroup_file("/proc/self/cgroup");
    std::string line, own;
    while (std::getline(cgroup_file, line)) {
      if (line.rfind("0::", 0) == 0) own = line.substr(3);
    }
    own_cgroup_dir_ = cgroup2->mount_point + (own == "/" ? "" : own);
    child_cgroup_dir_ = own_cgroup_dir_ + "/nodescope_probe_test_" + std::to_string(getpid());
    ASSERT_TRUE(fs::create_directory(child_cgroup_dir_)) << child_cgroup_dir_;
    procs_file_ = child_cgroup_dir_ + "/cgroup.procs";

    cache_ = std::make_unique<proc::ProcessCache>(&users_, proc::ProcessCache::Options{});
    ASSERT_TRUE(cache_->SeedFromProc().ok());
    before_ = LoadedPrograms();
  }

  void TearDown() override {
    plugin_.Stop();
    for (int i = 0; i < 50 && rmdir(child_cgroup_dir_.c_str()) != 0 && errno == EBUSY; ++i) {
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_FALSE(fs::exists(child_cgroup_dir_));
  }

  // Forks a child that joins the test cgroup and execs `argv`. Async-signal-safe calls only.
  pid_t Spawn(const char* path, const std::vector<const char*>& argv) {
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const char* a : argv) args.push_back(const_cast<char*>(a));
    args.push_back(nullptr);
    const char* procs = procs_file_.c_str();
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(procs, O_WRONLY);
      if (fd < 0 || write(fd, "0", 1) != 1) _exit(120);  // "0": the writing process itself
      close(fd);
      execv(path, args.data());
      _exit(127);
    }
    return pid;
  }

  struct Window {
    int64_t wall_begin, wall_end, mono_begin, mono_end;
  };

  // Checks one child's events: fork, exec, exit in this order, every field.
  void CheckChild(pid_t pid, const Window& w, const std::string& comm, const std::string& filename,
                  int exit_code, int signal) {
    std::vector<v1::Event> events = sink_.WaitFor(static_cast<uint32_t>(pid), 3);
    ASSERT_EQ(events.size(), 3u) << "pid " << pid;
    const uint64_t own_cgroup = Inode(own_cgroup_dir_);
    const uint64_t child_cgroup = Inode(child_cgroup_dir_);
    const Kind kinds[] = {v1::ProcessEvent::FORK, v1::ProcessEvent::EXEC, v1::ProcessEvent::EXIT};
    for (size_t i = 0; i < 3; ++i) {
      const v1::Event& e = events[i];
      const v1::ProcessEvent& p = e.process();
      SCOPED_TRACE("event " + std::to_string(i) + ": " + p.ShortDebugString());
      std::cerr << GetParam() << " t=" << e.time_unix_nano() << " " << p.ShortDebugString() << "\n";
      EXPECT_EQ(p.kind(), kinds[i]);
      EXPECT_EQ(p.pid(), static_cast<uint32_t>(pid));
      EXPECT_EQ(p.ppid(), static_cast<uint32_t>(getpid()));
      EXPECT_EQ(p.uid(), 0u);
      EXPECT_EQ(p.user(), "root");
      EXPECT_GE(e.time_unix_nano(), w.wall_begin);
      EXPECT_LE(e.time_unix_nano(), w.wall_end);
      if (i > 0) {
        EXPECT_GE(e.time_unix_nano(), events[i - 1].time_unix_nano());
      }
    }
    const v1::ProcessEvent& fork = events[0].process();
    EXPECT_EQ(fork.process_name(), ReadLine("/proc/self/comm"));
    EXPECT_EQ(fork.filename(), fs::read_symlink("/proc/self/exe").string());
    EXPECT_EQ(fork.cgroup_id(), own_cgroup);
    EXPECT_EQ(fork.exit_code(), 0);
    EXPECT_EQ(fork.duration_ns(), 0u);

    const v1::ProcessEvent& exec = events[1].process();
    EXPECT_EQ(exec.process_name(), comm);
    EXPECT_EQ(exec.filename(), filename);
    EXPECT_EQ(exec.cgroup_id(), child_cgroup);
    EXPECT_EQ(exec.duration_ns(), 0u);

    const v1::ProcessEvent& exit = events[2].process();
    EXPECT_EQ(exit.process_name(), comm);
    EXPECT_EQ(exit.filename(), filename);
    EXPECT_EQ(exit.cgroup_id(), child_cgroup);
    EXPECT_EQ(exit.exit_code(), exit_code);
    EXPECT_EQ(exit.signal(), signal);
    EXPECT_GT(exit.duration_ns(), 0u);
    EXPECT_LT(exit.duration_ns(), static_cast<uint64_t>(w.mono_end - w.mono_begin));
    // The child lived at least from its exec to its exit.
    EXPECT_GE(static_cast<int64_t>(exit.duration_ns()),
              events[2].time_unix_nano() - events[1].time_unix_nano());

    std::optional<proc::ProcessInfo> cached = cache_->Lookup(static_cast<uint32_t>(pid));
    ASSERT_TRUE(cached);
    EXPECT_TRUE(cached->exited);
    EXPECT_EQ(cached->filename, filename);
    EXPECT_EQ(cached->comm, comm);
    EXPECT_EQ(cached->cgroup_id, child_cgroup);
  }

  proc::UserResolver users_;
  std::unique_ptr<proc::ProcessCache> cache_;
  CapturingSink sink_;
  ProcessPlugin plugin_;
  std::string own_cgroup_dir_, child_cgroup_dir_, procs_file_;
  std::vector<std::pair<uint32_t, std::string>> before_;
};

TEST_P(ProcessProbeTest, ExitingAndKilledChildren) {
  const std::string strategy = GetParam();
  Status started = plugin_.Start(&sink_, cache_.get(), strategy);
  ASSERT_TRUE(started.ok()) << started.message();
  v1::ProbeStatus status = plugin_.probe_status();
  EXPECT_EQ(status.probe(), "process");
  EXPECT_EQ(status.strategy(), strategy);
  EXPECT_EQ(status.state(), "attached");
  EXPECT_EQ(status.error(), "");
  EXPECT_EQ(status.tried_size(), 0);

  // Exactly this strategy's three programs were loaded.
  std::set<std::string> loaded;
  std::set<uint32_t> old_ids, new_ids;
  for (const auto& [id, name] : before_) old_ids.insert(id);
  for (const auto& [id, name] : LoadedPrograms()) {
    if (!old_ids.count(id) && name.find("__") != std::string::npos) {
      loaded.insert(name);
      new_ids.insert(id);
    }
  }
  // The kernel keeps 15 characters of a program name.
  std::set<std::string> expected;
  for (const char* hook : {"exec", "fork", "exit"}) {
    expected.insert((strategy + "__" + hook).substr(0, 15));
  }
  EXPECT_EQ(loaded, expected);

  // A thread is neither a fork nor, when it ends, an exit.
  uint32_t thread_id = 0;
  std::thread([&] { thread_id = static_cast<uint32_t>(syscall(SYS_gettid)); }).join();

  // 1: sh exits with 3.
  Window w1{Now(CLOCK_REALTIME), 0, Now(CLOCK_MONOTONIC), 0};
  pid_t sh = Spawn("/bin/sh", {"sh", "-c", "exit 3"});
  ASSERT_GT(sh, 0);
  int wstatus = 0;
  ASSERT_EQ(waitpid(sh, &wstatus, 0), sh);
  w1.mono_end = Now(CLOCK_MONOTONIC);
  w1.wall_end = Now(CLOCK_REALTIME);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 3) << wstatus;
  CheckChild(sh, w1, "sh", "/bin/sh", 3, 0);

  // 2: sleep killed by SIGKILL once it has exec'd.
  Window w2{Now(CLOCK_REALTIME), 0, Now(CLOCK_MONOTONIC), 0};
  pid_t sleeper = Spawn("/bin/sleep", {"sleep", "60"});
  ASSERT_GT(sleeper, 0);
  ASSERT_EQ(sink_.WaitFor(static_cast<uint32_t>(sleeper), 2).size(), 2u);
  ASSERT_EQ(kill(sleeper, SIGKILL), 0);
  ASSERT_EQ(waitpid(sleeper, &wstatus, 0), sleeper);
  w2.mono_end = Now(CLOCK_MONOTONIC);
  w2.wall_end = Now(CLOCK_REALTIME);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << wstatus;
  CheckChild(sleeper, w2, "sleep", "/bin/sleep", 137, 9);

  // Threads have a tid of their own but our pid; we neither forked nor exec'd nor exited.
  EXPECT_TRUE(sink_.Snapshot(thread_id).empty()) << "thread " << thread_id << " was reported";
  EXPECT_TRUE(sink_.Snapshot(static_cast<uint32_t>(getpid())).empty()) << "a thread was reported";

  ProcessPlugin::Counters counters = plugin_.counters();
  EXPECT_GE(counters.exec, 2u);
  EXPECT_GE(counters.fork, 2u);
  EXPECT_GE(counters.exit, 2u);
  EXPECT_EQ(counters.ringbuf_drops, 0u);
  EXPECT_EQ(counters.fork_unresolved, 0u);
  EXPECT_EQ(counters.malformed, 0u);

  // Stop detaches and unloads everything it loaded.
  // tp_btf programs are freed after an RCU grace period, not when the last fd closes.
  plugin_.Stop();
  auto stopped = std::chrono::steady_clock::now();
  std::vector<std::string> left;
  do {
    left.clear();
    for (const auto& [id, name] : LoadedPrograms()) {
      if (new_ids.count(id)) left.push_back(name);
    }
    if (!left.empty()) std::this_thread::sleep_for(10ms);
  } while (!left.empty() && std::chrono::steady_clock::now() - stopped < 2s);
  EXPECT_TRUE(left.empty()) << "still loaded 2 s after Stop(): " << left.size() << " programs";
  EXPECT_EQ(plugin_.counters().ringbuf_drops, 0u);
}

INSTANTIATE_TEST_SUITE_P(Strategies, ProcessProbeTest, ::testing::Values("tp_btf", "tracepoint"),
                         [](const auto& info) { return info.param; });

TEST(ProcessProbeSelection, PrefersTpBtfHere) {
  ASSERT_TRUE(bpf::PrepareEnvironment().ok());
  proc::UserResolver users;
  proc::ProcessCache cache(&users, proc::ProcessCache::Options{});
  CapturingSink sink;
  ProcessPlugin plugin;
  Status started = plugin.Start(&sink, &cache);
  ASSERT_TRUE(started.ok()) << started.message();
  EXPECT_EQ(plugin.probe_status().strategy(), "tp_btf");
  EXPECT_EQ(plugin.probe_status().tried_size(), 0);
  EXPECT_FALSE(plugin.Start(&sink, &cache).ok());  // already running
}

TEST(ProcessProbeSelection, UnknownForcedStrategyFailsClearly) {
  proc::UserResolver users;
  proc::ProcessCache cache(&users, proc::ProcessCache::Options{});
  CapturingSink sink;
  ProcessPlugin plugin;
  Status started = plugin.Start(&sink, &cache, "fentry");
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.message(),
            "probe process: unknown attach strategy 'fentry' (this probe offers: tp_btf, "
            "tracepoint)");
  EXPECT_EQ(plugin.probe_status().state(), "failed");
  EXPECT_EQ(plugin.probe_status().error(), started.message());
}

}  // namespace
}  // namespace nodescope::sensor::process
