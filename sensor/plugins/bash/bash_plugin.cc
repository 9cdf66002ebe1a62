#include "sensor/plugins/bash/bash_plugin.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "sensor/plugins/bash/convert.h"
#include "sensor/plugins/bash/probe.h"

namespace nodescope::sensor::bash {
namespace {

constexpr std::chrono::milliseconds kPollTimeout{100};
// Recalibrating the monotonic -> Unix offset.
constexpr std::chrono::seconds kHousekeeping{1};

}  // namespace

BashPlugin::BashPlugin()
    : probe_(kProbe, NS_BASH_CNT_MAX),
      binaries_("/proc",
                [this](const std::string& exe, const std::string&) { return AttachBinary(exe); }) {}

BashPlugin::~BashPlugin() { Stop(); }

std::vector<std::string> BashPlugin::Strategies() { return {std::string(bpf::kUprobe)}; }

void BashPlugin::OnExec(uint32_t pid, std::string_view filename) {
  if (!Binaries::Candidate(filename)) return;
  std::lock_guard lock(pending_mu_);
  if (stopped_ || pending_.size() >= kMaxPending) return;
  pending_.push_back(pid);
}

Status BashPlugin::Attach(std::string_view strategy) {
  Result<bash_bpf*> skel = LoadBashProbe(
      probe_, strategy, [this](std::span<const std::byte> record) { OnRecord(record); });
  if (!skel.ok()) return skel.status();
  skel_ = *skel;
  return Status::Ok();
}

Status BashPlugin::AttachBinary(const std::string& exe) {
  Result<ReadlineLink> link = AttachReadline(skel_, exe, ++attachments_);
  if (!link.ok()) return link.status();
  spdlog::debug("probe {}: {}: uretprobe on {}", kProbe, exe, link->function);
  std::vector<bpf::LinkPtr> links;
  links.push_back(std::move(link->link));
  probe_.AdoptLinks(std::move(links));
  return Status::Ok();
}

Status BashPlugin::Start(EventSink* sink, proc::ProcessCache* cache, const std::string& proc_root,
                         const std::string& host_root, std::string_view forced_strategy) {
  if (poller_.joinable()) return Status::Error("bash probe already started");
  sink_ = sink;
  cache_ = cache;
  binaries_.set_proc_root(proc_root);
  Status attached = probe_.Select(Strategies(), forced_strategy,
                                  [this](const std::string& name) { return Attach(name); });
  if (!attached.ok()) return attached;
  clock_.Calibrate();
  // The host's bash first, so shells started later are covered from their first line; then the
  // files of shells already running (the line each is typing is seen when Enter is pressed: the
  // uretprobe is on readline_internal_teardown, see probe.h; what they read before is not).
  std::string root = host_root;
  while (!root.empty() && root.back() == '/') root.pop_back();
  for (const char* path : {"/usr/bin/bash", "/bin/bash", "/usr/local/bin/bash"}) {
    binaries_.OfferFile(root + path);
  }
  binaries_.Scan();
  spdlog::info("probe {}: {} bash file(s) probed at start", kProbe, binaries_.attached());
  stop_ = false;
  poller_ = std::thread([this] { PollLoop(); });
  return Status::Ok();
}

void BashPlugin::OnRecord(std::span<const std::byte> record) {
  std::optional<ns_bash_event> raw = ParseRecord(record);
  if (!raw) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  lines_.fetch_add(1, std::memory_order_relaxed);
  if (raw->flags & NS_BASH_TRUNCATED) truncated_.fetch_add(1, std::memory_order_relaxed);
  sink_->Emit(ConvertEvent(*raw, clock_.ToUnixNanos(raw->ts_ns), cache_->users()->Name(raw->uid)));
}

void BashPlugin::OfferPending() {
  std::vector<uint32_t> pids;
  {
    std::lock_guard lock(pending_mu_);
    pids.swap(pending_);
  }
  for (uint32_t pid : pids) binaries_.Offer(pid);
}

void BashPlugin::PollLoop() {
  auto next_housekeeping = std::chrono::steady_clock::now() + kHousekeeping;
  while (!stop_.load(std::memory_order_relaxed)) {
    Result<int> polled = probe_.ring()->Poll(kPollTimeout);
    if (!polled.ok()) {
      spdlog::error("probe {}: {}; no more bash lines", kProbe, polled.status().message());
      return;
    }
    OfferPending();
    auto now = std::chrono::steady_clock::now();
    if (now >= next_housekeeping) {
      clock_.Calibrate();
      next_housekeeping = now + kHousekeeping;
    }
  }
}

void BashPlugin::Stop() {
  {
    std::lock_guard lock(pending_mu_);
    stopped_ = true;
    pending_.clear();
  }
  stop_ = true;
  if (poller_.joinable()) poller_.join();
  probe_.Teardown();
  skel_ = nullptr;
}

BashPlugin::Counters BashPlugin::counters() const {
  std::vector<uint64_t> kernel = probe_.KernelCounters();
  Counters counters;
  counters.ringbuf_drops = kernel[NS_BASH_CNT_RINGBUF_DROPS];
  counters.read_failed = kernel[NS_BASH_CNT_READ_FAILED];
  counters.duplicates = kernel[NS_BASH_CNT_DUPLICATE];
  counters.lines = lines_.load(std::memory_order_relaxed);
  counters.truncated = truncated_.load(std::memory_order_relaxed);
  counters.malformed = malformed_.load(std::memory_order_relaxed);
  counters.binaries_attached = binaries_.attached();
  counters.binaries_failed = binaries_.failed();
  return counters;
}

v1::ProbeStatus BashPlugin::probe_status() const {
  v1::ProbeStatus status = probe_.status();
  if (status.state() != "attached") return status;
  std::string coverage, errors;
  for (const Binaries::File& file : binaries_.Files()) {
    const std::string name = file.path + " (dev " + std::to_string(file.id.dev) + ", inode " +
                             std::to_string(file.id.ino) + ")";
    if (file.attached) {
      coverage += (coverage.empty() ? "" : ", ") + name;
    } else {
      errors += (errors.empty() ? "" : "; ") + name + ": " + file.error;
    }
  }
  status.set_coverage("readline of every process running " +
                      (coverage.empty() ? std::string("no bash file yet") : coverage) +
                      "; bash files are probed as processes exec them");
  if (!errors.empty()) status.set_error("not probed: " + errors);
  return status;
}

}  // namespace nodescope::sensor::bash
