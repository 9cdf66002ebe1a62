// The subcommands against a real gRPC ObserverService on 127.0.0.1.
#include "cli/commands.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "common/records/record.h"
#include "nodescope/v1/observer.grpc.pb.h"

namespace nodescope::cli {
namespace {

v1::Record MakeRecord(int pid) {
  v1::Record record;
  record.set_source("process");
  record.set_time_unix_nano(1'763'776'000'000'000'000 + pid);
  record.set_host("node-a");
  records::AddTag(&record, "host", "node-a");
  records::AddTag(&record, "pid", std::to_string(pid));
  records::AddField(&record, "event", "exec");
  records::AddField(&record, "filename", "/usr/bin/true");
  return record;
}

class FakeObserver final : public v1::ObserverService::Service {
 public:
  grpc::Status Subscribe(grpc::ServerContext* context, const v1::SubscribeRequest* request,
                         grpc::ServerWriter<v1::SubscribeResponse>* writer) override {
    {
      std::lock_guard lock(mu_);
      request_ = *request;
    }
    if (!error_.ok()) return error_;
    v1::SubscribeResponse first;
    first.mutable_lost_events()->set_reason(v1::LostEvents::SLOW_SUBSCRIBER);
    first.mutable_lost_events()->set_count(7);
    first.mutable_lost_events()->set_source("process");
    *first.add_records() = MakeRecord(1);
    *first.add_records() = MakeRecord(2);
    writer->Write(first);
    v1::SubscribeResponse second;
    *second.add_records() = MakeRecord(3);
    writer->Write(second);
    if (request->follow()) {
      // A follow stream ends only when the client goes away.
      while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      saw_cancel_ = true;
      return grpc::Status::CANCELLED;
    }
    return grpc::Status::OK;
  }

  grpc::Status Status(grpc::ServerContext*, const v1::StatusRequest*,
                      v1::StatusResponse* response) override {
    response->set_version("9.9.9");
    response->set_subscribers(1);
    v1::SensorInfo* sensor = response->add_sensors();
    sensor->set_node("node-a");
    sensor->set_connected(true);
    (*sensor->mutable_status()->mutable_counters())["events_total"] = 5;
    return grpc::Status::OK;
  }

  v1::SubscribeRequest request() {
    std::lock_guard lock(mu_);
    return request_;
  }
  grpc::Status error_ = grpc::Status::OK;
  std::atomic<bool> saw_cancel_{false};

 private:
  std::mutex mu_;
  v1::SubscribeRequest request_;
};

// A FILE* whose contents can be read after it is closed.
class Capture {
 public:
  Capture() : file_(open_memstream(&data_, &size_)) {}
  ~Capture() {
    if (file_ != nullptr) std::fclose(file_);
    std::free(data_);
  }
  std::FILE* file() { return file_; }
  std::string Text() {
    std::fflush(file_);
    return std::string(data_, size_);
  }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
  std::FILE* file_;
};

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(port_, 0);
    options_.server = "127.0.0.1:" + std::to_string(port_);
  }
  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now()); }

  FakeObserver service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  ObserveOptions options_;
  Capture out_, err_;
};

TEST_F(CommandsTest, ObserveJsonPrintsRecordLinesAndLostToStderr) {
  options_.output = "json";
  options_.sources = {"process"};
  options_.filters = {"pid=2"};
  options_.last = 50;
  EXPECT_EQ(RunObserve(options_, out_.file(), err_.file(), nullptr), kExitOk);
  EXPECT_EQ(out_.Text(), records::ToJsonLine(MakeRecord(1)) + records::ToJsonLine(MakeRecord(2)) +
                             records::ToJsonLine(MakeRecord(3)));
  EXPECT_EQ(err_.Text(), "lost 7 process records (slow subscriber)\n");
  const v1::SubscribeRequest request = service_.request();
  EXPECT_EQ(request.last(), 50u);
  ASSERT_EQ(request.sources_size(), 1);
  ASSERT_EQ(request.allow_size(), 1);
  EXPECT_EQ(request.allow(0).matches(0).key(), "pid");
  EXPECT_FALSE(request.follow());
}

