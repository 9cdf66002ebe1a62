#include "sensor/capabilities.h"

#include <dirent.h>
#include <linux/capability.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

namespace nodescope::sensor {
namespace {

constexpr std::array<std::string_view, 41> kNames = {"CAP_CHOWN",
                                                     "CAP_DAC_OVERRIDE",
                                                     "CAP_DAC_READ_SEARCH",
                                                     "CAP_FOWNER",
                                                     "CAP_FSETID",
                                                     "CAP_KILL",
                                                     "CAP_SETGID",
                                                     "CAP_SETUID",
                                                     "CAP_SETPCAP",
                                                     "CAP_LINUX_IMMUTABLE",
                                                     "CAP_NET_BIND_SERVICE",
                                                     "CAP_NET_BROADCAST",
                                                     "CAP_NET_ADMIN",
                                                     "CAP_NET_RAW",
                                                     "CAP_IPC_LOCK",
                                                     "CAP_IPC_OWNER",
                                                     "CAP_SYS_MODULE",
                                                     "CAP_SYS_RAWIO",
                                                     "CAP_SYS_CHROOT",
                                                     "CAP_SYS_PTRACE",
                                                     "CAP_SYS_PACCT",
                                                     "CAP_SYS_ADMIN",
                                                     "CAP_SYS_BOOT",
                                                     "CAP_SYS_NICE",
                                                     "CAP_SYS_RESOURCE",
                                                     "CAP_SYS_TIME",
                                                     "CAP_SYS_TTY_CONFIG",
                                                     "CAP_MKNOD",
                                                     "CAP_LEASE",
                                                     "CAP_AUDIT_WRITE",
                                                     "CAP_AUDIT_CONTROL",
                                                     "CAP_SETFCAP",
                                                     "CAP_MAC_OVERRIDE",
                                                     "CAP_MAC_ADMIN",
                                                     "CAP_SYSLOG",
                                                     "CAP_WAKE_ALARM",
                                                     "CAP_BLOCK_SUSPEND",
                                                     "CAP_AUDIT_READ",
                                                     "CAP_PERFMON",
                                                     "CAP_BPF",
                                                     "CAP_CHECKPOINT_RESTORE"};

bool Has(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// What every thread is brought to. Written before the first signal is sent and not changed while
// one may be handled; handlers only read it.
struct Target {
  uint64_t keep = 0;
  int last_cap = 0;
  bool drop_bounding = false;
};
Target target;
int drop_signal = 0;  // the real-time signal DropCapabilities took for itself

// Raw system calls only: it also runs in a signal handler. 0, or the errno of the first failure.
int ApplyToThisThread() {
  if (target.drop_bounding) {
    for (int cap = 0; cap <= target.last_cap; ++cap) {
      if ((target.keep >> cap) & 1) continue;
      if (syscall(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return errno;
    }
  }
  // EINVAL: a kernel without ambient capabilities (before 4.3), so there are none to clear.
  if (syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 &&
      errno != EINVAL) {
    return errno;
  }
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;  // this thread
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  data[0].permitted = data[0].effective = static_cast<uint32_t>(target.keep);
  data[1].permitted = data[1].effective = static_cast<uint32_t>(target.keep >> 32);
  if (syscall(SYS_capset, &header, data) != 0) return errno;
  return 0;
}

void OnDropSignal(int) {
  const int saved = errno;
  (void)ApplyToThisThread();  // a failure shows in the thread's status, read back by the caller
  errno = saved;
}

// A real-time signal nobody handles yet (SIGRTMAX downwards), with OnDropSignal installed. Kept
// installed afterwards: a thread that got the signal late must not die of its default action.
Result<int> InstallDropSignal() {
  if (drop_signal != 0) return drop_signal;
  for (int sig = SIGRTMAX; sig >= SIGRTMIN + 4; --sig) {
    struct sigaction current {};
    if (sigaction(sig, nullptr, &current) != 0) continue;
    if (current.sa_handler != SIG_DFL || (current.sa_flags & SA_SIGINFO)) continue;
    struct sigaction action {};
    action.sa_handler = OnDropSignal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(sig, &action, nullptr) != 0) {
      return Status::Error(std::string("sigaction: ") + std::strerror(errno));
    }
    drop_signal = sig;
    return sig;
  }
  return Status::Error("no free real-time signal to reach every thread with");
}

std::vector<pid_t> Threads() {
  std::vector<pid_t> tids;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return tids;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] >= '0' && entry->d_name[0] <= '9')
      tids.push_back(std::atoi(entry->d_name));
  }
  closedir(dir);
  return tids;
}

}  // namespace

