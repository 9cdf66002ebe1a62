// Where CPU time went during a bench window: the whole machine (/proc/stat), reaped children,
// every process on the machine, and the BPF programs a process holds (the kernel's BPF run-time
// statistics). A probe's BPF programs run in the context of whatever triggers them (nginx, wrk,
// softirq), so their time is in the sensor's own utime+stime only for what the sensor runs
// itself; the run-time statistics are the way to see the rest.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "bench/child.h"
#include "common/status.h"

namespace nodescope::bench {

// CPU-seconds since boot, all processors together. busy = everything but idle and iowait;
// irq = hardirq + softirq (loopback packets are delivered in softirq); steal = taken by the
// hypervisor. With tick-based accounting (no CONFIG_IRQ_TIME_ACCOUNTING) irq time is also inside
// the utime+stime of the processes it interrupted.
struct MachineCpu {
  double busy = 0;
  double irq = 0;
  double steal = 0;
};
Result<MachineCpu> ReadMachineCpu();

// utime + stime of this process's children that have been waited for (RUSAGE_CHILDREN).
double ReapedChildrenCpuSeconds();

// pid -> command name and utime + stime of every process on the machine now.
std::map<pid_t, ThreadCpu> AllProcessesCpu();

struct BpfProgramRun {
  std::string name;  // the program's function name (from BTF; else the kernel's 15 characters)
  uint64_t run_time_ns = 0;  // 0 while no BpfStatsOn is alive
  uint64_t run_count = 0;
};
// BPF program id -> name and run-time statistics, for every program `pid` holds an fd of.
Result<std::map<uint32_t, BpfProgramRun>> BpfProgramsOf(pid_t pid);

// Keeps the kernel's BPF run-time statistics on while it lives (BPF_ENABLE_STATS). The kernel
// counts holders, so this never turns off statistics someone else enabled, and the process's
// exit turns them off if the destructor never runs: kernel.bpf_stats_enabled is never touched.
class BpfStatsOn {
 public:
  static Result<std::unique_ptr<BpfStatsOn>> Enable();
  ~BpfStatsOn();
  BpfStatsOn(const BpfStatsOn&) = delete;
  BpfStatsOn& operator=(const BpfStatsOn&) = delete;

 private:
  explicit BpfStatsOn(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace nodescope::bench
