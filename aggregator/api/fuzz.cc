// libFuzzer target for the subscriber filter languages (registered with nodescope_fuzz in
// aggregator/CMakeLists.txt; aggregator_filter_test links this file too and replays
// testdata/fuzz/ through CheckFilterInput()).
//
// An input whose first byte is 0 is a SubscribeRequest in wire form, as a subscriber sends it.
// Any other input is lines, the way a user types `nodescope observe`:
//   a EXPR   --filter EXPR (key=value, key^=prefix, key@cidr; all ANDed into one allow filter)
//   d EXPR   --deny EXPR (each its own deny filter)
//   o NAME   --source NAME
//   t K=V    a tag of the record the query is tried on; s SOURCE, h HOST: its source and host
// Invariants: no crash or sanitizer report; the CLI refuses with a one-line message naming the
// filter, and a request it builds is one the aggregator compiles; a compiled query matches a
// record exactly when the definition of every Match says so (equals, prefix, CIDR containment
// computed here bit by bit), for a record alone and inside a RecordBatch.
#include <arpa/inet.h>
#include <google/protobuf/stubs/logging.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aggregator/api/filter.h"
#include "aggregator/record_batch.h"
#include "cli/filter.h"
#include "common/records/record.h"

namespace nodescope::aggregator::api {

std::string CheckFilterInput(const uint8_t* data, size_t size);  // the unit test calls this too

namespace {

constexpr size_t kMaxLines = 64;

// An address as 16 bytes, IPv4 v4-mapped, and whether it was IPv4; std::nullopt when it is none.
std::optional<std::pair<std::array<uint8_t, 16>, bool>> Address(const std::string& text) {
  std::array<uint8_t, 16> out{};
  if (text.find('\0') != std::string::npos) return std::nullopt;  // text, not a C string
  if (inet_pton(AF_INET, text.c_str(), out.data() + 12) == 1) {
    out[10] = out[11] = 0xff;
    return std::make_pair(out, true);
  }
  if (inet_pton(AF_INET6, text.c_str(), out.data()) == 1) return std::make_pair(out, false);
  return std::nullopt;
}

bool Bit(const std::array<uint8_t, 16>& a, int i) { return (a[i / 8] >> (7 - i % 8)) & 1; }

// CIDR containment by definition: the first prefix bits of both addresses are equal. The CIDR
// text is one the aggregator accepted (address, optional /bits of at most 3 digits).
bool CidrHolds(const std::string& cidr, const std::string& value) {
  const size_t slash = cidr.find('/');
  auto network = Address(cidr.substr(0, slash));
  auto address = Address(value);
  if (!network || !address) return false;
  int bits = network->second ? 32 : 128;
  if (slash != std::string::npos) bits = std::stoi(cidr.substr(slash + 1));
  if (network->second) bits += 96;
  for (int i = 0; i < bits; ++i) {
    if (Bit(network->first, i) != Bit(address->first, i)) return false;
  }
  return true;
}

bool MatchHolds(const v1::Match& match, const v1::Record& record) {
  std::optional<std::string> actual;
  if (match.key() == "source") {
    actual = record.source();
  } else if (match.key() == "host") {
    actual = record.host();
  } else {
    for (const v1::Tag& tag : record.tags()) {
      if (tag.key() == match.key()) {
        actual = tag.value();
        break;
      }
    }
  }
  if (!actual) return false;
  switch (match.op_case()) {
    case v1::Match::kEquals:
      return *actual == match.equals();
    case v1::Match::kPrefix:
      return actual->size() >= match.prefix().size() &&
             actual->substr(0, match.prefix().size()) == match.prefix();
    case v1::Match::kCidr:
      return CidrHolds(match.cidr(), *actual);
    case v1::Match::OP_NOT_SET:
      break;
  }
  return false;
}

template <typename Filters>
bool AnyFilterHolds(const Filters& filters, const v1::Record& record) {
  for (const v1::Filter& filter : filters) {
    bool all = true;
    for (const v1::Match& match : filter.matches()) all = all && MatchHolds(match, record);
    if (all) return true;
  }
  return false;
}

// What observer.proto says a request selects.
bool Selects(const v1::SubscribeRequest& request, const v1::Record& record) {
  if (request.sources_size() > 0) {
    bool listed = false;
    for (const std::string& s : request.sources()) listed = listed || s == record.source();
    if (!listed) return false;
  }
  if (request.since_unix_nano() != 0 && record.time_unix_nano() < request.since_unix_nano()) {
    return false;
  }
  if (request.until_unix_nano() != 0 && record.time_unix_nano() > request.until_unix_nano()) {
    return false;
  }
  if (request.allow_size() > 0 && !AnyFilterHolds(request.allow(), record)) return false;
  return !AnyFilterHolds(request.deny(), record);
}

v1::Record Sample(const char* source, const char* host, int64_t time,
                  std::vector<std::pair<const char*, const char*>> tags) {
  v1::Record r;
  r.set_source(source);
  r.set_host(host);
  r.set_time_unix_nano(time);
  for (const auto& [k, v] : tags) {
    v1::Tag* tag = r.add_tags();
    tag->set_key(k);
    tag->set_value(v);
  }
  return r;
}

std::string CheckQuery(const v1::SubscribeRequest& request, std::vector<v1::Record> records) {
  Result<Query> query = Query::Compile(request);
  if (!query.ok()) {
    return query.status().message().empty() ? "a request refused without a message" : "";
  }
  // Records every input is tried on besides its own: IPv4, mapped and IPv6 addresses, a tag
  // that is no address, a repeated key (the first one counts).
  records.push_back(Sample("netflow", "node-1", 1'000,
                           {{"src_ip", "10.1.2.3"}, {"dst_ip", "fd00::1"}, {"dst_port", "80"}}));
  records.push_back(Sample("httpflow", "node-2", 2'000'000'000,
                           {{"src_ip", "::ffff:198.18.0.5"}, {"path", "/api/v1"}, {"a", "x"}}));
  records.push_back(Sample("dnsflow", "", 0, {{"dst_ip", "not-an-ip"}, {"a", "1"}, {"a", "2"}}));
  RecordBatch batch;
  for (const v1::Record& r : records) batch.AddRecord(r);
  for (size_t i = 0; i < records.size(); ++i) {
    const bool expected = Selects(request, records[i]);
    if (query->Matches(records[i]) != expected) {
      return "query says " + std::string(expected ? "no" : "yes") + " to record " +
             records[i].ShortDebugString() + " for " + request.ShortDebugString();
    }
    if (query->Matches(batch, i) != expected) {
      return "batch query disagrees on " + records[i].ShortDebugString();
    }
    if (query->MatchesAll() && !expected) return "MatchesAll but not " + request.ShortDebugString();
  }
  return "";
}

// One --filter/--deny text through the CLI parser alone.
std::string CheckCliMatch(const std::string& text) {
  Result<v1::Match> match = cli::ParseMatch(text);
  if (!match.ok()) {
    const std::string& m = match.status().message();
    if (m.rfind("filter '", 0) != 0 || m.find('\n') != std::string::npos) {
      return "CLI refusal not one line naming the filter: " + m;
    }
    return "";
  }
  const std::string& key = match->key();
  if (key.empty() || text.compare(0, key.size(), key) != 0) return "key not taken from the text";
  const std::string rest = text.substr(key.size());
  switch (match->op_case()) {
    case v1::Match::kEquals:
      if (rest != "=" + match->equals()) return "equals value is not the text after '='";
      break;
    case v1::Match::kPrefix:
      if (rest != "^=" + match->prefix() || match->prefix().empty()) return "bad prefix value";
      break;
    case v1::Match::kCidr: {
      if (rest != "@" + match->cidr()) return "cidr is not the text after '@'";
      auto cidr = Cidr::Parse(match->cidr());
      if (!cidr.ok()) return "the CLI accepts CIDR " + match->cidr() + " the aggregator refuses";
      // The network's own address is inside it, as IPv4 and as v4-mapped IPv6.
      const std::string address = match->cidr().substr(0, match->cidr().find('/'));
      if (!cidr->Contains(address.c_str())) return "CIDR " + match->cidr() + " misses itself";
      if (address.find(':') == std::string::npos && !cidr->Contains("::ffff:" + address)) {
        return "CIDR " + match->cidr() + " misses its v4-mapped form";
      }
      break;
    }
    case v1::Match::OP_NOT_SET:
      return "a match without a condition";
  }
  return "";
}

std::string CheckLines(std::string_view text) {
  cli::ObserveOptions options;
  options.last = 0;
  v1::Record record;
  record.set_source("netflow");
  size_t lines = 0;
  while (!text.empty() && lines++ < kMaxLines) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.size() < 2 || line[1] != ' ') continue;
    const std::string arg(line.substr(2));
    // Records are valid UTF-8 (the converters make them so; see fuzz_ingest), filters any bytes.
    std::string scratch;
    const std::string utf8(records::ValidUtf8(arg, &scratch));
    switch (line[0]) {
      case 'a':
      case 'd':
        if (std::string why = CheckCliMatch(arg); !why.empty()) return why;
        (line[0] == 'a' ? options.filters : options.denies).push_back(arg);
        break;
      case 'o':
        options.sources.push_back(arg);
        break;
      case 't': {
        const size_t eq = utf8.find('=');
        v1::Tag* tag = record.add_tags();
        tag->set_key(utf8.substr(0, eq));
        if (eq != std::string::npos) tag->set_value(utf8.substr(eq + 1));
        break;
      }
      case 's':
        record.set_source(utf8);
        break;
      case 'h':
        record.set_host(utf8);
        break;
      default:
        break;
    }
  }
  Result<v1::SubscribeRequest> request = cli::BuildRequest(options, 1'000'000'000'000);
  if (!request.ok()) return "";  // each filter was checked above; sources are the server's job
  // Source names are not checked by the CLI; the aggregator refuses bad ones itself.
  Result<Query> query = Query::Compile(*request);
  if (!query.ok() && query.status().message().rfind("sources:", 0) != 0) {
    return "the aggregator refuses what the CLI built: " + query.status().message();
  }
  return CheckQuery(*request, {record});
}

}  // namespace

std::string CheckFilterInput(const uint8_t* data, size_t size) {
  if (size > 0 && data[0] == 0) {
    v1::SubscribeRequest request;
    if (!request.ParseFromArray(data + 1, static_cast<int>(size - 1))) return "";
    return CheckQuery(request, {});
  }
  return CheckLines(std::string_view(reinterpret_cast<const char*>(data), size));
}

}  // namespace nodescope::aggregator::api

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Invalid UTF-8 in a string field is refused with a log line per input: noise here.
  static const bool quiet = [] { return google::protobuf::SetLogHandler(nullptr), true; }();
  (void)quiet;
  const std::string why = nodescope::aggregator::api::CheckFilterInput(data, size);
  if (!why.empty()) {
    std::fprintf(stderr, "invariant broken: %s\n", why.c_str());
    std::abort();
  }
  return 0;
}
