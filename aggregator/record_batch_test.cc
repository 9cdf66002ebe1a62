#include "aggregator/record_batch.h"

#include <gtest/gtest.h>

#include <limits>

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

std::vector<v1::Record> Corpus() {
  std::vector<v1::Record> out;
  v1::Record process;
  process.set_source("process");
  process.set_time_unix_nano(1763776000123456789);
  process.set_host("node-1");
  records::AddTag(&process, "host", "node-1");
  records::AddTag(&process, "pid", "4242");
  records::AddField(&process, "event", "exit");
  records::AddField(&process, "exit_code", 0);      // oneof default: still written
  records::AddField(&process, "ratio", 0.0);        // likewise
  records::AddField(&process, "truncated", false);  // likewise
  records::AddField(&process, "path", "");          // likewise
  records::AddField(&process, "neg", int64_t{-5});  // 10-byte varint
  records::AddField(&process, "max", std::numeric_limits<int64_t>::max());
  records::AddField(&process, "pi", 3.141592653589793);
  records::AddField(&process, "nan", std::numeric_limits<double>::quiet_NaN());
  out.push_back(process);

  v1::Record sparse;  // defaults omitted: no source, time 0, no host
  records::AddTag(&sparse, "", "");
  records::AddTag(&sparse, "k", "");
  v1::Field* no_value = sparse.add_fields();
  no_value->set_key("unset");
  sparse.add_fields();  // entirely empty field
  out.push_back(sparse);

  v1::Record long_strings;  // lengths above 127 need two-byte varints, nested
  long_strings.set_source(std::string(200, 's'));
  long_strings.set_time_unix_nano(-1);
  long_strings.set_host("h");
  records::AddTag(&long_strings, std::string(130, 'k'), std::string(20000, 'v'));
  records::AddField(&long_strings, "message", std::string(300, 'm') + "caf\xC3\xA9");
  out.push_back(long_strings);

  out.emplace_back();  // the empty record
  return out;
}

TEST(RecordBatch, SealMatchesTheGeneratedSerializer) {
  std::vector<v1::Record> corpus = Corpus();
  auto batch = MakeBatch(corpus);  // seals
  ASSERT_EQ(batch->size(), corpus.size());
  for (size_t i = 0; i < corpus.size(); ++i) {
    EXPECT_EQ(batch->Frame(i), GeneratedFrame(corpus[i])) << "record " << i;
  }
  // The frames concatenated are a SubscribeResponse holding every record.
  std::string all;
  for (size_t i = 0; i < corpus.size(); ++i) all.append(batch->Frame(i));
  v1::SubscribeResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(all));
  ASSERT_EQ(parsed.records_size(), static_cast<int>(corpus.size()));
  EXPECT_EQ(parsed.records(0).fields(0).string_value(), "exit");
  EXPECT_EQ(parsed.records(2).tags(0).value().size(), 20000u);
}

TEST(RecordBatch, OnlyKnownFieldsAreWritten) {
  v1::Record with_unknown;
  // source = "x", then field 9 (unknown to this version) varint 7.
  ASSERT_TRUE(with_unknown.ParseFromString(std::string("\x0a\x01x\x48\x07", 5)));
  auto batch = MakeBatch({with_unknown});
  EXPECT_EQ(batch->Frame(0), std::string("\x0a\x03\x0a\x01x", 5));
}

TEST(RecordBatch, PoolRecyclesBatchesAndTheirRecords) {
  RecordBatchPool pool(2);
  const RecordBatch* first;
  const v1::Record* first_record;
  {
    auto batch = pool.Get();
    first = batch.get();
    first_record = batch->Add();
    batch->Add();
    batch->Seal();
    EXPECT_EQ(batch->size(), 2u);
  }
  auto again = pool.Get();
  EXPECT_EQ(again.get(), first);
  EXPECT_TRUE(again->empty());
  EXPECT_EQ(again->Add(), first_record);  // the same record object, to be overwritten
  auto other = pool.Get();
  EXPECT_NE(other.get(), first);
}

TEST(RecordBatch, BatchesOutliveTheirPool) {
  std::shared_ptr<RecordBatch> batch;
  {
    RecordBatchPool pool;
    batch = pool.Get();
    batch->Add()->set_source("x");
  }
  batch->Seal();
  EXPECT_EQ(batch->size(), 1u);
  batch.reset();  // returns to the pool's shared free list, freed with it
}

}  // namespace
}  // namespace nodescope::aggregator
