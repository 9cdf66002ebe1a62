// A SubscribeRequest compiled for matching: sources, allow/deny filters (observer.proto Match:
// equals, CIDR containment, prefix) and the since/until window.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aggregator/record_batch.h"
#include "common/status.h"
#include "nodescope/v1/observer.pb.h"

namespace nodescope::aggregator::api {

// An IPv4 or IPv6 network. IPv4 is held as v4-mapped IPv6 so one comparison serves both and
// "::ffff:10.1.2.3" falls inside 10.0.0.0/8.
class Cidr {
 public:
  // "10.0.0.0/8", "fd00::/8", or a bare address (a /32 or /128).
  static Result<Cidr> Parse(std::string_view text);
  bool Contains(std::string_view address) const;

 private:
  std::array<uint8_t, 16> network_{};
  int prefix_bits_ = 0;  // of the 128-bit (mapped) form
};

class Query {
 public:
  // Errors name the bad part: "allow[0].matches[1]: invalid CIDR '10.0.0/8' for key 'src_ip'".
  static Result<Query> Compile(const v1::SubscribeRequest& request);

  bool WantsSource(std::string_view source) const;
  // Source, time window, allow and deny.
  bool Matches(const v1::Record& record) const;
  // The same for record i of a batch, parsing records only when allow/deny need their tags.
  bool Matches(const RecordBatch& batch, size_t i) const;
  // True when every record matches: nothing to evaluate per record.
  bool MatchesAll() const { return match_all_; }

  int64_t since() const { return since_; }
  int64_t until() const { return until_; }

 private:
  struct Condition {
    enum class Op { kEquals, kCidr, kPrefix };
    std::string key;
    Op op;
    std::string value;
    Cidr cidr;
    bool Holds(const v1::Record& record) const;
  };
  using Filter = std::vector<Condition>;  // all must hold
  static bool AnyHolds(const std::vector<Filter>& filters, const v1::Record& record);

  std::vector<std::string> sources_;  // empty: all
  std::vector<Filter> allow_;
  std::vector<Filter> deny_;
  int64_t since_ = 0;
  int64_t until_ = 0;
  bool match_all_ = true;
};

}  // namespace nodescope::aggregator::api
