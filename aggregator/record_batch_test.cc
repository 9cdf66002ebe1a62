#include "aggregator/record_batch.h"

#include <gtest/gtest.h>

#include <limits>
#include <thread>

#include "common/records/record.h"
#include "nodescope/v1/observer.pb.h"

namespace nodescope::aggregator {
namespace {

// What the generated code writes for the record as a SubscribeResponse `records` entry.
std::string GeneratedFrame(const v1::Record& record) {
  v1::SubscribeResponse response;
  *response.add_records() = record;
  return response.SerializeAsString();
}

// Writes `record` through RecordWriter, as a converter would.
void Write(const v1::Record& record, RecordBatch* batch) {
  RecordWriter w(batch, record.source(), record.time_unix_nano(), record.host());
  for (const v1::Tag& t : record.tags()) w.Tag(t.key(), t.value());
  for (const v1::Field& f : record.fields()) {
    switch (f.value_case()) {
      case v1::Field::kIntValue:
        w.Field(f.key(), f.int_value());
        break;
      case v1::Field::kFloatValue:
        w.Field(f.key(), f.float_value());
        break;
      case v1::Field::kStringValue:
        w.Field(f.key(), f.string_value());
        break;
      case v1::Field::kBoolValue:
        w.Field(f.key(), f.bool_value());
        break;
      case v1::Field::VALUE_NOT_SET:
        FAIL() << "RecordWriter has no unset field";
    }
  }
}

std::vector<v1::Record> Corpus() {
  std::vector<v1::Record> out;
  v1::Record process;  // a frame below 128 bytes: its length varint shrinks to one byte
  process.set_source("process");
  process.set_time_unix_nano(1763776000123456789);
  process.set_host("node-1");
  records::AddTag(&process, "pid", "4242");
  records::AddField(&process, "event", "exit");
  out.push_back(process);

  v1::Record typed = process;  // between 128 bytes and 16 KiB: the reserved two bytes fit
  records::AddTag(&typed, "process_name", "systemd-journal");
  records::AddField(&typed, "exit_code", 0);      // oneof default: still written
  records::AddField(&typed, "ratio", 0.0);        // likewise
  records::AddField(&typed, "truncated", false);  // likewise
  records::AddField(&typed, "path", "");          // likewise
  records::AddField(&typed, "neg", int64_t{-5});  // 10-byte varint
  records::AddField(&typed, "max", std::numeric_limits<int64_t>::max());
  records::AddField(&typed, "pi", 3.141592653589793);
  records::AddField(&typed, "nan", std::numeric_limits<double>::quiet_NaN());
  records::AddField(&typed, "ok", true);
  out.push_back(typed);

  v1::Record sparse;  // defaults omitted: no source, time 0, no host, empty tag strings
  records::AddTag(&sparse, "", "");
  records::AddTag(&sparse, "k", "");
  out.push_back(sparse);

  v1::Record large;  // above 16 KiB: the length needs three bytes; nested long lengths
  large.set_source(std::string(200, 's'));
  large.set_time_unix_nano(-1);
  large.set_host("h");
  records::AddTag(&large, std::string(130, 'k'), std::string(20000, 'v'));
  records::AddField(&large, "message", std::string(300, 'm') + "caf\xC3\xA9");
  out.push_back(large);

  out.emplace_back();  // the empty record
  return out;
}

TEST(RecordWriter, FramesMatchTheGeneratedSerializer) {
  std::vector<v1::Record> corpus = Corpus();
  RecordBatch batch;
  for (const v1::Record& r : corpus) Write(r, &batch);
  ASSERT_EQ(batch.size(), corpus.size());
  std::string all;
  for (size_t i = 0; i < corpus.size(); ++i) {
    EXPECT_EQ(batch.Frame(i), GeneratedFrame(corpus[i])) << "record " << i;
    EXPECT_EQ(batch.time(i), corpus[i].time_unix_nano());
    EXPECT_EQ(batch.source(i), corpus[i].source());
    EXPECT_EQ(batch[i].SerializeAsString(), corpus[i].SerializeAsString()) << "record " << i;
    all.append(batch.Frame(i));
  }
  // The frames concatenated are a SubscribeResponse holding every record.
  v1::SubscribeResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(all));
  ASSERT_EQ(parsed.records_size(), static_cast<int>(corpus.size()));
  EXPECT_EQ(parsed.records(3).tags(0).value().size(), 20000u);
}

TEST(RecordWriter, HasTagSeesOnlyWhatItWrote) {
  RecordBatch batch;
  RecordWriter w(&batch, "s", 1, "h");
  w.Tag("host", "h");
  w.Tag("pid", uint64_t{18446744073709551615u});
  EXPECT_TRUE(w.HasTag("pid"));
  EXPECT_FALSE(w.HasTag("ppid"));
}

TEST(RecordBatch, AddRecordKeepsEveryField) {
  std::vector<v1::Record> corpus = Corpus();
  v1::Record unset;
  unset.add_fields()->set_key("unset");  // a Field with no value: AddRecord only
  corpus.push_back(unset);
  auto batch = MakeBatch(corpus);
  for (size_t i = 0; i < corpus.size(); ++i) {
    EXPECT_EQ(batch->Frame(i), GeneratedFrame(corpus[i])) << "record " << i;
    EXPECT_EQ((*batch)[i].SerializeAsString(), corpus[i].SerializeAsString());
  }
}

TEST(RecordBatch, ReuseAfterClearRewritesFramesAndRecords) {
  RecordBatch batch;
  std::vector<v1::Record> corpus = Corpus();
  for (const v1::Record& r : corpus) Write(r, &batch);
  ASSERT_EQ(batch[1].fields_size(), 10);  // parsed once
  batch.Clear();
  EXPECT_TRUE(batch.empty());
  Write(corpus[0], &batch);
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch.Frame(0), GeneratedFrame(corpus[0]));
  EXPECT_EQ(batch[0].SerializeAsString(), corpus[0].SerializeAsString());  // parsed again
  EXPECT_EQ(batch.records().size(), 1u);
  EXPECT_GE(batch.retained(), corpus.size());  // buffers kept for the next use
}

