#include "sensor/bpf/strategy.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace nodescope::sensor::bpf {
namespace {

// A strategy that records that it was tried and answers `result`.
struct Fake {
  std::vector<std::string>* calls;
  AttachStrategy Make(const std::string& name, const Status& result) {
    return {name, [calls = calls, name, result] {
              calls->push_back(name);
              return result;
            }};
  }
};

TEST(SelectStrategy, FirstThatAttachesWinsAndLaterOnesAreNotTried) {
  std::vector<std::string> calls;
  Fake fake{&calls};
  std::vector<AttachStrategy> strategies = {fake.Make("fentry", Status::Ok()),
                                            fake.Make("kprobe", Status::Ok())};
  Selection s = SelectStrategy("tcp", strategies);
  EXPECT_TRUE(s.attached);
  EXPECT_EQ(s.probe, "tcp");
  EXPECT_EQ(s.strategy, "fentry");
  EXPECT_TRUE(s.tried.empty());
  EXPECT_EQ(s.error, "");
  EXPECT_EQ(calls, (std::vector<std::string>{"fentry"}));
}

TEST(SelectStrategy, FallsBackInOrderAndKeepsWhatEachFailureSaid) {
  std::vector<std::string> calls;
  Fake fake{&calls};
  std::vector<AttachStrategy> strategies = {
      fake.Make("fentry", Status::Error("load: Operation not permitted")),
      fake.Make("kprobe", Status::Error("attach kprobe__x: No such file or directory")),
      fake.Make("tracepoint", Status::Ok()), fake.Make("never", Status::Ok())};
  Selection s = SelectStrategy("tcp", strategies);
  EXPECT_TRUE(s.attached);
  EXPECT_EQ(s.strategy, "tracepoint");
  EXPECT_EQ(s.tried,
            (std::vector<std::string>{"fentry: load: Operation not permitted",
                                      "kprobe: attach kprobe__x: No such file or directory"}));
  EXPECT_EQ(calls, (std::vector<std::string>{"fentry", "kprobe", "tracepoint"}));

  v1::ProbeStatus proto = s.ToProto();
  EXPECT_EQ(proto.probe(), "tcp");
  EXPECT_EQ(proto.strategy(), "tracepoint");
  EXPECT_EQ(proto.state(), "attached");
  EXPECT_EQ(proto.error(), "");
  ASSERT_EQ(proto.tried_size(), 2);
  EXPECT_EQ(proto.tried(1), "kprobe: attach kprobe__x: No such file or directory");
}

TEST(SelectStrategy, AllFailJoinsEveryReason) {
  std::vector<std::string> calls;
  Fake fake{&calls};
  std::vector<AttachStrategy> strategies = {fake.Make("tp_btf", Status::Error("load: E1")),
                                            fake.Make("tracepoint", Status::Error("attach: E2"))};
  Selection s = SelectStrategy("process", strategies);
  EXPECT_FALSE(s.attached);
  EXPECT_EQ(s.strategy, "");
  EXPECT_EQ(s.error,
            "probe process: no attach strategy worked: tp_btf: load: E1; "
            "tracepoint: attach: E2");
  EXPECT_EQ(s.tried.size(), 2u);
  EXPECT_EQ(s.ToProto().state(), "failed");
  EXPECT_EQ(s.ToProto().error(), s.error);
}

TEST(SelectStrategy, ForcedTriesOnlyThatOne) {
  std::vector<std::string> calls;
  Fake fake{&calls};
  std::vector<AttachStrategy> strategies = {fake.Make("tp_btf", Status::Ok()),
                                            fake.Make("tracepoint", Status::Ok())};
  Selection s = SelectStrategy("process", strategies, "tracepoint");
  EXPECT_TRUE(s.attached);
  EXPECT_EQ(s.strategy, "tracepoint");
  EXPECT_EQ(calls, (std::vector<std::string>{"tracepoint"}));
}

TEST(SelectStrategy, ForcedThatFailsDoesNotFallBack) {
  std::vector<std::string> calls;
  Fake fake{&calls};
  std::vector<AttachStrategy> strategies = {fake.Make("tp_btf", Status::Error("load: E1")),
                                            fake.Make("tracepoint", Status::Ok())};
  Selection s = SelectStrategy("process", strategies, "tp_btf");
  EXPECT_FALSE(s.attached);
  EXPECT_EQ(s.error, "probe process: no attach strategy worked: tp_btf: load: E1");
  EXPECT_EQ(calls, (std::vector<std::string>{"tp_btf"}));
}

TEST(SelectStrategy, ForcedUnknownNamesWhatIsOffered) {
  std::vector<std::string> calls;
  Fake fake{&calls};
  std::vector<AttachStrategy> strategies = {fake.Make("tp_btf", Status::Ok()),
                                            fake.Make("tracepoint", Status::Ok())};
  Selection s = SelectStrategy("process", strategies, "kprobe");
  EXPECT_FALSE(s.attached);
  EXPECT_EQ(s.error,
            "probe process: unknown attach strategy 'kprobe' (this probe offers: tp_btf, "
            "tracepoint)");
  EXPECT_TRUE(calls.empty());
}

TEST(SelectStrategy, NoStrategies) {
  Selection s = SelectStrategy("x", {});
  EXPECT_FALSE(s.attached);
  EXPECT_EQ(s.error, "probe x offers no attach strategy");
}

TEST(ProgramInStrategy, NameConvention) {
  EXPECT_TRUE(ProgramInStrategy("tp_btf__exec", "tp_btf"));
  EXPECT_TRUE(ProgramInStrategy("tracepoint__exit", "tracepoint"));
  EXPECT_FALSE(ProgramInStrategy("tracepoint__exit", "tp_btf"));
  EXPECT_FALSE(ProgramInStrategy("tp_btf_exec", "tp_btf"));
  EXPECT_FALSE(ProgramInStrategy("tp_btf__", "tp_btf"));
  EXPECT_FALSE(ProgramInStrategy("kprobe__x", "kprobe_"));
  EXPECT_FALSE(ProgramInStrategy("", "kprobe"));
}

}  // namespace
}  // namespace nodescope::sensor::bpf
