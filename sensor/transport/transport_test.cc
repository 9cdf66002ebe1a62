// Runs the transport against a real gRPC SensorService on 127.0.0.1 that records every message it
// receives, and checks what arrived against what was emitted.
#include "sensor/transport/transport.h"

#include <google/protobuf/io/coded_stream.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>

#include "nodescope/v1/ingest.grpc.pb.h"
#include "sensor/transport/fake_sensor_service.h"
#include "sensor/transport/transport_testing.h"

namespace nodescope::sensor {
namespace {

using fake::FakeAggregator;
using fake::Kill;
using fake::Recorder;
using fake::StartServer;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(TransportTest, RejectsBadOptions) {
  TransportOptions options = Options(1);
  options.buffer_size = 10;
  auto transport = Transport::Create(options, TestStatus);
  ASSERT_FALSE(transport.ok());
  EXPECT_EQ(transport.status().message(), "transport: buffer_size (10) must hold one batch (100)");
  options = Options(1);
  options.trace_server.clear();
  EXPECT_FALSE(Transport::Create(options, TestStatus).ok());
}

TEST(TransportTest, DeliversEveryEventInOrderWithIdentity) {
  Recorder recorder;
  FakeAggregator service(&recorder);
  int port = 0;
  auto server = StartServer(&service, &port);
  ASSERT_NE(port, 0);
  auto transport = MakeTransport(Options(port));

  constexpr uint32_t kEvents = 100000;
  for (uint32_t i = 0; i < kEvents; ++i) transport->Emit(MakeEvent(i));
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(20)));

  const TransportStats stats = transport->Stats();
  EXPECT_EQ(stats.events_in, kEvents);
  EXPECT_EQ(stats.batches_closed, kEvents / 100);
  EXPECT_EQ(stats.batches_sent, kEvents / 100);
  EXPECT_EQ(stats.batches_acked, kEvents / 100);
  EXPECT_EQ(stats.acked_seq, kEvents / 100);
  EXPECT_EQ(stats.resent, 0u);
  EXPECT_EQ(stats.buffered_events, 0u);
  EXPECT_EQ(stats.dropped_buffer_full, 0u);
  EXPECT_TRUE(stats.connected);
  EXPECT_EQ(stats.connects, 1u);

  const auto entries = recorder.Entries();
  ASSERT_FALSE(entries.empty());
  ASSERT_TRUE(entries[0].message.has_status()) << "the status goes first on a new stream";
  EXPECT_EQ(entries[0].message.status().SerializeAsString(), TestStatus().SerializeAsString());
  EXPECT_EQ(entries[0].message.node(), "node-a");
  EXPECT_EQ(entries[0].message.sensor_instance(), transport->instance());
  EXPECT_EQ(transport->instance().size(), 32u);

  uint64_t expected_seq = 1;
  for (size_t i = 1; i < entries.size(); ++i) {
    const v1::SensorMessage& message = entries[i].message;
    ASSERT_TRUE(message.has_batch());
    const v1::Batch& batch = message.batch();
    EXPECT_EQ(batch.seq(), expected_seq++) << "in order, without gaps, each once";
    EXPECT_EQ(batch.node(), "node-a");
    EXPECT_EQ(batch.sensor_instance(), transport->instance());
    ASSERT_EQ(batch.extra_tags_size(), 2);
    EXPECT_EQ(batch.extra_tags(0).key(), "cluster");
    EXPECT_EQ(batch.extra_tags(0).value(), "test");
    EXPECT_EQ(batch.extra_tags(1).key(), "zone");
    EXPECT_EQ(batch.events_size(), 100);
  }
  std::map<uint64_t, int> copies;
  EXPECT_EQ(Pids(Deduplicated(entries, &copies)), Range(0, kEvents));
  EXPECT_TRUE(transport->Stop(Clock::now() + seconds(5)));
  Kill(server);
}