TEST(RecordBatch, RecordsAreParsedOnceWhateverTheThreads) {
  RecordBatch batch;
  for (int i = 0; i < 1000; ++i) {
    RecordWriter w(&batch, "process", i + 1, "node");
    w.Tag("pid", static_cast<uint64_t>(i));
  }
  std::vector<const v1::Record*> seen(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] { seen[t] = batch.records()[999]; });
  }
  for (auto& t : threads) t.join();
  for (int t = 1; t < 8; ++t) EXPECT_EQ(seen[t], seen[0]);
  EXPECT_EQ(seen[0]->time_unix_nano(), 1000);
  EXPECT_EQ(seen[0]->tags(0).value(), "999");
}

TEST(RecordBatchPool, RecyclesBatchesWithinItsBound) {
  RecordBatchPool pool(2);  // room for two records' worth of buffers
  const RecordBatch* first;
  {
    auto batch = pool.Get();
    first = batch.get();
    batch->AddRecord(v1::Record());
    batch->AddRecord(v1::Record());
  }
  auto again = pool.Get();
  EXPECT_EQ(again.get(), first);
  EXPECT_TRUE(again->empty());
  auto other = pool.Get();  // the pool is empty: a new batch
  EXPECT_NE(other.get(), first);
  for (int i = 0; i < 3; ++i) other->AddRecord(v1::Record());
  other.reset();  // three records: beyond the bound, freed
  again.reset();  // back in the pool
  EXPECT_EQ(pool.Get().get(), first);
}

TEST(RecordBatchPool, BatchesOutliveTheirPool) {
  std::shared_ptr<RecordBatch> batch;
  {
    RecordBatchPool pool;
    batch = pool.Get();
  }
  batch->AddRecord(v1::Record());
  EXPECT_EQ(batch->size(), 1u);
  batch.reset();  // goes to the pool's shared free list, freed with it
}

}  // namespace
}  // namespace nodescope::aggregator
