#include "sensor/limits/controller.h"

#include <gtest/gtest.h>

#include <vector>

namespace nodescope::sensor::limits {
namespace {

using Action = Decision::Action;

Usage Cpu(double cores) {
  Usage u;
  u.cpu_cores = cores;
  return u;
}

// The actions of feeding `cores`, one window each.
std::vector<Action> Feed(Controller& c, const std::vector<double>& cores) {
  std::vector<Action> out;
  for (double v : cores) out.push_back(c.Observe(Cpu(v)).action);
  return out;
}

ControllerOptions Levels(size_t n) {
  ControllerOptions o;
  o.levels = n;
  o.over_windows = 3;
  o.under_windows = 4;
  o.recover_ratio = 0.8;
  return o;
}

TEST(Controller, NoLimitNeverActs) {
  Controller c(Limits{}, Levels(3));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(c.Observe(Cpu(100)).action, Action::kHold);
  EXPECT_EQ(c.level(), 0u);
}

TEST(Controller, ShedsAfterConsecutiveWindowsOver) {
  Controller c(Limits{.cpu_cores = 1.0}, Levels(3));
  EXPECT_EQ(Feed(c, {1.5, 1.5}), (std::vector<Action>{Action::kHold, Action::kHold}));
  Decision d = c.Observe(Cpu(1.5));
  EXPECT_EQ(d.action, Action::kShed);
  EXPECT_EQ(d.level, 1u);
  EXPECT_EQ(d.resource, Resource::kCpu);
  EXPECT_DOUBLE_EQ(d.value, 1.5);
  EXPECT_DOUBLE_EQ(d.limit, 1.0);
  // The next step needs as many windows again: the last one had no time to work yet.
  EXPECT_EQ(Feed(c, {1.5, 1.5, 1.5}),
            (std::vector<Action>{Action::kHold, Action::kHold, Action::kShed}));
  EXPECT_EQ(c.level(), 2u);
  EXPECT_EQ(c.exceeded_windows(Resource::kCpu), 6u);
}

TEST(Controller, AWindowUnderTheLimitRestartsTheCount) {
  Controller c(Limits{.cpu_cores = 1.0}, Levels(3));
  EXPECT_EQ(Feed(c, {1.5, 1.5, 0.9, 1.5, 1.5}), std::vector<Action>(5, Action::kHold));
  EXPECT_EQ(c.Observe(Cpu(1.5)).action, Action::kShed);
  // Exactly at the limit is not over it.
  Controller at(Limits{.cpu_cores = 1.0}, Levels(3));
  EXPECT_EQ(Feed(at, {1.0, 1.0, 1.0, 1.0}), std::vector<Action>(4, Action::kHold));
}

TEST(Controller, RestoresOnlyBelowTheRatioForLong) {
  Controller c(Limits{.cpu_cores = 1.0}, Levels(3));
  Feed(c, {2, 2, 2, 2, 2, 2});
  ASSERT_EQ(c.level(), 2u);
  // Between 80% and 100%: neither direction.
  EXPECT_EQ(Feed(c, std::vector<double>(10, 0.9)), std::vector<Action>(10, Action::kHold));
  // Below 80% for 4 windows, one interrupted run first.
  EXPECT_EQ(Feed(c, {0.5, 0.5, 0.5, 0.85, 0.5, 0.5, 0.5}), std::vector<Action>(7, Action::kHold));
  Decision d = c.Observe(Cpu(0.5));
  EXPECT_EQ(d.action, Action::kRestore);
  EXPECT_EQ(d.level, 1u);
  EXPECT_EQ(Feed(c, {0.5, 0.5, 0.5, 0.5}),
            (std::vector<Action>{Action::kHold, Action::kHold, Action::kHold, Action::kRestore}));
  EXPECT_EQ(c.level(), 0u);
  // Nothing more to restore.
  EXPECT_EQ(Feed(c, std::vector<double>(8, 0.1)), std::vector<Action>(8, Action::kHold));
}

TEST(Controller, ExhaustedOncePerRunOver) {
  Controller c(Limits{.cpu_cores = 1.0}, Levels(1));
  EXPECT_EQ(Feed(c, {2, 2, 2}).back(), Action::kShed);
  EXPECT_EQ(Feed(c, {2, 2, 2}).back(), Action::kExhausted);
  EXPECT_EQ(Feed(c, std::vector<double>(9, 2)), std::vector<Action>(9, Action::kHold));
  EXPECT_EQ(c.level(), 1u);
  EXPECT_EQ(Feed(c, {0.9, 2, 2, 2}).back(), Action::kExhausted);
}

TEST(Controller, ExitInsteadOfShedding) {
  ControllerOptions o = Levels(3);
  o.exit_on_limit = true;
  Controller c(Limits{.rss_bytes = 1000}, o);
  Usage u;
  u.rss_bytes = 1001;
  EXPECT_EQ(c.Observe(u).action, Action::kHold);
  EXPECT_EQ(c.Observe(u).action, Action::kHold);
  Decision d = c.Observe(u);
  EXPECT_EQ(d.action, Action::kExit);
  EXPECT_EQ(d.resource, Resource::kMemory);
  EXPECT_EQ(c.level(), 0u);
}

TEST(Controller, TheResourceFurthestOverDecides) {
  Controller c(Limits{.cpu_cores = 1.0, .rss_bytes = 1000, .net_bytes_per_s = 100}, Levels(3));
  Usage u;
  u.cpu_cores = 1.1;        // 110%
  u.rss_bytes = 500;        // 50%
  u.net_bytes_per_s = 300;  // 300%
  c.Observe(u);
  c.Observe(u);
  Decision d = c.Observe(u);
  EXPECT_EQ(d.action, Action::kShed);
  EXPECT_EQ(d.resource, Resource::kNetwork);
  EXPECT_DOUBLE_EQ(d.value, 300);
  EXPECT_EQ(c.exceeded_windows(Resource::kCpu), 3u);
  EXPECT_EQ(c.exceeded_windows(Resource::kMemory), 0u);
  EXPECT_EQ(c.exceeded_windows(Resource::kNetwork), 3u);
  // Restoring needs every limit below the ratio: cpu at 90% holds it.
  u = Usage{};
  u.cpu_cores = 0.9;
  for (int i = 0; i < 6; ++i) EXPECT_EQ(c.Observe(u).action, Action::kHold);
}

}  // namespace
}  // namespace nodescope::sensor::limits
