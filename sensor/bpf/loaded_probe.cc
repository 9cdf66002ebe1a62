#include "sensor/bpf/loaded_probe.h"

#include <spdlog/spdlog.h>

namespace nodescope::sensor::bpf {

LoadedProbe::LoadedProbe(std::string_view probe, uint32_t counter_slots)
    : counter_slots_(counter_slots), final_counters_(counter_slots, 0) {
  selection_.probe = std::string(probe);
}

LoadedProbe::~LoadedProbe() { TeardownImpl(false); }

Status LoadedProbe::Select(const std::vector<std::string>& strategies, std::string_view forced,
                           const std::function<Status(const std::string&)>& attach) {
  std::vector<AttachStrategy> offered;
  for (const std::string& name : strategies) {
    offered.push_back({name, [&attach, name] { return attach(name); }});
  }
  std::string probe;
  {
    std::lock_guard lock(mu_);
    probe = selection_.probe;
  }
  Selection selection = SelectStrategy(probe, offered, forced);
  std::lock_guard lock(mu_);
  selection_ = selection;
  return selection.attached ? Status::Ok() : Status::Error(selection.error);
}

void LoadedProbe::Adopt(std::function<void()> destroy_object, std::vector<LinkPtr> links,
                        std::unique_ptr<RingBuffer> ring, int counters_fd,
                        std::vector<bpf_program*> programs) {
  std::lock_guard lock(mu_);
  destroy_object_ = std::move(destroy_object);
  links_ = std::move(links);
  ring_ = std::move(ring);
  counters_fd_ = counters_fd;
  programs_ = std::move(programs);
}

void LoadedProbe::AdoptLinks(std::vector<LinkPtr> links) {
  std::lock_guard lock(mu_);
  for (LinkPtr& link : links) links_.push_back(std::move(link));
}

void LoadedProbe::TeardownImpl(bool deliver) {
  std::lock_guard lock(mu_);
  links_.clear();
  if (ring_ && deliver) {
    Result<int> drained = ring_->Poll(std::chrono::milliseconds(0));
    if (!drained.ok()) spdlog::warn("probe {}: {}", selection_.probe, drained.status().message());
  }
  ring_.reset();
  if (destroy_object_) {
    final_counters_ = ReadCounters();
    programs_.clear();
    destroy_object_();
    destroy_object_ = nullptr;
    counters_fd_ = -1;
  }
}

std::vector<uint64_t> LoadedProbe::ReadCounters() const {
  if (counters_fd_ < 0) return final_counters_;
  std::vector<uint64_t> values(counter_slots_, 0);
  for (uint32_t slot = 0; slot < counter_slots_; ++slot) {
    Result<uint64_t> sum = ReadPerCpuSum(counters_fd_, slot);
    values[slot] = sum.ok() ? *sum : final_counters_[slot];
  }
  return values;
}

std::vector<uint64_t> LoadedProbe::KernelCounters() const {
  std::lock_guard lock(mu_);
  return ReadCounters();
}

std::vector<ProgramStats> LoadedProbe::Programs(bool (*which)(std::string_view program)) const {
  std::lock_guard lock(mu_);
  std::vector<ProgramStats> stats;
  for (const bpf_program* program : programs_) {
    if (which != nullptr && !which(bpf_program__name(program))) continue;
    if (Result<ProgramStats> s = ReadProgramStats(program); s.ok()) stats.push_back(std::move(*s));
  }
  return stats;
}

uint64_t LoadedProbe::RecursionMisses(bool (*which)(std::string_view program)) const {
  uint64_t misses = 0;
  for (const ProgramStats& p : Programs(which)) misses += p.recursion_misses;
  return misses;
}

v1::ProbeStatus LoadedProbe::status() const {
  std::lock_guard lock(mu_);
  return selection_.ToProto();
}

}  // namespace nodescope::sensor::bpf
