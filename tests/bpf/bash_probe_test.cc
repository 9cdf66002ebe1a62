// Loads the bash probe, attaches it to a private copy of /usr/bin/bash, drives an interactive
// shell of that copy through a pseudo-terminal as user nobody, and checks every field of each
// ring buffer record against what this test did and what /proc says. Needs root.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/testing/temp_dir.h"
#include "sensor/bpf/clock.h"
#include "sensor/bpf/environment.h"
#include "sensor/plugins/bash/probe.h"
#include "sensor/proc/mountinfo.h"

namespace nodescope::sensor::bash {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kPrompt = "NSPROMPT> ";
constexpr uint32_t kNobody = 65534;

struct Record {
  ns_bash_event event;
  int64_t received_mono;
};

class RecordCollector {
 public:
  void Add(std::span<const std::byte> bytes) {
    std::lock_guard lock(mu_);
    if (bytes.size() != sizeof(ns_bash_event)) {
      ++wrong_size_;
    } else {
      Record r{};
      std::memcpy(&r.event, bytes.data(), sizeof(r.event));
      r.received_mono = bpf::ReadClockNs(CLOCK_MONOTONIC);
      records_.push_back(r);
    }
    cv_.notify_all();
  }
  // The records of `pid`, once there are `count` (or after 5 s).
  std::vector<Record> WaitFor(uint32_t pid, size_t count) {
    std::unique_lock lock(mu_);
    std::vector<Record> mine;
    cv_.wait_for(lock, 5s, [&] {
      mine.clear();
      for (const Record& r : records_) {
        if (r.event.pid == pid) mine.push_back(r);
      }
      return mine.size() >= count;
    });
    return mine;
  }
  int wrong_size() {
    std::lock_guard lock(mu_);
    return wrong_size_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Record> records_;
  int wrong_size_ = 0;
};

// A bash under a pseudo-terminal; killed and reaped when it goes out of scope, even when the
// test fails.
class PtyShell {
 public:
  PtyShell(const std::string& bash, uid_t uid) {
    char name[64] = {};
    winsize size{.ws_row = 50, .ws_col = 200, .ws_xpixel = 0, .ws_ypixel = 0};
    pid_ = forkpty(&master_, name, nullptr, &size);
    if (pid_ == 0) {
      if (setgid(uid) != 0 || setuid(uid) != 0) _exit(120);
      const char* env[] = {"PATH=/usr/bin:/bin", "TERM=xterm",        "LC_ALL=C.UTF-8", "HOME=/",
                           "HISTFILE=",          "INPUTRC=/dev/null", "PS1=NSPROMPT> ", nullptr};
      execle(bash.c_str(), "bash", "--norc", "--noprofile", "-i", nullptr, env);
      _exit(127);
    }
    tty_ = name;
    reader_ = std::thread([this] { Read(); });
  }
  ~PtyShell() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    stop_ = true;
    if (reader_.joinable()) reader_.join();
    if (master_ >= 0) close(master_);
  }

  pid_t pid() const { return pid_; }
  const std::string& tty() const { return tty_; }  // /dev/pts/N

