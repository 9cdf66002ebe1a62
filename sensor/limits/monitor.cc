#include "sensor/limits/monitor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <tuple>

#include "common/config.h"

namespace nodescope::sensor::limits {
namespace {

size_t StepIndex(const std::string& step) {
  return static_cast<size_t>(std::find(kSteps.begin(), kSteps.end(), step) - kSteps.begin());
}

std::vector<std::string> BuildPlan(const std::vector<std::string>& order, const Actions& a) {
  std::vector<std::string> plan;
  for (const std::string& step : order) {
    if (std::find(plan.begin(), plan.end(), step) != plan.end()) continue;  // listed twice
    if ((step == kStepSampling || step == kStepL7Payload) && a.set_l7) plan.push_back(step);
    if (step == kStepKernelFamilies && a.shed_kernel && a.restore_kernel) {
      for (size_t i = 0; i < a.kernel_sources; ++i) plan.push_back(step);
    }
  }
  return plan;
}

ControllerOptions ControllerOptionsOf(const MonitorOptions& o, size_t levels) {
  ControllerOptions c;
  c.levels = levels;
  c.exit_on_limit = o.exit_on_limit;
  c.over_windows = o.over_windows;
  c.under_windows = o.under_windows;
  c.recover_ratio = o.recover_ratio;
  return c;
}

}  // namespace

Monitor::Monitor(MonitorOptions options)
    : options_(std::move(options)),
      controller_(options_.limits, ControllerOptionsOf(options_, 0)) {}

Monitor::~Monitor() { Stop(); }

void Monitor::Configure(Actions actions) {
  std::lock_guard lock(mu_);
  actions_ = std::move(actions);
  plan_ = BuildPlan(options_.order, actions_);
  controller_ = Controller(options_.limits, ControllerOptionsOf(options_, plan_.size()));
}

std::vector<std::string> Monitor::plan() const {
  std::lock_guard lock(mu_);
  return plan_;
}

void Monitor::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || !enabled()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void Monitor::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Monitor::Run() {
  Result<Reading> before = ReadNow();
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (cv_.wait_for(lock, options_.window, [this] { return stop_; })) break;
    lock.unlock();
    Result<Reading> now = ReadNow();
    if (!now.ok()) {
      spdlog::warn("resource limits: {}; this window is not measured", now.status().message());
    } else if (before.ok()) {
      OnWindow(Between(*before, *now), std::chrono::nanoseconds(now->time_ns - before->time_ns));
    }
    before = std::move(now);
    lock.lock();
  }
}

void Monitor::OnWindow(const Usage& usage, std::chrono::nanoseconds window) {
  bool changed = false;
  bool exit = false;
  {
    std::lock_guard lock(mu_);
    last_ = usage;
    measured_ = true;
    const double seconds = std::chrono::duration<double>(window).count();
    if (sampling_on_) shed_seconds_[StepIndex(kStepSampling)] += seconds;
    if (payload_off_) shed_seconds_[StepIndex(kStepL7Payload)] += seconds;
    if (!kernel_shed_.empty()) shed_seconds_[StepIndex(kStepKernelFamilies)] += seconds;

    const Decision d = controller_.Observe(usage);
    const std::string windows = fmt::format("{} windows of {}", options_.over_windows,
                                            config::FormatDuration(options_.window));
    const std::string measured =
        d.resource == Resource::kNetwork && !usage.nic.empty()
            ? fmt::format("{} ({})", Describe(d.resource, d.value), usage.nic)
            : Describe(d.resource, d.value);
    switch (d.action) {
      case Decision::Action::kHold:
        break;
      case Decision::Action::kShed: {
        const std::string why = fmt::format("{} {} over the limit {} in {}", Name(d.resource),
                                            measured, Describe(d.resource, d.limit), windows);
        Apply(d.level - 1, true, why);
        ++sheds_;
        changed = true;
        break;
      }
      case Decision::Action::kRestore: {
        const std::string why = fmt::format(
            "{} {} below {:.0f}% of the limit {} (and every other limit) in {} windows of {}",
            Name(d.resource), measured, 100 * options_.recover_ratio, Describe(d.resource, d.limit),
            options_.under_windows, config::FormatDuration(options_.window));
        Apply(d.level, false, why);
        ++restores_;
        changed = true;
        break;
      }
      case Decision::Action::kExhausted:
        last_reason_ =
            fmt::format("{} {} still over the limit {} with every step shed ({})", Name(d.resource),
                        measured, Describe(d.resource, d.limit), ShedText());
        spdlog::warn("resource limit: {}", last_reason_);
        changed = true;
        break;
      case Decision::Action::kExit:
        if (!exit_reason_.empty()) break;
        exit_reason_ = fmt::format("{} {} over the limit {} in {}", Name(d.resource), measured,
                                   Describe(d.resource, d.limit), windows);
        spdlog::error("resource limit: {}; on_limit is exit: stopping", exit_reason_);
        exit = true;
        break;
    }
  }
  if (changed && actions_.status_changed) actions_.status_changed();
  if (exit && actions_.request_exit) actions_.request_exit();
}

