// ebpf-bash through the real pipeline: interactive shells under tmux (one of the host's
// /usr/bin/bash, one of a copy of it in a private tmpfs of another mount namespace, run as
// nobody), lines typed with `tmux send-keys`, and the `bash` records the aggregator writes held
// against what was typed and what tmux and /proc say about each shell. Needs root and tmux.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/node_stack.h"

namespace nodescope::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kHost[] = "bash-node";
constexpr char kPrompt[] = "NSH$ ";
constexpr size_t kLineMax = 4096;  // NS_BASH_LINE_MAX
// A shell's environment: no rc files, no history file, a UTF-8 locale (else readline turns
// bytes above 0x7f into meta keys) and a prompt the test counts.
constexpr char kShellEnv[] =
    "env -i PATH=/usr/bin:/bin TERM=xterm LC_ALL=C.UTF-8 HOME=/ HISTFILE= INPUTRC=/dev/null "
    "\"PS1=NSH$ \"";

struct Pane {
  pid_t pid = 0;
  std::string tty;  // "pts/3"
};

// A tmux server of this test alone (its own socket); killed with every shell in it when the
// test ends, pass or fail.
class Tmux {
 public:
  Tmux() : socket_("nodescope-bash-test-" + std::to_string(getpid())) {}
  ~Tmux() { KillServer(); }

