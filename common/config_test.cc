#include "common/config.h"

#include <gtest/gtest.h>

#include <map>

namespace nodescope::config {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct Sample {
  std::string server = "127.0.0.1:9970";
  bool ipv6_disabled = false;
  int64_t history = 65536;
  Duration interval = seconds(60);
  std::vector<std::string> plugins = {"ebpf-net"};
  std::map<std::string, std::string> tags;
};

Schema MakeSchema(Sample* s) {
  Schema schema("test");
  schema.Address("trace_server", &s->server, "aggregator");
  schema.Bool("ipv6_disabled", &s->ipv6_disabled, "v6");
  schema.Int("history_size", &s->history, 1, 1000000, "ring");
  schema.Dur("interval", &s->interval, milliseconds(100), seconds(3600), "interval");
  schema.List("enabled_plugins", &s->plugins, {"ebpf-net", "ebpf-bash"}, "plugins");
  schema.Map("tags", &s->tags, "tags");
  return schema;
}

TEST(Duration, ParsesUnitsAndSums) {
  EXPECT_EQ(ParseDuration("60s").value(), seconds(60));
  EXPECT_EQ(ParseDuration("500ms").value(), milliseconds(500));
  EXPECT_EQ(ParseDuration("1m30s").value(), seconds(90));
  EXPECT_EQ(ParseDuration("2h").value(), seconds(7200));
  EXPECT_EQ(ParseDuration("250us").value(), std::chrono::microseconds(250));
  EXPECT_EQ(ParseDuration("1.5s").value(), milliseconds(1500));
  EXPECT_EQ(ParseDuration("10ns").value(), Duration(10));
}

TEST(Duration, RejectsBareNumbersAndJunk) {
  for (const char* bad : {"60", "", "s", "10x", "1m3", "abc", "-1s"}) {
    auto d = ParseDuration(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_NE(d.status().message().find("expected a duration"), std::string::npos);
  }
}

TEST(Duration, FormatsRoundTrip) {
  for (const char* text : {"60s", "500ms", "2h", "250us", "90s"}) {
    EXPECT_EQ(ParseDuration(FormatDuration(ParseDuration(text).value())).value(),
              ParseDuration(text).value());
  }
  EXPECT_EQ(FormatDuration(seconds(60)), "1m");
  EXPECT_EQ(FormatDuration(milliseconds(1500)), "1500ms");
}

// Found by fuzz_config: a double lost nanoseconds above 2^53, and stod read "1.2.3" as 1.2.
TEST(Duration, ParsesExactlyAndRefusesTwoDots) {
  EXPECT_EQ(ParseDuration("2000h0.000000001s").value(), std::chrono::hours(2000) + Duration(1));
  EXPECT_EQ(ParseDuration("2562047h47m16.854775807s").value(), Duration(INT64_MAX));
  EXPECT_FALSE(ParseDuration("2562047h47m16.854775808s").ok());
  EXPECT_EQ(ParseDuration(".5s").value(), milliseconds(500));
  for (const char* bad : {"1.2.3s", "10.5.5m", ".s", "1..5s"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
}

TEST(Address, AcceptsHostPortForms) {
  EXPECT_TRUE(CheckAddress("127.0.0.1:9970").ok());
  EXPECT_TRUE(CheckAddress("[::1]:9970").ok());
  EXPECT_TRUE(CheckAddress(":9970").ok());
  EXPECT_TRUE(CheckAddress("aggregator.nodescope.svc:9970").ok());
}

TEST(Address, RejectsBadOnes) {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "::1:9970", "host:x",
                          "[::1:9970", "a b:1"}) {
    EXPECT_FALSE(CheckAddress(bad).ok()) << bad;
  }
}

TEST(Schema, EmptyFileKeepsDefaults) {
  Sample s;
  Schema schema = MakeSchema(&s);
  ASSERT_TRUE(schema.LoadText("", "empty.yaml").ok());
  ASSERT_TRUE(schema.LoadText("# only a comment\n", "c.yaml").ok());
  EXPECT_EQ(s.server, "127.0.0.1:9970");
  EXPECT_EQ(s.interval, seconds(60));
  EXPECT_EQ(s.plugins, std::vector<std::string>{"ebpf-net"});
}

TEST(Schema, LoadsEveryType) {
  Sample s;
  Schema schema = MakeSchema(&s);
  Status st = schema.LoadText(
      "trace_server: '[::1]:7000'\nipv6_disabled: true\nhistory_size: 10\ninterval: 500ms\n"
      "enabled_plugins: [ebpf-bash]\ntags: {team: core, env: dev}\n",
      "f.yaml");
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(s.server, "[::1]:7000");
  EXPECT_TRUE(s.ipv6_disabled);
  EXPECT_EQ(s.history, 10);
  EXPECT_EQ(s.interval, milliseconds(500));
  EXPECT_EQ(s.plugins, std::vector<std::string>{"ebpf-bash"});
  EXPECT_EQ(s.tags, (std::map<std::string, std::string>{{"team", "core"}, {"env", "dev"}}));
}

TEST(Schema, ErrorsNameTheKeyAndWhatIsAccepted) {
  struct Case {
    const char* yaml;
    const char* expect;
  };
  const Case cases[] = {
      {"interval: 60\n", "config f.yaml: key 'interval': expected a duration such as 60s"},
      {"history_size: lots\n", "key 'history_size': expected an integer from 1 to 1000000"},
      {"history_size: 0\n", "key 'history_size': expected an integer from 1 to 1000000, got 0"},
      {"ipv6_disabled: maybe\n", "key 'ipv6_disabled': expected true or false"},
      {"bogus: 1\n", "unknown key 'bogus' (test accepts: trace_server, ipv6_disabled"},
      {"trace_server: nowhere\n", "key 'trace_server': expected HOST:PORT"},
      {"enabled_plugins: [ebpf-foo]\n", "\"ebpf-foo\" is not one of: ebpf-net, ebpf-bash"},
      {"enabled_plugins: ebpf-net\n", "key 'enabled_plugins': expected a list"},
      {"tags: [a]\n", "key 'tags': expected a map"},
      {"interval: [1s]\n", "key 'interval': expected a duration such as 60s, got a list"},
      {"interval: 1s\ninterval: 2s\n", "key 'interval' given twice"},
      {"interval: [1s\n", "not valid YAML at line"},
      {"- a\n- b\n", "expected a map of option: value"},
      {"interval: 10ms\n", "expected a duration from 100ms to 1h, got 10ms"},
  };
  for (const auto& c : cases) {
    Sample s;
    Schema schema = MakeSchema(&s);
    Status st = schema.LoadText(c.yaml, "f.yaml");
    ASSERT_FALSE(st.ok()) << c.yaml;
    EXPECT_NE(st.message().find(c.expect), std::string::npos) << st.message();
    EXPECT_EQ(st.message().find('\n'), std::string::npos) << "one line: " << st.message();
  }
}

TEST(Schema, EnvironmentOverridesFile) {
  Sample s;
  Schema schema = MakeSchema(&s);
  ASSERT_TRUE(schema.LoadText("interval: 5s\n", "f.yaml").ok());
  std::map<std::string, std::string> env = {{"NODESCOPE_INTERVAL", "7s"},
                                            {"NODESCOPE_ENABLED_PLUGINS", "ebpf-net, ebpf-bash"},
                                            {"NODESCOPE_TAGS", "a=1,b=2"}};
  auto getenv = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  ASSERT_TRUE(schema.LoadEnv(getenv).ok());
  EXPECT_EQ(s.interval, seconds(7));
  EXPECT_EQ(s.plugins, (std::vector<std::string>{"ebpf-net", "ebpf-bash"}));
  EXPECT_EQ(s.tags, (std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}}));

