#include "aggregator/api/filter.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "common/records/record.h"

namespace nodescope::aggregator::api {

namespace {

// inet_pton needs a NUL-terminated string; tag values are short, a stack copy is enough.
bool ParseAddress(std::string_view text, std::array<uint8_t, 16>* out, bool* is_v4) {
  char buf[INET6_ADDRSTRLEN + 1];
  // A NUL would end the copy early: "10.1.2.3\0junk" is no address (found by fuzzing).
  if (text.empty() || text.size() >= sizeof(buf) || text.find('\0') != std::string_view::npos) {
    return false;
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  in_addr v4;
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    out->fill(0);
    (*out)[10] = 0xff;
    (*out)[11] = 0xff;
    std::memcpy(out->data() + 12, &v4, 4);
    *is_v4 = true;
    return true;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, buf, &v6) == 1) {
    std::memcpy(out->data(), &v6, 16);
    *is_v4 = false;
    return true;
  }
  return false;
}

bool ValidKey(const std::string& key) {
  if (key.empty() || key.size() > 128) return false;
  if (!(std::isalpha(static_cast<unsigned char>(key[0])) || key[0] == '_')) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

}  // namespace

Result<Cidr> Cidr::Parse(std::string_view text) {
  Cidr cidr;
  size_t slash = text.find('/');
  std::string_view address = text.substr(0, slash);
  bool is_v4 = false;
  if (!ParseAddress(address, &cidr.network_, &is_v4)) return Status::Error("not an IP address");
  const int max_bits = is_v4 ? 32 : 128;
  int bits = max_bits;
  if (slash != std::string_view::npos) {
    std::string_view len = text.substr(slash + 1);
    if (len.empty() || len.size() > 3 ||
        !std::all_of(len.begin(), len.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Status::Error("prefix length is not a number");
    }
    bits = std::stoi(std::string(len));
    if (bits > max_bits) {
      return Status::Error("prefix length above " + std::to_string(max_bits));
    }
  }
  cidr.prefix_bits_ = is_v4 ? 96 + bits : bits;
  // Clear host bits so that "10.1.2.3/8" means 10.0.0.0/8.
  for (int i = 0; i < 16; ++i) {
    int keep = std::clamp(cidr.prefix_bits_ - i * 8, 0, 8);
    cidr.network_[i] &= static_cast<uint8_t>(0xff00 >> keep);
  }
  return cidr;
}

bool Cidr::Contains(std::string_view address) const {
  std::array<uint8_t, 16> ip;
  bool is_v4;
  if (!ParseAddress(address, &ip, &is_v4)) return false;
  int full = prefix_bits_ / 8;
  if (std::memcmp(ip.data(), network_.data(), full) != 0) return false;
  int rest = prefix_bits_ % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff00 >> rest);
  return (ip[full] & mask) == network_[full];
}

bool Query::Condition::Holds(const v1::Record& record) const {
  const std::string* actual;
  if (key == "source") {
    actual = &record.source();
  } else if (key == "host") {
    actual = &record.host();
  } else {
    actual = records::FindTag(record, key);
    if (actual == nullptr) return false;
  }
  switch (op) {
    case Op::kEquals:
      return *actual == value;
    case Op::kPrefix:
      return actual->compare(0, value.size(), value) == 0;
    case Op::kCidr:
      return cidr.Contains(*actual);
  }
  return false;
}

bool Query::AnyHolds(const std::vector<Filter>& filters, const v1::Record& record) {
  for (const Filter& filter : filters) {
    bool all = true;
    for (const Condition& c : filter) {
      if (!c.Holds(record)) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

Result<Query> Query::Compile(const v1::SubscribeRequest& request) {
  Query query;
  for (const std::string& source : request.sources()) {
    if (!ValidKey(source)) return Status::Error("sources: invalid source name '" + source + "'");
    query.sources_.push_back(source);
  }
  auto compile_list = [](const auto& filters, const std::string& list,
                         std::vector<Filter>* out) -> Status {
    for (int f = 0; f < filters.size(); ++f) {
      Filter filter;
      for (int m = 0; m < filters[f].matches_size(); ++m) {
        const v1::Match& match = filters[f].matches(m);
        const std::string where =
            list + "[" + std::to_string(f) + "].matches[" + std::to_string(m) + "]: ";
        if (!ValidKey(match.key())) {
          return Status::Error(where + "invalid key '" + match.key() +
                               "' (a tag name, \"source\" or \"host\")");
        }
        Condition c{match.key(), Condition::Op::kEquals, {}, {}};
        switch (match.op_case()) {
          case v1::Match::kEquals:
            c.value = match.equals();
            break;
          case v1::Match::kPrefix:
            c.op = Condition::Op::kPrefix;
            c.value = match.prefix();
            break;
          case v1::Match::kCidr: {
            auto cidr = Cidr::Parse(match.cidr());
            if (!cidr.ok()) {
              return Status::Error(where + "invalid CIDR '" + match.cidr() + "' for key '" +
                                   match.key() + "': " + cidr.status().message());
            }
            c.op = Condition::Op::kCidr;
            c.cidr = *cidr;
            break;
          }
          case v1::Match::OP_NOT_SET:
            return Status::Error(where + "key '" + match.key() +
                                 "' has no condition (equals, cidr or prefix)");
        }
        filter.push_back(std::move(c));
      }
      // An empty filter would match everything: almost certainly a client bug.
      if (filter.empty()) {
        return Status::Error(list + "[" + std::to_string(f) + "]: filter without matches");
      }
      out->push_back(std::move(filter));
    }
    return Status::Ok();
  };
  Status s = compile_list(request.allow(), "allow", &query.allow_);
  if (!s.ok()) return s;
  s = compile_list(request.deny(), "deny", &query.deny_);
  if (!s.ok()) return s;
  if (request.since_unix_nano() < 0 || request.until_unix_nano() < 0) {
    return Status::Error("since/until: negative time");
  }
  if (request.until_unix_nano() != 0 && request.until_unix_nano() < request.since_unix_nano()) {
    return Status::Error("until: before since");
  }
  query.since_ = request.since_unix_nano();
  query.until_ = request.until_unix_nano();
  query.match_all_ = query.sources_.empty() && query.allow_.empty() && query.deny_.empty() &&
                     query.since_ == 0 && query.until_ == 0;
  return query;
}

bool Query::WantsSource(std::string_view source) const {
  return sources_.empty() || std::find(sources_.begin(), sources_.end(), source) != sources_.end();
}

bool Query::Matches(const RecordBatch& batch, size_t i) const {
  if (match_all_) return true;
  if (!WantsSource(batch.source(i))) return false;
  const int64_t time = batch.time(i);
  if (since_ != 0 && time < since_) return false;
  if (until_ != 0 && time > until_) return false;
  if (allow_.empty() && deny_.empty()) return true;
  const v1::Record& record = batch[i];
  if (!allow_.empty() && !AnyHolds(allow_, record)) return false;
  return deny_.empty() || !AnyHolds(deny_, record);
}

bool Query::Matches(const v1::Record& record) const {
  if (match_all_) return true;
  if (!WantsSource(record.source())) return false;
  if (since_ != 0 && record.time_unix_nano() < since_) return false;
  if (until_ != 0 && record.time_unix_nano() > until_) return false;
  if (!allow_.empty() && !AnyHolds(allow_, record)) return false;
  return deny_.empty() || !AnyHolds(deny_, record);
}

}  // namespace nodescope::aggregator::api
