#include "sensor/plugins/process/convert.h"

#include "sensor/proc/fake_root.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstring>

namespace nodescope::sensor::process {
namespace {

using proc::ProcessCache;

TEST(DecodeExitCode, AsWaitStatusMacrosSayIt) {
  // Ground truth: the wait(2) macros applied to the same raw status.
  for (uint32_t raw : {0x0u, 0x300u, 0xff00u, 0x9u, 0xfu, 0x8bu, 0x86u}) {
    ExitCode code = DecodeExitCode(raw);
    int status = static_cast<int>(raw);
    if (WIFEXITED(status)) {
      EXPECT_EQ(code.code, WEXITSTATUS(status)) << raw;
      EXPECT_EQ(code.signal, 0) << raw;
    } else {
      ASSERT_TRUE(WIFSIGNALED(status)) << raw;
      EXPECT_EQ(code.signal, WTERMSIG(status)) << raw;
      EXPECT_EQ(code.code, 128 + WTERMSIG(status)) << raw;
    }
  }
  EXPECT_EQ(DecodeExitCode(0x300).code, 3);
  EXPECT_EQ(DecodeExitCode(9).code, 137);
  EXPECT_EQ(DecodeExitCode(0x8b).signal, 11);  // SIGSEGV with core dump
}

ns_process_event Raw(uint32_t kind, uint32_t pid, uint32_t ppid, const char* comm) {
  ns_process_event raw{};
  raw.kind = kind;
  raw.pid = pid;
  raw.tid = pid;
  raw.ppid = ppid;
  raw.uid = 0;
  raw.cgroup_id = 4242;
  raw.start_time_ns = 1'000'000'000;
  raw.ts_ns = 3'000'000'000;
  std::strncpy(reinterpret_cast<char*>(raw.comm), comm, sizeof(raw.comm) - 1);
  return raw;
}

void SetFilename(ns_process_event& raw, std::string_view path) {
  ASSERT_LT(path.size(), sizeof(raw.filename));
  std::memcpy(raw.filename, path.data(), path.size());
  raw.filename[path.size()] = '\0';
}

class ConvertTest : public ::testing::Test {
 protected:
  ProcessCache::Options Options() const { return fake_.Options(); }

  proc::FakeRoot fake_;
  const std::string root_ = fake_.path();
};

TEST_F(ConvertTest, ForkExecExitSequence) {
  proc::UserResolver users(root_);
  ProcessCache cache(&users, Options());
  bpf::MonotonicToRealtime clock;
  auto now = ProcessCache::Clock::now();

  // The parent, exec'd before: its executable is what the child runs until its own exec.
  ns_process_event parent_exec = Raw(NS_PROCESS_EXEC, 10, 1, "bash");
  SetFilename(parent_exec, "/usr/bin/bash");
  ConvertEvent(parent_exec, clock, cache, now);

  v1::Event fork = ConvertEvent(Raw(NS_PROCESS_FORK, 11, 10, "bash"), clock, cache, now);
  EXPECT_EQ(fork.time_unix_nano(), clock.ToUnixNanos(3'000'000'000));
  ASSERT_TRUE(fork.has_process());
  EXPECT_EQ(fork.process().kind(), v1::ProcessEvent::FORK);
  EXPECT_EQ(fork.process().pid(), 11u);
  EXPECT_EQ(fork.process().ppid(), 10u);
  EXPECT_EQ(fork.process().process_name(), "bash");
  EXPECT_EQ(fork.process().user(), "root");
  EXPECT_EQ(fork.process().uid(), 0u);
  EXPECT_EQ(fork.process().cgroup_id(), 4242u);
  EXPECT_EQ(fork.process().filename(), "/usr/bin/bash");
  EXPECT_EQ(fork.process().exit_code(), 0);
  EXPECT_EQ(fork.process().duration_ns(), 0u);

  ns_process_event exec_raw = Raw(NS_PROCESS_EXEC, 11, 10, "sleep");
  exec_raw.uid = 1000;
  SetFilename(exec_raw, "/bin/sleep");
  v1::Event exec = ConvertEvent(exec_raw, clock, cache, now);
  EXPECT_EQ(exec.process().kind(), v1::ProcessEvent::EXEC);
  EXPECT_EQ(exec.process().process_name(), "sleep");
  EXPECT_EQ(exec.process().filename(), "/bin/sleep");
  EXPECT_EQ(exec.process().user(), "alice");
  EXPECT_EQ(cache.Lookup(11)->filename, "/bin/sleep");

  ns_process_event exit_raw = Raw(NS_PROCESS_EXIT, 11, 10, "sleep");
  exit_raw.uid = 1000;
  exit_raw.exit_code = 0x9;  // SIGKILL
  exit_raw.ts_ns = 1'500'000'000;
  v1::Event exit = ConvertEvent(exit_raw, clock, cache, now);
  EXPECT_EQ(exit.process().kind(), v1::ProcessEvent::EXIT);
  EXPECT_EQ(exit.process().filename(), "/bin/sleep");
  EXPECT_EQ(exit.process().exit_code(), 137);
  EXPECT_EQ(exit.process().signal(), 9);
  EXPECT_EQ(exit.process().duration_ns(), 500'000'000u);
  EXPECT_TRUE(cache.Lookup(11)->exited);
}

TEST_F(ConvertTest, UnknownProcessExitHasNoFilename) {
  proc::UserResolver users(root_);
  ProcessCache cache(&users, Options());
  bpf::MonotonicToRealtime clock;
  ns_process_event raw = Raw(NS_PROCESS_EXIT, 77, 1, "x");
  raw.exit_code = 0x100;
  raw.uid = 4000;
  v1::Event exit = ConvertEvent(raw, clock, cache, ProcessCache::Clock::now());
  EXPECT_EQ(exit.process().filename(), "");
  EXPECT_EQ(exit.process().exit_code(), 1);
  EXPECT_EQ(exit.process().signal(), 0);
  EXPECT_EQ(exit.process().user(), "4000");
}

TEST_F(ConvertTest, CommAndFilenameWithoutTerminatorStayInBounds) {
  proc::UserResolver users(root_);
  ProcessCache cache(&users, Options());
  bpf::MonotonicToRealtime clock;
  ns_process_event raw = Raw(NS_PROCESS_EXEC, 5, 1, "");
  std::memset(raw.comm, 'c', sizeof(raw.comm));
  std::memset(raw.filename, 'f', sizeof(raw.filename));
  v1::Event exec = ConvertEvent(raw, clock, cache, ProcessCache::Clock::now());
  EXPECT_EQ(exec.process().process_name(), std::string(NS_TASK_COMM_LEN, 'c'));
  EXPECT_EQ(exec.process().filename(), std::string(NS_FILENAME_LEN, 'f'));
}

TEST(ParseRecord, SizeMustMatch) {
  ns_process_event raw = Raw(NS_PROCESS_FORK, 1, 0, "init");
  auto bytes = std::as_bytes(std::span(&raw, 1));
  std::optional<ns_process_event> parsed = ParseRecord(bytes);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->pid, 1u);
  EXPECT_EQ(std::memcmp(&*parsed, &raw, sizeof(raw)), 0);
  EXPECT_FALSE(ParseRecord(bytes.first(sizeof(raw) - 1)));
}

}  // namespace
}  // namespace nodescope::sensor::process