std::vector<KeptCapability> CapabilitiesToKeep(const SensorConfig& config, int last_cap) {
  const auto& plugins = config.enabled_plugins;
  const bool tls = Has(plugins, "ebpf-net") && Has(config.l7net_enabled, "httpflow-tls");
  const bool bash = Has(plugins, "ebpf-bash");
  const bool conntrack = Has(plugins, "ebpf-conntrack");
  std::vector<KeptCapability> keep;
  if (last_cap >= kCapBpf) {
    keep.push_back(
        {kCapBpf,
         "bpf() on the loaded objects: map reads and updates, program statistics, the "
         "links of uprobes attached later, kernel families loaded again after shedding"});
    keep.push_back({kCapPerfmon,
                    "perf events and tracing programs of the kernel families loaded again after "
                    "shedding"});
  }
  // /proc/<pid>/exe, maps, map_files, root and ns/net of a process holding capabilities the
  // sensor gave up (most root processes) are subject to ptrace access checks.
  keep.push_back({kCapSysPtrace,
                  "/proc/<pid>/exe, maps, map_files, root and ns/net of processes with more "
                  "capabilities than the sensor keeps (process cache, uprobe targets, conntrack "
                  "namespaces)"});
  if (bash || tls) {
    keep.push_back({kCapDacReadSearch,
                    "opening the bash and libssl files to probe whatever their owner and mode"});
  }
  if (conntrack) {
    keep.push_back(
        {kCapNetAdmin,
         "ctnetlink dumps and NEW/DESTROY event groups, SO_RCVBUFFORCE, in every network "
         "namespace (new ones are subscribed as they appear)"});
  }
  // Uprobe perf events need CAP_SYS_ADMIN again since "perf: Revert to requiring CAP_SYS_ADMIN
  // for uprobes" (2025, in 6.16 and the stable kernels); CAP_PERFMON alone gets EACCES. It also
  // covers /proc/<pid>/map_files (otherwise CAP_CHECKPOINT_RESTORE).
  if (bash || tls || conntrack || last_cap < kCapBpf) {
    std::string_view why = "stands in for CAP_BPF and CAP_PERFMON (kernel before 5.8)";
    if (conntrack) why = "setns into network namespaces that appear after the start";
    if (bash || tls) {
      why = conntrack ? "uprobes on bash and libssl files that appear after the start (perf "
                        "uprobe events), /proc/<pid>/map_files, setns into new network namespaces"
                      : "uprobes on bash and libssl files that appear after the start (perf "
                        "uprobe events), /proc/<pid>/map_files";
    }
    keep.push_back({kCapSysAdmin, why});
  }
  std::sort(keep.begin(), keep.end(),
            [](const KeptCapability& a, const KeptCapability& b) { return a.number < b.number; });
  return keep;
}

uint64_t MaskOf(const std::vector<KeptCapability>& caps) {
  uint64_t mask = 0;
  for (const KeptCapability& c : caps) mask |= uint64_t{1} << c.number;
  return mask;
}

std::string CapabilityName(int number) {
  if (number >= 0 && number < static_cast<int>(kNames.size())) return std::string(kNames[number]);
  return "cap_" + std::to_string(number);
}

std::string CapabilityNames(uint64_t mask) {
  std::string out;
  for (int cap = 0; cap < 64; ++cap) {
    if (((mask >> cap) & 1) == 0) continue;
    if (!out.empty()) out += ",";
    out += CapabilityName(cap);
  }
  return out.empty() ? "none" : out;
}