void Monitor::Apply(size_t index, bool on, const std::string& why) {
  const std::string& step = plan_[index];
  std::string what;
  if (step == kStepSampling || step == kStepL7Payload) {
    (step == kStepSampling ? sampling_on_ : payload_off_) = on;
    actions_.set_l7(payload_off_, sampling_on_ ? options_.sampling : 1);
    what = step == kStepSampling ? fmt::format("sampling (HTTP payload of 1 in {} new connections)",
                                               options_.sampling)
                                 : "l7_payload (no HTTP payload copied)";
  } else if (on) {
    const std::string families = actions_.shed_kernel(why);
    kernel_shed_.push_back(families);
    what = "kernel_families (" + (families.empty() ? "none running" : families) + ")";
  } else {
    const std::string families = actions_.restore_kernel();
    if (!kernel_shed_.empty()) kernel_shed_.pop_back();
    what = "kernel_families (" + (families.empty() ? "none" : families) + ")";
  }
  last_reason_ = why;
  spdlog::warn("resource limit: {}: {} step {}/{}: {}", why, on ? "shedding" : "restoring",
               index + 1, plan_.size(), what);
}

std::string Monitor::ShedText() const {
  std::vector<std::string> parts;
  if (sampling_on_) parts.push_back(fmt::format("sampling 1 in {}", options_.sampling));
  if (payload_off_) parts.push_back("l7_payload");
  for (const std::string& f : kernel_shed_) parts.push_back("kernel " + f);
  return parts.empty() ? "nothing" : fmt::format("{}", fmt::join(parts, ", "));
}

