#include "cli/filter.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

#include "common/config.h"

namespace nodescope::cli {
namespace {

constexpr size_t kMaxKey = 128;  // as aggregator/api/filter.cc accepts

bool IsKeyChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
}

Status CheckCidr(const std::string& cidr) {
  const size_t slash = cidr.find('/');
  const std::string address = cidr.substr(0, slash);
  unsigned char buffer[16];
  int max_bits = 0;
  if (address.find('\0') != std::string::npos) {  // c_str() would cut it there
    return Status::Error("'" + address.substr(0, address.find('\0')) +
                         "...' is not an IPv4 or IPv6 address (holds a NUL byte)");
  } else if (inet_pton(AF_INET, address.c_str(), buffer) == 1) {
    max_bits = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), buffer) == 1) {
    max_bits = 128;
  } else {
    return Status::Error("'" + address + "' is not an IPv4 or IPv6 address");
  }
  if (slash == std::string::npos) return Status::Ok();  // a single address
  const std::string bits = cidr.substr(slash + 1);
  if (bits.empty() || bits.size() > 3 ||
      !std::all_of(bits.begin(), bits.end(),
                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
      std::stoi(bits) > max_bits) {
    return Status::Error("prefix length '" + bits + "' must be 0-" + std::to_string(max_bits));
  }
  return Status::Ok();
}

}  // namespace

Result<v1::Match> ParseMatch(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return Status::Error("filter '" + text + "': " + why +
                         " (expected key=value, key^=prefix or key@cidr)");
  };
  size_t i = 0;
  while (i < text.size() && IsKeyChar(text[i])) ++i;
  if (i == 0) return bad("no key");
  // The aggregator's rule for a key (found by fuzz_observer_filter: "1x=y" passed here and was
  // refused by the server).
  if (std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '.' || text[0] == '-') {
    return bad("a key starts with a letter or '_'");
  }
  if (i > kMaxKey) return bad("a key has at most " + std::to_string(kMaxKey) + " characters");
  v1::Match match;
  match.set_key(text.substr(0, i));
  const std::string rest = text.substr(i);
  if (rest.rfind("^=", 0) == 0) {
    if (rest.size() == 2) return bad("empty prefix");
    match.set_prefix(rest.substr(2));
  } else if (rest.rfind('=', 0) == 0) {
    match.set_equals(rest.substr(1));  // an empty value matches an empty tag
  } else if (rest.rfind('@', 0) == 0) {
    const std::string cidr = rest.substr(1);
    Status valid = CheckCidr(cidr);
    if (!valid.ok()) return bad(valid.message());
    match.set_cidr(cidr);
  } else {
    return bad(rest.empty() ? "no operator" : "unexpected '" + rest.substr(0, 1) + "' after key");
  }
  return match;
}

Result<v1::SubscribeRequest> BuildRequest(const ObserveOptions& options, int64_t now_unix_nano) {
  v1::SubscribeRequest request;
  for (const std::string& source : options.sources) request.add_sources(source);
  if (!options.filters.empty()) {
    v1::Filter* allow = request.add_allow();
    for (const std::string& text : options.filters) {
      auto match = ParseMatch(text);
      if (!match.ok()) return match.status();
      *allow->add_matches() = std::move(match).value();
    }
  }
  for (const std::string& text : options.denies) {
    auto match = ParseMatch(text);
    if (!match.ok()) return match.status();
    *request.add_deny()->add_matches() = std::move(match).value();
  }
  request.set_follow(options.follow);
  const auto back = [&](const std::string& flag, const std::string& text) -> Result<int64_t> {
    auto duration = config::ParseDuration(text);
    if (!duration.ok()) return duration.status().Prefixed(flag + ": ");
    return now_unix_nano - duration->count();
  };
  if (!options.since.empty()) {
    auto since = back("--since", options.since);
    if (!since.ok()) return since.status();
    request.set_since_unix_nano(*since);
  }
  if (!options.until.empty()) {
    auto until = back("--until", options.until);
    if (!until.ok()) return until.status();
    request.set_until_unix_nano(*until);
    if (request.since_unix_nano() != 0 && *until < request.since_unix_nano()) {
      return Status::Error("--until " + options.until + " lies before --since " + options.since);
    }
  }
  if (options.last >= 0) {
    request.set_last(static_cast<uint64_t>(options.last));
  } else if (options.since.empty() && !options.follow) {
    request.set_last(kDefaultLast);
  }
  return request;
}

}  // namespace nodescope::cli
