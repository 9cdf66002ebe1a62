#include "sensor/limits/monitor.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace nodescope::sensor::limits {
namespace {

using std::chrono::seconds;

// Records what the monitor asked for.
struct Fake {
  std::vector<std::string> calls;
  int kernel_running = 2;
  int status_changes = 0;
  int exits = 0;
  Skipped skipped{.l7_calls_payload = 7,
                  .l7_calls_sampling = 5,
                  .l7_connections_payload = 3,
                  .l7_connections_sampling = 2};

  Actions Make(bool l7, size_t kernel_sources) {
    Actions a;
    if (l7) {
      a.set_l7 = [this](bool off, uint32_t keep) {
        calls.push_back("l7 off=" + std::to_string(off) + " keep=" + std::to_string(keep));
      };
      a.skipped = [this] { return skipped; };
    }
    a.kernel_sources = kernel_sources;
    if (kernel_sources > 0) {
      a.shed_kernel = [this](const std::string& why) {
        calls.push_back("kernel shed " + std::to_string(kernel_running) + " (" + why + ")");
        return std::string(kernel_running-- == 2 ? "process fd" : "hardirq softirq");
      };
      a.restore_kernel = [this] {
        calls.push_back("kernel restore");
        return std::string(++kernel_running == 1 ? "hardirq softirq" : "process fd");
      };
    }
    a.status_changed = [this] { ++status_changes; };
    a.request_exit = [this] { ++exits; };
    return a;
  }
};

MonitorOptions Options(std::vector<std::string> order) {
  MonitorOptions o;
  o.limits.cpu_cores = 0.5;
  o.order = std::move(order);
  o.sampling = 8;
  o.window = seconds(1);
  o.over_windows = 2;
  o.under_windows = 3;
  return o;
}

Usage Cpu(double cores) {
  Usage u;
  u.cpu_cores = cores;
  return u;
}

double Value(const std::vector<Sample>& s, const std::string& name,
             const std::vector<std::pair<std::string, std::string>>& labels = {}) {
  for (const Sample& x : s) {
    if (x.name == name && x.labels == labels) return x.value;
  }
  return -1;
}

TEST(Monitor, PlanFollowsTheOrderAndWhatRuns) {
  Fake f;
  Monitor all(Options({"kernel_families", "sampling", "l7_payload"}));
  all.Configure(f.Make(true, 2));
  EXPECT_EQ(all.plan(), (std::vector<std::string>{"kernel_families", "kernel_families", "sampling",
                                                  "l7_payload"}));
  // Without L7 capture (ebpf-net or httpflow off) its steps are left out.
  Monitor kernel_only(Options({"sampling", "l7_payload", "kernel_families"}));
  kernel_only.Configure(f.Make(false, 1));
  EXPECT_EQ(kernel_only.plan(), (std::vector<std::string>{"kernel_families"}));
  Monitor none(Options({"l7_payload"}));
  none.Configure(f.Make(false, 0));
  EXPECT_TRUE(none.plan().empty());
}

TEST(Monitor, ShedsInOrderAndRestoresInReverse) {
  Fake f;
  Monitor m(Options({"sampling", "l7_payload", "kernel_families"}));
  m.Configure(f.Make(true, 2));
  ASSERT_EQ(m.plan().size(), 4u);
  for (int i = 0; i < 8; ++i) m.OnWindow(Cpu(0.9), seconds(1));
  EXPECT_EQ(f.calls.size(), 4u);
  EXPECT_EQ(f.calls[0], "l7 off=0 keep=8");
  EXPECT_EQ(f.calls[1], "l7 off=1 keep=8");
  EXPECT_EQ(f.calls[2].rfind("kernel shed 2 (cpu 0.900 cores over the limit 0.500 cores", 0), 0u)
      << f.calls[2];
  EXPECT_EQ(f.calls[3].rfind("kernel shed 1", 0), 0u);
  EXPECT_EQ(f.status_changes, 4);

  std::vector<Sample> s;
  m.AppendSamples(s);
  EXPECT_EQ(Value(s, "nodescope_sensor_limit_shed_level"), 4);
  EXPECT_EQ(Value(s, "nodescope_sensor_limit_shed_levels"), 4);
  EXPECT_EQ(Value(s, "nodescope_sensor_limit_usage", {{"resource", "cpu"}}), 0.9);
  EXPECT_EQ(Value(s, "nodescope_sensor_limit", {{"resource", "cpu"}}), 0.5);
  EXPECT_EQ(Value(s, "nodescope_sensor_limit", {{"resource", "memory"}}), -1);  // no limit
  EXPECT_EQ(Value(s, "nodescope_sensor_limit_exceeded_total", {{"resource", "cpu"}}), 8);
  EXPECT_EQ(Value(s, "nodescope_sensor_limit_shed_steps", {{"step", "kernel_families"}}), 2);
  EXPECT_EQ(Value(s, "nodescope_sensor_limit_shed_steps", {{"step", "sampling"}}), 1);
  // Sampling went on after window 2: in effect during windows 3-8.
  EXPECT_EQ(Value(s, "nodescope_sensor_limit_shed_seconds_total", {{"step", "sampling"}}), 6);
  EXPECT_EQ(Value(s, "nodescope_sensor_limit_skipped_total",
                  {{"what", "l7_calls"}, {"step", "l7_payload"}}),
            7);
  EXPECT_EQ(Value(s, "nodescope_sensor_limit_skipped_total",
                  {{"what", "l7_connections"}, {"step", "sampling"}}),
            2);
  v1::ProbeStatus st = m.status();
  EXPECT_EQ(st.probe(), "limits");
  EXPECT_EQ(st.state(), "shedding");
  EXPECT_NE(st.coverage().find("shed 4/4: sampling 1 in 8, l7_payload, kernel process fd, "
                               "kernel hardirq softirq"),
            std::string::npos)
      << st.coverage();
  EXPECT_NE(st.error().find("cpu 0.900 cores over the limit 0.500 cores"), std::string::npos);

  // Every step shed and still over: said once, nothing else changes.
  f.calls.clear();
  for (int i = 0; i < 6; ++i) m.OnWindow(Cpu(0.9), seconds(1));
  EXPECT_TRUE(f.calls.empty());
  EXPECT_NE(m.status().error().find("with every step shed"), std::string::npos);

  // 0.45 is under the limit but above 80% of it: holds.
  for (int i = 0; i < 10; ++i) m.OnWindow(Cpu(0.45), seconds(1));
  EXPECT_TRUE(f.calls.empty());
  for (int i = 0; i < 12; ++i) m.OnWindow(Cpu(0.1), seconds(1));
  EXPECT_EQ(f.calls, (std::vector<std::string>{"kernel restore", "kernel restore",
                                               "l7 off=0 keep=8", "l7 off=0 keep=1"}));
  EXPECT_EQ(m.status().state(), "ok");
  s.clear();
  m.AppendSamples(s);
  EXPECT_EQ(Value(s, "nodescope_sensor_limit_shed_level"), 0);
  EXPECT_EQ(Value(s, "nodescope_sensor_limit_changes_total", {{"direction", "shed"}}), 4);
  EXPECT_EQ(Value(s, "nodescope_sensor_limit_changes_total", {{"direction", "restore"}}), 4);
  EXPECT_EQ(f.exits, 0);
}

TEST(Monitor, ExitAsksMainOnceWithTheReason) {
  Fake f;
  MonitorOptions o = Options({"sampling"});
  o.exit_on_limit = true;
  o.limits = Limits{.net_bytes_per_s = 1000};
  Monitor m(o);
  m.Configure(f.Make(true, 0));
  Usage u;
  u.net_bytes_per_s = 5000;
  u.nic = "lo";
  m.OnWindow(u, seconds(1));
  EXPECT_EQ(f.exits, 0);
  EXPECT_EQ(m.exit_reason(), "");
  m.OnWindow(u, seconds(1));
  EXPECT_EQ(f.exits, 1);
  EXPECT_EQ(m.exit_reason(), "network 4.9 KiB/s (lo) over the limit 1000 B/s in 2 windows of 1s");
  EXPECT_TRUE(f.calls.empty());  // nothing shed
  for (int i = 0; i < 4; ++i) m.OnWindow(u, seconds(1));
  EXPECT_EQ(f.exits, 1);
}

}  // namespace
}  // namespace nodescope::sensor::limits
