// What a sensor leaves in the kernel when it stops, and what it keeps of root's privileges while it
// runs; the aggregator as an unprivileged user. The sensor runs every plugin (cgroup links,
// tracing programs, uprobes on bash and libssl, ctnetlink); what it holds is read from its file
// descriptors (/proc/<pid>/fdinfo: prog_id, map_id, link_id) and looked for afterwards among the
// kernel's live ids (BPF_*_GET_NEXT_ID), in bpffs and in tracefs' kprobe and uprobe events.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "tests/integration/harness.h"
#include "tests/integration/node_stack.h"

namespace nodescope::test {
namespace {

using namespace std::chrono_literals;

constexpr char kAllPlugins[] =
    "enabled_plugins: [ebpf-net, ebpf-bash, ebpf-conntrack, ebpf-kernel]\n"
    "l7net_enabled: [httpflow, httpflow-tls]\n";

struct BpfIds {
  std::set<uint32_t> progs, maps, links;
};

// The BPF objects `pid` holds a file descriptor of.
BpfIds HeldBy(pid_t pid) {
  BpfIds ids;
  const std::string proc = "/proc/" + std::to_string(pid);
  std::error_code ec;
  for (const auto& fd : std::filesystem::directory_iterator(proc + "/fd", ec)) {
    const std::string target = std::filesystem::read_symlink(fd.path(), ec).string();
    std::set<uint32_t>* into = target == "anon_inode:bpf-prog"   ? &ids.progs
                               : target == "anon_inode:bpf-map"  ? &ids.maps
                               : target == "anon_inode:bpf_link" ? &ids.links
                                                                 : nullptr;
    const char* key = into == &ids.progs ? "prog_id:" : into == &ids.maps ? "map_id:" : "link_id:";
    if (into == nullptr) continue;
    std::ifstream info(proc + "/fdinfo/" + fd.path().filename().string());
    std::string name;
    uint64_t value = 0;
    while (info >> name) {
      if (name == key && info >> value) into->insert(static_cast<uint32_t>(value));
    }
  }
  return ids;
}

std::set<uint32_t> LiveIds(int (*next)(uint32_t, uint32_t*)) {
  std::set<uint32_t> ids;
  uint32_t id = 0;
  while (next(id, &id) == 0) ids.insert(id);
  return ids;
}

// "" when none of `held` is alive in the kernel any more, else what still is.
std::string StillAlive(const BpfIds& held) {
  std::string out;
  auto check = [&](const char* what, const std::set<uint32_t>& mine,
                   int (*next)(uint32_t, uint32_t*)) {
    const std::set<uint32_t> live = LiveIds(next);
    for (uint32_t id : mine) {
      if (live.count(id)) out += std::string(what) + " " + std::to_string(id) + "; ";
    }
  };
  check("program", held.progs, bpf_prog_get_next_id);
  check("link", held.links, bpf_link_get_next_id);
  check("map", held.maps, bpf_map_get_next_id);
  return out;
}

// Kprobe and uprobe events libbpf would have made through tracefs for `pid` (its legacy attach
// mode, names "libbpf_<pid>_..."): they would outlive a killed process.
std::string TraceEventsOf(pid_t pid) {
  const std::string mark = "libbpf_" + std::to_string(pid) + "_";
  std::string out;
  for (const char* file :
       {"/sys/kernel/tracing/kprobe_events", "/sys/kernel/tracing/uprobe_events"}) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      if (line.find(mark) != std::string::npos) out += line + "\n";
    }
  }
  return out;
}

std::set<std::string> BpffsEntries() {
  std::set<std::string> entries;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator("/sys/fs/bpf", ec)) {
    entries.insert(e.path().string());
  }
  return entries;
}

// probe -> state, from the sensor's /debug/status.
std::map<std::string, std::string> ProbeStates(int port) {
  std::map<std::string, std::string> states;
  nlohmann::json status = nlohmann::json::parse(HttpGet(port, "/debug/status"), nullptr, false);
  if (status.is_discarded()) return states;
  for (const auto& p : status.value("probes", nlohmann::json::array())) {
    states[p.value("probe", "")] = p.value("state", "");
  }
  return states;
}

Status StartWithEveryPlugin(NodeStack& stack) {
  if (Status s = stack.StartSensor("lifecycle", kAllPlugins); !s.ok()) return s;
  // The drop is the last step of the start.
  if (!WaitFor([&] { return stack.sensor->Log().find("capabilities: kept") != std::string::npos; },
               30s)) {
    return Status::Error("the sensor did not finish starting:\n" + stack.sensor->Log());
  }
  return Status::Ok();
}

uint64_t Bits(std::initializer_list<int> caps) {
  uint64_t mask = 0;
  for (int c : caps) mask |= uint64_t{1} << c;
  return mask;
}

int LastCap() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int last = 0;
  in >> last;
  return last;
}

