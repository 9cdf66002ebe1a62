// bench_dns: what the DNS side of the sensor costs per message on one core.
//
// Parses real messages (captured from dnsmasq by sensor/protocols/dns/testdata/capture.py and
// copied in below): dig's A query, dnsmasq's A answer and its three-record CNAME chain answer.
// Then TCP reassembly, the query/answer matcher and the IP -> domain cache. The baseline, in the
// same process on the same bytes, is what any consumer pays anyway: copying the message out of
// the ring buffer into a std::vector. Rates are per CPU second of this thread
// (CLOCK_THREAD_CPUTIME_ID), so a busy shared machine slows the wall clock, not the figures.
// Prints figures; never fails on time.
//
//   build/bin/bench_dns [seconds per case, default 0.5]
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "sensor/protocols/dns/domain_cache.h"
#include "sensor/protocols/dns/matcher.h"
#include "sensor/protocols/dns/parser.h"

namespace {

using namespace nodescope::sensor::dns;  // NOLINT(google-build-using-namespace): a bench main

// udp_a.query.bin: example.test A, EDNS with a cookie (53 bytes).
const std::vector<uint8_t> kQuery = {
    0x0a, 0xc9, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x07, 0x65,
    0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x04, 0x74, 0x65, 0x73, 0x74, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00,
    0x0a, 0x00, 0x08, 0xe1, 0x14, 0x51, 0x95, 0x12, 0x14, 0x48, 0x50};
// udp_a.response.bin: one A record (57 bytes).
const std::vector<uint8_t> kAnswer = {
    0x0a, 0xc9, 0x85, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x07, 0x65, 0x78,
    0x61, 0x6d, 0x70, 0x6c, 0x65, 0x04, 0x74, 0x65, 0x73, 0x74, 0x00, 0x00, 0x01, 0x00, 0x01,
    0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x04, 0xc6, 0x12, 0x00,
    0x0a, 0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
// udp_cname_chain.response.bin: alias -> cdn -> edge -> A (124 bytes).
const std::vector<uint8_t> kChain = {
    0xea, 0x2a, 0x85, 0x80, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x05, 0x61, 0x6c, 0x69,
    0x61, 0x73, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x04, 0x74, 0x65, 0x73, 0x74, 0x00,
    0x00, 0x01, 0x00, 0x01, 0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x12,
    0x03, 0x63, 0x64, 0x6e, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x04, 0x74, 0x65, 0x73,
    0x74, 0x00, 0xc0, 0x30, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x78, 0x00, 0x13, 0x04, 0x65,
    0x64, 0x67, 0x65, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x04, 0x74, 0x65, 0x73, 0x74,
    0x00, 0xc0, 0x4e, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x58, 0x00, 0x04, 0xc6, 0x12, 0x00,
    0x14, 0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Keeps results alive so the compiler cannot drop the work.
volatile uint64_t g_sink = 0;

// Runs `op` (which handles `per_call` messages) in batches until `seconds` of CPU have passed;
// returns messages per CPU second.
template <typename Op>
double Rate(double seconds, uint64_t per_call, Op op) {
  uint64_t calls = 0;
  const double start = ThreadCpuSeconds();
  double elapsed = 0;
  do {
    for (int i = 0; i < 1000; ++i) op();
    calls += 1000;
    elapsed = ThreadCpuSeconds() - start;
  } while (elapsed < seconds);
  return static_cast<double>(calls * per_call) / elapsed;
}

double ParseRate(double seconds, const std::vector<uint8_t>& bytes) {
  return Rate(seconds, 1, [&] {
    auto m = Parse(bytes);
    g_sink = g_sink + (m.ok() ? m->answers.size() + m->id : 1);
  });
}

double CopyRate(double seconds, const std::vector<uint8_t>& bytes) {
  return Rate(seconds, 1, [&] {
    std::vector<uint8_t> copy(bytes.begin(), bytes.end());
    g_sink = g_sink + copy[copy.size() / 2];
  });
}

// `baseline` 0: the row is the baseline itself.
void Row(const std::string& what, double rate, double baseline) {
  const std::string ratio =
      baseline > 0 ? fmt::format("{:>6.1f}x the copy's time", baseline / rate) : "(baseline)";
  fmt::print("  {:<44} {:>12.0f} /s  {:>7.1f} ns  {}\n", what, rate, 1e9 / rate, ratio);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0.5;
  fmt::print("bench_dns: messages per CPU second of one thread ({} s per case)\n\n", seconds);

  CopyRate(seconds / 5, kAnswer);  // warm-up: the first case should not pay for page faults
  fmt::print("parse (baseline: copy the same bytes into a fresh std::vector)\n");
  struct Case {
    const char* name;
    const std::vector<uint8_t>* bytes;
  };
  for (const Case& c :
       {Case{"query, A, EDNS (53 B)", &kQuery}, Case{"answer, 1 A (57 B)", &kAnswer},
        Case{"answer, CNAME x2 + A (124 B)", &kChain}}) {
    const double copy = CopyRate(seconds, *c.bytes);
    const double parse = ParseRate(seconds, *c.bytes);
    Row(std::string("copy   ") + c.name, copy, 0);
    Row(std::string("Parse  ") + c.name, parse, copy);
  }

  // TCP: query + answer framed back to back, fed in 7-byte chunks, each message parsed.
  std::vector<uint8_t> stream;
  for (const auto* m : {&kQuery, &kAnswer}) {
    stream.push_back(static_cast<uint8_t>(m->size() >> 8));
    stream.push_back(static_cast<uint8_t>(m->size()));
    stream.insert(stream.end(), m->begin(), m->end());
  }
  const double copy_pair = CopyRate(seconds, kAnswer);
  fmt::print("\nTCP (baseline: the answer copy above)\n");
  std::vector<std::vector<uint8_t>> out;
  Row("TcpStream 7-byte chunks + Parse, per message",
      Rate(seconds, 2,
           [&] {
             TcpStream s;
             out.clear();
             for (size_t pos = 0; pos < stream.size(); pos += 7) {
               const size_t n = std::min<size_t>(7, stream.size() - pos);
               (void)s.Feed(std::span(stream).subspan(pos, n), &out);
             }
             for (const auto& m : out) g_sink = g_sink + Parse(m).ok();
           }),
      copy_pair);

  // Matcher: a query and its answer on one of 4096 client ports, already parsed; results taken
  // and the timeout checked every 256 pairs, as a reader loop would.
  const Message query = Parse(kQuery).value();
  const Message answer = Parse(kAnswer).value();
  Matcher matcher;
  Tuple tuple;
  tuple.remote_port = 53;
  uint64_t now = 1'000'000'000'000;
  uint32_t n = 0;
  fmt::print("\nmatcher and domain cache (parsed messages in; baseline: the answer copy)\n");
  Row("Matcher OnQuery + OnAnswer, per pair",
      Rate(seconds, 1,
           [&] {
             tuple.local_port = static_cast<uint16_t>(32768 + (n++ & 4095));
             matcher.OnMessage(tuple, true, query, now);
             matcher.OnMessage(tuple, false, answer, now + 300'000);
             now += 1000;
             if ((n & 255) == 0) {
               matcher.Expire(now);
               g_sink = g_sink + matcher.TakeResults().size();
             }
           }),
      copy_pair);

  DomainCache cache;
  Row("DomainCache Learn (CNAME chain answer)",
      Rate(seconds, 1,
           [&] {
             static const Message chain = Parse(kChain).value();
             g_sink = g_sink + cache.Learn(chain, now);
           }),
      copy_pair);
  const std::vector<uint8_t> hit = {198, 18, 0, 20}, miss = {10, 0, 0, 1};
  Row("DomainCache Lookup, hit",
      Rate(seconds, 1, [&] { g_sink = g_sink + cache.Lookup(hit, now).has_value(); }), copy_pair);
  Row("DomainCache Lookup, miss",
      Rate(seconds, 1, [&] { g_sink = g_sink + cache.Lookup(miss, now).has_value(); }), copy_pair);
  fmt::print("\n(matched {} pairs, {} unmatched answers)\n", matcher.stats().matched,
             matcher.stats().unmatched_answers);
  return 0;
}
