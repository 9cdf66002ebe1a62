#include "sensor/proc/procfs.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include "sensor/bpf/clock.h"

namespace nodescope::sensor::proc {
namespace {

template <typename T>
std::optional<T> ParseNumber(std::string_view text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::vector<std::string_view> SplitSpaces(std::string_view text) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start = text.find_first_not_of(" \t\n", pos);
    if (start == std::string_view::npos) break;
    size_t end = text.find_first_of(" \t\n", start);
    if (end == std::string_view::npos) end = text.size();
    fields.push_back(text.substr(start, end - start));
    pos = end;
  }
  return fields;
}

std::optional<StatFields> ParseStat(std::string_view text) {
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return std::nullopt;
  }
  StatFields stat;
  stat.comm = std::string(text.substr(open + 1, close - open - 1));
  // After comm: state(3) ppid(4) ... starttime(22), so starttime is the 20th field after ')'.
  std::vector<std::string_view> rest = SplitSpaces(text.substr(close + 1));
  if (rest.size() < 20) return std::nullopt;
  auto ppid = ParseNumber<uint32_t>(rest[1]);
  auto start = ParseNumber<uint64_t>(rest[19]);
  if (!ppid || !start) return std::nullopt;
  stat.ppid = *ppid;
  stat.start_ticks = *start;
  return stat;
}

std::optional<uint32_t> ParseStatusUid(std::string_view text) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.starts_with("Uid:")) continue;
    std::vector<std::string_view> fields = SplitSpaces(line.substr(4));
    if (fields.empty()) return std::nullopt;
    return ParseNumber<uint32_t>(fields[0]);
  }
  return std::nullopt;
}

std::optional<std::string> ParseCgroupV2Path(std::string_view text) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.starts_with("0::")) return std::string(line.substr(3));
  }
  return std::nullopt;
}

uint64_t BootTicksToMonotonicNs(uint64_t ticks) {
  static const int64_t kTicksPerSecond = sysconf(_SC_CLK_TCK);
  uint64_t boot_ns = ticks * (1'000'000'000ull / static_cast<uint64_t>(kTicksPerSecond));
  int64_t suspended = bpf::ReadClockNs(CLOCK_BOOTTIME) - bpf::ReadClockNs(CLOCK_MONOTONIC);
  if (suspended < 0 || static_cast<uint64_t>(suspended) > boot_ns) return boot_ns;
  return boot_ns - static_cast<uint64_t>(suspended);
}

Result<std::string> ReadWholeFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("open " + path + ": " + std::strerror(errno));
  std::string data;
  char buffer[4096];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return Status::Error("read " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    data.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return data;
}

}  // namespace nodescope::sensor::proc
