#include "aggregator/sinks/jsonl.h"

#include <gtest/gtest.h>

#include "common/testing/temp_dir.h"
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "aggregator/sinks/sinks.h"
#include "common/records/record.h"

namespace nodescope::aggregator::sinks {
namespace {

using nodescope::test::TempDir;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

RecordBatchPtr TwoRecords() {
  v1::Record a;
  a.set_source("process");
  a.set_time_unix_nano(1763776000123456789);
  a.set_host("node-1");
  records::AddTag(&a, "host", "node-1");
  records::AddTag(&a, "pid", "42");
  records::AddField(&a, "event", "exec");
  records::AddField(&a, "filename", "/bin/true");
  v1::Record b;
  b.set_source("process");
  b.set_time_unix_nano(1763776000123456999);
  b.set_host("node-1");
  records::AddTag(&b, "host", "node-1");
  records::AddField(&b, "event", "exit");
  records::AddField(&b, "exit_code", 1);
  return MakeBatch({a, b});
}

constexpr char kTwoLines[] =
    R"({"source":"process","time":1763776000123456789,"host":"node-1",)"
    R"("tags":{"host":"node-1","pid":"42"},"fields":{"event":"exec","filename":"/bin/true"}})"
    "\n"
    R"({"source":"process","time":1763776000123456999,"host":"node-1",)"
    R"("tags":{"host":"node-1"},"fields":{"event":"exit","exit_code":1}})"
    "\n";

TEST(JsonlSink, WritesOneLinePerRecordAndAppends) {
  TempDir dir;
  const std::string path = dir.path() + "/out.jsonl";
  std::ofstream(path) << "existing line\n";
  auto sink = JsonlSink::Open(path);
  ASSERT_TRUE(sink.ok()) << sink.status().message();
  EXPECT_EQ((*sink)->name(), "jsonl:" + path);
  RecordBatchPtr batch = TwoRecords();
  ASSERT_TRUE((*sink)->Write(batch->records()).ok());
  ASSERT_TRUE((*sink)->Write(batch->records()).ok());
  EXPECT_EQ(ReadAll(path), std::string("existing line\n") + kTwoLines + kTwoLines);
}

TEST(JsonlSink, CreatesTheFileReadableByAll) {
  TempDir dir;
  const std::string path = dir.path() + "/new.jsonl";
  mode_t old_mask = umask(022);
  auto sink = JsonlSink::Open(path);
  umask(old_mask);
  ASSERT_TRUE(sink.ok()) << sink.status().message();
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  EXPECT_EQ(ReadAll(path), "");
}

TEST(JsonlSink, ReopenFollowsARotation) {
  TempDir dir;
  const std::string path = dir.path() + "/out.jsonl";
  auto sink = JsonlSink::Open(path);
  ASSERT_TRUE(sink.ok());
  RecordBatchPtr batch = TwoRecords();
  ASSERT_TRUE((*sink)->Write(batch->records()).ok());
  std::filesystem::rename(path, path + ".1");
  ASSERT_TRUE((*sink)->Write(batch->records()).ok());  // still the rotated file
  ASSERT_TRUE((*sink)->Reopen().ok());
  ASSERT_TRUE((*sink)->Write(batch->records()).ok());
  EXPECT_EQ(ReadAll(path + ".1"), std::string(kTwoLines) + kTwoLines);
  EXPECT_EQ(ReadAll(path), kTwoLines);
}

TEST(JsonlSink, StdoutIsDash) {
  auto sink = JsonlSink::Open("-");
  ASSERT_TRUE(sink.ok());
  EXPECT_EQ((*sink)->name(), "jsonl:-");
  testing::internal::CaptureStdout();
  ASSERT_TRUE((*sink)->Write(TwoRecords()->records()).ok());
  EXPECT_EQ(testing::internal::GetCapturedStdout(), kTwoLines);
}

TEST(JsonlSink, UnopenableFile) {
  auto sink = JsonlSink::Open("/nonexistent-dir/x.jsonl");
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.status().message(),
            "sink jsonl:/nonexistent-dir/x.jsonl: cannot open: No such file or directory");
}

TEST(SinkSpec, Check) {
  EXPECT_TRUE(CheckSinkSpec("jsonl:-").ok());
  EXPECT_TRUE(CheckSinkSpec("jsonl:/var/log/x.jsonl").ok());
  EXPECT_EQ(CheckSinkSpec("kafka:broker").message(),
            "sink 'kafka:broker': unknown type 'kafka' (accepted: jsonl:- (stdout), "
            "jsonl:/path/file.jsonl)");
  EXPECT_EQ(CheckSinkSpec("stdout").message(),
            "sink 'stdout': expected TYPE:TARGET (accepted: jsonl:- (stdout), "
            "jsonl:/path/file.jsonl)");
  EXPECT_FALSE(CheckSinkSpec("jsonl:").ok());
}

// Fails every write; the test double RecordSink exists for.
class BrokenSink final : public RecordSink {
 public:
  Status Write(std::span<const v1::Record* const> records) override {
    ++calls;
    return Status::Error("broken: disk full");
  }
  const std::string& name() const override { return name_; }
  int calls = 0;

 private:
  std::string name_ = "broken";
};

TEST(SinkSet, AFailingSinkCountsDropsAndOthersStillWrite) {
  TempDir dir;
  const std::string path = dir.path() + "/ok.jsonl";
  Metrics metrics;
  std::vector<std::unique_ptr<RecordSink>> list;
  auto broken = std::make_unique<BrokenSink>();
  BrokenSink* broken_ptr = broken.get();
  list.push_back(std::move(broken));
  list.push_back(std::move(JsonlSink::Open(path)).value());
  SinkSet set(std::move(list), &metrics);
  set.Write(*TwoRecords());
  set.Write(*TwoRecords());
  EXPECT_EQ(broken_ptr->calls, 2);
  EXPECT_EQ(ReadAll(path), std::string(kTwoLines) + kTwoLines);
  EXPECT_EQ(metrics.DroppedByReason(), (std::map<std::string, uint64_t>{{kDropSinkError, 4}}));
}

TEST(SinkSet, OpenFromSpecs) {
  TempDir dir;
  Metrics metrics;
  auto set = SinkSet::Open({"jsonl:" + dir.path() + "/a.jsonl", "jsonl:-"}, &metrics);
  ASSERT_TRUE(set.ok()) << set.status().message();
  EXPECT_EQ((*set)->size(), 2u);
  auto bad = SinkSet::Open({"jsonl:-", "csv:/x"}, &metrics);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown type 'csv'"), std::string::npos);
}

}  // namespace
}  // namespace nodescope::aggregator::sinks