  CommandResult Run(std::vector<std::string> args) {
    std::vector<std::string> argv = {
        "/usr/bin/env", "LC_ALL=C.UTF-8", "SHELL=/bin/sh", "/usr/bin/tmux", "-L", socket_,
        "-f",           "/dev/null"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  // Starts `command` (run by /bin/sh) in a new detached session.
  Status NewSession(const std::string& name, const std::string& command) {
    CommandResult r = Run({"new-session", "-d", "-s", name, "-x", "200", "-y", "50", command});
    if (r.exit_code != 0) return Status::Error("tmux new-session: " + r.err);
    started_ = true;
    return Status::Ok();
  }
  Pane PaneOf(const std::string& session) {
    CommandResult r = Run({"display", "-p", "-t", session, "#{pane_pid} #{pane_tty}"});
    std::istringstream in(r.out);
    Pane pane;
    std::string tty;
    in >> pane.pid >> tty;
    if (tty.rfind("/dev/", 0) == 0) pane.tty = tty.substr(5);
    pids_.push_back(pane.pid);
    return pane;
  }
  // Waits until the pane shows the prompt `n` times in all (history included): readline is
  // reading again, with the terminal in raw mode.
  bool WaitPrompts(const std::string& session, size_t n) {
    return WaitFor(
        [&] {
          std::string text = Run({"capture-pane", "-p", "-J", "-S", "-", "-t", session}).out;
          size_t count = 0;
          for (size_t at = text.find(kPrompt); at != std::string::npos;
               at = text.find(kPrompt, at + 1)) {
            ++count;
          }
          return count >= n;
        },
        15s);
  }
  void Type(const std::string& session, const std::string& line) {
    if (!line.empty()) Run({"send-keys", "-t", session, "-l", line});
    Run({"send-keys", "-t", session, "Enter"});
  }

 private:
  void KillServer() {
    if (!started_) return;
    Run({"kill-server"});
    // The shells get SIGHUP; the namespace of the copy goes with its last process.
    for (pid_t pid : pids_) {
      if (pid <= 0) continue;
      if (!WaitFor([&] { return kill(pid, 0) != 0; }, 5s)) kill(pid, SIGKILL);
      EXPECT_TRUE(WaitFor([&] { return kill(pid, 0) != 0; }, 5s)) << "shell " << pid;
    }
  }

  std::string socket_;
  bool started_ = false;
  std::vector<pid_t> pids_;
};

uint32_t ParentOf(pid_t pid) {
  // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so from the last ')'.
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream in(stat.substr(stat.rfind(')') + 2));
  std::string state;
  uint32_t ppid = 0;
  in >> state >> ppid;
  return ppid;
}

std::string CgroupIdOf(pid_t pid) {
  std::string cgroup_path;
  std::istringstream lines(ReadFile("/proc/" + std::to_string(pid) + "/cgroup"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("0::", 0) == 0) cgroup_path = line.substr(3);
  }
  std::string mount_point;
  std::istringstream mounts(ReadFile("/proc/self/mountinfo"));
  for (std::string line; std::getline(mounts, line);) {
    if (line.find(" - cgroup2 ") == std::string::npos) continue;
    std::istringstream fields(line);
    std::string skip;
    fields >> skip >> skip >> skip >> skip >> mount_point;
    break;
  }
  struct stat st {};
  if (mount_point.empty() || stat((mount_point + cgroup_path).c_str(), &st) != 0) return "?";
  return std::to_string(st.st_ino);
}

// "2026-11-30T14:13:47.123456Z", as the message starts.
std::string UtcMicros(int64_t unix_nano) {
  const time_t seconds = static_cast<time_t>(unix_nano / 1'000'000'000);
  tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[64];
  size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  snprintf(stamp + n, sizeof(stamp) - n, ".%06dZ",
           static_cast<int>((unix_nano % 1'000'000'000) / 1000));
  return stamp;
}

// The parameter: whether the sensor sees the host's / and /proc at other paths (HOST_ROOT,
// HOST_PROC), as in its container with the host's / at /rootfs; here symlinks to / and /proc, so
// the host's bash is found as <HOST_ROOT>/usr/bin/bash and every shell's file through
// <HOST_PROC>/<pid>/exe.
class Bash : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    ASSERT_EQ(access("/usr/bin/tmux", X_OK), 0) << "tmux is needed (scripts/install-deps.sh)";
    ASSERT_TRUE(stack_.StartAggregator().ok());
    tag_ = std::to_string(getpid());
  }
  void TearDown() override { stack_.Stop(); }

  void StartSensor() {
    stack_.sensor_http_port = FreePort();
    stack_.dir.Write("sensor.yaml",
                     "trace_server: 127.0.0.1:" + std::to_string(stack_.grpc_port) + "\n" +
                         "pprof_port: " + std::to_string(stack_.sensor_http_port) +
                         "\nhostname: " + kHost + "\nenabled_plugins: [ebpf-bash]\n");
    std::map<std::string, std::string> env;
    if (GetParam()) {
      host_root_ = stack_.dir.File("rootfs");
      host_proc_ = stack_.dir.File("rootfs-proc");
      std::error_code ec;
      std::filesystem::create_directory_symlink("/", host_root_, ec);
      ASSERT_FALSE(ec) << ec.message();
      std::filesystem::create_directory_symlink("/proc", host_proc_, ec);
      ASSERT_FALSE(ec) << ec.message();
      env = {{"HOST_PROC", host_proc_}, {"HOST_ROOT", host_root_}};
    }
    stack_.sensor = std::make_unique<Subprocess>(
        std::vector<std::string>{BinDir() + "/nodescope-sensor", "--config",
                                 stack_.dir.File("sensor.yaml")},
        stack_.dir.File("sensor.log"), env);
    ASSERT_TRUE(WaitFor(
        [&] { return stack_.sensor->Log().find("probed at start") != std::string::npos; }, 60s))
        << stack_.sensor->Log();
  }
  bool SensorLogHas(const std::string& text) {
    return WaitFor([&] { return stack_.sensor->Log().find(text) != std::string::npos; }, 10s);
  }
  // The bash records of `pid`, in the order the sink wrote them.
  std::vector<json> RecordsOf(pid_t pid) {
    std::vector<json> out;
    for (const json& r : stack_.Records("bash")) {
      if (r["fields"].value("pid", "") == std::to_string(pid)) out.push_back(r);
    }
    return out;
  }
  std::string Dump() {
    std::string all;
    for (const json& r : stack_.Records("bash")) all += r.dump().substr(0, 300) + "\n";
    std::string metrics;
    std::istringstream lines(HttpGet(stack_.sensor_http_port, "/metrics"));
    for (std::string line; std::getline(lines, line);) {
      if (line.find("bash") != std::string::npos && line[0] != '#') metrics += line + "\n";
    }
    std::istringstream agg(HttpGet(stack_.http_port, "/metrics"));
    for (std::string line; std::getline(agg, line);) {
      if (line.find("records_") != std::string::npos && line[0] != '#') metrics += line + "\n";
    }
    size_t raw = 0;
    for (const std::string& line : CompleteLines(stack_.dir.File("records.jsonl"))) {
      if (line.find("\"source\":\"bash\"") == std::string::npos) continue;
      ++raw;
      try {
        (void)json::parse(line);
      } catch (const std::exception& e) {
        all += std::string("unparsable: ") + e.what() + ": " + line.substr(0, 200) + "\n";
      }
    }
    all += "sink lines of source bash: " + std::to_string(raw) + "\n";
    return all + "aggregator log:\n" + stack_.aggregator->Log() + "sensor metrics:\n" + metrics +
           "sensor log:\n" + stack_.sensor->Log();
  }
  // Types `lines` into `session`, one per prompt (the first prompt is number `prompts`).
  void TypeLines(const std::string& session, const std::vector<std::string>& lines,
                 size_t prompts) {
    for (const std::string& line : lines) {
      ASSERT_TRUE(tmux_.WaitPrompts(session, prompts))
          << "no prompt " << prompts << " in " << session;
      tmux_.Type(session, line);
      ++prompts;
    }
    ASSERT_TRUE(tmux_.WaitPrompts(session, prompts));
  }
  // Each expected line once, in order, nothing else from this shell; every field of each.
  void CheckShell(const Pane& pane, const std::string& user,
                  const std::vector<std::string>& lines) {
    std::vector<std::string> expected;
    for (const std::string& line : lines) {
      if (!line.empty()) expected.push_back(line.substr(0, kLineMax));
    }
    std::vector<json> records;
    WaitFor(
        [&] {
          records = RecordsOf(pane.pid);
          return records.size() >= expected.size();
        },
        15s);
    std::this_thread::sleep_for(1s);  // a duplicate would arrive with its original
    records = RecordsOf(pane.pid);
    std::vector<std::string> got;
    for (const json& r : records) got.push_back(r["fields"].value("cmd", ""));
    ASSERT_EQ(got, expected) << "pid " << pane.pid << "; all bash records:\n" << Dump();

    const std::string ppid = std::to_string(ParentOf(pane.pid));
    const std::string cgroup = CgroupIdOf(pane.pid);
    for (size_t i = 0; i < records.size(); ++i) {
      const json& r = records[i];
      const json& f = r["fields"];
      SCOPED_TRACE("pid " + std::to_string(pane.pid) + " line " + std::to_string(i));
      EXPECT_EQ(r["host"], kHost);
      EXPECT_EQ(r["tags"], json({{"host", kHost}}));
      EXPECT_EQ(f.value("pid", ""), std::to_string(pane.pid));
      EXPECT_EQ(f.value("user", ""), user);
      EXPECT_EQ(f.value("ppid", ""), ppid);
      EXPECT_EQ(f.value("tty", ""), pane.tty);
      EXPECT_EQ(f.value("cgroup_id", ""), cgroup);
      const bool cut = lines_longer_.count(expected[i]) > 0;
      EXPECT_EQ(f.value("truncated", !cut), cut);
      const int64_t time = r["time"].get<int64_t>();
      EXPECT_EQ(f.value("message", ""),
                UtcMicros(time) + " " + user + " " + std::to_string(pane.pid) + " " + expected[i]);
    }
  }

  NodeStack stack_;
  std::string host_root_, host_proc_;  // HOST_ROOT and HOST_PROC when the parameter is true
  Tmux tmux_;
  std::string tag_;
  std::set<std::string> lines_longer_;  // expected (cut) lines of typed lines over kLineMax
};

TEST_P(Bash, HostShellAndACopyInAnotherMountNamespace) {
  // A shell running before the sensor; what it reads then is not seen, and not invented later.
  ASSERT_TRUE(
      tmux_.NewSession("host", "exec " + std::string(kShellEnv) + " /usr/bin/bash --norc").ok());
  const Pane host = tmux_.PaneOf("host");
  const std::string before = "echo before_sensor_" + tag_;
  ASSERT_NO_FATAL_FAILURE(TypeLines("host", {before}, 1));
  StartSensor();
  ASSERT_TRUE(SensorLogHas("probe bash: attached with strategy uprobe")) << stack_.sensor->Log();
  const std::string host_bash = host_root_ + "/usr/bin/bash";
  ASSERT_TRUE(SensorLogHas("readline of " + host_bash + " (dev")) << stack_.sensor->Log();

  const std::string utf8 =
      "echo 'h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac " + tag_ + "'";
  std::string three_k = ": three_k_" + tag_ + " ";
  three_k += std::string(3072 - three_k.size(), 'a');
  std::string five_k = ": five_k_" + tag_ + " ";
  five_k += std::string(5000 - five_k.size(), 'b');
  lines_longer_.insert(five_k.substr(0, kLineMax));
  const std::vector<std::string> host_lines = {
      "echo host_one_" + tag_, "", utf8, three_k, five_k, "", "echo host_two_" + tag_};
  ASSERT_NO_FATAL_FAILURE(TypeLines("host", host_lines, 2));

  // A copy of bash in a tmpfs only its own mount namespace sees, started after the sensor, as
  // nobody: another inode, so it needs (and gets) its own uprobe.
  TempDir ns_dir;
  ASSERT_EQ(chmod(ns_dir.path().c_str(), 0755), 0);
  const std::string mnt = ns_dir.File("mnt");
  ASSERT_EQ(mkdir(mnt.c_str(), 0755), 0);
  const std::string ns_command =
      "exec unshare -m --propagation private /bin/sh -c 'mount -t tmpfs nsbash " + mnt +
      " && cp /usr/bin/bash " + mnt + "/bash && exec setpriv --reuid=65534 --regid=65534 " +
      "--clear-groups " + kShellEnv + " " + mnt + "/bash --norc'";
  ASSERT_TRUE(tmux_.NewSession("ns", ns_command).ok());
  const Pane ns = tmux_.PaneOf("ns");
  ASSERT_TRUE(tmux_.WaitPrompts("ns", 1));
  ASSERT_TRUE(SensorLogHas("readline of " + mnt + "/bash")) << stack_.sensor->Log();
  // The copy is not the host's file, and nothing of it is visible outside its namespace.
  struct stat host_file {};
  struct stat copy {};
  ASSERT_EQ(stat("/usr/bin/bash", &host_file), 0);
  ASSERT_EQ(stat(("/proc/" + std::to_string(ns.pid) + "/exe").c_str(), &copy), 0);
  EXPECT_FALSE(host_file.st_dev == copy.st_dev && host_file.st_ino == copy.st_ino);
  EXPECT_NE(access((mnt + "/bash").c_str(), F_OK), 0);
  const std::vector<std::string> ns_lines = {"echo ns_one_" + tag_, "", utf8,
                                             "echo ns_two_" + tag_};
  ASSERT_NO_FATAL_FAILURE(TypeLines("ns", ns_lines, 1));

  // A second host shell started after the sensor: the same file, already probed, so each of
  // its lines must still come once.
  ASSERT_TRUE(
      tmux_.NewSession("host2", "exec " + std::string(kShellEnv) + " /usr/bin/bash --norc").ok());
  const Pane host2 = tmux_.PaneOf("host2");
  const std::vector<std::string> host2_lines = {"echo host2_" + tag_};
  ASSERT_NO_FATAL_FAILURE(TypeLines("host2", host2_lines, 1));

  ASSERT_NO_FATAL_FAILURE(CheckShell(host, "root", host_lines));
  passwd* nobody = getpwuid(65534);
  ASSERT_NE(nobody, nullptr);
  ASSERT_NO_FATAL_FAILURE(CheckShell(ns, nobody->pw_name, ns_lines));
  ASSERT_NO_FATAL_FAILURE(CheckShell(host2, "root", host2_lines));
  for (const json& r : stack_.Records("bash")) {
    EXPECT_EQ(r["fields"].value("cmd", "").find("before_sensor_" + tag_), std::string::npos)
        << r.dump();
    EXPECT_NE(r["fields"].value("cmd", ""), "") << r.dump();
  }

  // Status: the strategy, and both files in the coverage; the counters in /metrics.
  const std::string status = HttpGet(stack_.sensor_http_port, "/debug/status");
  EXPECT_NE(status.find("\"probe\": \"bash\""), std::string::npos) << status;
  EXPECT_NE(status.find("\"strategy\": \"uprobe\""), std::string::npos) << status;
  EXPECT_NE(status.find(host_bash + " (dev "), std::string::npos) << status;
  EXPECT_NE(status.find(mnt + "/bash (dev "), std::string::npos) << status;
  const std::string metrics = HttpGet(stack_.sensor_http_port, "/metrics");
  // At least ours (other shells on this machine may add theirs): 5 + 3 + 1 non-empty lines.
  EXPECT_GE(MetricValue(metrics, "nodescope_sensor_events_total{source=\"bash\",event=\"line\"}"),
            9);
  EXPECT_GE(MetricValue(metrics, "nodescope_sensor_bash_truncated_lines_total"), 1);
  EXPECT_GE(MetricValue(metrics, "nodescope_sensor_bash_binaries{state=\"attached\"}"), 2);
  EXPECT_EQ(MetricValue(metrics,
                        "nodescope_sensor_dropped_total{reason=\"ringbuf_full\",probe=\"bash\"}"),
            0);
}

INSTANTIATE_TEST_SUITE_P(HostProc, Bash, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("HostProcElsewhere")
                                             : std::string("HostProcIsProc");
                         });

}  // namespace
}  // namespace nodescope::test
