// Loads the filesystem family with each attach strategy, puts xfs and ext4 on loop devices, makes
// known numbers of open, read, write and sync calls on regular files of each from several threads,
// each call timed by the test itself, and checks the histograms against that:
//   - xfs: exactly the calls made per op (nothing else on this machine uses xfs; checked in
//     /proc/mounts before and after), every measured latency inside the test's own interval
//     around the call, so the sum is at most the sum of those intervals and no latency is in a
//     slot above the longest one's;
//   - ext4: at least the calls made (the root filesystem may be ext4 and busy);
//   - calls on what is not a regular file (a FIFO, a character device node and a directory on
//     the xfs filesystem itself, sockets, pipes) and regular files of types not measured (procfs,
//     tmpfs) count nowhere: the xfs counts stay exact and no other fstype appears.
// Needs root, losetup, mkfs.ext4 and mkfs.xfs.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/openat2.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bpf/abi/filesystem.h"
#include "sensor/bpf/clock.h"
#include "sensor/plugins/kernel/filesystem/filesystem_source.h"
#include "tests/bpf/kernel_family.h"
#include "tests/bpf/loop_fs.h"

namespace nodescope::sensor::kernel::filesystem {
namespace {

using bpf::MonotonicNs;  // vDSO: no syscall of its own
using nodescope::test::Count;
using nodescope::test::LoopFs;
using nodescope::test::ReadFile;

constexpr int kThreads = 4;
constexpr int kRounds = 3;
constexpr size_t kBlock = 4096;
// Calls of each op one round of Workload makes on regular files.
constexpr uint64_t kOpensPerRound = 4;   // creat, open, openat, openat2
constexpr uint64_t kReadsPerRound = 5;   // read, pread64, readv, preadv, preadv2
constexpr uint64_t kWritesPerRound = 5;  // write, pwrite64, writev, pwritev, pwritev2
constexpr uint64_t kSyncsPerRound = 3;   // fsync, fdatasync, sync_file_range

// What the test measured itself, per op: calls, the sum and the longest of the intervals around
// them.
struct Measured {
  std::array<uint64_t, NS_FS_OPS> calls{}, sum_ns{}, max_ns{};
  void Add(const Measured& other) {
    for (int op = 0; op < NS_FS_OPS; ++op) {
      calls[op] += other.calls[op];
      sum_ns[op] += other.sum_ns[op];
      max_ns[op] = std::max(max_ns[op], other.max_ns[op]);
    }
  }
};

// Times one syscall that must succeed; `op` is what the probe should count it as.
class Timer {
 public:
  explicit Timer(Measured& m) : m_(m) {}
  long Call(int op, long result_min, const char* what, long nr, long a = 0, long b = 0, long c = 0,
            long d = 0, long e = 0, long f = 0) {
    const uint64_t t0 = MonotonicNs();
    const long r = syscall(nr, a, b, c, d, e, f);
    const uint64_t t1 = MonotonicNs();
    EXPECT_GE(r, result_min) << what << ": " << std::strerror(errno);
    m_.calls[op] += 1;
    m_.sum_ns[op] += t1 - t0;
    m_.max_ns[op] = std::max(m_.max_ns[op], t1 - t0);
    return r;
  }

