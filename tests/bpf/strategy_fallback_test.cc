// Strategy selection against the real kernel: a strategy that libbpf cannot load falls back to
// the next one, and the failure is reported with libbpf's own reason, in one line.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "process.skel.h"
#include "sensor/bpf/environment.h"
#include "sensor/bpf/libbpf_log.h"
#include "sensor/bpf/programs.h"
#include "sensor/bpf/strategy.h"

namespace nodescope::sensor::bpf {
namespace {

using Skeleton = std::unique_ptr<process_bpf, decltype(&process_bpf__destroy)>;

// Opens a fresh skeleton and loads + attaches `strategy`; `sabotage` runs before load.
Status Attempt(std::string_view strategy, Skeleton& out, void (*sabotage)(process_bpf*)) {
  LibbpfLogCapture capture;
  Skeleton skel(process_bpf__open(), &process_bpf__destroy);
  if (!skel) return Status::Error("open: " + LibbpfErrorText(errno));
  if (Status s = SelectPrograms(skel->obj, strategy); !s.ok()) return s;
  if (sabotage != nullptr) sabotage(skel.get());
  if (int err = process_bpf__load(skel.get()); err != 0) {
    return Status::Error("load: " + LibbpfErrorText(err));
  }
  Result<std::vector<LinkPtr>> links = AttachPrograms(skel->obj, strategy);
  if (!links.ok()) return links.status();
  out = std::move(skel);
  return Status::Ok();
}

// The kernel refuses an array without entries.
void BadMap(process_bpf* skel) { bpf_map__set_max_entries(skel->maps.counters, 0); }

// The verifier refuses a tracepoint program loaded as a sysctl filter: its context is 8 bytes,
// the tracepoint record is read at offset 8.
void WrongProgramType(process_bpf* skel) {
  bpf_program__set_type(skel->progs.tracepoint__exec, BPF_PROG_TYPE_CGROUP_SYSCTL);
}

TEST(StrategyFallback, BrokenFirstStrategyFallsBackWithLibbpfReason) {
  ASSERT_TRUE(PrepareEnvironment().ok());
  Skeleton loaded(nullptr, &process_bpf__destroy);
  std::vector<AttachStrategy> strategies = {
      {"tp_btf", [&] { return Attempt("tp_btf", loaded, &BadMap); }},
      {"tracepoint", [&] { return Attempt("tracepoint", loaded, nullptr); }}};
  Selection s = SelectStrategy("process", strategies);
  ASSERT_TRUE(s.attached) << s.error;
  EXPECT_EQ(s.strategy, "tracepoint");
  ASSERT_EQ(s.tried.size(), 1u);
  std::cerr << "tried: " << s.tried[0] << "\n";
  EXPECT_EQ(s.tried[0].rfind("tp_btf: load: ", 0), 0u) << s.tried[0];
  EXPECT_NE(s.tried[0].find("map 'counters': failed to create: Invalid argument"),
            std::string::npos)
      << s.tried[0];
  EXPECT_EQ(s.tried[0].find('\n'), std::string::npos);
  EXPECT_NE(loaded, nullptr);
}

TEST(StrategyFallback, AllBrokenReportsEveryReason) {
  ASSERT_TRUE(PrepareEnvironment().ok());
  Skeleton loaded(nullptr, &process_bpf__destroy);
  std::vector<AttachStrategy> strategies = {
      {"tracepoint", [&] { return Attempt("tracepoint", loaded, &WrongProgramType); }},
      {"kprobe", [&] { return Attempt("kprobe", loaded, nullptr); }}};
  Selection s = SelectStrategy("process", strategies);
  EXPECT_FALSE(s.attached);
  std::cerr << "error: " << s.error << "\n";
  EXPECT_EQ(s.error.rfind("probe process: no attach strategy worked: tracepoint: load: ", 0), 0u);
  EXPECT_NE(s.error.find("; verifier: invalid bpf_context access off=8 size=4); kprobe: "),
            std::string::npos)
      << s.error;
  EXPECT_EQ(s.error.find('\n'), std::string::npos);
  EXPECT_NE(s.error.find("; kprobe: object process_bpf has no program for strategy kprobe"),
            std::string::npos)
      << s.error;
  EXPECT_EQ(loaded, nullptr);
}

}  // namespace
}  // namespace nodescope::sensor::bpf