TEST(TransportTest, ConcurrentEmittersKeepTheirOwnOrder) {
  Recorder recorder;
  FakeAggregator service(&recorder);
  int port = 0;
  auto server = StartServer(&service, &port);
  auto transport = MakeTransport(Options(port));

  constexpr uint32_t kThreads = 4, kPerThread = 25000;
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint32_t i = 0; i < kPerThread; ++i) transport->Emit(MakeEvent(i, t));
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(20)));

  std::map<uint64_t, int> copies;
  const auto batches = Deduplicated(recorder.Entries(), &copies);
  EXPECT_EQ(batches.size(), kThreads * kPerThread / 100);
  std::vector<uint32_t> next(kThreads, 0);
  for (const auto& [seq, batch] : batches) {
    for (const v1::Event& event : batch.events()) {
      const uint32_t thread = event.process().uid();
      ASSERT_LT(thread, kThreads);
      EXPECT_EQ(event.process().pid(), next[thread]++);
    }
  }
  EXPECT_EQ(next, std::vector<uint32_t>(kThreads, kPerThread));
  EXPECT_TRUE(transport->Stop(Clock::now() + seconds(5)));
  Kill(server);
}

TEST(TransportTest, ServerKilledAndRestartedLosesNothing) {
  Recorder recorder;
  auto first = std::make_unique<FakeAggregator>(&recorder);
  int port = 0;
  auto server = StartServer(first.get(), &port);
  auto transport = MakeTransport(Options(port));

  // 100 batches delivered and acknowledged.
  for (uint32_t i = 0; i < 10000; ++i) transport->Emit(MakeEvent(i));
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(20)));
  ASSERT_EQ(transport->Stats().acked_seq, 100u);

  // Batches 101-150 reach the server, which dies before acknowledging them.
  first->set_acking(false);
  for (uint32_t i = 10000; i < 15000; ++i) transport->Emit(MakeEvent(i));
  EXPECT_FALSE(transport->Flush(Clock::now() + milliseconds(100)));
  ASSERT_TRUE(recorder.WaitForSeq(150, seconds(20)));
  Kill(server);

  // Emitted while no aggregator listens: buffered.
  for (uint32_t i = 15000; i < 30000; ++i) transport->Emit(MakeEvent(i));
  std::this_thread::sleep_for(milliseconds(300));
  TransportStats stats = transport->Stats();
  EXPECT_FALSE(stats.connected);
  EXPECT_GT(stats.connect_failures, 0u);
  EXPECT_EQ(stats.buffered_events, 20000u);
  EXPECT_EQ(stats.acked_seq, 100u);

  FakeAggregator second(&recorder);
  int same_port = port;
  server = StartServer(&second, &same_port);
  ASSERT_EQ(same_port, port);
  for (uint32_t i = 30000; i < 40000; ++i) transport->Emit(MakeEvent(i));
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(30)));

  stats = transport->Stats();
  EXPECT_EQ(stats.events_in, 40000u);
  EXPECT_EQ(stats.batches_closed, 400u);
  EXPECT_EQ(stats.acked_seq, 400u);
  EXPECT_EQ(stats.batches_acked, 400u);
  EXPECT_EQ(stats.buffered_events, 0u);
  EXPECT_EQ(stats.dropped_buffer_full, 0u);
  EXPECT_GE(stats.resent, 50u);
  EXPECT_GE(stats.reconnects, 1u);

  const auto entries = recorder.Entries();
  // Every stream, on both servers, starts with the status message.
  std::map<int, const v1::SensorMessage*> first_of_stream;
  for (const auto& entry : entries) first_of_stream.emplace(entry.stream, &entry.message);
  EXPECT_GE(first_of_stream.size(), 2u);
  for (const auto& [stream, message] : first_of_stream) {
    EXPECT_TRUE(message->has_status()) << "stream " << stream;
  }

  std::map<uint64_t, int> copies;
  const auto batches = Deduplicated(entries, &copies);
  ASSERT_EQ(batches.size(), 400u);
  EXPECT_EQ(batches.begin()->first, 1u);
  EXPECT_EQ(batches.rbegin()->first, 400u);
  // Duplicates are exactly the batches the first server received but never acknowledged.
  std::set<uint64_t> duplicated;
  for (const auto& [seq, count] : copies) {
    if (count > 1) duplicated.insert(seq);
    EXPECT_LE(count, 2) << "seq " << seq;
  }
  std::set<uint64_t> expected_duplicates;
  for (uint64_t s = 101; s <= 150; ++s) expected_duplicates.insert(s);
  EXPECT_EQ(duplicated, expected_duplicates);
  EXPECT_EQ(Pids(batches), Range(0, 40000));

  EXPECT_TRUE(transport->Stop(Clock::now() + seconds(5)));
  Kill(server);
}