 private:
  Measured& m_;
};

// Calls on `dir` that must not count: a missing file, the directory itself, a FIFO and a
// character device node (/dev/null's numbers) that live on the same filesystem.
void NotRegular(const std::string& dir, int id) {
  const std::string fifo = dir + "/fifo" + std::to_string(id);
  const std::string null = dir + "/null" + std::to_string(id);
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  ASSERT_EQ(mknod(null.c_str(), S_IFCHR | 0600, makedev(1, 3)), 0) << std::strerror(errno);
  char byte = 'x';
  EXPECT_LT(syscall(SYS_openat, AT_FDCWD, (dir + "/missing").c_str(), O_RDONLY), 0);
  const int d =
      static_cast<int>(syscall(SYS_openat, AT_FDCWD, dir.c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_GE(d, 0) << std::strerror(errno);
  EXPECT_LT(syscall(SYS_read, d, &byte, 1), 0);  // EISDIR
  EXPECT_EQ(syscall(SYS_fsync, d), 0);
  close(d);
  // O_RDWR: a FIFO open for both ends does not wait for a peer (fifo(7)).
  const int p = static_cast<int>(syscall(SYS_open, fifo.c_str(), O_RDWR));
  ASSERT_GE(p, 0) << std::strerror(errno);
  EXPECT_EQ(syscall(SYS_write, p, &byte, 1), 1);
  EXPECT_EQ(syscall(SYS_read, p, &byte, 1), 1);
  close(p);
  const int n = static_cast<int>(syscall(SYS_openat, AT_FDCWD, null.c_str(), O_RDWR));
  ASSERT_GE(n, 0) << std::strerror(errno);
  EXPECT_EQ(syscall(SYS_write, n, &byte, 1), 1);
  EXPECT_EQ(syscall(SYS_read, n, &byte, 1), 0);
  EXPECT_LT(syscall(SYS_fsync, n), 0);  // EINVAL: a character device has no fsync
  close(n);
  unlink(fifo.c_str());
  unlink(null.c_str());
}

// kRounds rounds of the calls counted above on a file of this thread's own in `dir`, each timed;
// plus the calls that must not count.
void Workload(const std::string& dir, int id, Measured& m) {
  Timer t(m);
  const std::string path = dir + "/file" + std::to_string(id);
  std::vector<char> a(kBlock, static_cast<char>('a' + id)), b(kBlock);
  iovec out[2] = {{a.data(), kBlock / 2}, {a.data() + kBlock / 2, kBlock / 2}};
  iovec in[2] = {{b.data(), kBlock / 2}, {b.data() + kBlock / 2, kBlock / 2}};
  const long block = static_cast<long>(kBlock);
  for (int round = 0; round < kRounds; ++round) {
    const long c = t.Call(NS_FS_OP_OPEN, 0, "creat", SYS_creat, (long)path.c_str(), 0600);
    close(static_cast<int>(c));
    const long fd = t.Call(NS_FS_OP_OPEN, 0, "open", SYS_open, (long)path.c_str(), O_RDWR);
    const long fd2 =
        t.Call(NS_FS_OP_OPEN, 0, "openat", SYS_openat, AT_FDCWD, (long)path.c_str(), O_RDONLY);
    open_how how{};
    how.flags = O_RDONLY;
    const long fd3 = t.Call(NS_FS_OP_OPEN, 0, "openat2", SYS_openat2, AT_FDCWD, (long)path.c_str(),
                            (long)&how, sizeof(how));
    if (fd < 0 || fd2 < 0 || fd3 < 0) {
      for (long d : {fd, fd2, fd3}) {
        if (d >= 0) close(static_cast<int>(d));  // or the filesystem stays busy at unmount
      }
      return;
    }

    t.Call(NS_FS_OP_WRITE, block, "write", SYS_write, fd, (long)a.data(), block);
    t.Call(NS_FS_OP_WRITE, block, "pwrite64", SYS_pwrite64, fd, (long)a.data(), block, block);
    t.Call(NS_FS_OP_WRITE, block, "writev", SYS_writev, fd, (long)out, 2);
    t.Call(NS_FS_OP_WRITE, block, "pwritev", SYS_pwritev, fd, (long)out, 2, 3 * block, 0);
    t.Call(NS_FS_OP_WRITE, block, "pwritev2", SYS_pwritev2, fd, (long)out, 2, 4 * block, 0, 0);

    t.Call(NS_FS_OP_READ, block, "read", SYS_read, fd2, (long)b.data(), block);
    t.Call(NS_FS_OP_READ, block, "pread64", SYS_pread64, fd3, (long)b.data(), block, block);
    t.Call(NS_FS_OP_READ, block, "readv", SYS_readv, fd2, (long)in, 2);
    t.Call(NS_FS_OP_READ, block, "preadv", SYS_preadv, fd3, (long)in, 2, 3 * block, 0);
    t.Call(NS_FS_OP_READ, block, "preadv2", SYS_preadv2, fd2, (long)in, 2, 4 * block, 0, 0);

    t.Call(NS_FS_OP_SYNC, 0, "fsync", SYS_fsync, fd);
    t.Call(NS_FS_OP_SYNC, 0, "fdatasync", SYS_fdatasync, fd);
    t.Call(NS_FS_OP_SYNC, 0, "sync_file_range", SYS_sync_file_range, fd, 0, 0,
           SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    close(static_cast<int>(fd));
    close(static_cast<int>(fd2));
    close(static_cast<int>(fd3));
  }
  NotRegular(dir, id);
}

// Reads and writes on what is no file of a measured type: a socket pair, a pipe, a procfs file
// and a tmpfs file (/dev/shm).
void OtherIo() {
  char buf[256] = "nodescope";
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  int pp[2];
  ASSERT_EQ(pipe2(pp, O_CLOEXEC), 0);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(syscall(SYS_write, sv[0], buf, 8), 8);
    EXPECT_EQ(syscall(SYS_read, sv[1], buf, 8), 8);
    EXPECT_EQ(syscall(SYS_write, pp[1], buf, 8), 8);
    EXPECT_EQ(syscall(SYS_read, pp[0], buf, 8), 8);
  }
  for (int fd : {sv[0], sv[1], pp[0], pp[1]}) close(fd);
  const int proc = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/stat", O_RDONLY));
  ASSERT_GE(proc, 0);
  EXPECT_GT(syscall(SYS_read, proc, buf, sizeof(buf)), 0);
  close(proc);
  const std::string shm = "/dev/shm/nodescope_fs_test_" + std::to_string(getpid());
  const int s =
      static_cast<int>(syscall(SYS_openat, AT_FDCWD, shm.c_str(), O_CREAT | O_RDWR, 0600));
  if (s >= 0) {  // /dev/shm is tmpfs here; a machine without it just skips this part
    EXPECT_EQ(syscall(SYS_pwrite64, s, buf, 8, 0), 8);
    EXPECT_EQ(syscall(SYS_pread64, s, buf, 8, 0), 8);
    EXPECT_EQ(syscall(SYS_fsync, s), 0);
    close(s);
    unlink(shm.c_str());
  }
}

// The mount points of every xfs filesystem /proc/mounts lists.
std::vector<std::string> XfsMounts() {
  std::vector<std::string> mounts;
  std::istringstream lines(ReadFile("/proc/mounts"));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string device, dir, type;
    fields >> device >> dir >> type;
    if (type == "xfs") mounts.push_back(device + " on " + dir);
  }
  return mounts;
}

int HighestSlot(const ns_hist& h) {
  int top = -1;
  for (int i = 0; i < NS_HIST_SLOTS; ++i) {
    if (h.slots[i] != 0) top = i;
  }
  return top;
}

int Log2Slot(uint64_t ns) {
  int slot = 0;
  while (ns > 1) {
    ns >>= 1;
    ++slot;
  }
  return std::min(slot, NS_HIST_SLOTS - 1);
}

// BPF objects (programs, maps, links) this process holds a descriptor of.
int BpfFds() {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (!ec && target.rfind("anon_inode:bpf", 0) == 0) ++n;
  }
  return n;
}

class FilesystemProbeTest : public nodescope::test::KernelFamilyTest {};

TEST_P(FilesystemProbeTest, CountsEveryCallOnRegularFilesOfEachType) {
  const std::string strategy = GetParam();
  ASSERT_EQ(nodescope::test::MissingLoopFsTools(), "");
  const std::vector<std::string> other_xfs = XfsMounts();
  ASSERT_TRUE(other_xfs.empty())
      << "an xfs filesystem is already mounted (" << other_xfs.front()
      << "): this test counts every call on xfs files host-wide and needs its own to be the only "
         "one; unmount it or run the test when no other test uses xfs";

  LoopFs xfs("xfs", "nodescope_fs_test_xfs"), ext4("ext4", "nodescope_fs_test_ext4");
  ASSERT_EQ(xfs.Setup("mkfs.xfs -q -f"), "");
  ASSERT_EQ(ext4.Setup("mkfs.ext4 -q -F"), "");
  ASSERT_EQ(XfsMounts().size(), 1u);

  const int bpf_fds_before = BpfFds();
  FilesystemSource source(strategy);
  ASSERT_NO_FATAL_FAILURE(nodescope::test::StartAttached(source, "filesystem", strategy));
  EXPECT_GT(BpfFds(), bpf_fds_before) << "attached, yet this process holds no new BPF object";
  ASSERT_EQ(source.Programs().size(), 2u);

  v1::KernelMetricsEvent baseline;
  source.Collect(baseline);
  const std::vector<uint64_t> counters_before = source.KernelCounters();

  // The window: threads on both filesystems at once, then the other I/O from this thread.
  std::map<std::string, Measured> measured;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (LoopFs* f : {&xfs, &ext4}) {
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, f, i] {
        Measured m;
        Workload(f->mnt.dir(), i, m);
        std::lock_guard<std::mutex> lock(mu);
        measured[f->fstype].Add(m);
      });
    }
  }
  for (std::thread& t : threads) t.join();
  OtherIo();
  v1::KernelMetricsEvent window;
  source.Collect(window);
  const std::vector<uint64_t> counters_after = source.KernelCounters();
  ASSERT_EQ(XfsMounts().size(), 1u) << "another xfs filesystem was mounted during the test";
  if (HasFailure()) return;

  // By (fstype, op); every one must be host-wide and well formed.
  const std::map<std::vector<std::string>, ns_hist> hists =
      nodescope::test::HostWideHistograms(window, "filesystem_latency", {"fstype", "op"});
  const std::vector<std::string> ops = FilesystemSource::Ops();
  const uint64_t per_round[NS_FS_OPS] = {kReadsPerRound, kWritesPerRound, kOpensPerRound,
                                         kSyncsPerRound};
  for (LoopFs* f : {&xfs, &ext4}) {
    const Measured& m = measured[f->fstype];
    for (int op = 0; op < NS_FS_OPS; ++op) {
      const std::string& name = ops[op];
      const uint64_t made = per_round[op] * kRounds * kThreads;
      ASSERT_EQ(m.calls[op], made) << f->fstype << " " << name;
      auto it = hists.find({f->fstype, name});
      ASSERT_NE(it, hists.end()) << f->fstype << " " << name << " has no histogram";
      const ns_hist& h = it->second;
      const uint64_t count = Count(h);
      const uint64_t mean = count ? h.sum_ns / count : 0;
      std::cerr << strategy << " " << f->fstype << " " << name << ": " << count << " counted, "
                << made << " made; mean " << mean << " ns (test's own intervals: mean "
                << m.sum_ns[op] / made << " ns, longest " << m.max_ns[op] << " ns)\n";
      if (f->fstype == "xfs") {
        EXPECT_EQ(count, made) << "xfs " << name;
        // Every counted interval lies inside the test's own interval around the same call.
        EXPECT_LE(h.sum_ns, m.sum_ns[op]) << "xfs " << name;
        EXPECT_LE(HighestSlot(h), Log2Slot(m.max_ns[op])) << "xfs " << name;
      } else {
        EXPECT_GE(count, made) << "ext4 " << name;
      }
      EXPECT_GT(h.sum_ns, 0u) << f->fstype << " " << name;
      EXPECT_GE(mean, 100u) << f->fstype << " " << name;
      EXPECT_LE(mean, 1'000'000'000u) << f->fstype << " " << name;
    }
  }
  // Sockets, pipes, procfs, tmpfs, FIFOs and device nodes added no type: only the two
  // filesystems the test used (and the root's ext4) have series.
  for (const auto& [key, h] : hists) {
    EXPECT_TRUE(key[0] == "xfs" || key[0] == "ext4")
        << key[0] << " " << key[1] << " counted " << Count(h);
  }
  // The only counters are losses, each labelled with a reason of this family, and none of the
  // test's calls was lost.
  ASSERT_NO_FATAL_FAILURE(nodescope::test::ExpectOnlyLosses(window, "filesystem"));
  EXPECT_EQ(counters_after[NS_FS_CNT_INFLIGHT_FULL], counters_before[NS_FS_CNT_INFLIGHT_FULL]);
  source.Stop();
  EXPECT_EQ(BpfFds(), bpf_fds_before) << "Stop left BPF objects open";
}

