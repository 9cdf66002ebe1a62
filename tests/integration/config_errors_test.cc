// Bad input at start: each binary exits with the documented code and one line naming the problem.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/integration/harness.h"

namespace nodescope::test {
namespace {

struct Case {
  const char* binary;
  const char* yaml;
  const char* expect;  // a piece of the one-line message
};

class ConfigErrors : public ::testing::TestWithParam<Case> {};

TEST_P(ConfigErrors, ExitTwoWithOneLine) {
  const Case& c = GetParam();
  TempDir dir;
  dir.Write("c.yaml", c.yaml);
  auto r = RunCommand({BinDir() + "/" + c.binary, "--config", dir.File("c.yaml")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line:\n" << r.err;
  EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(dir.File("c.yaml")), std::string::npos) << "names the file: " << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Binaries, ConfigErrors,
    ::testing::Values(
        Case{"nodescope-sensor", "pprof_port: high\n", "key 'pprof_port': expected an integer"},
        Case{"nodescope-sensor", "no_such_option: 1\n", "unknown key 'no_such_option'"},
        Case{"nodescope-sensor", "trace_server: localhost\n", "key 'trace_server': expected HOST:PORT"},
        Case{"nodescope-sensor", "enabled_plugins: [ebpf-nope]\n", "\"ebpf-nope\" is not one of"},
        Case{"nodescope-sensor", "ebpf_programs: [fd, vfs, nfsstat]\n", "\"nfsstat\" is not one of"},
        Case{"nodescope-sensor", "ebpf_load_mode: exit\n", "key 'ebpf_load_mode'"},

        Case{"nodescope-aggregator", "history_size: [1]\n", "key 'history_size': expected an integer"},
        Case{"nodescope-aggregator", "lissen: :9970\n", "unknown key 'lissen'"},
        Case{"nodescope-aggregator", "listen: 127.0.0.1:99999\n", "key 'listen': expected HOST:PORT"},
        Case{"nodescope-aggregator", "http_listen: nowhere\n", "key 'http_listen': expected HOST:PORT"},
        Case{"nodescope-aggregator", "http_labels: [host, url]\n",
             "key 'http_labels': \"url\" is not one of: host, direction, method, status_code"}));

// A label listed twice is caught after the file and the environment are merged, so the line
// names the key, not the file.
TEST(ConfigErrors, RepeatedHttpLabelIsOneLine) {
  TempDir dir;
  dir.Write("c.yaml", "http_labels: [host, path, host]\n");
  auto r = RunCommand({BinDir() + "/nodescope-aggregator", "--config", dir.File("c.yaml")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err, "nodescope-aggregator: config: key 'http_labels': \"host\" is listed twice\n");
}

// apps_groups is checked after loading too (the groups as a whole), before any probe loads.
TEST(ConfigErrors, AnEmptyApplicationGroupIsOneLine) {
  TempDir dir;
  dir.Write("c.yaml", "apps_groups: {web: \"  \"}\n");
  auto r = RunCommand({BinDir() + "/nodescope-sensor", "--config", dir.File("c.yaml")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err, "nodescope-sensor: apps_groups: group web has no process patterns\n");
}

TEST(ConfigErrors, EnvironmentOverrideIsCheckedToo) {
  TempDir dir;
  dir.Write("c.yaml", "");
  auto r = RunCommand({"/usr/bin/env", "NODESCOPE_HISTORY_SIZE=lots", BinDir() + "/nodescope-aggregator",
                "--config", dir.File("c.yaml"), "--print-config"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("environment NODESCOPE_HISTORY_SIZE: expected an integer"),
            std::string::npos)
      << r.err;
}

TEST(ConfigErrors, EmptyFileIsAllDefaults) {
  TempDir dir;
  dir.Write("c.yaml", "");
  for (const char* binary : {"nodescope-sensor", "nodescope-aggregator"}) {
    auto r = RunCommand({BinDir() + "/" + binary, "--config", dir.File("c.yaml"), "--print-config"});
    EXPECT_EQ(r.exit_code, 0) << binary << ": " << r.err;
    EXPECT_NE(r.out.find("effective"), std::string::npos) << r.out;
  }
  auto sensor = RunCommand({BinDir() + "/nodescope-sensor", "--config", dir.File("c.yaml"),
                     "--print-config"});
  EXPECT_NE(sensor.out.find("trace_server: \"127.0.0.1:9970\""), std::string::npos) << sensor.out;
  EXPECT_NE(sensor.out.find("pprof_port: 6061"), std::string::npos) << sensor.out;
  auto agg = RunCommand({BinDir() + "/nodescope-aggregator", "--config", dir.File("c.yaml"),
                  "--print-config"});
  EXPECT_NE(agg.out.find("history_size: 65536"), std::string::npos) << agg.out;
}

TEST(Preflight, SensorWithoutRootSaysWhatIsMissing) {
  TempDir dir;
  dir.Write("c.yaml", "");
  // The unprivileged user must be able to read the config, so the failure is the preflight's.
  std::filesystem::permissions(dir.path(), std::filesystem::perms::all);
  auto r = RunCommand({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=-all", BinDir() + "/nodescope-sensor", "--config",
                dir.File("c.yaml")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line:\n" << r.err;
  EXPECT_NE(r.err.find("root"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace nodescope::test
