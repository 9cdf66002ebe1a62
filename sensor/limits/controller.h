// When to shed load and when to take it back, from one usage figure per window: pure logic
// (no clock, no I/O), so that the hysteresis is tested with made-up windows.
//
// A limit is exceeded in a window when the usage is above it. After `over_windows` such windows
// in a row the controller sheds one more step (or says exit, with on_limit: exit); after
// `under_windows` windows in a row in which every usage stays below `recover_ratio` of its limit,
// it takes one step back. A window between the two ends both runs, so usage hovering near a limit
// neither sheds nor restores.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sensor/limits/usage.h"

namespace nodescope::sensor::limits {

enum class Resource { kCpu = 0, kMemory = 1, kNetwork = 2 };
inline constexpr std::array<Resource, 3> kResources = {Resource::kCpu, Resource::kMemory,
                                                       Resource::kNetwork};
// "cpu", "memory", "network": the metrics' `resource` label.
std::string_view Name(Resource r);
// "0.31 cores", "1.2 GiB", "3.0 MiB/s".
std::string Describe(Resource r, double value);
double UsageOf(const Usage& usage, Resource r);

// 0: no limit on that resource.
struct Limits {
  double cpu_cores = 0;
  double rss_bytes = 0;
  double net_bytes_per_s = 0;

  double Of(Resource r) const;
  bool any() const { return cpu_cores > 0 || rss_bytes > 0 || net_bytes_per_s > 0; }
};

struct ControllerOptions {
  size_t levels = 0;           // shed steps available; 0: exceeding is only counted (or exits)
  bool exit_on_limit = false;  // on_limit: exit
  int over_windows = 3;
  int under_windows = 6;
  double recover_ratio = 0.8;
};

struct Decision {
  enum class Action {
    kHold,       // nothing changes
    kShed,       // one step more: `level` is the new level
    kRestore,    // one step back
    kExhausted,  // still over with every step shed (said once per run of windows over)
    kExit,       // on_limit: exit
  };
  Action action = Action::kHold;
  // kShed, kExhausted, kExit: the resource furthest over its limit; kRestore: the one closest
  // to its limit.
  Resource resource = Resource::kCpu;
  double value = 0;
  double limit = 0;
  size_t level = 0;  // after the decision
};

class Controller {
 public:
  Controller(Limits limits, ControllerOptions options);

  Decision Observe(const Usage& usage);

  size_t level() const { return level_; }
  const Limits& limits() const { return limits_; }
  const ControllerOptions& options() const { return options_; }
  // Windows in which `r` was over its limit.
  uint64_t exceeded_windows(Resource r) const { return exceeded_[static_cast<size_t>(r)]; }

 private:
  Limits limits_;
  ControllerOptions options_;
  size_t level_ = 0;
  int over_run_ = 0;
  int under_run_ = 0;
  bool exhausted_said_ = false;
  std::array<uint64_t, 3> exceeded_{};
};

}  // namespace nodescope::sensor::limits
