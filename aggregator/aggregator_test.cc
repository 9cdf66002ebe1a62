// The aggregator over real gRPC and HTTP on 127.0.0.1: a fake sensor streams batches, observers
// subscribe, Prometheus text is scraped.
#include "aggregator/aggregator.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/records/record.h"
#include "common/testing/temp_dir.h"
#include "nodescope/v1/ingest.grpc.pb.h"
#include "nodescope/v1/observer.grpc.pb.h"

namespace nodescope::aggregator {
namespace {

namespace bhttp = boost::beast::http;

using nodescope::test::TempDir;

std::pair<int, std::string> HttpGet(uint16_t port, const std::string& target) {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket socket(ioc);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  bhttp::request<bhttp::string_body> req(bhttp::verb::get, target, 11);
  req.set(bhttp::field::host, "127.0.0.1");
  bhttp::write(socket, req);
  boost::beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(socket, buffer, res);
  return {res.result_int(), res.body()};
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `count` process events: exec of pid first_pid + i at time first_pid + i.
v1::Batch ProcessBatch(const std::string& instance, uint64_t seq, uint32_t first_pid, int count) {
  v1::Batch batch;
  batch.set_node("node-1");
  batch.set_sensor_instance(instance);
  batch.set_seq(seq);
  v1::Tag* tag = batch.add_extra_tags();
  tag->set_key("cluster");
  tag->set_value("test");
  for (int i = 0; i < count; ++i) {
    v1::Event* e = batch.add_events();
    e->set_time_unix_nano(first_pid + i);
    v1::ProcessEvent* p = e->mutable_process();
    p->set_kind(v1::ProcessEvent::EXEC);
    p->set_pid(first_pid + i);
    p->set_ppid(1);
    p->set_process_name("true");
    p->set_user("root");
    p->set_cgroup_id(77);
    p->set_filename("/usr/bin/true");
  }
  return batch;
}

class FakeSensor {
 public:
  FakeSensor(uint16_t port, std::string instance)
      : stub_(v1::SensorService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                             grpc::InsecureChannelCredentials()))),
        instance_(std::move(instance)),
        stream_(stub_->Stream(&context_)) {}
  ~FakeSensor() {
    stream_->WritesDone();
    stream_->Finish().ok();
  }

  void SendStatus() {
    v1::SensorMessage m;
    m.set_node("node-1");
    m.set_sensor_instance(instance_);
    v1::SensorStatus* s = m.mutable_status();
    s->set_version("0.1.0");
    v1::ProbeStatus* p = s->add_probes();
    p->set_probe("process");
    p->set_strategy("tracepoint");
    p->set_state("attached");
    (*s->mutable_counters())["events_total"] = 12;
    ASSERT_TRUE(stream_->Write(m));
  }
  // Sends a batch and returns the acknowledged sequence number (0 when the stream broke).
  uint64_t Send(const v1::Batch& batch) {
    v1::SensorMessage m;
    m.set_node("node-1");
    m.set_sensor_instance(instance_);
    *m.mutable_batch() = batch;
    if (!stream_->Write(m)) return 0;
    v1::AggregatorMessage reply;
    if (!stream_->Read(&reply)) return 0;
    return reply.ack().seq();
  }

