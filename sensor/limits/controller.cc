#include "sensor/limits/controller.h"

#include <fmt/format.h>

#include "sensor/limits/quantity.h"

namespace nodescope::sensor::limits {

std::string_view Name(Resource r) {
  switch (r) {
    case Resource::kCpu:
      return "cpu";
    case Resource::kMemory:
      return "memory";
    case Resource::kNetwork:
      return "network";
  }
  return "";
}

std::string Describe(Resource r, double value) {
  switch (r) {
    case Resource::kCpu:
      return fmt::format("{:.3f} cores", value);
    case Resource::kMemory:
      return FormatBytes(value);
    case Resource::kNetwork:
      return FormatBytes(value) + "/s";
  }
  return "";
}

double UsageOf(const Usage& usage, Resource r) {
  switch (r) {
    case Resource::kCpu:
      return usage.cpu_cores;
    case Resource::kMemory:
      return usage.rss_bytes;
    case Resource::kNetwork:
      return usage.net_bytes_per_s;
  }
  return 0;
}

double Limits::Of(Resource r) const {
  switch (r) {
    case Resource::kCpu:
      return cpu_cores;
    case Resource::kMemory:
      return rss_bytes;
    case Resource::kNetwork:
      return net_bytes_per_s;
  }
  return 0;
}

Controller::Controller(Limits limits, ControllerOptions options)
    : limits_(limits), options_(options) {}

Decision Controller::Observe(const Usage& usage) {
  // The resource closest to (or furthest over) its limit decides.
  Decision d;
  double worst = -1;
  for (Resource r : kResources) {
    const double limit = limits_.Of(r);
    if (limit <= 0) continue;
    const double value = UsageOf(usage, r);
    if (value > limit) ++exceeded_[static_cast<size_t>(r)];
    if (value / limit > worst) {
      worst = value / limit;
      d.resource = r;
      d.value = value;
      d.limit = limit;
    }
  }
  d.level = level_;
  if (worst < 0) return d;  // no limit set

  if (worst > 1) {
    ++over_run_;
    under_run_ = 0;
  } else if (worst < options_.recover_ratio) {
    ++under_run_;
    over_run_ = 0;
    exhausted_said_ = false;
  } else {
    over_run_ = 0;
    under_run_ = 0;
    exhausted_said_ = false;
  }

  if (over_run_ >= options_.over_windows) {
    over_run_ = 0;
    if (options_.exit_on_limit) {
      d.action = Decision::Action::kExit;
    } else if (level_ < options_.levels) {
      d.action = Decision::Action::kShed;
      d.level = ++level_;
    } else if (!exhausted_said_) {
      exhausted_said_ = true;
      d.action = Decision::Action::kExhausted;
    }
  } else if (under_run_ >= options_.under_windows && level_ > 0) {
    under_run_ = 0;
    d.action = Decision::Action::kRestore;
    d.level = --level_;
  }
  return d;
}

}  // namespace nodescope::sensor::limits
