// libFuzzer target for the HTTP/1.x parser (registered with nodescope_fuzz in CMake). The unit
// test links this file too and replays testdata/fuzz/ through CheckFuzzInput() as a regression
// corpus.
//
// Input layout, chosen so that a captured connection is a good seed:
//   byte 0   bits 0-2: capture window {1, 2, 7, 16, 64, 512, 4096, unlimited}
//            bits 3-4: role told to the parser (0 and 3: unknown, 1: client, 2: server)
//            bit 5: Close() at the end; bit 6: tiny limits (head, path, queues)
//   byte 1   0: feed each segment as one syscall; n: split segments into syscalls of n bytes
//   then     segments: 0xff m starts a segment (0xff 0xff is a literal 0xff byte); direction is
//            m & 1 (0 sent, 1 received) and (m >> 1) * 61 extra bytes beyond the captured ones
//            are added to the segment's last syscall. Bytes before the first marker are sent.
// Invariants checked: no crash or sanitizer report (the fuzzer's job); the bytes the exchanges
// account for never exceed the bytes fed in their direction; paths respect max_path_len; and
// with an unlimited window, splitting segments into syscalls changes nothing.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "sensor/protocols/http1/parser.h"

namespace nodescope::sensor::http1 {

std::string CheckFuzzInput(const uint8_t* data, size_t size);  // the unit test calls this too

namespace {

constexpr size_t kWindows[] = {1, 2, 7, 16, 64, 512, 4096, SIZE_MAX};

struct Segment {
  Direction direction;
  uint64_t extra;
  std::string bytes;
};

struct Outcome {
  std::vector<Exchange> exchanges;
  bool failed = false;
  Counters counters;
  uint64_t fed[2] = {0, 0};  // sent, received
  Role role = Role::kUnknown;
};

std::vector<Segment> Split(const uint8_t* data, size_t size) {
  std::vector<Segment> segments;
  segments.push_back({Direction::kSent, 0, {}});
  for (size_t i = 0; i < size; ++i) {
    if (data[i] != 0xff || i + 1 == size) {
      segments.back().bytes.push_back(static_cast<char>(data[i]));
      continue;
    }
    const uint8_t m = data[++i];
    if (m == 0xff) {
      segments.back().bytes.push_back(static_cast<char>(0xff));
      continue;
    }
    const uint64_t extra = static_cast<uint64_t>(m >> 1) * 61;
    segments.push_back({(m & 1) ? Direction::kReceived : Direction::kSent, extra, {}});
  }
  return segments;
}

Outcome Run(const std::vector<Segment>& segments, const ConnectionOptions& options, size_t window,
            size_t piece, bool close) {
  Outcome out;
  Connection conn(options);
  uint64_t ts = 1000;
  for (const Segment& s : segments) {
    ++ts;  // all syscalls of a segment share a timestamp, so splitting must not change results
    const size_t step = piece == 0 ? std::max<size_t>(s.bytes.size(), 1) : piece;
    for (size_t off = 0; off < s.bytes.size() || (off == 0 && s.extra > 0); off += step) {
      const size_t len = std::min(step, s.bytes.size() - off);
      const bool last = off + step >= s.bytes.size();
      const uint64_t total = len + (last ? s.extra : 0);
      conn.Feed(s.direction, std::span<const char>(s.bytes.data() + off, std::min(len, window)),
                total, ts);
      out.fed[s.direction == Direction::kSent ? 0 : 1] += total;
    }
    // Between segments only: taking earlier would change what max_completed drops.
    if (ts % 3 == 0) {
      for (Exchange& e : conn.TakeExchanges()) out.exchanges.push_back(std::move(e));
    }
  }
  if (close) conn.Close(ts + 1);
  for (Exchange& e : conn.TakeExchanges()) out.exchanges.push_back(std::move(e));
  out.failed = conn.failed();
  out.counters = conn.counters();
  out.role = conn.role();
  return out;
}

std::string CheckOutcome(const Outcome& o, const ConnectionOptions& options) {
  uint64_t request_bytes = 0;
  uint64_t response_bytes = 0;
  for (const Exchange& e : o.exchanges) {
    request_bytes += e.request_bytes;
    response_bytes += e.response_bytes;
    if (e.path.size() > options.max_path_len) return "a path longer than max_path_len";
    if (e.status_code < 100 || e.status_code > 599) return "a status code outside 100-599";
    if (e.version.size() != 3) return "a version that is not 1.x";
  }
  if (o.exchanges.size() != o.counters.exchanges) return "counters.exchanges != exchanges taken";
  if (o.exchanges.empty()) return "";
  if (o.role == Role::kUnknown) return "exchanges without a known role";
  const uint64_t request_fed = o.fed[o.role == Role::kClient ? 0 : 1];
  const uint64_t response_fed = o.fed[o.role == Role::kClient ? 1 : 0];
  if (request_bytes > request_fed) return "exchanges count more request bytes than were fed";
  if (response_bytes > response_fed) return "exchanges count more response bytes than were fed";
  return "";
}

}  // namespace

std::string CheckFuzzInput(const uint8_t* data, size_t size) {
  if (size < 2) return "";
  ConnectionOptions options;
  const size_t window = kWindows[data[0] & 7];
  const int role = (data[0] >> 3) & 3;
  options.role = role == 1 ? Role::kClient : role == 2 ? Role::kServer : Role::kUnknown;
  const bool close = (data[0] & 0x20) != 0;
  if (data[0] & 0x40) {
    options.max_head_bytes = 64;
    options.max_path_len = 4;
    options.max_pending = 2;
    options.max_completed = 3;
  }
  const size_t piece = data[1];
  const std::vector<Segment> segments = Split(data + 2, size - 2);
  // The free functions see arbitrary bytes too.
  const std::string& first = segments.front().bytes;
  (void)Detect(std::span<const char>(first.data(), first.size()));
  if (TemplatePath(PathOfTarget(first)).empty() != first.empty()) {
    return "PathOfTarget or TemplatePath lost a whole target";
  }

  const Outcome split = Run(segments, options, window, piece, close);
  if (std::string error = CheckOutcome(split, options); !error.empty()) return error;
  if (window != SIZE_MAX || piece == 0) return "";
  const Outcome whole = Run(segments, options, window, 0, close);
  if (whole.failed != split.failed) return "splitting into syscalls changed failed()";
  if (whole.exchanges != split.exchanges) return "splitting into syscalls changed the exchanges";
  if (whole.counters != split.counters) return "splitting into syscalls changed the counters";
  return "";
}

}  // namespace nodescope::sensor::http1

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string error = nodescope::sensor::http1::CheckFuzzInput(data, size);
  if (!error.empty()) {
    std::fprintf(stderr, "http1 fuzz invariant broken: %s\n", error.c_str());
    std::abort();
  }
  return 0;
}
