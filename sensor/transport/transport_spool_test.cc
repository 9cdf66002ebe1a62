// The transport with an on-disk spool, against the real gRPC fake aggregator: everything emitted
// arrives, in order, or is counted as dropped with its reason.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <thread>

#include "common/testing/temp_dir.h"
#include "sensor/transport/fake_sensor_service.h"
#include "sensor/transport/transport.h"
#include "sensor/transport/transport_testing.h"

namespace nodescope::sensor {
namespace {

using fake::FakeAggregator;
using fake::Kill;
using fake::StartServer;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A port nobody listens on (bound once, then released), and a server for it later.
struct LateServer {
  Recorder recorder;
  FakeAggregator service{&recorder};
  int port = 0;
  std::unique_ptr<grpc::Server> server;

  LateServer() {
    auto probe = StartServer(&service, &port);
    Kill(probe);
  }
  ~LateServer() {
    if (server) Kill(server);
  }
  void Start() {
    int same = port;
    server = StartServer(&service, &same);
    ASSERT_EQ(same, port);
  }
};

TransportOptions SpoolOptions(int port, const std::string& dir) {
  TransportOptions options = Options(port);
  options.buffer_size = 1000;  // 500 events in memory before batches go to disk
  options.spool_dir = dir;
  return options;
}

bool WaitFor(const std::function<bool()>& done, Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

// Emits pids [begin, end) no faster than the sender moves batches to disk: a burst larger than
// memory would otherwise be dropped before the sender thread runs. Gives up waiting after 50 ms
// (a full spool never makes room).
void EmitPaced(Transport* transport, uint32_t begin, uint32_t end) {
  for (uint32_t i = begin; i < end; ++i) {
    if (i % 100 == 0) {
      WaitFor([&] { return transport->Stats().buffered_events < 800; }, milliseconds(50));
    }
    transport->Emit(MakeEvent(i));
  }
}

size_t FilesIn(const std::string& dir) {
  std::error_code error;
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::recursive_directory_iterator(dir, error)) {
    if (entry.path().extension() == ".batch") ++n;
  }
  return n;
}

TEST(TransportSpoolTest, AnOutageGoesToDiskAndEverythingArrivesInOrder) {
  test::TempDir dir;
  LateServer aggregator;
  auto transport = MakeTransport(SpoolOptions(aggregator.port, dir.path()));
  // 20 times what memory may hold, while no aggregator listens.
  EmitPaced(transport.get(), 0, 20000);
  transport->Flush(Clock::now() + milliseconds(500));  // closes the open batch; nothing acked
  TransportStats stats = transport->Stats();
  EXPECT_EQ(stats.dropped_buffer_full + stats.dropped_spool_full, 0u);
  EXPECT_LE(stats.buffered_events, 500u);
  EXPECT_EQ(stats.buffered_events + stats.spooled_events, 20000u);
  EXPECT_GE(stats.batches_spooled, 195u);
  EXPECT_EQ(FilesIn(dir.path()), stats.batches_spooled);
  EXPECT_GT(stats.spool_bytes, 0u);

  aggregator.Start();
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(30)));
  stats = transport->Stats();
  EXPECT_EQ(stats.acked_seq, 200u);
  EXPECT_EQ(stats.batches_unspooled, stats.batches_spooled);
  EXPECT_EQ(stats.spooled_events, 0u);
  EXPECT_TRUE(transport->Drained());
  std::map<uint64_t, int> copies;
  const auto batches = Deduplicated(aggregator.recorder.Entries(), &copies);
  ASSERT_EQ(batches.size(), 200u);
  EXPECT_EQ(Pids(batches), Range(0, 20000));
  // Acknowledged batches leave the disk.
  EXPECT_TRUE(WaitFor([&] { return FilesIn(dir.path()) == 0; }, seconds(5)));
  EXPECT_TRUE(transport->Stop(Clock::now() + seconds(5)));
  transport.reset();
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "an empty spool leaves no directory";
}

TEST(TransportSpoolTest, AStalledStreamSpillsWhileTheSenderIsBlocked) {
  test::TempDir dir;
  LateServer aggregator;
  aggregator.Start();
  auto transport = MakeTransport(SpoolOptions(aggregator.port, dir.path()));
  EmitPaced(transport.get(), 0, 1000);
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(10)));

  // The aggregator stops reading: writes block once the stream's window is used up, acks stop.
  aggregator.service.set_stalled(true);
  EmitPaced(transport.get(), 1000, 21000);
  transport->Flush(Clock::now() + milliseconds(300));
  TransportStats stats = transport->Stats();
  EXPECT_EQ(stats.dropped_buffer_full + stats.dropped_spool_full, 0u);
  EXPECT_GT(stats.batches_spooled, 100u);
  EXPECT_LE(stats.buffered_events, 1000u);
  EXPECT_TRUE(stats.connected) << "a stalled stream is not a broken one";

  aggregator.service.set_stalled(false);
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(30)));
  std::map<uint64_t, int> copies;
  const auto batches = Deduplicated(aggregator.recorder.Entries(), &copies);
  EXPECT_EQ(Pids(batches), Range(0, 21000));
  EXPECT_TRUE(transport->Stop(Clock::now() + seconds(5)));
}