  // Waits until bash printed its prompt `n` times in all: readline is reading, the terminal in
  // raw mode (a line typed in canonical mode would be cut at 4095 bytes by the tty itself).
  bool WaitPrompts(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return Prompts() >= n; });
  }
  void Type(const std::string& text) {
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = write(master_, text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
  }
  // Waits for the exit; the wait status, or -1.
  int Wait() {
    for (int i = 0; i < 100; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }

 private:
  size_t Prompts() const {
    size_t count = 0;
    for (size_t at = output_.find(kPrompt); at != std::string::npos;
         at = output_.find(kPrompt, at + 1)) {
      ++count;
    }
    return count;
  }
  void Read() {
    char buf[4096];
    while (!stop_) {
      pollfd p{master_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      ssize_t n = read(master_, buf, sizeof(buf));
      if (n <= 0) {
        std::this_thread::sleep_for(10ms);  // EIO once the shell is gone
        continue;
      }
      std::lock_guard lock(mu_);
      output_.append(buf, static_cast<size_t>(n));
      cv_.notify_all();
    }
  }

  pid_t pid_ = -1;
  int master_ = -1;
  std::string tty_;
  std::thread reader_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::string output_;
};

uint64_t CgroupIdOf(pid_t pid) {
  Result<std::vector<proc::Mount>> mounts = proc::ReadMountInfo("/proc/self/mountinfo");
  EXPECT_TRUE(mounts.ok());
  std::optional<proc::Mount> cgroup2 =
      mounts.ok() ? proc::FindMount(*mounts, "cgroup2") : std::nullopt;
  EXPECT_TRUE(cgroup2) << "this test needs a cgroup2 mount";
  if (!cgroup2) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line, path;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  struct stat st {};
  const std::string dir = cgroup2->mount_point + (path == "/" ? "" : path);
  EXPECT_EQ(stat(dir.c_str(), &st), 0) << dir;
  return st.st_ino;
}

class BashProbeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Status env = bpf::PrepareEnvironment();
    ASSERT_TRUE(env.ok()) << env.message();
  }
  void SetUp() override {
    ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);  // nobody runs the copy from here
    bash_ = dir_.File("bash");
    fs::copy_file("/usr/bin/bash", bash_);
    fs::permissions(bash_, fs::perms(0755));
    Result<bash_bpf*> skel =
        LoadBashProbe(probe_, "uprobe", [this](std::span<const std::byte> r) { records_.Add(r); });
    ASSERT_TRUE(skel.ok()) << skel.status().message();
    skel_ = *skel;
    poller_ = std::thread([this] {
      while (!stop_) {
        Result<int> polled = probe_.ring()->Poll(50ms);
        if (!polled.ok()) ADD_FAILURE() << polled.status().message();
      }
    });
  }
  void TearDown() override {
    stop_ = true;
    if (poller_.joinable()) poller_.join();
    probe_.Teardown();
  }

  test::TempDir dir_;
  std::string bash_;
  bpf::LoadedProbe probe_{"bash", NS_BASH_CNT_MAX};
  bash_bpf* skel_ = nullptr;
  RecordCollector records_;
  std::thread poller_;
  std::atomic<bool> stop_{false};
};

