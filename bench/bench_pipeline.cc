// bench_pipeline: records per second and CPU seconds per million records through
// sensor transport -> nodescope-aggregator -> a following subscriber, on loopback.
//
// The aggregator is the real binary in its own process (next to this binary in bin/, or
// --aggregator PATH), started on free loopback ports with a temporary config. Synthetic process
// events are injected into an in-process Transport as fast as it accepts them: the bench only
// pauses when the transport's buffer is nearly full, so nothing is dropped and the source is
// never the limit. An in-process subscriber follows the aggregator and counts the records that
// come back; by default it walks the wire format (framing and time of every record) without
// building Record objects, --decode-records makes it decode them as a real client does.
// CPU: getrusage for this process, /proc/<pid>/stat for the aggregator, /proc/self/task for
// the subscriber thread. A baseline in this process (build + batch + serialize + parse, no
// network) gives the figures a ratio. Prints figures; never fails on time. Exit 1 when the
// pipeline itself fails (the aggregator does not start, records never arrive); the aggregator
// is stopped (SIGTERM, then SIGKILL) on every path, and killed by the kernel if this dies.
//
//   build/bin/bench_pipeline [--events 2000000] [--batch-size 512] [--decode-records]
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "bench/child.h"
#include "bench/subscriber.h"
#include "bench/synthetic.h"
#include "fmt/format.h"
#include "nodescope/v1/observer.grpc.pb.h"
#include "sensor/transport/transport.h"
#include "spdlog/spdlog.h"

namespace nodescope::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Args {
  std::string aggregator;
  uint64_t events = 2'000'000;
  size_t batch_size = 512;
  size_t buffer_size = 262144;
  bool keep_temp = false;
  bool baseline = true;
  bool decode_records = false;
};

int64_t NowUnixNano() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A loopback port free right now (the aggregator binds it a moment later).
Result<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return Status::Error("cannot bind a loopback port");
  }
  close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