 private:
  std::unique_ptr<v1::SensorService::Stub> stub_;
  std::string instance_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SensorMessage, v1::AggregatorMessage>> stream_;
};

std::unique_ptr<v1::ObserverService::Stub> Observer(uint16_t port) {
  return v1::ObserverService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
}

// Every record a non-follow Subscribe returns, and the status it ends with.
std::pair<std::vector<v1::Record>, grpc::Status> SubscribeAll(uint16_t port,
                                                              const v1::SubscribeRequest& req) {
  auto stub = Observer(port);
  grpc::ClientContext context;
  auto reader = stub->Subscribe(&context, req);
  std::vector<v1::Record> out;
  v1::SubscribeResponse res;
  while (reader->Read(&res)) {
    for (const v1::Record& r : res.records()) out.push_back(r);
  }
  return {out, reader->Finish()};
}

Options TestOptions() {
  Options o;
  o.listen = "127.0.0.1:0";
  o.http_listen = "127.0.0.1:0";
  o.log_level = "warn";
  return o;
}

TEST(Aggregator, IngestDedupSubscribeStatusAndMetrics) {
  TempDir dir;
  Options options = TestOptions();
  options.sinks = {"jsonl:" + dir.path() + "/records.jsonl"};
  auto started = Aggregator::Start(options);
  ASSERT_TRUE(started.ok()) << started.status().message();
  Aggregator& agg = **started;
  ASSERT_NE(agg.grpc_port(), 0);

  {
    FakeSensor sensor(agg.grpc_port(), "inst-1");
    sensor.SendStatus();
    EXPECT_EQ(sensor.Send(ProcessBatch("inst-1", 1, 100, 3)), 1u);
    EXPECT_EQ(sensor.Send(ProcessBatch("inst-1", 2, 200, 2)), 2u);
    EXPECT_EQ(sensor.Send(ProcessBatch("inst-1", 2, 200, 2)), 2u);  // a resend: duplicate

    v1::SubscribeRequest req;
    req.set_last(100);
    auto [records, status] = SubscribeAll(agg.grpc_port(), req);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(records.size(), 5u);
    EXPECT_EQ(records::ToJsonLine(records[0]),
              R"({"source":"process","time":100,"host":"node-1","tags":{"host":"node-1",)"
              R"("pid":"100","ppid":"1","process_name":"true","user":"root","cgroup_id":"77",)"
              R"("cluster":"test"},"fields":{"event":"exec","filename":"/usr/bin/true"}})"
              "\n");
    std::vector<int64_t> times;
    for (const auto& r : records) times.push_back(r.time_unix_nano());
    EXPECT_EQ(times, (std::vector<int64_t>{100, 101, 102, 200, 201}));

    // The jsonl sink got each record once.
    std::string jsonl = ReadAll(dir.path() + "/records.jsonl");
    EXPECT_EQ(std::count(jsonl.begin(), jsonl.end(), '\n'), 5);
    EXPECT_EQ(jsonl.find(records::ToJsonLine(records[0])), 0u);

    auto stub = Observer(agg.grpc_port());
    grpc::ClientContext context;
    v1::StatusResponse st;
    ASSERT_TRUE(stub->Status(&context, v1::StatusRequest(), &st).ok());
    ASSERT_EQ(st.sensors_size(), 1);
    const v1::SensorInfo& info = st.sensors(0);
    EXPECT_EQ(info.node(), "node-1");
    EXPECT_EQ(info.sensor_instance(), "inst-1");
    EXPECT_TRUE(info.connected());
    EXPECT_EQ(info.last_seq(), 2u);
    EXPECT_EQ(info.batches(), 3u);
    EXPECT_EQ(info.records(), 5u);
    EXPECT_EQ(info.duplicate_batches(), 1u);
    ASSERT_EQ(info.status().probes_size(), 1);
    EXPECT_EQ(info.status().probes(0).strategy(), "tracepoint");
    EXPECT_EQ(info.status().counters().at("events_total"), 12u);
    ASSERT_EQ(st.sources_size(), 1);
    EXPECT_EQ(st.sources(0).source(), "process");
    EXPECT_EQ(st.sources(0).ingested(), 5u);
    EXPECT_EQ(st.sources(0).stored(), 5u);
    EXPECT_EQ(st.sources(0).capacity(), 65536u);
    EXPECT_EQ(st.version(), NODESCOPE_VERSION);

    auto [code, metrics] = HttpGet(agg.http_port(), "/metrics");
    EXPECT_EQ(code, 200);
    for (const char* line : {
             "nodescope_records_ingested_total{source=\"process\"} 5\n",
             "nodescope_records_deduplicated_total{source=\"process\"} 2\n",
             "nodescope_batches_total 3\n",
             "nodescope_sensors_connected 1\n",
             "nodescope_process_events_total{event=\"exec\",host=\"node-1\"} 5\n",
             "nodescope_probe_info{host=\"node-1\",probe=\"process\",strategy=\"tracepoint\"} 1\n",
             "nodescope_subscribers 0\n",
         }) {
      EXPECT_NE(metrics.find(line), std::string::npos) << line << "\n" << metrics;
    }
    EXPECT_EQ(HttpGet(agg.http_port(), "/healthz"), (std::pair<int, std::string>{200, "ok\n"}));
    EXPECT_EQ(HttpGet(agg.http_port(), "/readyz"), (std::pair<int, std::string>{200, "ready\n"}));
  }
  // The sensor hung up.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::string metrics;
  while (std::chrono::steady_clock::now() < deadline) {
    metrics = HttpGet(agg.http_port(), "/metrics").second;
    if (metrics.find("nodescope_sensors_connected 0\n") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(metrics.find("nodescope_sensors_connected 0\n"), std::string::npos) << metrics;
}

TEST(Aggregator, FollowGetsLiveRecordsWithoutGapOrDuplicate) {
  auto started = Aggregator::Start(TestOptions());
  ASSERT_TRUE(started.ok()) << started.status().message();
  Aggregator& agg = **started;
  FakeSensor sensor(agg.grpc_port(), "inst-f");
  ASSERT_EQ(sensor.Send(ProcessBatch("inst-f", 1, 1000, 10)), 1u);  // history: 1000..1009

  auto stub = Observer(agg.grpc_port());
  grpc::ClientContext context;
  v1::SubscribeRequest req;
  req.set_follow(true);
  req.set_last(4);
  auto reader = stub->Subscribe(&context, req);
  reader->WaitForInitialMetadata();  // registered for live records from here on
  for (uint64_t seq = 2; seq <= 50; ++seq) {
    ASSERT_EQ(sensor.Send(ProcessBatch("inst-f", seq, 1000 + 10 * (seq - 1), 10)), seq);
  }
  std::vector<int64_t> times;
  v1::SubscribeResponse res;
  while (times.size() < 4 + 490 && reader->Read(&res)) {
    EXPECT_FALSE(res.has_lost_events());
    for (const v1::Record& r : res.records()) times.push_back(r.time_unix_nano());
  }
  ASSERT_EQ(times.size(), 494u);
  for (size_t i = 0; i < times.size(); ++i) ASSERT_EQ(times[i], 1006 + int64_t(i)) << i;
  context.TryCancel();
}

TEST(Aggregator, SlowSubscriberAccountsForEveryRecord) {
  Options options = TestOptions();
  options.subscriber_queue_size = 50;
  auto started = Aggregator::Start(options);
  ASSERT_TRUE(started.ok()) << started.status().message();
  Aggregator& agg = **started;

  auto stub = Observer(agg.grpc_port());
  grpc::ClientContext context;
  v1::SubscribeRequest req;
  req.set_follow(true);
  auto reader = stub->Subscribe(&context, req);
  reader->WaitForInitialMetadata();
  FakeSensor sensor(agg.grpc_port(), "inst-s");
  constexpr int kBatches = 400;
  constexpr int kPerBatch = 100;
  for (int seq = 1; seq <= kBatches; ++seq) {
    ASSERT_EQ(sensor.Send(ProcessBatch("inst-s", seq, seq * kPerBatch, kPerBatch)),
              static_cast<uint64_t>(seq));
  }
  uint64_t received = 0;
  uint64_t lost = 0;
  v1::SubscribeResponse res;
  while (received + lost < kBatches * kPerBatch && reader->Read(&res)) {
    received += res.records_size();
    if (res.has_lost_events()) {
      EXPECT_EQ(res.lost_events().reason(), v1::LostEvents::SLOW_SUBSCRIBER);
      EXPECT_EQ(res.lost_events().source(), "process");
      lost += res.lost_events().count();
    }
  }
  EXPECT_EQ(received + lost, uint64_t{kBatches} * kPerBatch);
  EXPECT_GT(lost, 0u);  // 40,000 records into a queue of 50 while nobody reads
  auto [code, metrics] = HttpGet(agg.http_port(), "/metrics");
  EXPECT_NE(metrics.find("nodescope_records_dropped_total{reason=\"slow_subscriber\","
                         "source=\"process\"} " +
                         std::to_string(lost) + "\n"),
            std::string::npos)
      << metrics;
  context.TryCancel();
}

// A sensor's LostEvents reach a follower as SENSOR_DROPPED lost_events and the metric, once
// each even when their batch is resent; labels a sensor cannot have sent are one value.
TEST(Aggregator, SensorLossesAreToldToSubscribersOnce) {
  auto started = Aggregator::Start(TestOptions());
  ASSERT_TRUE(started.ok()) << started.status().message();
  Aggregator& agg = **started;
  auto stub = Observer(agg.grpc_port());
  grpc::ClientContext context;
  v1::SubscribeRequest req;
  req.set_follow(true);
  req.add_sources("netflow");  // filters do not hide losses nobody can attribute
  auto reader = stub->Subscribe(&context, req);
  reader->WaitForInitialMetadata();

  FakeSensor sensor(agg.grpc_port(), "inst-l");
  auto with_loss = [](uint64_t seq, const std::string& reason, const std::string& probe,
                      uint64_t count) {
    v1::Batch batch = ProcessBatch("inst-l", seq, 1000 * seq, 2);
    v1::LostEvent* lost = batch.add_events()->mutable_lost();
    lost->set_reason(reason);
    lost->set_probe(probe);
    lost->set_count(count);
    return batch;
  };
  EXPECT_EQ(sensor.Send(with_loss(1, "ringbuf_full", "l7", 40)), 1u);
  EXPECT_EQ(sensor.Send(with_loss(1, "ringbuf_full", "l7", 40)), 1u);  // a resend
  EXPECT_EQ(sensor.Send(with_loss(2, "buffer_full", "", 7)), 2u);
  EXPECT_EQ(sensor.Send(with_loss(3, "Bad Reason\n", "l7", 1)), 3u);

  std::map<std::string, uint64_t> told;  // "reason/probe" -> count
  v1::SubscribeResponse res;
  while (told.size() < 3 && reader->Read(&res)) {
    EXPECT_EQ(res.records_size(), 0);  // the filter keeps the process records out
    if (!res.has_lost_events()) continue;
    const v1::LostEvents& lost = res.lost_events();
    EXPECT_EQ(lost.reason(), v1::LostEvents::SENSOR_DROPPED);
    EXPECT_EQ(lost.host(), "node-1");
    told[lost.sensor_reason() + "/" + lost.probe()] += lost.count();
  }
  EXPECT_EQ(told, (std::map<std::string, uint64_t>{
                      {"buffer_full/", 7}, {"invalid/l7", 1}, {"ringbuf_full/l7", 40}}));
  auto [code, metrics] = HttpGet(agg.http_port(), "/metrics");
  for (const char* line : {
           "nodescope_sensor_lost_total{host=\"node-1\",probe=\"l7\",reason=\"ringbuf_full\"} 40\n",
           "nodescope_sensor_lost_total{host=\"node-1\",probe=\"\",reason=\"buffer_full\"} 7\n",
           "nodescope_sensor_lost_total{host=\"node-1\",probe=\"l7\",reason=\"invalid\"} 1\n",
           // Not records: the ingested counters hold only the process events.
           "nodescope_records_ingested_total{source=\"process\"} 6\n",
       }) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line << "\n" << metrics;
  }
  context.TryCancel();
}

TEST(Aggregator, BadRequestsAndTooManySubscribers) {
  Options options = TestOptions();
  options.max_subscribers = 1;
  auto started = Aggregator::Start(options);
  ASSERT_TRUE(started.ok()) << started.status().message();
  Aggregator& agg = **started;

  v1::SubscribeRequest bad;
  v1::Match* m = bad.add_allow()->add_matches();
  m->set_key("src_ip");
  m->set_cidr("10.0.0.0/40");
  auto [none, status] = SubscribeAll(agg.grpc_port(), bad);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "allow[0].matches[0]: invalid CIDR '10.0.0.0/40' for key 'src_ip': "
            "prefix length above 32");

  auto stub = Observer(agg.grpc_port());
  grpc::ClientContext context;
  v1::SubscribeRequest follow;
  follow.set_follow(true);
  auto reader = stub->Subscribe(&context, follow);
  reader->WaitForInitialMetadata();
  auto [records, refused] = SubscribeAll(agg.grpc_port(), v1::SubscribeRequest());
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(refused.error_message(), "too many subscribers (max_subscribers = 1)");
  context.TryCancel();
  reader->Finish();
  // The slot is free again once the follower is gone.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  grpc::Status again;
  do {
    again = SubscribeAll(agg.grpc_port(), v1::SubscribeRequest()).second;
  } while (!again.ok() && std::chrono::steady_clock::now() < deadline);
  EXPECT_TRUE(again.ok()) << again.error_message();
}

TEST(Aggregator, StateDirPreventsDuplicatesAcrossARestart) {
  TempDir dir;
  Options options = TestOptions();
  options.state_dir = dir.path() + "/state";
  options.sinks = {"jsonl:" + dir.path() + "/records.jsonl"};
  {
    auto first = Aggregator::Start(options);
    ASSERT_TRUE(first.ok()) << first.status().message();
    FakeSensor sensor((*first)->grpc_port(), "inst-r");
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      ASSERT_EQ(sensor.Send(ProcessBatch("inst-r", seq, 10 * seq, 5)), seq);
    }
    (*first)->Shutdown();
  }
  auto second = Aggregator::Start(options);
  ASSERT_TRUE(second.ok()) << second.status().message();
  {
    FakeSensor sensor((*second)->grpc_port(), "inst-r");
    // The sensor did not see the acks of 2 and 3 (say) and resends them, then continues.
    for (uint64_t seq = 2; seq <= 4; ++seq) {
      ASSERT_EQ(sensor.Send(ProcessBatch("inst-r", seq, 10 * seq, 5)), seq);
    }
  }
  std::string jsonl = ReadAll(dir.path() + "/records.jsonl");
  EXPECT_EQ(std::count(jsonl.begin(), jsonl.end(), '\n'), 20);  // 4 batches of 5, once each
  auto [code, metrics] = HttpGet((*second)->http_port(), "/metrics");
  EXPECT_NE(metrics.find("nodescope_records_deduplicated_total{source=\"process\"} 10\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("nodescope_records_ingested_total{source=\"process\"} 5\n"),
            std::string::npos)
      << metrics;
}

TEST(Aggregator, ListenConflictIsOneLine) {
  auto first = Aggregator::Start(TestOptions());
  ASSERT_TRUE(first.ok()) << first.status().message();
  Options options = TestOptions();
  options.listen = "127.0.0.1:" + std::to_string((*first)->grpc_port());
  auto second = Aggregator::Start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(),
            "grpc: cannot listen on " + options.listen + ": Address already in use");