TEST_F(BashProbeTest, EveryFieldOfEveryLine) {
  Result<ReadlineLink> link = AttachReadline(skel_, bash_, 1);
  ASSERT_TRUE(link.ok()) << link.status().message();
  EXPECT_EQ(link->function, "readline_internal_teardown");  // Debian's bash exports it

  const std::string utf8 = "echo 'h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac'";
  const std::string three_k = ": " + std::string(3070, 'a');
  const std::string exactly_4k = ": " + std::string(NS_BASH_LINE_MAX - 2, 'b');
  const std::string over_4k = ": " + std::string(NS_BASH_LINE_MAX - 1, 'c');  // 4097 bytes
  const std::string five_k = ": " + std::string(4998, 'd');
  // Typed in this order; "" (an empty Enter) must give no record.
  const std::vector<std::string> typed = {"echo one", "", utf8,   three_k, exactly_4k,
                                          over_4k,    "", five_k, "exit"};
  struct Expected {
    std::string line;
    bool truncated;
  };
  const std::vector<Expected> expected = {{"echo one", false},
                                          {utf8, false},
                                          {three_k, false},
                                          {exactly_4k, false},
                                          {over_4k.substr(0, NS_BASH_LINE_MAX), true},
                                          {five_k.substr(0, NS_BASH_LINE_MAX), true},
                                          {"exit", false}};

  const int64_t mono_begin = bpf::ReadClockNs(CLOCK_MONOTONIC);
  PtyShell shell(bash_, kNobody);
  const pid_t pid = shell.pid();
  ASSERT_GT(pid, 0);
  for (size_t i = 0; i < typed.size(); ++i) {
    ASSERT_TRUE(shell.WaitPrompts(i + 1)) << "no prompt before line " << i;
    shell.Type(typed[i] + "\r");
  }
  EXPECT_EQ(shell.Wait(), 0) << "the shell did not exit on 'exit'";
  std::vector<Record> got = records_.WaitFor(static_cast<uint32_t>(pid), expected.size());
  ASSERT_EQ(got.size(), expected.size());
  const int64_t mono_end = bpf::ReadClockNs(CLOCK_MONOTONIC);
  EXPECT_EQ(records_.wrong_size(), 0);

  const uint64_t cgroup = CgroupIdOf(getpid());  // the child stayed in ours
  const std::string tty = "pts" + shell.tty().substr(std::string("/dev/pts/").size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const ns_bash_event& e = got[i].event;
    SCOPED_TRACE("line " + std::to_string(i) + " (" + std::to_string(expected[i].line.size()) +
                 " bytes)");
    EXPECT_EQ(e.pid, static_cast<uint32_t>(pid));
    EXPECT_EQ(e.tid, static_cast<uint32_t>(pid));
    EXPECT_EQ(e.ppid, static_cast<uint32_t>(getpid()));
    EXPECT_EQ(e.uid, kNobody);
    EXPECT_EQ(e.cgroup_id, cgroup);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(e.tty)), tty);
    EXPECT_EQ(e.length, expected[i].line.size());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(e.line), e.length), expected[i].line);
    EXPECT_EQ(e.line[e.length], 0) << "NUL-terminated";
    EXPECT_EQ(e.flags, expected[i].truncated ? uint32_t{NS_BASH_TRUNCATED} : 0u);
    EXPECT_GE(static_cast<int64_t>(e.ts_ns), mono_begin);
    EXPECT_LE(static_cast<int64_t>(e.ts_ns), got[i].received_mono);
    EXPECT_LE(got[i].received_mono, mono_end);
    if (i > 0) {
      EXPECT_GT(e.ts_ns, got[i - 1].event.ts_ns);
    }
  }
  std::vector<uint64_t> counters = probe_.KernelCounters();
  EXPECT_EQ(counters[NS_BASH_CNT_RINGBUF_DROPS], 0u);
  EXPECT_EQ(counters[NS_BASH_CNT_READ_FAILED], 0u);
  EXPECT_EQ(counters[NS_BASH_CNT_DUPLICATE], 0u);
}

// Two overlayfs mounts of one lower directory, as two containers of one image have: stat() shows
// two files (another st_dev), so the plugin attaches to both, but the kernel puts both uprobes
// on the one real inode. Each line must still come once, from either mount.
TEST_F(BashProbeTest, TwoOverlayMountsOfOneFileSendEachLineOnce) {
  const std::string lower = dir_.File("lower");
  fs::create_directories(lower);
  fs::copy_file(bash_, lower + "/bash");
  fs::permissions(lower + "/bash", fs::perms(0755));
  std::vector<std::string> merged;
  struct Unmount {
    std::vector<std::string>* dirs;
    ~Unmount() {
      for (const std::string& d : *dirs) EXPECT_EQ(umount2(d.c_str(), MNT_DETACH), 0) << d;
    }
  } unmount{&merged};
  for (const char* name : {"a", "b"}) {
    const std::string base = dir_.File(name);
    for (const char* sub : {"/upper", "/work", "/merged"}) fs::create_directories(base + sub);
    const std::string options =
        "lowerdir=" + lower + ",upperdir=" + base + "/upper,workdir=" + base + "/work";
    ASSERT_EQ(mount("overlay", (base + "/merged").c_str(), "overlay", 0, options.c_str()), 0)
        << strerror(errno);
    merged.push_back(base + "/merged");
  }
  struct stat a {
  }, b{};
  ASSERT_EQ(stat((merged[0] + "/bash").c_str(), &a), 0);
  ASSERT_EQ(stat((merged[1] + "/bash").c_str(), &b), 0);
  ASSERT_NE(a.st_dev, b.st_dev) << "the plugin would see one file and attach once";

  Result<ReadlineLink> first = AttachReadline(skel_, merged[0] + "/bash", 1);
  ASSERT_TRUE(first.ok()) << first.status().message();
  Result<ReadlineLink> second = AttachReadline(skel_, merged[1] + "/bash", 2);
  ASSERT_TRUE(second.ok()) << second.status().message();
  {
    PtyShell in_a(merged[0] + "/bash", 0);
    PtyShell in_b(merged[1] + "/bash", 0);
    const pid_t pid_a = in_a.pid(), pid_b = in_b.pid();
    for (PtyShell* shell : {&in_a, &in_b}) {
      ASSERT_TRUE(shell->WaitPrompts(1));
      shell->Type("echo one\r");
      ASSERT_TRUE(shell->WaitPrompts(2));
      shell->Type("echo two\r");
      ASSERT_TRUE(shell->WaitPrompts(3));
    }
    for (pid_t pid : {pid_a, pid_b}) {
      std::vector<Record> got = records_.WaitFor(static_cast<uint32_t>(pid), 3);  // 2, or more
      ASSERT_EQ(got.size(), 2u) << "pid " << pid;
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(got[0].event.line)), "echo one");
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(got[1].event.line)), "echo two");
    }
  }
  // Both uprobes fired for each of the 4 lines; the second one of each was held back.
  EXPECT_EQ(probe_.KernelCounters()[NS_BASH_CNT_DUPLICATE], 4u);
}