  env = {{"NODESCOPE_HISTORY_SIZE", "x"}};
  Status st = schema.LoadEnv(getenv);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("environment NODESCOPE_HISTORY_SIZE: expected an integer"),
            std::string::npos)
      << st.message();
}

// Found by fuzz_config: quotes, backslashes and control characters were printed raw, so the
// printed config did not load, and an error quoting a newline took two lines.
TEST(Schema, PrintEscapesWhatYamlWouldReadOtherwise) {
  std::map<std::string, std::string> tags;
  Schema schema("test");
  schema.Map("tags", &tags, "tags");
  ASSERT_TRUE(schema.LoadText("tags: {\"k\\\"\": \"a\\\\b\\nc\\x01\"}\n", "f").ok());
  EXPECT_EQ(tags, (std::map<std::string, std::string>{{"k\"", "a\\b\nc\x01"}}));
  const std::string printed = schema.Print();
  EXPECT_NE(printed.find(R"({"k\"": "a\\b\nc\x01"})"), std::string::npos) << printed;
  std::map<std::string, std::string> again;
  Schema reload("test");
  reload.Map("tags", &again, "tags");
  ASSERT_TRUE(reload.LoadText(printed, "printed").ok());
  EXPECT_EQ(again, tags);

  bool flag = false;
  Schema bools("test");
  bools.Bool("flag", &flag, "flag");
  Status st = bools.LoadText("flag: \"x\\ny\"\n\"a\\nb\": 1\n", "f");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "config f: key 'flag': expected true or false, got \"x\\ny\"");
  st = bools.LoadText("\"a\\nb\": 1\n", "f");
  EXPECT_EQ(st.message().find('\n'), std::string::npos) << st.message();
}

TEST(Schema, PrintIsLoadableAndEqual) {
  Sample s;
  s.tags = {{"team", "core"}};
  Schema schema = MakeSchema(&s);
  std::string printed = schema.Print();
  Sample t;
  t.interval = seconds(1);
  t.plugins.clear();
  Schema again = MakeSchema(&t);
  Status st = again.LoadText(printed, "printed");
  ASSERT_TRUE(st.ok()) << st.message() << "\n" << printed;
  EXPECT_EQ(t.interval, s.interval);
  EXPECT_EQ(t.plugins, s.plugins);
  EXPECT_EQ(t.tags, s.tags);
  EXPECT_EQ(t.server, s.server);
}

}  // namespace
}  // namespace nodescope::config

namespace nodescope::config {
namespace {

TEST(Schema, ChoiceAcceptsOnlyListedValues) {
  std::string level = "info";
  Schema schema("test");
  schema.Choice("log_level", &level, {"debug", "info"}, "verbosity");
  ASSERT_TRUE(schema.LoadText("log_level: debug\n", "f").ok());
  EXPECT_EQ(level, "debug");
  Status st = schema.LoadText("log_level: loud\n", "f");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("key 'log_level': expected one of debug, info, got \"loud\""),
            std::string::npos)
      << st.message();
}

}  // namespace
}  // namespace nodescope::config
