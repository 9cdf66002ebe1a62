// Loads the disk family with each attach strategy, puts ext4 and xfs on loop devices, does direct
// and buffered I/O on them, and checks each device's latency histogram against the kernel's own
// accounting: /proc/diskstats, and the block tracepoints read through a tracefs instance of the
// test's own (the kernel's text output, no BPF). Needs root, losetup, mkfs.ext4 and mkfs.xfs.
//
// What diskstats counts, for a blk-mq device such as loop (block/blk-mq.c, block/blk-flush.c on
// Linux 6.x): reads/writes/discards completed are the requests built from bios, counted once
// when they end (blk_account_io_done(), RQF_IO_STAT without RQF_FLUSH_SEQ); flushes completed
// are the FLUSH requests the flush machinery issues (blk_account_io_flush()). Every one of
// those is issued to the driver and fires block_rq_issue, except one kind: an empty PREFLUSH
// write (fsync, sync, a journal commit's barrier) is never issued itself; it waits for a FLUSH
// request and is ended with it, and diskstats counts it as a write. block_rq_complete also fires
// twice for a PREFLUSH/FUA write on a device without FUA (loop): once when the driver finishes
// its data, once, without data, after its post-flush. The histogram counts issued requests,
// once each. So over a window with no request in flight at either edge:
//   histogram count = block_rq_issue events                     (tracefs)
//   flushes completed = block_rq_issue events of FLUSH requests  (diskstats = tracefs)
//   reads + writes + discards completed = block_getrq events - block_rq_merge events
//   histogram count = reads + writes + discards + flushes completed - never-issued writes
// where never-issued writes = block_getrq - block_rq_merge - non-FLUSH block_rq_issue events.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bpf/abi/disk.h"
#include "sensor/bpf/clock.h"
#include "sensor/plugins/kernel/disk/disk_source.h"
#include "sensor/plugins/kernel/disk/diskstats.h"
#include "tests/bpf/kernel_family.h"
#include "tests/bpf/loop_fs.h"

namespace nodescope::sensor::kernel::disk {
namespace {

using namespace std::chrono_literals;
using bpf::MonotonicNs;
using nodescope::test::Count;
using nodescope::test::LoopDevice;
using nodescope::test::LoopFs;
using nodescope::test::ReadFile;
using nodescope::test::WriteFile;

constexpr char kTracefs[] = "/sys/kernel/tracing";
constexpr size_t kChunk = 64 << 10;
constexpr int kChunks = 16;

// ---- RAII guards: whatever a test made is undone, in reverse order, even when it fails ----

// The kernel's dev_t of a loop device, as the block tracepoints and the probe's map keys have it.
uint32_t KernelDev(const LoopDevice& loop) {
  const dev_t rdev = loop.rdev();
  if (rdev == 0) return 0;
  return (major(rdev) << NS_DISK_MINOR_BITS) | minor(rdev);
}

// A tracefs instance of the test's own: its buffer, clock and event switches do not touch the
// top-level buffer others may use.
class TraceInstance {
 public:
  ~TraceInstance() {
    if (dir_.empty()) return;
    WriteFile(dir_ + "/tracing_on", "0");
    for (const std::string& e : events_) WriteFile(dir_ + "/events/block/" + e + "/enable", "0");
    rmdir(dir_.c_str());
  }
  // Records `events` of the block category for the devices `devs` with CLOCK_MONOTONIC stamps.
  std::string Start(const std::vector<std::string>& events, const std::vector<uint32_t>& devs) {
    dir_ = std::string(kTracefs) + "/instances/nodescope_disk_test_" + std::to_string(getpid());
    if (mkdir(dir_.c_str(), 0700) != 0) {
      std::string error = "mkdir " + dir_ + ": " + std::strerror(errno);
      dir_.clear();
      return error;
    }
    std::string filter;
    for (uint32_t dev : devs)
      filter += (filter.empty() ? "" : " || ") + ("dev == " + std::to_string(dev));
    if (!WriteFile(dir_ + "/trace_clock", "mono")) return "cannot set trace_clock mono";
    if (!WriteFile(dir_ + "/buffer_size_kb", "8192")) return "cannot size the buffer";
    for (const std::string& e : events) {
      const std::string base = dir_ + "/events/block/" + e;
      if (!WriteFile(base + "/filter", filter)) return "cannot filter " + e;
      if (!WriteFile(base + "/enable", "1")) return "cannot enable " + e;
      events_.push_back(e);
    }
    if (!WriteFile(dir_ + "/tracing_on", "1")) return "cannot turn tracing on";
    return "";
  }
  std::string Text() const { return ReadFile(dir_ + "/trace"); }

