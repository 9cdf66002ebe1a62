#include "sensor/plugins/kernel/disk/diskstats.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include "bpf/abi/disk.h"

namespace nodescope::sensor::kernel::disk {
namespace {

// The next space-separated token of `line` from `pos`, or empty at the end.
std::string_view NextToken(std::string_view line, size_t& pos) {
  while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
  const size_t start = pos;
  while (pos < line.size() && line[pos] != ' ' && line[pos] != '\t') ++pos;
  return line.substr(start, pos - start);
}

template <typename T>
bool ParseNumber(std::string_view token, T& out) {
  if (token.empty()) return false;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), out);
  return ec == std::errc() && end == token.data() + token.size();
}

// The fields of one line after its name, in file order.
constexpr size_t kMinFields = 11;  // every kernel since 2.6
constexpr size_t kMaxFields = 17;  // Linux 5.5+

}  // namespace

Result<std::vector<DiskStats>> ParseDiskstats(std::string_view text) {
  std::vector<DiskStats> out;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    ++line_no;
    size_t pos = 0;
    std::string_view major = NextToken(line, pos);
    if (major.empty()) continue;  // blank line
    DiskStats d;
    std::string_view minor = NextToken(line, pos);
    std::string_view name = NextToken(line, pos);
    if (!ParseNumber(major, d.major) || !ParseNumber(minor, d.minor) || name.empty()) {
      return Status::Error("diskstats line " + std::to_string(line_no) +
                           ": expected \"major minor name\"");
    }
    d.name = std::string(name);
    uint64_t fields[kMaxFields] = {};
    size_t n = 0;
    for (std::string_view tok = NextToken(line, pos); !tok.empty(); tok = NextToken(line, pos)) {
      if (n == kMaxFields) break;  // fields a later kernel may add
      if (!ParseNumber(tok, fields[n])) {
        return Status::Error("diskstats line " + std::to_string(line_no) + " (" + d.name +
                             "): field " + std::to_string(n + 1) + " is not a number");
      }
      ++n;
    }
    if (n < kMinFields) {
      return Status::Error("diskstats line " + std::to_string(line_no) + " (" + d.name +
                           "): " + std::to_string(n) + " fields, expected at least " +
                           std::to_string(kMinFields));
    }
    uint64_t* const dest[kMaxFields] = {
        &d.reads,          &d.reads_merged,  &d.read_sectors,    &d.read_ms,         &d.writes,
        &d.writes_merged,  &d.write_sectors, &d.write_ms,        &d.in_flight,       &d.io_ms,
        &d.weighted_io_ms, &d.discards,      &d.discards_merged, &d.discard_sectors, &d.discard_ms,
        &d.flushes,        &d.flush_ms};
    for (size_t i = 0; i < n; ++i) *dest[i] = fields[i];
    out.push_back(std::move(d));
  }
  return out;
}

std::map<uint32_t, std::string> KernelDevNames(const std::vector<DiskStats>& stats) {
  std::map<uint32_t, std::string> names;
  for (const DiskStats& d : stats) {
    names[(d.major << NS_DISK_MINOR_BITS) | NS_DISK_MINOR(d.minor)] = d.name;
  }
  return names;
}

std::string DevLabel(uint32_t kernel_dev) {
  return std::to_string(NS_DISK_MAJOR(kernel_dev)) + ":" +
         std::to_string(NS_DISK_MINOR(kernel_dev));
}

Result<std::vector<DiskStats>> ReadDiskstats(const std::string& proc_root) {
  const std::string path = proc_root + "/diskstats";
  std::ifstream in(path);
  if (!in) return Status::Error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  Result<std::vector<DiskStats>> parsed = ParseDiskstats(text.str());
  if (!parsed.ok()) return parsed.status().Prefixed(path + ": ");
  return parsed;
}

}  // namespace nodescope::sensor::kernel::disk
