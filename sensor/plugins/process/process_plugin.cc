#include "sensor/plugins/process/process_plugin.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "process.skel.h"
#include "sensor/plugins/process/convert.h"

namespace nodescope::sensor::process {
namespace {

constexpr std::chrono::milliseconds kPollTimeout{100};
// Recalibrating the monotonic -> Unix offset and expiring exited processes.
constexpr std::chrono::seconds kHousekeeping{1};

}  // namespace

ProcessPlugin::ProcessPlugin() : probe_(kProbe, NS_PROCESS_CNT_MAX) {}

ProcessPlugin::~ProcessPlugin() { Stop(); }

std::vector<std::string> ProcessPlugin::Strategies() {
  return {std::string(bpf::kTpBtf), std::string(bpf::kTracepoint)};
}

Status ProcessPlugin::Attach(std::string_view strategy) {
  static constexpr bpf::SkeletonOps<process_bpf> kOps = {
      .open = [] { return process_bpf__open(); },
      .load = [](process_bpf* s) { return process_bpf__load(s); },
      .destroy = [](process_bpf* s) { process_bpf__destroy(s); },
      .ring_map = [](process_bpf* s) { return s->maps.events; },
      .counters_map = [](process_bpf* s) { return s->maps.counters; },
  };
  return bpf::LoadSkeleton(probe_, kOps, strategy, [this](std::span<const std::byte> record) {
           OnRecord(record);
         }).status();
}

Status ProcessPlugin::Start(EventSink* sink, proc::ProcessCache* cache,
                            std::string_view forced_strategy) {
  if (poller_.joinable()) return Status::Error("process probe already started");
  sink_ = sink;
  cache_ = cache;
  Status attached = probe_.Select(Strategies(), forced_strategy,
                                  [this](const std::string& name) { return Attach(name); });
  if (!attached.ok()) return attached;
  stop_ = false;
  clock_.Calibrate();
  poller_ = std::thread([this] { PollLoop(); });
  return Status::Ok();
}

void ProcessPlugin::OnRecord(std::span<const std::byte> record) {
  std::optional<ns_process_event> raw = ParseRecord(record);
  if (!raw) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  switch (raw->kind) {
    case NS_PROCESS_EXEC:
      exec_.fetch_add(1, std::memory_order_relaxed);
      break;
    case NS_PROCESS_FORK:
      fork_.fetch_add(1, std::memory_order_relaxed);
      break;
    case NS_PROCESS_EXIT:
      exit_.fetch_add(1, std::memory_order_relaxed);
      break;
    default:
      malformed_.fetch_add(1, std::memory_order_relaxed);
      return;
  }
  sink_->Emit(ConvertEvent(*raw, clock_, *cache_, proc::ProcessCache::Clock::now()));
  if (raw->kind == NS_PROCESS_EXEC && exec_observer_) {
    const char* filename = reinterpret_cast<const char*>(raw->filename);
    exec_observer_(raw->pid, std::string_view(filename, strnlen(filename, NS_FILENAME_LEN)));
  }
}

void ProcessPlugin::PollLoop() {
  auto next_housekeeping = std::chrono::steady_clock::now() + kHousekeeping;
  while (!stop_.load(std::memory_order_relaxed)) {
    Result<int> polled = probe_.ring()->Poll(kPollTimeout);
    if (!polled.ok()) {
      spdlog::error("probe {}: {}; no more process events", kProbe, polled.status().message());
      return;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= next_housekeeping) {
      clock_.Calibrate();
      cache_->ExpireExited(now);
      next_housekeeping = now + kHousekeeping;
    }
  }
}

void ProcessPlugin::Stop() {
  stop_ = true;
  if (poller_.joinable()) poller_.join();
  probe_.Teardown();
}

ProcessPlugin::Counters ProcessPlugin::counters() const {
  std::vector<uint64_t> kernel = probe_.KernelCounters();
  Counters counters;
  counters.ringbuf_drops = kernel[NS_PROCESS_CNT_RINGBUF_DROPS];
  counters.fork_unresolved = kernel[NS_PROCESS_CNT_FORK_UNRESOLVED];
  counters.exec = exec_.load(std::memory_order_relaxed);
  counters.fork = fork_.load(std::memory_order_relaxed);
  counters.exit = exit_.load(std::memory_order_relaxed);
  counters.malformed = malformed_.load(std::memory_order_relaxed);
  return counters;
}

v1::ProbeStatus ProcessPlugin::probe_status() const { return probe_.status(); }

}  // namespace nodescope::sensor::process
