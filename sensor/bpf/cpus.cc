#include "sensor/bpf/cpus.h"

#include <algorithm>
#include <charconv>

#include "sensor/proc/procfs.h"

namespace nodescope::sensor::bpf {
namespace {

constexpr int kMaxCpu = 65535;

bool ParseCpu(std::string_view word, int& cpu) {
  if (word.empty()) return false;
  auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), cpu);
  return ec == std::errc() && end == word.data() + word.size() && cpu >= 0 && cpu <= kMaxCpu;
}

}  // namespace

Result<std::vector<int>> ParseCpuList(std::string_view text) {
  const std::string_view whole = text;
  auto error = [whole](const char* what) {
    return Status::Error(std::string("CPU list '") + std::string(whole.substr(0, 64)) +
                         "': " + what);
  };
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  if (text.empty()) return error("empty");
  std::vector<int> cpus;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text.remove_prefix(comma == std::string_view::npos ? text.size() : comma + 1);
    const size_t dash = item.find('-');
    int first = 0, last = 0;
    if (!ParseCpu(item.substr(0, dash), first) ||
        (dash != std::string_view::npos && !ParseCpu(item.substr(dash + 1), last))) {
      return error("not a list of CPU numbers and ranges");
    }
    if (dash == std::string_view::npos) last = first;
    if (last < first) return error("a range that runs backwards");
    for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

Result<std::vector<int>> OnlineCpus(const std::string& path) {
  Result<std::string> text = proc::ReadWholeFile(path);
  if (!text.ok()) return text.status();
  Result<std::vector<int>> cpus = ParseCpuList(*text);
  if (!cpus.ok()) return Status::Error(path + ": " + cpus.status().message());
  return cpus;
}

}  // namespace nodescope::sensor::bpf