TEST(TransportTest, FullBufferDropsExactlyTheOverflowWithoutSeqGaps) {
  // A port nobody listens on: bound once, then released.
  Recorder recorder;
  FakeAggregator service(&recorder);
  int port = 0;
  auto probe = StartServer(&service, &port);
  Kill(probe);

  TransportOptions options = Options(port);
  options.buffer_size = 1000;
  auto transport = MakeTransport(options);
  for (uint32_t i = 0; i < 1500; ++i) transport->Emit(MakeEvent(i));
  TransportStats stats = transport->Stats();
  EXPECT_EQ(stats.events_in, 1500u);
  EXPECT_EQ(stats.dropped_buffer_full, 500u);
  EXPECT_EQ(stats.buffered_events, 1000u);
  EXPECT_EQ(stats.batches_closed, 10u);
  EXPECT_EQ(stats.Dropped().at("buffer_full"), 500u);
  // A loss report that does not fit is refused, not counted: the sensor sends it again later.
  EXPECT_FALSE(transport->EmitIfRoom(MakeEvent(99999)));
  EXPECT_EQ(transport->Stats().dropped_buffer_full, 500u);
  EXPECT_EQ(transport->Stats().events_in, 1500u);

  int same_port = port;
  auto server = StartServer(&service, &same_port);
  ASSERT_EQ(same_port, port);
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(20)));
  // Room again once acknowledged.
  for (uint32_t i = 1500; i < 1600; ++i) transport->Emit(MakeEvent(i));
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(20)));

  stats = transport->Stats();
  EXPECT_EQ(stats.dropped_buffer_full, 500u);
  EXPECT_EQ(stats.acked_seq, 11u);
  std::map<uint64_t, int> copies;
  const auto batches = Deduplicated(recorder.Entries(), &copies);
  ASSERT_EQ(batches.size(), 11u);
  EXPECT_EQ(batches.rbegin()->first, 11u);
  std::vector<uint32_t> expected = Range(0, 1000);
  for (uint32_t i = 1500; i < 1600; ++i) expected.push_back(i);
  EXPECT_EQ(Pids(batches), expected);
  EXPECT_TRUE(transport->Stop(Clock::now() + seconds(5)));
  Kill(server);
}

TEST(TransportTest, BatchIntervalClosesASmallBatch) {
  Recorder recorder;
  FakeAggregator service(&recorder);
  int port = 0;
  auto server = StartServer(&service, &port);
  TransportOptions options = Options(port);
  options.batch_size = 512;
  options.batch_interval = milliseconds(150);
  auto transport = MakeTransport(options);

  const auto start = Clock::now();
  for (uint32_t i = 0; i < 3; ++i) transport->Emit(MakeEvent(i));
  ASSERT_TRUE(recorder.WaitForSeq(1, seconds(10)));
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, milliseconds(150)) << "closed before batch_interval";

  for (uint32_t i = 3; i < 5; ++i) transport->Emit(MakeEvent(i));
  ASSERT_TRUE(recorder.WaitForSeq(2, seconds(10)));

  std::map<uint64_t, int> copies;
  const auto batches = Deduplicated(recorder.Entries(), &copies);
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches.at(1).events_size(), 3);
  EXPECT_EQ(batches.at(2).events_size(), 2);
  EXPECT_EQ(Pids(batches), Range(0, 5));
  EXPECT_TRUE(transport->Stop(Clock::now() + seconds(5)));
  Kill(server);
}