  options = TestOptions();
  options.http_listen = "127.0.0.1:" + std::to_string((*first)->http_port());
  auto third = Aggregator::Start(options);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().message(),
            "http: cannot listen on " + options.http_listen + ": Address already in use");
}

TEST(Aggregator, SensorWithoutInstanceIsRefused) {
  auto started = Aggregator::Start(TestOptions());
  ASSERT_TRUE(started.ok());
  auto stub = v1::SensorService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string((*started)->grpc_port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto stream = stub->Stream(&context);
  v1::SensorMessage m;
  m.set_node("node-1");
  *m.mutable_batch() = ProcessBatch("", 1, 1, 1);
  stream->Write(m);
  stream->WritesDone();
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "sensor_instance must be 1-120 bytes");
}

TEST(Options, SchemaDefaultsAndValidation) {
  Options options;
  config::Schema schema("nodescope-aggregator");
  RegisterOptions(&schema, &options);
  ASSERT_TRUE(schema.LoadText("", "empty.yaml").ok());
  EXPECT_EQ(options.listen, "0.0.0.0:9970");
  EXPECT_EQ(options.http_listen, "0.0.0.0:9971");
  EXPECT_EQ(options.history_size, 65536);
  EXPECT_EQ(options.subscriber_queue_size, 8192);
  EXPECT_EQ(options.max_subscribers, 64);
  EXPECT_TRUE(options.sinks.empty());
  EXPECT_EQ(options.state_dir, "");
  EXPECT_EQ(options.log_level, "info");

  ASSERT_TRUE(schema.LoadText("history_size: 1000\nsinks: [\"jsonl:-\"]\n", "a.yaml").ok());
  EXPECT_EQ(options.history_size, 1000);
  EXPECT_TRUE(ValidateOptions(options).ok());
  EXPECT_FALSE(schema.LoadText("history_size: 0\n", "b.yaml").ok());
  EXPECT_FALSE(schema.LoadText("history_size: 10000001\n", "b.yaml").ok());
  EXPECT_FALSE(schema.LoadText("log_level: loud\n", "c.yaml").ok());

  options.sinks = {"jsonl:-", "syslog:x"};
  EXPECT_EQ(ValidateOptions(options).message(),
            "config: key 'sinks': sink 'syslog:x': unknown type 'syslog' (accepted: jsonl:- "
            "(stdout), jsonl:/path/file.jsonl)");
  std::map<std::string, std::string> env = {{"NODESCOPE_MAX_SUBSCRIBERS", "3"}};
  ASSERT_TRUE(schema
                  .LoadEnv([&](const char* name) -> const char* {
                    auto it = env.find(name);
                    return it == env.end() ? nullptr : it->second.c_str();
                  })
                  .ok());
  EXPECT_EQ(options.max_subscribers, 3);
}

}  // namespace
}  // namespace nodescope::aggregator
