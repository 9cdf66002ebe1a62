#include "sensor/plugins/kernel/irq/proc_irq.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nodescope::sensor::kernel::irq {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

// The next whitespace-separated token of `line` at or after `pos`; empty at the end.
std::string_view NextToken(std::string_view line, size_t& pos) {
  while (pos < line.size() && IsSpace(line[pos])) ++pos;
  const size_t start = pos;
  while (pos < line.size() && !IsSpace(line[pos])) ++pos;
  return line.substr(start, pos - start);
}

bool ParseU64(std::string_view token, uint64_t& value) {
  if (token.empty()) return false;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  return ec == std::errc() && end == token.data() + token.size();
}

bool AllDigits(std::string_view token) {
  if (token.empty()) return false;
  for (char c : token) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// What show_interrupts() prints between the chip name and the actions: the hardware IRQ number
// with the flow handler's name ("5-edge", "-fasteoi" without an IRQ domain), a bare hardware
// number, or with CONFIG_GENERIC_IRQ_SHOW_LEVEL (ARM) "Level"/"Edge".
bool IsDescriptorToken(std::string_view token) {
  if (AllDigits(token) || token == "Level" || token == "Edge") return true;
  const size_t dash = token.find('-');
  if (dash == std::string_view::npos || dash + 1 == token.size()) return false;
  if (dash > 0 && !AllDigits(token.substr(0, dash))) return false;
  for (char c : token.substr(dash + 1)) {
    const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!word) return false;
  }
  return true;
}

std::vector<std::string> SplitActions(std::string_view name) {
  std::vector<std::string> actions;
  while (!name.empty()) {
    const size_t comma = name.find(", ");
    actions.emplace_back(name.substr(0, comma));
    if (comma == std::string_view::npos) break;
    name.remove_prefix(comma + 2);
  }
  return actions;
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

// The CPU columns the header ("  CPU0  CPU1") announces.
size_t CpuColumns(std::string_view header) {
  size_t pos = 0, cpus = 0;
  for (std::string_view t = NextToken(header, pos); !t.empty(); t = NextToken(header, pos)) {
    if (t.substr(0, 3) == "CPU") ++cpus;
  }
  return cpus;
}

// Sums up to `max` numeric tokens from `pos`, leaving `pos` after the last one taken.
uint64_t SumCounts(std::string_view line, size_t& pos, size_t max) {
  uint64_t sum = 0;
  for (size_t i = 0; i < max; ++i) {
    size_t next = pos;
    uint64_t value = 0;
    if (!ParseU64(NextToken(line, next), value)) break;
    sum += value;
    pos = next;
  }
  return sum;
}

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (IsSpace(s.back()) || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<Interrupts> ParseInterrupts(std::string_view text) {
  std::vector<std::string_view> lines = Lines(text);
  if (lines.empty()) return Status::Error("/proc/interrupts is empty");
  const size_t cpus = CpuColumns(lines[0]);
  if (cpus == 0) {
    return Status::Error("/proc/interrupts: no CPU columns in the header '" +
                         std::string(lines[0]) + "'");
  }
  Interrupts out;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    size_t label_pos = 0;
    const std::string_view label = NextToken(line.substr(0, colon), label_pos);
    if (label.empty()) continue;
    size_t pos = colon + 1;
    const uint64_t count = SumCounts(line, pos, cpus);
    uint64_t irq = 0;
    if (!ParseU64(label, irq)) {
      out.arch[std::string(label)] = count;
      continue;
    }
    InterruptLine entry;
    entry.count = count;
    NextToken(line, pos);  // the chip's name
    for (;;) {
      size_t next = pos;
      const std::string_view token = NextToken(line, next);
      if (token.empty() || !IsDescriptorToken(token)) break;
      pos = next;
    }
    while (pos < line.size() && IsSpace(line[pos])) ++pos;
    entry.name = std::string(TrimRight(line.substr(pos)));
    entry.actions = SplitActions(entry.name);
    out.lines[static_cast<uint32_t>(irq)] = std::move(entry);
  }
  return out;
}

Result<std::array<uint64_t, NS_SOFTIRQ_VECTORS>> ParseSoftirqs(std::string_view text) {
  std::map<std::string, uint64_t, std::less<>> rows;
  std::vector<std::string_view> lines = Lines(text);
  if (lines.empty()) return Status::Error("/proc/softirqs is empty");
  const size_t cpus = CpuColumns(lines[0]);
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos) continue;
    size_t label_pos = 0;
    const std::string_view label = NextToken(lines[i].substr(0, colon), label_pos);
    size_t pos = colon + 1;
    rows[std::string(label)] = SumCounts(lines[i], pos, cpus == 0 ? SIZE_MAX : cpus);
  }
  std::array<uint64_t, NS_SOFTIRQ_VECTORS> counts{};
  for (size_t v = 0; v < kSoftirqNames.size(); ++v) {
    auto it = rows.find(kSoftirqNames[v]);
    if (it == rows.end()) {
      return Status::Error("/proc/softirqs has no row " + std::string(kSoftirqNames[v]));
    }
    counts[v] = it->second;
  }
  return counts;
}

Result<std::string> ReadProcFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error("open " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::Error("read " + path + ": " + std::strerror(errno));
  return text.str();
}

}  // namespace nodescope::sensor::kernel::irq
