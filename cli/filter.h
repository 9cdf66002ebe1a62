// The CLI's filter syntax, turned into observer.proto Matches:
//   key=value    the tag equals value
//   key^=prefix  the tag value starts with prefix
//   key@cidr     the tag holds an IP address inside cidr (10.0.0.0/8, fd00::/8)
// A key is a tag name, or "source" / "host" (fields are not filtered by the observer API); it
// holds letters, digits, '_', '.', '-'.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "nodescope/v1/observer.pb.h"

namespace nodescope::cli {

Result<v1::Match> ParseMatch(const std::string& text);

struct ObserveOptions {
  std::string server = "127.0.0.1:9970";
  std::vector<std::string> sources;
  bool follow = false;
  int64_t last = -1;  // -1: not given
  std::string since;  // a duration back from now ("5m"), empty: not given
  std::string until;
  std::vector<std::string> filters;  // ANDed into one allow filter
  std::vector<std::string> denies;   // each its own deny filter: any match removes the record
  std::string output = "table";
};

// Without --last, --since or --follow the answer is the newest kDefaultLast records per source,
// so a bare `nodescope observe` shows something.
inline constexpr uint64_t kDefaultLast = 20;

// The request the options describe, with since/until counted back from now_unix_nano.
Result<v1::SubscribeRequest> BuildRequest(const ObserveOptions& options, int64_t now_unix_nano);

}  // namespace nodescope::cli
