// libFuzzer target: one input is tried as a datagram, as a capture cut short, and as a TCP stream
// fed whole and in input-driven chunks. Beyond "no crash, no sanitizer report" it checks what
// must hold for any input: chunking never changes what the stream yields, a cut capture parses
// to a prefix of the whole message, and decoded fields stay in their ranges. The unit test links
// this file too and replays testdata/fuzz/ through it.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "sensor/protocols/dns/domain_cache.h"
#include "sensor/protocols/dns/parser.h"

namespace {

using nodescope::sensor::dns::DomainCache;
using nodescope::sensor::dns::DomainCacheOptions;
using nodescope::sensor::dns::Message;
using nodescope::sensor::dns::Parse;
using nodescope::sensor::dns::TcpStream;

#define NS_FUZZ_CHECK(cond)                                                             \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

void CheckMessage(const Message& m) {
  NS_FUZZ_CHECK(m.opcode < 16);
  NS_FUZZ_CHECK(m.rcode < 4096);  // 4 header bits + 8 OPT bits
  // A name's at most 255 wire bytes become at most 4 characters each (\DDD) in presentation form.
  constexpr size_t kMaxText = size_t{4} * 255;
  for (const auto& q : m.questions) NS_FUZZ_CHECK(!q.name.empty() && q.name.size() <= kMaxText);
  for (const auto& a : m.answers) {
    NS_FUZZ_CHECK(!a.name.empty());
    NS_FUZZ_CHECK(a.address_len == 0 || a.address_len == 4 || a.address_len == 16);
    NS_FUZZ_CHECK(a.name.size() <= kMaxText && a.target.size() <= kMaxText);
  }
}

// Learns from the message and reads every address back, then once more after any TTL is over.
void ExerciseCache(const Message& m, DomainCache& cache) {
  constexpr uint64_t kNow = 1'000'000'000'000;
  cache.Learn(m, kNow);
  for (const auto& a : m.answers) {
    if (a.address_len == 0) continue;
    (void)cache.Lookup(a.Address(), kNow);
    (void)cache.Lookup(a.Address(), kNow + DomainCacheOptions{}.max_ttl_ns + 1);
  }
  NS_FUZZ_CHECK(cache.size() <= 8);
}

void ExerciseDatagram(std::span<const uint8_t> in, DomainCache& cache) {
  auto whole = Parse(in);
  if (whole.ok()) {
    CheckMessage(*whole);
    ExerciseCache(*whole, cache);
  }
  if (in.empty()) return;
  // The first byte picks where a capture would have cut the datagram.
  const size_t cut = in[0] % in.size();
  auto part = Parse(in.first(cut), in.size());
  if (!part.ok()) return;
  CheckMessage(*part);
  NS_FUZZ_CHECK(part->capture_truncated);
  if (!whole.ok()) return;
  NS_FUZZ_CHECK(part->id == whole->id && part->response == whole->response);
  NS_FUZZ_CHECK((part->rcode & 0xF) == (whole->rcode & 0xF));
  NS_FUZZ_CHECK(part->questions == whole->questions);
  NS_FUZZ_CHECK(part->answers.size() <= whole->answers.size());
  for (size_t i = 0; i < part->answers.size(); ++i) {
    NS_FUZZ_CHECK(part->answers[i] == whole->answers[i]);
  }
}

void ExerciseStream(std::span<const uint8_t> in, DomainCache& cache) {
  std::vector<std::vector<uint8_t>> whole_out, chunked_out;
  TcpStream whole, chunked;
  (void)whole.Feed(in, &whole_out);
  // Chunk sizes 1..16 come from the input itself, so the fuzzer steers the boundaries.
  size_t pos = 0, k = 0;
  while (pos < in.size()) {
    const size_t n = std::min<size_t>(1 + in[k++ % in.size()] % 16, in.size() - pos);
    (void)chunked.Feed(in.subspan(pos, n), &chunked_out);
    pos += n;
  }
  NS_FUZZ_CHECK(whole_out == chunked_out);
  NS_FUZZ_CHECK(whole.error() == chunked.error());
  NS_FUZZ_CHECK(whole.pending_bytes() == chunked.pending_bytes());
  NS_FUZZ_CHECK(whole.pending_bytes() < TcpStream::kMaxFrame);
  for (const auto& m : whole_out) {
    NS_FUZZ_CHECK(m.size() >= TcpStream::kMinMessage);
    auto parsed = Parse(m);
    if (parsed.ok()) {
      CheckMessage(*parsed);
      ExerciseCache(*parsed, cache);
    }
  }
  // A capture that missed bytes must fail the stream, and a failed stream yields nothing more.
  TcpStream gapped;
  std::vector<std::vector<uint8_t>> gapped_out;
  (void)gapped.Feed(in, in.size() + 1, &gapped_out);
  NS_FUZZ_CHECK(gapped.failed());
  const size_t before = gapped_out.size();
  (void)gapped.Feed(in, &gapped_out);
  NS_FUZZ_CHECK(gapped_out.size() == before);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  // A small cache so that eviction runs too; a fresh one per input keeps runs reproducible.
  DomainCache cache(DomainCacheOptions{.max_entries = 8});
  ExerciseDatagram(in, cache);
  ExerciseStream(in, cache);
  return 0;
}