TEST(TransportSpoolTest, AFullSpoolDropsCountedAndTheRestArrives) {
  test::TempDir dir;
  LateServer aggregator;
  TransportOptions options = SpoolOptions(aggregator.port, dir.path());
  options.spool_size = 40 * 1024;  // a handful of 100-event batches
  auto transport = MakeTransport(options);
  EmitPaced(transport.get(), 0, 10000);
  TransportStats stats = transport->Stats();
  EXPECT_GT(stats.dropped_spool_full, 0u);
  EXPECT_EQ(stats.dropped_buffer_full, 0u) << "with a spool, a full buffer means a full spool";
  EXPECT_LE(stats.spool_bytes, options.spool_size);
  EXPECT_EQ(stats.Dropped().at("spool_full"), stats.dropped_spool_full);

  aggregator.Start();
  ASSERT_TRUE(transport->Flush(Clock::now() + seconds(30)));
  stats = transport->Stats();
  std::map<uint64_t, int> copies;
  const auto batches = Deduplicated(aggregator.recorder.Entries(), &copies);
  const auto delivered = Pids(batches);
  // Generated = delivered + counted drops; what was kept keeps its order.
  EXPECT_EQ(delivered.size() + stats.dropped_spool_full, 10000u);
  EXPECT_TRUE(std::is_sorted(delivered.begin(), delivered.end()));
  EXPECT_EQ(batches.size(), stats.acked_seq);
  EXPECT_TRUE(transport->Stop(Clock::now() + seconds(5)));
}

TEST(TransportSpoolTest, StopKeepsTheUnacknowledgedForTheNextStartToReplay) {
  test::TempDir dir;
  LateServer aggregator;
  auto transport = MakeTransport(SpoolOptions(aggregator.port, dir.path()));
  const std::string instance = transport->instance();
  EmitPaced(transport.get(), 0, 3050);
  EXPECT_FALSE(transport->Stop(Clock::now() + milliseconds(200)));
  TransportStats stats = transport->Stats();
  EXPECT_EQ(stats.dropped_unacked_at_stop, 0u);
  EXPECT_EQ(stats.spooled_events, 3050u);
  EXPECT_EQ(stats.buffered_events, 0u);
  transport.reset();
  ASSERT_EQ(FilesIn(dir.path()), 31u);

  // Damage one batch in the middle: its 100 events are lost and counted, the rest arrive.
  {
    const std::string path = dir.File(instance + "/" + Spool::FileName(17));
    const int fd = open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "\xff\xff", 2, Spool::kHeaderSize + 40), 2);
    close(fd);
  }

  // The next sensor: a new instance of its own, and the stopped one's batches under its id.
  EXPECT_EQ(Spool::Orphans(dir.path()), std::vector<std::string>{instance});
  auto next = MakeTransport(SpoolOptions(aggregator.port, dir.path()));
  EXPECT_NE(next->instance(), instance);
  TransportOptions replay_options = SpoolOptions(aggregator.port, dir.path());
  replay_options.instance = instance;
  auto replay = MakeTransport(replay_options);
  EXPECT_EQ(replay->Stats().spooled_events, 3050u);
  EXPECT_FALSE(replay->Drained());
  aggregator.Start();
  ASSERT_TRUE(replay->Flush(Clock::now() + seconds(30)));
  EXPECT_TRUE(replay->Drained());
  stats = replay->Stats();
  EXPECT_EQ(stats.acked_seq, 31u);
  EXPECT_EQ(stats.dropped_spool_damaged, 100u);

  std::map<uint64_t, int> copies;
  const auto batches = Deduplicated(aggregator.recorder.Entries(), &copies);
  ASSERT_EQ(batches.size(), 31u);
  std::vector<uint32_t> expected = Range(0, 1600);
  for (uint32_t i = 1700; i < 3050; ++i) expected.push_back(i);
  EXPECT_EQ(Pids(batches), expected);
  for (const auto& [seq, batch] : batches) {
    EXPECT_EQ(batch.sensor_instance(), instance) << seq;
    EXPECT_EQ(batch.node(), "node-a");
  }
  EXPECT_TRUE(replay->Stop(Clock::now() + seconds(5)));
  replay.reset();
  EXPECT_FALSE(std::filesystem::exists(dir.File(instance)));
  EXPECT_TRUE(next->Stop(Clock::now() + seconds(5)));
}

}  // namespace
}  // namespace nodescope::sensor