void Monitor::AppendSamples(std::vector<Sample>& s) const {
  if (!enabled()) return;
  std::lock_guard lock(mu_);
  const char* usage_help =
      "the sensor's usage in the last limit window: cpu in cores (its own CPU time, not the BPF "
      "programs'), memory in bytes (RSS), network in bytes/s received + sent on the busiest "
      "interface";
  const char* limit_help =
      "configured resource limits (cpu_limit, mem_limit, net_limit), units "
      "as nodescope_sensor_limit_usage";
  const char* exceeded_help = "limit windows in which the usage was over the limit";
  for (Resource r : kResources) {
    const std::string name(Name(r));
    if (measured_) {
      s.push_back({"nodescope_sensor_limit_usage",
                   usage_help,
                   false,
                   {{"resource", name}},
                   UsageOf(last_, r)});
    }
    if (options_.limits.Of(r) <= 0) continue;
    s.push_back(
        {"nodescope_sensor_limit", limit_help, false, {{"resource", name}}, options_.limits.Of(r)});
    s.push_back({"nodescope_sensor_limit_exceeded_total",
                 exceeded_help,
                 true,
                 {{"resource", name}},
                 double(controller_.exceeded_windows(r))});
  }
  s.push_back({"nodescope_sensor_limit_shed_level",
               "shed steps in effect (0: nothing shed), out of nodescope_sensor_limit_shed_levels",
               false,
               {},
               double(controller_.level())});
  s.push_back({"nodescope_sensor_limit_shed_levels",
               "shed steps there are (limit_shed_order, one per kernel family source)",
               false,
               {},
               double(plan_.size())});
  const char* steps_help = "levels of each shed step in effect (kernel_families: sources stopped)";
  const char* seconds_help = "seconds each shed step was in effect";
  for (size_t i = 0; i < kSteps.size(); ++i) {
    const double on = kSteps[i] == kStepSampling    ? double(sampling_on_)
                      : kSteps[i] == kStepL7Payload ? double(payload_off_)
                                                    : double(kernel_shed_.size());
    s.push_back(
        {"nodescope_sensor_limit_shed_steps", steps_help, false, {{"step", kSteps[i]}}, on});
    s.push_back({"nodescope_sensor_limit_shed_seconds_total",
                 seconds_help,
                 true,
                 {{"step", kSteps[i]}},
                 shed_seconds_[i]});
  }
  const char* changes_help = "shed steps taken and restored";
  s.push_back({"nodescope_sensor_limit_changes_total",
               changes_help,
               true,
               {{"direction", "shed"}},
               double(sheds_)});
  s.push_back({"nodescope_sensor_limit_changes_total",
               changes_help,
               true,
               {{"direction", "restore"}},
               double(restores_)});
  if (actions_.skipped) {
    const Skipped k = actions_.skipped();
    const char* skipped_help =
        "what shedding left out, by step: HTTP connections whose payload was not copied "
        "(l7_connections) and their sends/receives not copied (l7_calls)";
    for (const auto& [what, step, n] :
         {std::tuple<const char*, const char*, uint64_t>{"l7_calls", kStepL7Payload,
                                                         k.l7_calls_payload},
          {"l7_calls", kStepSampling, k.l7_calls_sampling},
          {"l7_connections", kStepL7Payload, k.l7_connections_payload},
          {"l7_connections", kStepSampling, k.l7_connections_sampling}}) {
      s.push_back({"nodescope_sensor_limit_skipped_total",
                   skipped_help,
                   true,
                   {{"what", what}, {"step", step}},
                   double(n)});
    }
  }
}

std::string Monitor::LimitsText() const {
  std::vector<std::string> parts;
  for (Resource r : kResources) {
    const double limit = options_.limits.Of(r);
    if (limit > 0) parts.push_back(fmt::format("{} {}", Name(r), Describe(r, limit)));
  }
  return fmt::format("{}, measured every {}", fmt::join(parts, ", "),
                     config::FormatDuration(options_.window));
}

v1::ProbeStatus Monitor::status() const {
  std::lock_guard lock(mu_);
  v1::ProbeStatus p;
  p.set_probe("limits");
  p.set_state(controller_.level() > 0 ? "shedding" : "ok");
  std::vector<std::string> parts;
  for (Resource r : kResources) {
    const double limit = options_.limits.Of(r);
    if (limit <= 0) continue;
    parts.push_back(fmt::format("{} {} (limit {})", Name(r),
                                measured_ ? Describe(r, UsageOf(last_, r)) : "not measured yet",
                                Describe(r, limit)));
  }
  p.set_coverage(fmt::format("{}; on_limit {}; shed {}/{}: {}", fmt::join(parts, ", "),
                             options_.exit_on_limit ? "exit" : "shed", controller_.level(),
                             plan_.size(), ShedText()));
  if (controller_.level() > 0 || !exit_reason_.empty()) {
    p.set_error(exit_reason_.empty() ? last_reason_ : exit_reason_);
  }
  return p;
}

std::string Monitor::exit_reason() const {
  std::lock_guard lock(mu_);
  return exit_reason_;
}

}  // namespace nodescope::sensor::limits