std::string Tail(const std::string& path, size_t bytes) {
  std::ifstream file(path);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

// The same events built, batched, serialized and parsed in one thread without the network or
// the aggregator: what the wire format alone costs.
struct Baseline {
  double seconds = 0;
  double cpu = 0;
  double source_cpu = 0;  // building and destroying the events alone
};
Baseline RunBaseline(uint64_t events, size_t batch_size) {
  SyntheticProcessEvents source(7);
  v1::SensorMessage message;
  v1::SensorMessage parsed;
  std::string wire;
  uint64_t parsed_events = 0;
  timespec cpu0, cpu1;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
  const auto start = Clock::now();
  const int64_t now = NowUnixNano();
  for (uint64_t i = 0; i < events;) {
    message.Clear();
    v1::Batch* batch = message.mutable_batch();
    batch->set_node("bench-node");
    batch->set_seq(i / batch_size + 1);
    for (size_t n = 0; n < batch_size && i < events; ++n, ++i) {
      source.Next(now + static_cast<int64_t>(i), batch->add_events());
    }
    message.SerializeToString(&wire);
    parsed.ParseFromString(wire);
    parsed_events += parsed.batch().events_size();
  }
  const auto end = Clock::now();
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
  if (parsed_events != events) spdlog::error("baseline parsed {} of {}", parsed_events, events);
  // The source alone, as the pipeline run uses it: one fresh Event per Emit.
  timespec cpu2;
  uint64_t checksum = 0;
  for (uint64_t i = 0; i < events; ++i) {
    v1::Event event;
    source.Next(now + static_cast<int64_t>(i), &event);
    checksum += event.process().pid();
  }
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu2);
  if (checksum == 0) spdlog::error("synthetic events have no pids");
  const auto seconds = [](const timespec& a, const timespec& b) {
    return (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
  };
  return {std::chrono::duration<double>(end - start).count(), seconds(cpu0, cpu1),
          seconds(cpu1, cpu2)};
}

Status WaitReady(const std::shared_ptr<grpc::Channel>& channel, ChildProcess* aggregator) {
  const auto deadline = Clock::now() + seconds(15);
  while (Clock::now() < deadline) {
    if (!aggregator->Running()) {
      return Status::Error("the aggregator " + aggregator->exit_description());
    }
    if (channel->WaitForConnected(std::chrono::system_clock::now() + milliseconds(200))) {
      return Status::Ok();
    }
  }
  return Status::Error("the aggregator did not accept gRPC connections within 15 s");
}

Status Run(const Args& args, ChildProcess* aggregator, int grpc_port) {
  const std::string address = fmt::format("127.0.0.1:{}", grpc_port);
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(-1);
  auto channel =
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), channel_args);
  if (Status ready = WaitReady(channel, aggregator); !ready.ok()) return ready;

  if (args.baseline) {
    fmt::print("baseline: {} events built, batched by {}, serialized and parsed in one thread\n",
               args.events, args.batch_size);
  }
  std::fflush(stdout);
  const Baseline baseline =
      args.baseline ? RunBaseline(args.events, args.batch_size) : Baseline{1, 1};

  Subscriber subscriber(channel, aggregator, args.decode_records);
  const pid_t subscriber_tid = subscriber.tid();

  sensor::TransportOptions options;
  options.trace_server = address;
  options.node = "bench-node";
  options.extra_tags = {{"cluster", "bench"}};
  options.batch_size = args.batch_size;
  options.buffer_size = args.buffer_size;
  auto created = sensor::Transport::Create(options, [] {
    v1::SensorStatus status;
    status.set_version("bench");
    return status;
  });
  if (!created.ok()) return created.status();
  std::unique_ptr<sensor::Transport> transport = std::move(created).value();

  // Warm-up: until the subscription demonstrably receives records. These are an hour old, so
  // the subscriber does not count them in the measured run.
  SyntheticProcessEvents source(42);
  const int64_t old = NowUnixNano() - 3'600'000'000'000;
  const auto warm_deadline = Clock::now() + seconds(15);
  while (subscriber.warm() == 0) {
    if (Clock::now() > warm_deadline)
      return Status::Error("no warm-up record reached the subscriber");
    for (int i = 0; i < 100; ++i) {
      v1::Event event;
      source.Next(old, &event);
      transport->Emit(std::move(event));
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  if (!transport->Flush(Clock::now() + seconds(15))) return Status::Error("warm-up not acked");

  const int64_t threshold = NowUnixNano();
  subscriber.Measure(threshold, args.events);
  const auto threads0 = AllThreadsCpu();
  const double self_cpu0 = SelfCpuSeconds();
  auto aggregator_cpu0 = aggregator->CpuSeconds();
  auto subscriber_cpu0 = ThreadCpuSeconds(subscriber_tid);
  if (!aggregator_cpu0.ok()) return aggregator_cpu0.status();
  if (!subscriber_cpu0.ok()) return subscriber_cpu0.status();

  fmt::print("pipeline: injecting {} events...\n", args.events);
  std::fflush(stdout);
  const auto start = Clock::now();
  // Leaves room for a few batches so that Emit never reaches the drop path, then lets the
  // buffer drain to half before going on: few, long pauses cost less than many short ones.
  const size_t high_water = args.buffer_size - 4 * args.batch_size;
  const size_t low_water = args.buffer_size / 2;
  uint64_t waits = 0;
  for (uint64_t i = 0; i < args.events; ++i) {
    if ((i & 1023) == 0 && transport->Stats().buffered_events > high_water) {
      ++waits;
      while (transport->Stats().buffered_events > low_water) {
        std::this_thread::sleep_for(milliseconds(1));
      }
    }
    v1::Event event;
    source.Next(threshold + static_cast<int64_t>(i), &event);
    transport->Emit(std::move(event));
  }
  const auto emitted = Clock::now();
  transport->Flush(Clock::now() + seconds(60));

  Subscriber::End end;
  if (!subscriber.Wait(seconds(30), &end)) {
    return Status::Error(
        fmt::format("the subscriber stalled at {} of {} records ({} lost){}", subscriber.measured(),
                    args.events, subscriber.lost(),
                    subscriber.error().empty() ? "" : "; stream error: " + subscriber.error()));
  }
  const auto threads1 = AllThreadsCpu();
  const sensor::TransportStats stats = transport->Stats();
  transport->Stop(Clock::now() + seconds(5));

  const double wall = std::chrono::duration<double>(end.at - start).count();
  const double emit_wall = std::chrono::duration<double>(emitted - start).count();
  const double millions = static_cast<double>(args.events) / 1e6;
  const double bench_cpu = end.self_cpu - self_cpu0;
  const double subscriber_cpu = end.subscriber_cpu - *subscriber_cpu0;
  const double sensor_cpu = bench_cpu - subscriber_cpu;
  const double aggregator_cpu = end.aggregator_cpu - *aggregator_cpu0;
  const double rate = static_cast<double>(args.events) / wall;
  // The target counts what nodescope runs, the sensor and the aggregator; the subscriber is a
  // client and shown on its own.
  const double total_per_million = (sensor_cpu + aggregator_cpu) / millions;
  const double baseline_rate = static_cast<double>(args.events) / baseline.seconds;
  const double baseline_per_million = baseline.cpu / millions;

  fmt::print(
      "\nrecords: {} injected, {} received by the subscriber, {} lost; transport: {} "
      "batches, {} resent, {} dropped, {} pauses for buffer room\n",
      args.events, subscriber.measured(), subscriber.lost(), stats.batches_sent, stats.resent,
      stats.dropped_buffer_full, waits);
  fmt::print("wall: {:.3f} s from first Emit to last record counted (injection took {:.3f} s)\n",
             wall, emit_wall);
  fmt::print("throughput: {:.0f} records/s\n\n", rate);
  fmt::print("CPU seconds per million records\n");
  fmt::print(
      "  sensor side (transport + synthetic source; bench process minus subscriber) "
      "{:6.3f}\n",
      sensor_cpu / millions);
  fmt::print(
      "  aggregator process                                                        "
      "{:6.3f}\n",
      aggregator_cpu / millions);
  fmt::print(
      "  total: sensor + aggregator                                                "
      "{:6.3f}\n",
      total_per_million);
  fmt::print("  {:<74}{:6.3f}\n",
             args.decode_records ? "subscriber thread (decodes every record)"
                                 : "subscriber thread (walks the wire format)",
             subscriber_cpu / millions);
  fmt::print(
      "  everything (bench process + aggregator)                                   "
      "{:6.3f}\n",
      (bench_cpu + aggregator_cpu) / millions);
  // Read just after the subscriber's end reading: a breakdown, not part of the totals.
  std::map<std::string, double> by_name;
  for (const auto& [tid, thread] : threads1) {
    const auto before = threads0.find(tid);
    by_name[thread.name] +=
        thread.seconds - (before == threads0.end() ? 0 : before->second.seconds);
  }
  std::string breakdown;
  for (const auto& [name, cpu] : by_name) {
    if (cpu >= 0.01) breakdown += fmt::format("  {} {:.3f}", name, cpu / millions);
  }
  fmt::print("  bench process by thread (bench_pipeline = synthetic source + Emit):{}\n\n",
             breakdown);
  if (args.baseline) {
    fmt::print(
        "baseline (build + batch + serialize + parse, one thread, no network): {:.0f} "
        "records/s, {:.3f} CPU-s per million\n",
        baseline_rate, baseline_per_million);
    fmt::print(
        "synthetic source alone (build + destroy one Event per record): {:.3f} CPU-s per "
        "million, so the transport itself: {:.3f}\n",
        baseline.source_cpu / millions, (sensor_cpu - baseline.source_cpu) / millions);
    fmt::print("pipeline / baseline: {:.2f}x the throughput, {:.1f}x the CPU per record\n",
               rate / baseline_rate, total_per_million / baseline_per_million);
  }
  fmt::print(
      "target >= 300000 records/s: {}; target <= 2 CPU-s per million (sensor + "
      "aggregator): {}\n",
      rate >= 300000 ? "met" : "NOT met", total_per_million <= 2.0 ? "met" : "NOT met");
  if (subscriber.measured() != args.events) {
    return Status::Error(fmt::format("{} records never reached the subscriber",
                                     args.events - subscriber.measured()));
  }
  return Status::Ok();
}

fs::path DefaultAggregator() {
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  for (const fs::path& candidate : {self.parent_path() / "nodescope-aggregator",
                                    self.parent_path() / ".." / "bin" / "nodescope-aggregator"}) {
    if (fs::exists(candidate, error)) return fs::weakly_canonical(candidate, error);
  }
  return self.parent_path() / "nodescope-aggregator";
}

int Main(int argc, char** argv) {
  Args args;
  CLI::App app("bench_pipeline: sensor transport -> aggregator -> subscriber, on loopback");
  app.add_option("--aggregator", args.aggregator,
                 "nodescope-aggregator binary (default: next to this binary, or ../bin)");
  app.add_option("--events", args.events, "synthetic process events to inject")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-size", args.batch_size, "transport batch_size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--buffer-size", args.buffer_size, "transport buffer_size (events)")
      ->capture_default_str();
  app.add_flag("!--no-baseline", args.baseline, "skip the baseline run (e.g. when profiling)");
  app.add_flag("--decode-records", args.decode_records,
               "the subscriber decodes every record as a real client does (default: it walks the "
               "wire format, checking each record's framing and time)");
  app.add_flag("--keep-temp", args.keep_temp, "keep the temporary config and aggregator log");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (args.aggregator.empty()) args.aggregator = DefaultAggregator();
  if (access(args.aggregator.c_str(), X_OK) != 0) {
    fmt::print(stderr,
               "bench_pipeline: no aggregator binary at {} (build nodescope-aggregator "
               "or pass --aggregator PATH)\n",
               args.aggregator);
    return 1;
  }
  if (args.buffer_size < 8 * args.batch_size) {
    fmt::print(stderr, "bench_pipeline: --buffer-size must be at least 8 batches\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);

  char dir_template[] = "/tmp/nodescope-bench.XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    fmt::print(stderr, "bench_pipeline: mkdtemp failed\n");
    return 1;
  }
  const fs::path dir = dir_template;
  auto grpc_port = FreePort();
  auto http_port = FreePort();
  if (!grpc_port.ok() || !http_port.ok() || *grpc_port == *http_port) {
    fmt::print(stderr, "bench_pipeline: cannot find free loopback ports\n");
    return 1;
  }
  const fs::path config = dir / "aggregator.yaml";
  const fs::path log = dir / "aggregator.log";
  {
    std::ofstream out(config);
    // A queue deep enough for a subscriber that runs on a busy 2-core machine.
    out << fmt::format(
        "listen: 127.0.0.1:{}\nhttp_listen: 127.0.0.1:{}\n"
        "subscriber_queue_size: 262144\nlog_level: warn\n",
        *grpc_port, *http_port);
  }
  fmt::print("aggregator: {} on 127.0.0.1:{} (config and log in {})\n", args.aggregator, *grpc_port,
             dir.string());
  // Spawned before this process starts any thread (gRPC starts its own).
  auto aggregator =
      ChildProcess::Spawn({args.aggregator, "--config", config.string()}, log.string());
  Status status = aggregator.ok() ? Run(args, aggregator->get(), *grpc_port) : aggregator.status();
  if (aggregator.ok() && !(*aggregator)->Terminate(seconds(5)) && status.ok()) {
    status = Status::Error("the aggregator did not stop on SIGTERM within 5 s (" +
                           (*aggregator)->exit_description() + ")");
  }
  if (!status.ok()) {
    fmt::print(stderr, "bench_pipeline: {}\n--- aggregator log (tail) ---\n{}\n", status.message(),
               Tail(log.string(), 4000));
  }
  std::error_code error;
  if (!args.keep_temp) fs::remove_all(dir, error);
  return status.ok() ? 0 : 1;
}

}  // namespace
}  // namespace nodescope::bench

int main(int argc, char** argv) { return nodescope::bench::Main(argc, argv); }
