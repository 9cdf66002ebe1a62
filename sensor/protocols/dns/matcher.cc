#include "sensor/protocols/dns/matcher.h"

#include <cstring>
#include <utility>

namespace nodescope::sensor::dns {
namespace {

bool EqualsIgnoreCase(std::string_view lower, std::string_view s) {
  if (lower.size() != s.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

uint64_t Mix(uint64_t h, uint64_t v) {
  // A hash_combine step then splitmix64's mixing: tuples differ in few bits (a port, an id).
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  return h;
}

}  // namespace

std::string_view DirectionName(Direction d) {
  return d == Direction::kIncoming ? "incoming" : "outgoing";
}

std::string_view TransportName(Transport t) { return t == Transport::kTcp ? "tcp" : "udp"; }

size_t Matcher::KeyHash::operator()(const Key& k) const {
  uint64_t words[4];
  std::memcpy(words, k.tuple.local_ip.data(), 16);
  std::memcpy(words + 2, k.tuple.remote_ip.data(), 16);
  uint64_t h = 0;
  for (uint64_t w : words) h = Mix(h, w);
  const uint64_t small = uint64_t{k.tuple.local_port} << 48 | uint64_t{k.tuple.remote_port} << 32 |
                         uint64_t{k.id} << 16 | static_cast<uint64_t>(k.tuple.transport) << 8 |
                         static_cast<uint64_t>(k.direction);
  return Mix(h, small);
}

Matcher::Matcher(MatcherOptions options) : options_(options) {
  if (options_.max_outstanding == 0) options_.max_outstanding = 1;
}

void Matcher::OnQuery(const Tuple& tuple, Direction direction, const Message& query,
                      uint64_t ts_ns) {
  // RFC 9619: a QUERY has one question. Any further ones are not what clients send; the first
  // names the query. A question-less query (a cookie refresh, RFC 7873 5.4) keys on "".
  std::string name;
  uint16_t qtype = 0;
  if (!query.questions.empty()) {
    name = AsciiLower(query.questions.front().name);
    qtype = query.questions.front().type;
  }
  const Key key{tuple, direction, query.id};
  auto [first, last] = index_.equal_range(key);
  for (auto it = first; it != last; ++it) {
    if (it->second->qtype == qtype && it->second->name == name) {
      ++stats_.duplicate_queries;
      return;
    }
  }
  if (fifo_.size() >= options_.max_outstanding) {
    ++stats_.evicted;
    Finish(fifo_.begin(), -1, 0, false, true);
  }
  ++stats_.queries;
  fifo_.push_back(Pending{key, std::move(name), qtype, ts_ns});
  index_.emplace(key, std::prev(fifo_.end()));
}

void Matcher::OnAnswer(const Tuple& tuple, Direction direction, const Message& answer,
                       uint64_t ts_ns) {
  ++stats_.answers;
  const Key key{tuple, direction, answer.id};
  auto [first, last] = index_.equal_range(key);
  auto found = last;
  if (answer.questions.empty()) {
    if (first != last && std::next(first) == last) found = first;
  } else {
    const Question& q = answer.questions.front();
    for (auto it = first; it != last; ++it) {
      if (it->second->qtype == q.type && EqualsIgnoreCase(it->second->name, q.name)) {
        found = it;
        break;
      }
    }
  }
  if (found == last) {
    ++stats_.unmatched_answers;
    return;
  }
  ++stats_.matched;
  const FifoIter pending = found->second;
  // Per-CPU clocks and ring buffers can put an answer a hair before its query.
  const uint64_t latency = ts_ns > pending->ts_ns ? ts_ns - pending->ts_ns : 0;
  Finish(pending, answer.rcode, latency, answer.truncated, false);
}

void Matcher::OnMessage(const Tuple& tuple, bool sent_by_local, const Message& message,
                        uint64_t ts_ns) {
  if (message.response) {
    OnAnswer(tuple, sent_by_local ? Direction::kIncoming : Direction::kOutgoing, message, ts_ns);
  } else {
    OnQuery(tuple, sent_by_local ? Direction::kOutgoing : Direction::kIncoming, message, ts_ns);
  }
}

void Matcher::Expire(uint64_t now_ns) {
  while (!fifo_.empty()) {
    const uint64_t ts = fifo_.front().ts_ns;
    if (now_ns < ts || now_ns - ts < options_.timeout_ns) break;
    ++stats_.timed_out;
    Finish(fifo_.begin(), -1, 0, false, false);
  }
}

std::vector<QueryResult> Matcher::TakeResults() { return std::exchange(results_, {}); }

void Matcher::Finish(FifoIter it, int rcode, uint64_t latency_ns, bool truncated, bool evicted) {
  auto [first, last] = index_.equal_range(it->key);
  for (auto i = first; i != last; ++i) {
    if (i->second == it) {
      index_.erase(i);
      break;
    }
  }
  results_.push_back(QueryResult{.tuple = it->key.tuple,
                                 .direction = it->key.direction,
                                 .id = it->key.id,
                                 .name = std::move(it->name),
                                 .qtype = it->qtype,
                                 .rcode = rcode,
                                 .query_ts_ns = it->ts_ns,
                                 .latency_ns = latency_ns,
                                 .truncated = truncated,
                                 .evicted = evicted});
  fifo_.erase(it);
}

}  // namespace nodescope::sensor::dns
