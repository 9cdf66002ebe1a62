// Loads the cachestat family (part of the per-process kernel object) with each attach strategy,
// and runs two child processes of known names on an xfs loop filesystem that nothing else uses:
//   - a reader reads a file of kReadPages pages whose pages were dropped from the cache first
//     (written, fsync'ed, POSIX_FADV_DONTNEED, checked gone with mincore): its misses are exactly
//     those pages, since a sequential read's readahead stops at the end of the file;
//   - a writer writes kWritePages new pages, one 4 KiB write each, to a new file: every write
//     dirties one new folio (a buffered write allocates folios no larger than it), and the pages
//     its writes add to the cache are not misses.
// Both are checked for their application (exactly); host-wide is at least their sum.
// Hits and the hit ratio need kprobes and are never sent. Needs root, losetup and mkfs.xfs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "sensor/plugins/kernel/proc_source.h"
#include "tests/bpf/kernel_family.h"
#include "tests/bpf/loop_fs.h"

namespace nodescope::sensor::kernel {
namespace {

using nodescope::test::LoopFs;

constexpr int kReadPages = 64;
constexpr int kWritePages = 32;
constexpr size_t kPage = 4096;
constexpr char kReader[] = "ns-cache-read";
constexpr char kWriter[] = "ns-cache-write";

class CachestatProbeTest : public nodescope::test::KernelFamilyTest {};

// Pages of `path` in the page cache (mincore).
int CachedPages(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return -1;
  struct stat st {};
  fstat(fd, &st);
  const size_t pages = (st.st_size + kPage - 1) / kPage;
  void* map = mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return -1;
  std::vector<unsigned char> in(pages);
  int cached = -1;
  if (mincore(map, st.st_size, in.data()) == 0) {
    cached = 0;
    for (unsigned char c : in) cached += c & 1;
  }
  munmap(map, st.st_size);
  return cached;
}

// Forks a child named `name` (its comm: the application) that runs `body` and exits with its
// result; waits for it.
void RunChild(const char* name, int (*body)(const std::string&), const std::string& path) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_NAME, name);
    _exit(body(path));
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << name << " status " << status;
}

int ReadAll(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return 1;
  char buf[kPage];
  int pages = 0;
  while (read(fd, buf, sizeof(buf)) == static_cast<ssize_t>(sizeof(buf))) ++pages;
  close(fd);
  return pages == kReadPages ? 0 : 2;
}

int WritePages(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return 1;
  char buf[kPage];
  std::memset(buf, 'w', sizeof(buf));
  for (int i = 0; i < kWritePages; ++i) {
    if (write(fd, buf, sizeof(buf)) != static_cast<ssize_t>(sizeof(buf))) return 2;
  }
  close(fd);
  return 0;
}

// Sum of counter `name` in `event` whose labels match: app (or "" for none) and cgroup or not.
uint64_t Sum(const v1::KernelMetricsEvent& event, const std::string& name, const std::string& app,
             bool cgroup) {
  uint64_t total = 0;
  for (const v1::KernelCounter& c : event.counters()) {
    if (c.name() != name || c.labels().app() != app || (c.labels().cgroup_id() != 0) != cgroup) {
      continue;
    }
    total += c.delta();
  }
  return total;
}

TEST_P(CachestatProbeTest, MissesAndDirtiesOfKnownReadsAndWrites) {
  ASSERT_EQ(nodescope::test::MissingLoopFsTools(), "");
  LoopFs xfs("xfs", "nodescope_cachestat_test");
  ASSERT_EQ(xfs.Setup("mkfs.xfs -q -f"), "");
  const std::string read_path = xfs.mnt.dir() + "/read.bin";
  const std::string write_path = xfs.mnt.dir() + "/write.bin";
  {
    std::string data(kReadPages * kPage, 'r');
    int fd = open(read_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(fsync(fd), 0);
    ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    close(fd);
  }
  ASSERT_EQ(CachedPages(read_path), 0) << "the file's pages are still cached";

  ProcSource source;
  KernelOptions options;
  options.families = {"cachestat"};
  options.forced_strategy = GetParam();
  ASSERT_TRUE(source.Start(options).ok());
  std::vector<v1::ProbeStatus> probes = source.Probes();
  ASSERT_EQ(probes.size(), 1u);
  ASSERT_EQ(probes[0].state(), "attached") << probes[0].error();
  EXPECT_EQ(probes[0].probe(), "kernel/cachestat");
  EXPECT_EQ(probes[0].strategy(), GetParam());
  v1::KernelMetricsEvent before;
  source.Collect(before);  // from here on

  RunChild(kReader, ReadAll, read_path);
  RunChild(kWriter, WritePages, write_path);
  v1::KernelMetricsEvent event;
  source.Collect(event);
  source.Stop();

  EXPECT_EQ(Sum(event, "cachestat_misses", kReader, false), kReadPages);
  EXPECT_EQ(Sum(event, "cachestat_dirties", kReader, false), 0u);
  EXPECT_EQ(Sum(event, "cachestat_misses", kWriter, false), 0u);
  EXPECT_EQ(Sum(event, "cachestat_dirties", kWriter, false), kWritePages);
  EXPECT_GE(Sum(event, "cachestat_misses", "", false), kReadPages);
  EXPECT_GE(Sum(event, "cachestat_dirties", "", false), kWritePages);
  for (const v1::KernelCounter& c : event.counters()) {
    EXPECT_NE(c.name(), "cachestat_hits");
  }
  for (const v1::KernelGauge& g : event.gauges()) {
    EXPECT_NE(g.name(), "cachestat_ratio");
  }
  bool covered = false;
  for (const v1::ProbeStatus& p : source.Probes()) {
    if (p.probe() == "kernel/cachestat") {
      covered = p.coverage().find("no hits and no hit ratio") != std::string::npos;
    }
  }
  EXPECT_TRUE(covered) << "status must say hits and the ratio are not collected";
}

INSTANTIATE_TEST_SUITE_P(Strategies, CachestatProbeTest, ::testing::Values("tp_btf", "raw_tp"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace nodescope::sensor::kernel