TEST_F(BashProbeTest, TheLineAShellWasWaitingForWhenTheProbeAttachedIsSeen) {
  PtyShell shell(bash_, 0);
  const pid_t pid = shell.pid();
  ASSERT_TRUE(shell.WaitPrompts(1));  // inside readline() before the uretprobe exists
  Result<ReadlineLink> link = AttachReadline(skel_, bash_, 1);
  ASSERT_TRUE(link.ok()) << link.status().message();
  shell.Type("echo typed after attach\r");
  ASSERT_TRUE(shell.WaitPrompts(2));
  shell.Type("echo second\r");
  std::vector<Record> got = records_.WaitFor(static_cast<uint32_t>(pid), 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(got[0].event.line)),
            "echo typed after attach");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(got[1].event.line)), "echo second");
}

TEST_F(BashProbeTest, ACopyNotProbedIsNotSeen) {
  // The uprobe belongs to a file: a second copy (another inode) is not covered until attached.
  Result<ReadlineLink> link = AttachReadline(skel_, bash_, 1);
  ASSERT_TRUE(link.ok()) << link.status().message();
  const std::string other = dir_.File("other/bash");
  fs::create_directories(dir_.File("other"));
  fs::copy_file("/usr/bin/bash", other);
  fs::permissions(other, fs::perms(0755));
  {
    PtyShell shell(other, 0);
    const pid_t pid = shell.pid();
    ASSERT_TRUE(shell.WaitPrompts(1));
    shell.Type("echo unseen\r");
    ASSERT_TRUE(shell.WaitPrompts(2));
    shell.Type("exit\r");
    EXPECT_EQ(shell.Wait(), 0);
    EXPECT_TRUE(records_.WaitFor(static_cast<uint32_t>(pid), 1).empty());
  }
  PtyShell probed(bash_, 0);
  ASSERT_TRUE(probed.WaitPrompts(1));
  probed.Type("echo seen\r");
  std::vector<Record> got = records_.WaitFor(static_cast<uint32_t>(probed.pid()), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(got[0].event.line)), "echo seen");
  EXPECT_EQ(got[0].event.uid, 0u);
}

TEST_F(BashProbeTest, AFileWithoutReadlineFailsWithAClearError) {
  Result<ReadlineLink> link = AttachReadline(skel_, "/usr/bin/true", 1);
  ASSERT_FALSE(link.ok());
  // Both functions were tried, and each failure says which.
  EXPECT_NE(link.status().message().find("uretprobe on readline_internal_teardown: "),
            std::string::npos)
      << link.status().message();
  EXPECT_NE(link.status().message().find("; uretprobe on readline: "), std::string::npos)
      << link.status().message();
}

}  // namespace
}  // namespace nodescope::sensor::bash