TEST(TransportTest, BatchMaxBytesClosesABatchEarly) {
  Recorder recorder;
  FakeAggregator service(&recorder);
  int port = 0;
  auto server = StartServer(&service, &port);
  TransportOptions options = Options(port);
  options.batch_max_bytes = 8192;
  auto transport = MakeTransport(options);

  size_t framed_size = 0;  // one event as it sits in a batch: tag, length, bytes
  for (uint32_t i = 0; i < 20; ++i) {
    v1::Event event = MakeEvent(i);
    event.mutable_process()->set_filename(std::string(2000, 'f'));
    const size_t size = event.ByteSizeLong();
    framed_size = 1 + google::protobuf::io::CodedOutputStream::VarintSize32(size) + size;
    transport->Emit(std::move(event));
  }
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(10)));
  // Each full batch is the first prefix of events reaching 8192 bytes.
  const size_t per_batch = (8192 + framed_size - 1) / framed_size;
  std::map<uint64_t, int> copies;
  const auto batches = Deduplicated(recorder.Entries(), &copies);
  ASSERT_EQ(batches.size(), (20 + per_batch - 1) / per_batch);
  for (const auto& [seq, batch] : batches) {
    const size_t expected = seq < batches.size() ? per_batch : 20 - per_batch * (seq - 1);
    EXPECT_EQ(static_cast<size_t>(batch.events_size()), expected) << "seq " << seq;
  }
  EXPECT_EQ(Pids(batches), Range(0, 20));
  EXPECT_TRUE(transport->Stop(Clock::now() + seconds(5)));
  Kill(server);
}

TEST(TransportTest, KeepalivePingsKeepAnIdleStream) {
  Recorder recorder;
  FakeAggregator service(&recorder);
  int port = 0;
  auto server = StartServer(&service, &port);
  TransportOptions options = Options(port);
  options.keepalive_time = milliseconds(300);
  options.keepalive_timeout = milliseconds(1000);
  auto transport = MakeTransport(options);
  transport->Emit(MakeEvent(1));
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(10)));
  // Several keepalive periods without data.
  std::this_thread::sleep_for(seconds(2));
  transport->Emit(MakeEvent(2));
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(10)));
  const TransportStats stats = transport->Stats();
  EXPECT_EQ(stats.connects, 1u) << "the idle stream was cut";
  EXPECT_TRUE(stats.connected);
  EXPECT_TRUE(transport->Stop(Clock::now() + seconds(5)));
  Kill(server);
}

TEST(TransportTest, StatusChangeIsSentOnTheStream) {
  Recorder recorder;
  FakeAggregator service(&recorder);
  int port = 0;
  auto server = StartServer(&service, &port);
  std::atomic<int> calls{0};
  auto created = Transport::Create(Options(port), [&] {
    v1::SensorStatus status = TestStatus();
    (*status.mutable_counters())["calls"] = ++calls;
    return status;
  });
  ASSERT_TRUE(created.ok());
  auto transport = std::move(created).value();
  transport->Emit(MakeEvent(1));
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(10)));
  transport->StatusChanged();
  transport->Emit(MakeEvent(2));
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(10)));

  std::vector<uint64_t> status_calls;
  for (const auto& entry : recorder.Entries()) {
    if (entry.message.has_status()) {
      status_calls.push_back(entry.message.status().counters().at("calls"));
    }
  }
  EXPECT_EQ(status_calls, (std::vector<uint64_t>{1, 2}));
  EXPECT_TRUE(transport->Stop(Clock::now() + seconds(5)));
  Kill(server);
}

TEST(TransportTest, StopCountsWhatWasNeverAcknowledged) {
  Recorder recorder;
  FakeAggregator service(&recorder);
  int port = 0;
  auto probe = StartServer(&service, &port);
  Kill(probe);

  auto transport = MakeTransport(Options(port));
  for (uint32_t i = 0; i < 250; ++i) transport->Emit(MakeEvent(i));
  EXPECT_FALSE(transport->Stop(Clock::now() + milliseconds(200)));
  transport->Emit(MakeEvent(250));
  const TransportStats stats = transport->Stats();
  EXPECT_EQ(stats.dropped_unacked_at_stop, 250u);
  EXPECT_EQ(stats.dropped_stopped, 1u);
  EXPECT_EQ(stats.batches_closed, 3u) << "Stop closes the open batch";
  EXPECT_FALSE(stats.connected);
}

}  // namespace
}  // namespace nodescope::sensor
