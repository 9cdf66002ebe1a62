// The bench's wire-level record counter against the protobuf decoder, on real serialized
// SubscribeResponses.
#include "bench/subscriber.h"

#include <grpcpp/impl/codegen/proto_utils.h>
#include <gtest/gtest.h>

#include "bench/child.h"
#include "bench/synthetic.h"
#include "nodescope/v1/observer.pb.h"

namespace nodescope::bench {
namespace {

grpc::ByteBuffer Serialize(const v1::SubscribeResponse& response) {
  grpc::ByteBuffer buffer;
  bool own = false;
  EXPECT_TRUE(
      grpc::SerializationTraits<v1::SubscribeResponse>::Serialize(response, &buffer, &own).ok());
  return buffer;
}

v1::SubscribeResponse Sample(int records, int64_t first_time) {
  v1::SubscribeResponse response;
  for (int i = 0; i < records; ++i) {
    v1::Record* record = response.add_records();
    record->set_source("process");
    record->set_host("node-a");
    record->set_time_unix_nano(first_time + i);
    v1::Tag* tag = record->add_tags();
    tag->set_key("filename");
    tag->set_value(std::string(300, 'x'));  // long enough to span varint-sized lengths
    v1::Field* field = record->add_fields();
    field->set_key("exit_code");
    field->set_int_value(-1);
  }
  return response;
}

TEST(CountResponseTest, MatchesTheDecoderOnEveryRecord) {
  v1::SubscribeResponse response = Sample(1000, 5000);
  response.mutable_lost_events()->set_count(17);
  response.mutable_lost_events()->set_source("process");
  for (int64_t threshold : {0, 5000, 5400, 5999, 6000, 100000}) {
    grpc::ByteBuffer wire = Serialize(response);
    grpc::ByteBuffer copy = wire;
    const ResponseCounts walked = CountResponse(&wire, threshold);
    const ResponseCounts decoded = DecodeAndCountResponse(&copy, threshold);
    ASSERT_TRUE(walked.ok);
    ASSERT_TRUE(decoded.ok);
    const uint64_t expected_measured = threshold <= 5000   ? 1000
                                       : threshold >= 6000 ? 0
                                                           : 6000 - threshold;
    EXPECT_EQ(walked.measured, expected_measured) << threshold;
    EXPECT_EQ(walked.other, 1000 - expected_measured) << threshold;
    EXPECT_EQ(walked.lost, 17u);
    EXPECT_EQ(decoded.measured, walked.measured);
    EXPECT_EQ(decoded.other, walked.other);
    EXPECT_EQ(decoded.lost, walked.lost);
  }
}

TEST(CountResponseTest, RejectsTruncatedBytes) {
  std::string bytes = Sample(3, 1).SerializeAsString();
  bytes.resize(bytes.size() - 5);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer wire(&slice, 1);
  EXPECT_FALSE(CountResponse(&wire, 0).ok);
}

TEST(SyntheticTest, EventsCycleForkExecExitWithRealisticSizes) {
  SyntheticProcessEvents source(1);
  size_t bytes = 0;
  for (int i = 0; i < 300; ++i) {
    v1::Event event;
    source.Next(1000 + i, &event);
    const v1::ProcessEvent& process = event.process();
    EXPECT_EQ(event.time_unix_nano(), 1000 + i);
    EXPECT_EQ(process.kind(), i % 3 == 0   ? v1::ProcessEvent::FORK
                              : i % 3 == 1 ? v1::ProcessEvent::EXEC
                                           : v1::ProcessEvent::EXIT);
    EXPECT_LE(process.process_name().size(), 15u);
    EXPECT_GE(process.filename().size(), 10u);
    EXPECT_GE(process.pid(), 1000u);
    bytes += event.ByteSizeLong();
  }
  // A real exec event with a path, name, user and ids serializes to 60-120 bytes.
  EXPECT_GT(bytes / 300, 50u);
  EXPECT_LT(bytes / 300, 130u);
}

TEST(ChildProcessTest, ReadsCpuOfThisProcess) {
  // Burn a little CPU so the reading is above zero at clock-tick resolution.
  volatile uint64_t x = 0;
  const double before = SelfCpuSeconds();
  while (SelfCpuSeconds() - before < 0.05) x = x + 1;
  auto from_stat = StatCpuSeconds("/proc/self/stat");
  ASSERT_TRUE(from_stat.ok()) << from_stat.status().message();
  EXPECT_GT(*from_stat, 0.03);
  EXPECT_NEAR(*from_stat, SelfCpuSeconds(), 0.05);
}

TEST(ChildProcessTest, SpawnAndTerminate) {
  auto child = ChildProcess::Spawn({"/bin/sleep", "30"}, "/dev/null");
  ASSERT_TRUE(child.ok()) << child.status().message();
  EXPECT_TRUE((*child)->Running());
  EXPECT_TRUE((*child)->Terminate(std::chrono::milliseconds(2000)));
  EXPECT_FALSE((*child)->Running());
  EXPECT_EQ((*child)->exit_description(), "killed by Terminated");
}

}  // namespace
}  // namespace nodescope::bench