TEST_F(CommandsTest, ObserveTablePrintsAHeaderOnce) {
  options_.output = "table";
  EXPECT_EQ(RunObserve(options_, out_.file(), err_.file(), nullptr), kExitOk);
  const std::string text = out_.Text();
  EXPECT_EQ(text.rfind("TIME ", 0), 0u) << text;
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_EQ(lines, 4u) << text;
  EXPECT_NE(text.find(" process   node-a        pid=3 event=exec filename=/usr/bin/true\n"),
            std::string::npos)
      << text;
}

TEST_F(CommandsTest, ServerErrorIsOneLineAndExitOne) {
  service_.error_ = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad cidr");
  EXPECT_EQ(RunObserve(options_, out_.file(), err_.file(), nullptr), kExitServer);
  EXPECT_EQ(err_.Text(), "nodescope: observe: the aggregator at " + options_.server +
                             " ended the stream: bad cidr\n");
  EXPECT_EQ(out_.Text(), "");
}

TEST_F(CommandsTest, UnreachableServerIsOneLineAndExitOne) {
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  EXPECT_EQ(RunObserve(options_, out_.file(), err_.file(), nullptr), kExitServer);
  EXPECT_EQ(err_.Text(), "nodescope: cannot connect to the aggregator at " + options_.server +
                             " (is nodescope-aggregator running and listening there?)\n");
  Capture status_out, status_err;
  EXPECT_EQ(RunStatus(options_.server, "table", status_out.file(), status_err.file()), kExitServer);
  EXPECT_EQ(status_err.Text().rfind("nodescope: cannot connect", 0), 0u);
}

TEST_F(CommandsTest, UsageErrorsExitTwo) {
  options_.server = "no-port";
  EXPECT_EQ(RunObserve(options_, out_.file(), err_.file(), nullptr), kExitUsage);
  options_.server = "127.0.0.1:" + std::to_string(port_);
  options_.filters = {"dst_ip@300.0.0.0/8"};
  EXPECT_EQ(RunObserve(options_, out_.file(), err_.file(), nullptr), kExitUsage);
  const std::string err = err_.Text();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2) << err;
  EXPECT_NE(err.find("nodescope: --server: expected HOST:PORT"), std::string::npos) << err;
  EXPECT_NE(err.find("nodescope: filter 'dst_ip@300.0.0.0/8'"), std::string::npos) << err;
}

TEST_F(CommandsTest, CancelEndsFollowCleanly) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::FILE* out = fdopen(fds[1], "w");
  ASSERT_NE(out, nullptr);
  options_.follow = true;
  options_.output = "json";
  Canceller canceller;
  std::atomic<int> code{-1};
  std::thread observe([&] { code = RunObserve(options_, out, err_.file(), &canceller); });
  // Wait until all three records came through the pipe, then cancel as Ctrl-C would.
  std::string seen;
  char buffer[4096];
  while (std::count(seen.begin(), seen.end(), '\n') < 3) {
    const ssize_t n = read(fds[0], buffer, sizeof(buffer));
    ASSERT_GT(n, 0);
    seen.append(buffer, n);
  }
  canceller.Cancel();
  observe.join();
  EXPECT_EQ(code, kExitOk);
  EXPECT_EQ(seen, records::ToJsonLine(MakeRecord(1)) + records::ToJsonLine(MakeRecord(2)) +
                      records::ToJsonLine(MakeRecord(3)));
  EXPECT_EQ(service_.request().last(), 0u) << "follow alone starts from now";
  std::fclose(out);
  close(fds[0]);
  for (int i = 0; i < 200 && !service_.saw_cancel_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(service_.saw_cancel_);
}

TEST_F(CommandsTest, StatusJsonAndTable) {
  EXPECT_EQ(RunStatus(options_.server, "json", out_.file(), err_.file()), kExitOk);
  v1::StatusResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out_.Text(), &parsed).ok())
      << out_.Text();
  EXPECT_EQ(parsed.version(), "9.9.9");
  ASSERT_EQ(parsed.sensors_size(), 1);
  EXPECT_EQ(parsed.sensors(0).status().counters().at("events_total"), 5u);

  Capture table, table_err;
  EXPECT_EQ(RunStatus(options_.server, "table", table.file(), table_err.file()), kExitOk);
  EXPECT_EQ(table.Text().rfind("node-a  connected", 0), 0u) << table.Text();
  EXPECT_EQ(table_err.Text(), "");
}

}  // namespace
}  // namespace nodescope::cli
