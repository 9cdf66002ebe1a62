// The plugin where ctnetlink cannot be subscribed: it says so in its status and nothing else
// breaks (the netflow join finds nothing, Sync returns at once). The working path needs root and
// real traffic: tests/integration/conntrack_test.cc.
#include "sensor/plugins/conntrack/conntrack_plugin.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <chrono>
#include <vector>

namespace nodescope::sensor::conntrack {
namespace {

struct Sink : EventSink {
  void Emit(v1::Event event) override { events.push_back(std::move(event)); }
  std::vector<v1::Event> events;
};

TEST(ConntrackPlugin, UnavailableCtnetlinkIsReportedAndNothingElseBreaks) {
  Sink sink;
  ConntrackPlugin plugin;
  ConntrackOptions options;
  options.own_netns = "/dev/null";  // not a namespace: setns fails as a missing ctnetlink would
  ASSERT_TRUE(plugin.Start(&sink, options).ok());
  EXPECT_FALSE(plugin.running());
  const v1::ProbeStatus status = plugin.probe_status();
  EXPECT_EQ(status.probe(), "conntrack");
  EXPECT_EQ(status.strategy(), "ctnetlink");
  EXPECT_EQ(status.state(), "failed");
  EXPECT_NE(status.error().find("nf_conntrack is not available"), std::string::npos)
      << status.error();
  EXPECT_NE(status.error().find("/dev/null"), std::string::npos) << status.error();
  netflow::NatQuery q;
  q.protocol = IPPROTO_TCP;
  EXPECT_FALSE(plugin.Lookup(q).has_value());
  const auto before = std::chrono::steady_clock::now();
  plugin.Sync(std::chrono::seconds(5));
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(1));
  const ConntrackPlugin::Counters c = plugin.counters();
  EXPECT_EQ(c.namespaces, 0u);
  EXPECT_EQ(c.translations, 0u);
  plugin.Stop();
  EXPECT_TRUE(sink.events.empty());
}

}  // namespace
}  // namespace nodescope::sensor::conntrack