std::map<std::string, uint64_t> CapLines(const std::string& status_path) {
  std::map<std::string, uint64_t> caps;
  std::ifstream in(status_path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Cap", 0) == 0 && line.find(':') == 6) {
      caps[line.substr(0, 6)] = std::stoull(line.substr(7), nullptr, 16);
    }
  }
  return caps;
}

TEST(Lifecycle, SigtermExitsZeroAndLeavesNothingAttached) {
  const std::set<std::string> bpffs = BpffsEntries();
  NodeStack stack;
  ASSERT_TRUE(stack.StartAggregator().ok());
  ASSERT_TRUE(StartWithEveryPlugin(stack).ok()) << stack.sensor->Log();
  const pid_t pid = stack.sensor->pid();
  const BpfIds held = HeldBy(pid);
  // Tracing programs, cgroup programs and uprobes, each through a link.
  EXPECT_GE(held.progs.size(), 10u);
  EXPECT_GE(held.links.size(), 10u);
  EXPECT_FALSE(held.maps.empty());
  ASSERT_EQ(StillAlive(held).empty(), false);

  EXPECT_EQ(stack.sensor->Stop(SIGTERM, 20s), 0) << stack.sensor->Log();
  EXPECT_NE(stack.sensor->Log().find("SIGTERM: detaching probes and flushing"), std::string::npos);
  // The kernel frees a program when its last reference goes, after an RCU grace period.
  std::string alive;
  EXPECT_TRUE(WaitFor([&] { return (alive = StillAlive(held)).empty(); }, 10s)) << alive;
  EXPECT_EQ(TraceEventsOf(pid), "");
  EXPECT_EQ(BpffsEntries(), bpffs);
  stack.sensor.reset();
}

TEST(Lifecycle, SigkillLeavesNothingAttachedAndTheNextStartAttaches) {
  const std::set<std::string> bpffs = BpffsEntries();
  NodeStack stack;
  ASSERT_TRUE(stack.StartAggregator().ok());
  ASSERT_TRUE(StartWithEveryPlugin(stack).ok()) << stack.sensor->Log();
  const pid_t first = stack.sensor->pid();
  const BpfIds held = HeldBy(first);
  ASSERT_FALSE(held.progs.empty());
  ASSERT_FALSE(held.links.empty());
  const std::map<std::string, std::string> states = ProbeStates(stack.sensor_http_port);
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.at("netflow"), "attached");
  EXPECT_EQ(states.at("bash"), "attached");

  stack.sensor->Stop(SIGKILL, 10s);
  EXPECT_FALSE(stack.sensor->Running());
  std::string alive;
  EXPECT_TRUE(WaitFor([&] { return (alive = StillAlive(held)).empty(); }, 10s)) << alive;
  EXPECT_EQ(TraceEventsOf(first), "");
  EXPECT_EQ(BpffsEntries(), bpffs);  // nothing pinned that a next start would trip over
  stack.sensor.reset();

  // The second start loads and attaches as the first did (its own log: StartSensor appends).
  std::filesystem::rename(stack.dir.File("sensor.log"), stack.dir.File("sensor-killed.log"));
  ASSERT_TRUE(StartWithEveryPlugin(stack).ok()) << stack.sensor->Log();
  const BpfIds again = HeldBy(stack.sensor->pid());
  EXPECT_EQ(again.progs.size(), held.progs.size());
  EXPECT_FALSE(again.links.empty());
  EXPECT_EQ(ProbeStates(stack.sensor_http_port), states);
  EXPECT_EQ(stack.sensor->Stop(SIGTERM, 20s), 0) << stack.sensor->Log();
  EXPECT_TRUE(WaitFor([&] { return StillAlive(again).empty(); }, 10s));
  stack.sensor.reset();
}