// Closes a descriptor when the test ends, however it ends.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

// What a call costs when it is no syscall of ours (getppid), when it is ours but not on a measured
// file (a pipe), and when it is measured (pread64 on xfs): the loop's wall time without and with
// the probe, and each program's average run time from the kernel's own statistics. Figures only;
// what is checked is that every call ran both programs.
TEST_P(FilesystemProbeTest, CostPerCall) {
  const std::string strategy = GetParam();
  LoopFs xfs("xfs", "nodescope_fs_cost_xfs");
  ASSERT_EQ(xfs.Setup("mkfs.xfs -q -f"), "");
  Fd read_end, write_end, file;
  int pp[2];
  ASSERT_EQ(pipe2(pp, O_CLOEXEC), 0);
  read_end.fd = pp[0];
  write_end.fd = pp[1];
  const std::string path = xfs.mnt.dir() + "/cost";
  file.fd = open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  ASSERT_GE(file.fd, 0);
  char buf[64] = {};
  ASSERT_EQ(pwrite(file.fd, buf, sizeof(buf), 0), static_cast<ssize_t>(sizeof(buf)));
  constexpr int kLoops = 100000;
  struct Phase {
    const char* what;
    uint64_t syscalls;  // per loop
    std::function<void()> call;
  };
  const Phase phases[] = {
      {"getppid (not ours)", 1, [] { syscall(SYS_getppid); }},
      {"pipe write+read (ours, no file)", 2,
       [&] {
         syscall(SYS_write, write_end.fd, buf, 1);
         syscall(SYS_read, read_end.fd, buf, 1);
       }},
      {"pread64 on xfs (measured)", 1, [&] { syscall(SYS_pread64, file.fd, buf, 1, 0); }},
  };
  // Wall time per loop, best of 3 runs of kLoops (other processes' work only adds to a run).
  auto wall_per_loop = [&](const Phase& phase) {
    uint64_t best = UINT64_MAX;
    for (int run = 0; run < 3; ++run) {
      const uint64_t t0 = MonotonicNs();
      for (int i = 0; i < kLoops; ++i) phase.call();
      best = std::min(best, (MonotonicNs() - t0) / kLoops);
    }
    return best;
  };
  uint64_t without[3] = {}, with[3] = {};
  for (size_t p = 0; p < 3; ++p) without[p] = wall_per_loop(phases[p]);

  FilesystemSource source(strategy);
  KernelOptions options;
  options.families = {"filesystem"};
  ASSERT_TRUE(source.Start(options).ok());
  ASSERT_EQ(source.Programs().size(), 2u) << source.Probes()[0].error();
  for (size_t p = 0; p < 3; ++p) with[p] = wall_per_loop(phases[p]);
  Fd stats;
  stats.fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  ASSERT_GE(stats.fd, 0) << "BPF_ENABLE_STATS: " << std::strerror(errno);
  for (size_t p = 0; p < 3; ++p) {
    const Phase& phase = phases[p];
    const std::vector<FilesystemSource::ProgramStats> before = source.Programs();
    for (int i = 0; i < kLoops; ++i) phase.call();
    const std::vector<FilesystemSource::ProgramStats> after = source.Programs();
    ASSERT_EQ(after.size(), before.size());
    // Runs beyond kLoops x syscalls are other processes' syscalls, averaged in.
    std::cerr << strategy << " " << phase.what << ": " << without[p] << " ns per loop without the "
              << "probe, " << with[p] << " with";
    for (size_t i = 0; i < after.size(); ++i) {
      const uint64_t runs = after[i].run_count - before[i].run_count;
      const uint64_t ns = after[i].run_time_ns - before[i].run_time_ns;
      std::cerr << "; " << after[i].name << " " << runs << " runs, " << (runs ? ns / runs : 0)
                << " ns each";
      EXPECT_GE(runs, phase.syscalls * kLoops) << after[i].name;
    }
    std::cerr << "\n";
  }
  unlink(path.c_str());
}

TEST(FilesystemSourceTest, DisabledFamilyLoadsNothing) {
  const int bpf_fds_before = BpfFds();
  FilesystemSource source;
  nodescope::test::ExpectDisabledLoadsNothing(source, {"process", "disk"});
  EXPECT_TRUE(source.Programs().empty());
  EXPECT_EQ(BpfFds(), bpf_fds_before) << "a disabled family opened BPF objects";
}

INSTANTIATE_TEST_SUITE_P(Strategies, FilesystemProbeTest, ::testing::Values("tp_btf", "raw_tp"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace nodescope::sensor::kernel::filesystem