 private:
  std::string dir_;
  std::vector<std::string> events_;
};

// ---- the kernel's accounting ----

std::map<uint32_t, DiskStats> ReadStats() {
  Result<std::vector<DiskStats>> stats = ReadDiskstats("/proc");
  EXPECT_TRUE(stats.ok()) << stats.status().message();
  std::map<uint32_t, DiskStats> by_dev;
  if (!stats.ok()) return by_dev;
  for (const DiskStats& d : *stats) by_dev[(d.major << NS_DISK_MINOR_BITS) | d.minor] = d;
  return by_dev;
}

uint64_t Completed(const DiskStats& d) { return d.reads + d.writes + d.discards + d.flushes; }
uint64_t BusyMs(const DiskStats& d) { return d.read_ms + d.write_ms + d.discard_ms + d.flush_ms; }

bool SameCounts(const DiskStats& a, const DiskStats& b) {
  return Completed(a) == Completed(b) && a.in_flight == 0 && b.in_flight == 0;
}

bool Idle(const std::map<uint32_t, DiskStats>& a, const std::map<uint32_t, DiskStats>& b,
          const std::vector<uint32_t>& devs) {
  for (uint32_t dev : devs) {
    if (!a.count(dev) || !b.count(dev) || !SameCounts(a.at(dev), b.at(dev))) return false;
  }
  return true;
}

// Waits until none of `devs` completed anything for 300 ms and none has a request in flight.
void WaitIdle(const std::vector<uint32_t>& devs) {
  std::map<uint32_t, DiskStats> last = ReadStats();
  int quiet = 0;
  for (int i = 0; i < 300 && quiet < 3; ++i) {
    std::this_thread::sleep_for(100ms);
    std::map<uint32_t, DiskStats> now = ReadStats();
    quiet = Idle(last, now, devs) ? quiet + 1 : 0;
    last = std::move(now);
  }
  ASSERT_EQ(quiet, 3) << "devices never went idle";
}

// What the block tracepoints said about one device between two instants.
struct TraceCounts {
  uint64_t issued = 0;                  // block_rq_issue
  uint64_t issued_flush = 0;            // of which FLUSH requests
  uint64_t getrq = 0;                   // block_getrq: requests built from bios
  uint64_t merged = 0;                  // block_rq_merge: requests merged into another, never ended
  uint64_t completed = 0;               // block_rq_complete
  uint64_t completed_empty_writes = 0;  // of which writes without data
};

// rwbs as blk_fill_rwbs() writes it: a leading 'F' is the PREFLUSH flag, then the op letter.
char RwbsOp(const std::string& rwbs) {
  if (rwbs.size() > 1 && rwbs[0] == 'F' &&
      std::string("WRDFN").find(rwbs[1]) != std::string::npos) {
    return rwbs[1];
  }
  return rwbs.empty() ? '?' : rwbs[0];
}

// Lines of the tracefs text output:
//   "dd-5462 [000] ..... 18798.746091: block_rq_issue: 7,0 WS 65536 () 18050 + 128 be,0,4 [dd]"
//   "ksoftirqd/0-14 [000] ..s.. 18798.746137: block_rq_complete: 7,0 WS () 18050 + 128 ... [0]"
std::map<uint32_t, TraceCounts> CountTrace(const std::string& text, uint64_t from_ns,
                                           uint64_t to_ns, bool& lost) {
  std::map<uint32_t, TraceCounts> counts;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("LOST") != std::string::npos) lost = true;
    if (line.empty() || line[0] == '#') continue;
    const size_t event_at = line.find(": block_");
    if (event_at == std::string::npos) continue;
    const size_t ts_at = line.rfind(' ', event_at);
    const std::string ts = line.substr(ts_at + 1, event_at - ts_at - 1);
    const size_t dot = ts.find('.');
    if (dot == std::string::npos) continue;
    const uint64_t ts_ns = std::stoull(ts.substr(0, dot)) * 1'000'000'000u +
                           std::stoull(ts.substr(dot + 1)) * 1'000u;  // microseconds
    if (ts_ns <= from_ns || ts_ns > to_ns) continue;
    std::istringstream fields(line.substr(event_at + 2));
    std::string event, dev, rwbs;
    fields >> event >> dev >> rwbs;
    unsigned major = 0, minor = 0;
    if (std::sscanf(dev.c_str(), "%u,%u", &major, &minor) != 2) continue;
    TraceCounts& c = counts[(major << NS_DISK_MINOR_BITS) | minor];
    if (event == "block_rq_issue:") {
      ++c.issued;
      if (RwbsOp(rwbs) == 'F') ++c.issued_flush;
    } else if (event == "block_getrq:") {
      ++c.getrq;
    } else if (event == "block_rq_merge:") {
      ++c.merged;
    } else if (event == "block_rq_complete:") {
      ++c.completed;
      const size_t plus = line.find(" + ", event_at);
      if (RwbsOp(rwbs) == 'W' && plus != std::string::npos &&
          std::strtoull(line.c_str() + plus + 3, nullptr, 10) == 0) {
        ++c.completed_empty_writes;
      }
    }
  }
  return counts;
}