// The kept sets README "Privileges and shutdown" documents, by number: CAP_DAC_READ_SEARCH 2,
// CAP_NET_ADMIN 12, CAP_SYS_PTRACE 19, CAP_SYS_ADMIN 21, CAP_PERFMON 38, CAP_BPF 39.
TEST(Lifecycle, SensorKeepsOnlyTheDocumentedCapabilities) {
  ASSERT_GE(LastCap(), 39) << "the documented sets are those of a kernel with CAP_BPF (5.8)";
  const uint64_t every_plugin = Bits({2, 12, 19, 21, 38, 39});
  const uint64_t net_only = Bits({19, 38, 39});

  for (const auto& [extra, expected] :
       std::vector<std::pair<std::string, uint64_t>>{{kAllPlugins, every_plugin}, {"", net_only}}) {
    NodeStack stack;
    ASSERT_TRUE(stack.StartAggregator().ok());
    ASSERT_TRUE(stack.StartSensor("caps", extra).ok()) << stack.sensor->Log();
    ASSERT_TRUE(WaitFor(
        [&] { return stack.sensor->Log().find("capabilities: kept") != std::string::npos; }, 30s))
        << stack.sensor->Log();
    const std::string proc = "/proc/" + std::to_string(stack.sensor->pid());
    std::map<std::string, uint64_t> caps = CapLines(proc + "/status");
    EXPECT_EQ(caps["CapEff"], expected) << std::hex << caps["CapEff"];
    EXPECT_EQ(caps["CapPrm"], expected) << std::hex << caps["CapPrm"];
    EXPECT_EQ(caps["CapBnd"], expected) << std::hex << caps["CapBnd"];
    EXPECT_EQ(caps["CapInh"], 0u);
    EXPECT_EQ(caps["CapAmb"], 0u);
    // Capabilities are per thread: every one of them.
    size_t threads = 0;
    for (const auto& task : std::filesystem::directory_iterator(proc + "/task")) {
      std::map<std::string, uint64_t> t = CapLines(task.path().string() + "/status");
      if (t.empty()) continue;  // gone meanwhile
      EXPECT_EQ(t["CapEff"], expected) << task.path();
      EXPECT_EQ(t["CapBnd"], expected) << task.path();
      ++threads;
    }
    EXPECT_GT(threads, 3u);
    // The same set on /metrics, one gauge each.
    const std::string metrics = HttpGet(stack.sensor_http_port, "/metrics");
    EXPECT_EQ(MetricValue(metrics, "nodescope_sensor_capability{capability=\"CAP_BPF\"}"), 1);
    EXPECT_EQ(MetricValue(metrics, "nodescope_sensor_capability{capability=\"CAP_SYS_ADMIN\"}"),
              (expected >> 21) & 1 ? 1 : -1);
    EXPECT_EQ(MetricValue(metrics, "nodescope_sensor_capability{capability=\"CAP_CHOWN\"}"), -1);
    stack.Stop();
  }
}

// The aggregator needs no privilege at all: user nobody, no capability in any set, no way to gain
// one (no_new_privs), from a copy of the binary any user can execute.
TEST(Lifecycle, AggregatorRunsAsNobodyWithoutCapabilities) {
  TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  const std::string binary = dir.File("nodescope-aggregator");
  std::filesystem::copy_file(BinDir() + "/nodescope-aggregator", binary);
  ASSERT_EQ(chmod(binary.c_str(), 0755), 0);
  const std::string out = dir.File("out");
  std::filesystem::create_directory(out);
  ASSERT_EQ(chown(out.c_str(), 65534, 65534), 0);

  NodeStack stack;
  stack.grpc_port = FreePort();
  stack.http_port = FreePort();
  dir.Write("aggregator.yaml", "listen: 127.0.0.1:" + std::to_string(stack.grpc_port) + "\n" +
                                   "http_listen: 127.0.0.1:" + std::to_string(stack.http_port) +
                                   "\nsinks: [\"jsonl:" + out + "/records.jsonl\"]\n");
  ASSERT_EQ(chmod(dir.File("aggregator.yaml").c_str(), 0644), 0);
  Subprocess aggregator(
      {"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
       "--bounding-set=-all", "--no-new-privs", binary, "--config", dir.File("aggregator.yaml")},
      dir.File("aggregator.log"));
  int status = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        HttpGet(stack.http_port, "/readyz", &status);
        return status == 200 || !aggregator.Running();
      },
      30s));
  ASSERT_EQ(status, 200) << aggregator.Log();

  const std::string proc = "/proc/" + std::to_string(aggregator.pid());
  std::map<std::string, uint64_t> caps = CapLines(proc + "/status");
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    EXPECT_EQ(caps[set], 0u) << set;
  }
  EXPECT_NE(ReadFile(proc + "/status").find("Uid:\t65534\t65534\t65534\t65534"), std::string::npos);
  EXPECT_NE(ReadFile(proc + "/status").find("NoNewPrivs:\t1"), std::string::npos);

  // A root sensor streams to it; the unprivileged aggregator ingests, serves and writes.
  ASSERT_TRUE(stack.StartSensor("unprivileged").ok()) << stack.sensor->Log();
  std::string metrics;
  EXPECT_TRUE(WaitFor(
      [&] {
        RunCommand({"/bin/true"});
        metrics = HttpGet(stack.http_port, "/metrics", &status);
        return MetricValue(metrics, "nodescope_records_ingested_total{source=\"process\"}") > 0;
      },
      30s))
      << metrics << aggregator.Log();
  EXPECT_EQ(status, 200);
  struct stat st {};
  ASSERT_EQ(stat((out + "/records.jsonl").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_GT(st.st_size, 0);
  stack.Stop();
  EXPECT_EQ(aggregator.Stop(SIGTERM, 20s), 0) << aggregator.Log();
}

}  // namespace
}  // namespace nodescope::test
