#include "sensor/limits/usage.h"

#include <time.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

namespace nodescope::sensor::limits {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::vector<std::string_view> Fields(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

bool ToU64(std::string_view s, uint64_t* v) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && ptr == s.data() + s.size();
}

Result<std::string> Slurp(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Error("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int64_t ClockNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

Result<std::map<std::string, uint64_t>> ParseNetDev(std::string_view text) {
  std::map<std::string, uint64_t> out;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (++line_no <= 2) continue;  // two header lines
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      if (Trim(line).empty()) continue;
      return Status::Error("/proc/net/dev line " + std::to_string(line_no) + ": no ':'");
    }
    const std::vector<std::string_view> f = Fields(line.substr(colon + 1));
    uint64_t rx = 0, tx = 0;
    // Receive has 8 columns (bytes first), then Transmit's bytes.
    if (f.size() < 16 || !ToU64(f[0], &rx) || !ToU64(f[8], &tx)) {
      return Status::Error("/proc/net/dev line " + std::to_string(line_no) +
                           ": expected 16 counters");
    }
    out[std::string(Trim(line.substr(0, colon)))] = rx + tx;
  }
  return out;
}

Result<uint64_t> ParseStatusRss(std::string_view text) {
  constexpr std::string_view kKey = "VmRSS:";
  size_t at = text.find(kKey);
  // At a line start only.
  while (at != std::string_view::npos && at != 0 && text[at - 1] != '\n') {
    at = text.find(kKey, at + 1);
  }
  if (at == std::string_view::npos) return Status::Error("no VmRSS line in /proc/self/status");
  std::string_view line = text.substr(at + kKey.size());
  line = line.substr(0, line.find('\n'));
  const std::vector<std::string_view> f = Fields(line);
  uint64_t kib = 0;
  if (f.size() != 2 || f[1] != "kB" || !ToU64(f[0], &kib)) {
    return Status::Error("VmRSS in /proc/self/status is not \"<n> kB\"");
  }
  return kib * 1024;
}

Result<Reading> ReadNow() {
  Reading r;
  r.time_ns = ClockNs(CLOCK_MONOTONIC);
  r.cpu_ns = ClockNs(CLOCK_PROCESS_CPUTIME_ID);
  Result<std::string> status = Slurp("/proc/self/status");
  if (!status.ok()) return status.status();
  Result<uint64_t> rss = ParseStatusRss(*status);
  if (!rss.ok()) return rss.status();
  r.rss_bytes = *rss;
  Result<std::string> dev = Slurp("/proc/self/net/dev");
  if (!dev.ok()) return dev.status();
  Result<std::map<std::string, uint64_t>> nics = ParseNetDev(*dev);
  if (!nics.ok()) return nics.status();
  r.nic_bytes = std::move(nics).value();
  return r;
}

Usage Between(const Reading& before, const Reading& after) {
  Usage u;
  u.rss_bytes = static_cast<double>(after.rss_bytes);
  const double seconds = static_cast<double>(after.time_ns - before.time_ns) / 1e9;
  if (seconds <= 0) return u;
  u.cpu_cores = static_cast<double>(after.cpu_ns - before.cpu_ns) / 1e9 / seconds;
  for (const auto& [nic, bytes] : after.nic_bytes) {
    auto was = before.nic_bytes.find(nic);
    if (was == before.nic_bytes.end() || bytes < was->second) continue;
    const double rate = static_cast<double>(bytes - was->second) / seconds;
    if (rate > u.net_bytes_per_s) {
      u.net_bytes_per_s = rate;
      u.nic = nic;
    }
  }
  return u;
}

}  // namespace nodescope::sensor::limits