Result<CapabilitySets> ReadCapabilitySets(const std::string& status_path) {
  std::ifstream in(status_path);
  if (!in) return Status::Error("cannot read " + status_path + ": " + std::strerror(errno));
  CapabilitySets sets;
  int found = 0;
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos || line.compare(0, 3, "Cap") != 0) continue;
    const std::string key = line.substr(0, colon);
    uint64_t* field = key == "CapInh"   ? &sets.inheritable
                      : key == "CapPrm" ? &sets.permitted
                      : key == "CapEff" ? &sets.effective
                      : key == "CapBnd" ? &sets.bounding
                      : key == "CapAmb" ? &sets.ambient
                                        : nullptr;
    if (field == nullptr) continue;
    try {
      *field = std::stoull(line.substr(colon + 1), nullptr, 16);
    } catch (...) {
      return Status::Error(status_path + ": cannot read \"" + line + "\"");
    }
    ++found;
  }
  // CapAmb is missing before Linux 4.3; the other four are always there.
  if (found < 4) return Status::Error(status_path + ": no Cap* lines");
  return sets;
}

Result<int> LastCapability() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int last = -1;
  if (!(in >> last) || last < 0 || last > 63) {
    return Status::Error("cannot read /proc/sys/kernel/cap_last_cap");
  }
  return last;
}

Result<uint64_t> DropCapabilities(uint64_t keep, int last_cap) {
  Result<CapabilitySets> self = ReadCapabilitySets("/proc/thread-self/status");
  if (!self.ok()) return self.status();
  target.keep = keep & self->permitted;  // what is not held cannot be kept
  target.last_cap = last_cap;
  // Without CAP_SETPCAP the bounding set cannot shrink; permitted and effective still do.
  target.drop_bounding = (self->effective >> kCapSetpcap) & 1;
  CapabilitySets expected;
  expected.permitted = expected.effective = target.keep;
  expected.bounding = target.drop_bounding ? self->bounding & target.keep : self->bounding;
  std::atomic_thread_fence(std::memory_order_seq_cst);

  Result<int> sig = InstallDropSignal();
  if (!sig.ok()) return sig.status();
  if (int err = ApplyToThisThread(); err != 0) {
    return Status::Error(std::string("dropping capabilities: ") + std::strerror(err));
  }
  // Every 5 ms for 2 s: threads that are busy get the signal when they next run.
  std::string behind;
  for (int attempt = 0; attempt < 400; ++attempt) {
    behind.clear();
    for (pid_t tid : Threads()) {
      Result<CapabilitySets> sets =
          ReadCapabilitySets("/proc/self/task/" + std::to_string(tid) + "/status");
      if (!sets.ok() || *sets == expected) continue;  // gone, or done
      behind += (behind.empty() ? "" : ",") + std::to_string(tid);
      syscall(SYS_tgkill, getpid(), tid, *sig);
    }
    if (behind.empty()) return target.keep;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return Status::Error("threads " + behind +
                       " still hold capabilities to drop after 2 s (do they "
                       "block signal " +
                       std::to_string(*sig) + "?)");
}

Result<uint64_t> DropUnneededCapabilities(const SensorConfig& config) {
  Result<int> last = LastCapability();
  if (!last.ok()) return last.status();
  const uint64_t wanted = MaskOf(CapabilitiesToKeep(config, *last));
  Result<uint64_t> kept = DropCapabilities(wanted, *last);
  if (!kept.ok()) return kept.status().Prefixed("capabilities: ");
  const uint64_t missing = wanted & ~*kept;
  spdlog::info(
      "capabilities: kept {}{}; every other one dropped from all threads (effective, "
      "permitted, inheritable, ambient{})",
      CapabilityNames(*kept),
      missing == 0 ? "" : " (not held, so not kept: " + CapabilityNames(missing) + ")",
      target.drop_bounding ? ", bounding" : "; no CAP_SETPCAP, so not bounding");
  return kept;
}

}  // namespace nodescope::sensor
