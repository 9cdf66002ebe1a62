#include "sensor/plugins/process/process_plugin.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>

#include "process.skel.h"
#include "sensor/bpf/libbpf_log.h"
#include "sensor/plugins/process/convert.h"

namespace nodescope::sensor::process {
namespace {

constexpr std::chrono::milliseconds kPollTimeout{100};
// Recalibrating the monotonic -> Unix offset and expiring exited processes.
constexpr std::chrono::seconds kHousekeeping{1};

}  // namespace

ProcessPlugin::ProcessPlugin() : skel_(nullptr, &process_bpf__destroy) {
  selection_.probe = std::string(kProbe);
}

ProcessPlugin::~ProcessPlugin() { Stop(); }

std::vector<std::string> ProcessPlugin::Strategies() {
  return {std::string(bpf::kTpBtf), std::string(bpf::kTracepoint)};
}

Status ProcessPlugin::Attach(std::string_view strategy) {
  bpf::LibbpfLogCapture capture;
  Skeleton skel(process_bpf__open(), &process_bpf__destroy);
  if (!skel) return Status::Error("open: " + bpf::LibbpfErrorText(errno));
  if (Status s = bpf::SelectPrograms(skel->obj, strategy); !s.ok()) return s;
  if (int err = process_bpf__load(skel.get()); err != 0) {
    return Status::Error("load: " + bpf::LibbpfErrorText(err));
  }
  Result<std::vector<bpf::LinkPtr>> links = bpf::AttachPrograms(skel->obj, strategy);
  if (!links.ok()) return links.status();
  Result<std::unique_ptr<bpf::RingBuffer>> ring =
      bpf::RingBuffer::Open(bpf_map__fd(skel->maps.events),
                            [this](std::span<const std::byte> record) { OnRecord(record); });
  if (!ring.ok()) return ring.status();

  std::lock_guard lock(mu_);
  skel_ = std::move(skel);
  links_ = std::move(links).value();
  ring_ = std::move(ring).value();
  return Status::Ok();
}

Status ProcessPlugin::Start(EventSink* sink, proc::ProcessCache* cache,
                            std::string_view forced_strategy) {
  if (poller_.joinable()) return Status::Error("process probe already started");
  sink_ = sink;
  cache_ = cache;
  std::vector<bpf::AttachStrategy> strategies;
  for (const std::string& name : Strategies()) {
    strategies.push_back({name, [this, name] { return Attach(name); }});
  }
  bpf::Selection selection = bpf::SelectStrategy(kProbe, strategies, forced_strategy);
  {
    std::lock_guard lock(mu_);
    selection_ = selection;
  }
  if (!selection.attached) return Status::Error(selection.error);
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
}

void ProcessPlugin::PollLoop() {
  auto next_housekeeping = std::chrono::steady_clock::now() + kHousekeeping;
  while (!stop_.load(std::memory_order_relaxed)) {
    Result<int> polled = ring_->Poll(kPollTimeout);
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
  std::lock_guard lock(mu_);
  links_.clear();  // detached: nothing new is queued from here on
  if (ring_) {
    Result<int> drained = ring_->Poll(std::chrono::milliseconds(0));
    if (!drained.ok()) spdlog::warn("probe {}: {}", kProbe, drained.status().message());
  }
  ring_.reset();
  if (skel_) {
    ReadKernelCounters(final_kernel_counters_);
    skel_.reset();
  }
}

void ProcessPlugin::ReadKernelCounters(Counters& counters) const {
  int fd = bpf_map__fd(skel_->maps.counters);
  Result<uint64_t> drops = bpf::ReadPerCpuSum(fd, NS_PROCESS_CNT_RINGBUF_DROPS);
  Result<uint64_t> unresolved = bpf::ReadPerCpuSum(fd, NS_PROCESS_CNT_FORK_UNRESOLVED);
  if (drops.ok()) counters.ringbuf_drops = *drops;
  if (unresolved.ok()) counters.fork_unresolved = *unresolved;
}

ProcessPlugin::Counters ProcessPlugin::counters() const {
  Counters counters;
  {
    std::lock_guard lock(mu_);
    if (skel_) {
      ReadKernelCounters(counters);
    } else {
      counters.ringbuf_drops = final_kernel_counters_.ringbuf_drops;
      counters.fork_unresolved = final_kernel_counters_.fork_unresolved;
    }
  }
  counters.exec = exec_.load(std::memory_order_relaxed);
  counters.fork = fork_.load(std::memory_order_relaxed);
  counters.exit = exit_.load(std::memory_order_relaxed);
  counters.malformed = malformed_.load(std::memory_order_relaxed);
  return counters;
}

v1::ProbeStatus ProcessPlugin::probe_status() const {
  std::lock_guard lock(mu_);
  return selection_.ToProto();
}

}  // namespace nodescope::sensor::process