// ---- the workload ----

struct AlignedBuffer {
  explicit AlignedBuffer(size_t size) {
    if (posix_memalign(&data, 4096, size) != 0) data = nullptr;
    if (data != nullptr) std::memset(data, 0x5a, size);
  }
  ~AlignedBuffer() { std::free(data); }
  void* data = nullptr;
};

// Direct writes (each a request of its own), buffered writes, fsync of both, then with the page
// cache dropped a buffered and a direct read of what was written.
void DoIo(const std::string& dir) {
  AlignedBuffer buf(kChunk);
  ASSERT_NE(buf.data, nullptr);
  const std::string direct = dir + "/direct", buffered = dir + "/buffered";
  int fd = open(direct.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << direct << ": " << std::strerror(errno);
  for (int i = 0; i < kChunks; ++i) {
    ASSERT_EQ(write(fd, buf.data, kChunk), static_cast<ssize_t>(kChunk)) << std::strerror(errno);
  }
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  fd = open(buffered.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << buffered << ": " << std::strerror(errno);
  for (int i = 0; i < kChunks; ++i) {
    ASSERT_EQ(write(fd, buf.data, kChunk), static_cast<ssize_t>(kChunk));
  }
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  sync();
  ASSERT_TRUE(WriteFile("/proc/sys/vm/drop_caches", "3"));
  fd = open(buffered.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  while (read(fd, buf.data, kChunk) > 0) {
  }
  close(fd);
  fd = open(direct.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < kChunks; ++i) {
    ASSERT_EQ(read(fd, buf.data, kChunk), static_cast<ssize_t>(kChunk)) << std::strerror(errno);
  }
  close(fd);
}

class DiskProbeTest : public nodescope::test::KernelFamilyTest {};

// The histograms of a Collect by device label; every one must be host-wide.
std::map<std::string, ns_hist> Histograms(const v1::KernelMetricsEvent& event) {
  std::map<std::string, ns_hist> out;
  for (const auto& [labels, h] :
       nodescope::test::HostWideHistograms(event, "disk_io_latency", {"device"})) {
    out[labels[0]] = h;
  }
  return out;
}

TEST_P(DiskProbeTest, HistogramCountsEveryIssuedRequestOfEachDevice) {
  const std::string strategy = GetParam();
  ASSERT_EQ(nodescope::test::MissingLoopFsTools(), "");

  LoopFs ext4("ext4", "nodescope_disk_test_ext4"), xfs("xfs", "nodescope_disk_test_xfs");
  // No lazy inode-table or journal init: ext4lazyinit would write zeroes in the background.
  std::string error = ext4.Setup("mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0");
  ASSERT_EQ(error, "");
  error = xfs.Setup("mkfs.xfs -q -f");
  ASSERT_EQ(error, "");
  std::vector<LoopFs*> filesystems = {&ext4, &xfs};
  std::vector<uint32_t> devs;
  for (LoopFs* f : filesystems) {
    devs.push_back(KernelDev(f->loop));
    ASSERT_NE(devs.back(), 0u) << f->loop.device();
    std::string scheduler = ReadFile("/sys/block/" + f->loop.name() + "/queue/scheduler");
    while (!scheduler.empty() && scheduler.back() == '\n') scheduler.pop_back();
    std::cerr << f->fstype << " on " << f->loop.device() << " (scheduler " << scheduler << ")\n";
  }

  DiskSource source(strategy);
  ASSERT_NO_FATAL_FAILURE(nodescope::test::StartAttached(source, "disk", strategy));

  TraceInstance trace;
  ASSERT_EQ(
      trace.Start({"block_rq_issue", "block_rq_complete", "block_getrq", "block_rq_merge"}, devs),
      "");
  const std::map<uint32_t, DiskStats> outer_before = ReadStats();
  WaitIdle(devs);

  // Window edges: a Collect with diskstats unchanged and nothing in flight on either side of it.
  // Every Collect after the baseline adds to the window's histograms.
  v1::KernelMetricsEvent window;
  auto edge = [&](bool baseline, std::map<uint32_t, DiskStats>& stats, uint64_t& at_ns) {
    for (int attempt = 0; attempt < 50; ++attempt) {
      std::map<uint32_t, DiskStats> before = ReadStats();
      v1::KernelMetricsEvent event;
      source.Collect(event);
      at_ns = MonotonicNs();
      stats = ReadStats();
      if (!baseline) window.MergeFrom(event);
      if (Idle(before, stats, devs)) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  };
  std::map<uint32_t, DiskStats> start_stats, end_stats;
  uint64_t start_ns = 0, end_ns = 0;
  ASSERT_TRUE(edge(true, start_stats, start_ns)) << "no idle instant to start the window";
  const std::vector<uint64_t> counters_before = source.KernelCounters();

  for (LoopFs* f : filesystems) {
    DoIo(f->mnt.dir());
    if (HasFatalFailure()) return;
  }
  WaitIdle(devs);
  ASSERT_TRUE(edge(false, end_stats, end_ns)) << "no idle instant to end the window";
  const std::vector<uint64_t> counters_after = source.KernelCounters();
  std::this_thread::sleep_for(100ms);  // completions counted at the end are accounted by now
  const std::map<uint32_t, DiskStats> outer_after = ReadStats();

  bool lost = false;
  std::map<uint32_t, TraceCounts> traced = CountTrace(trace.Text(), start_ns, end_ns, lost);
  ASSERT_FALSE(lost) << "the tracefs buffer lost events";
  const std::map<std::string, ns_hist> hists = Histograms(window);

  for (LoopFs* f : filesystems) {
    const uint32_t dev = KernelDev(f->loop);
    const std::string name = f->loop.name();
    const DiskStats& a = start_stats.at(dev);
    const DiskStats& b = end_stats.at(dev);
    const TraceCounts& t = traced[dev];
    ASSERT_TRUE(hists.count(name)) << name << " (" << f->fstype << ") has no histogram";
    const ns_hist& h = hists.at(name);
    const uint64_t count = Count(h);
    const uint64_t completed = Completed(b) - Completed(a);
    const int64_t never_issued =
        static_cast<int64_t>(t.getrq - t.merged) - static_cast<int64_t>(t.issued - t.issued_flush);
    std::cerr << strategy << " " << f->fstype << " " << name << ": histogram " << count
              << ", diskstats completed " << completed << " (reads " << b.reads - a.reads
              << ", writes " << b.writes - a.writes << ", discards " << b.discards - a.discards
              << ", flushes " << b.flushes - a.flushes << "); tracefs: issued " << t.issued
              << " (flush " << t.issued_flush << "), getrq " << t.getrq << ", merged " << t.merged
              << ", completed " << t.completed << " (empty writes " << t.completed_empty_writes
              << "); never issued " << never_issued << "; mean latency "
              << (count ? h.sum_ns / count : 0) << " ns\n";

    // Every request the driver was handed, once.
    EXPECT_EQ(count, t.issued) << name;
    // diskstats and the tracepoints describe the same requests over this window.
    EXPECT_EQ(b.flushes - a.flushes, t.issued_flush) << name;
    EXPECT_EQ((b.reads - a.reads) + (b.writes - a.writes) + (b.discards - a.discards),
              t.getrq - t.merged)
        << name;
    // So the histogram is diskstats' count less the empty PREFLUSH writes never issued, each of
    // which block_rq_complete reports as a write without data.
    ASSERT_GE(never_issued, 0) << name;
    EXPECT_EQ(count, completed - static_cast<uint64_t>(never_issued)) << name;
    EXPECT_LE(static_cast<uint64_t>(never_issued), t.completed_empty_writes) << name;
    // The workload's own requests are there: 16 direct reads of 64 KiB at least.
    EXPECT_GE(b.reads - a.reads, static_cast<uint64_t>(kChunks)) << name;
    EXPECT_GE(count, 2u * kChunks) << name;

    // Latencies: a loop request goes through a worker thread and the backing file, between
    // 1 us (slot 10) and 8.6 s (slot 33); the sum of issue-to-completion times is at most the
    // time diskstats counts, which starts earlier (at the bio) and ends later, plus 1 ms per
    // field for its rounding.
    for (size_t i = 0; i < NS_HIST_SLOTS; ++i) {
      if (i < 10 || i > 32) {
        EXPECT_EQ(h.slots[i], 0u) << name << " slot " << i;
      }
    }
    EXPECT_GE(h.sum_ns, count * 1000) << name;
    EXPECT_LE(h.sum_ns, (BusyMs(b) - BusyMs(a) + 4) * 1'000'000) << name;
  }

  // Devices the window did not move have no series; every series is a device that moved.
  std::set<std::string> moved;
  for (const auto& [dev, after] : outer_after) {
    auto it = outer_before.find(dev);
    if (it == outer_before.end() || Completed(after) != Completed(it->second))
      moved.insert(after.name);
  }
  for (const auto& [name, h] : hists) {
    EXPECT_TRUE(moved.count(name)) << name << " has a histogram but diskstats did not move";
    EXPECT_GT(Count(h), 0u) << name;
  }
  EXPECT_GT(outer_after.size(), moved.size()) << "every device moved: nothing to check absence on";

  // The only counters are losses, each labelled with a reason of this family.
  ASSERT_NO_FATAL_FAILURE(nodescope::test::ExpectOnlyLosses(window, "disk"));
  // No request was lost to a full map while the probe counted.
  EXPECT_EQ(counters_after[NS_DISK_CNT_INFLIGHT_FULL], counters_before[NS_DISK_CNT_INFLIGHT_FULL]);
  EXPECT_EQ(counters_after[NS_DISK_CNT_DEVICES_FULL], counters_before[NS_DISK_CNT_DEVICES_FULL]);
  // The fsyncs made the flush machinery end writes without data (all devices count here).
  EXPECT_GT(counters_after[NS_DISK_CNT_FLUSH_SEQUENCE],
            counters_before[NS_DISK_CNT_FLUSH_SEQUENCE]);
  source.Stop();
}

TEST(DiskSourceTest, DisabledFamilyLoadsNothing) {
  DiskSource source;
  nodescope::test::ExpectDisabledLoadsNothing(source, {"process"});
}

INSTANTIATE_TEST_SUITE_P(Strategies, DiskProbeTest, ::testing::Values("tp_btf", "tracepoint"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace nodescope::sensor::kernel::disk
