#include "sensor/plugins/kernel/apps.h"

#include <sstream>

namespace nodescope::sensor::kernel {

bool GlobMatch(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Result<AppGroups> AppGroups::Build(const std::map<std::string, std::string>& groups) {
  AppGroups g;
  for (const auto& [group, patterns] : groups) {
    if (group.empty()) return Status::Error("apps_groups: a group has an empty name");
    std::istringstream in(patterns);
    std::string pattern;
    size_t n = 0;
    while (in >> pattern) {
      g.patterns_.emplace_back(pattern, group);
      ++n;
    }
    if (n == 0) return Status::Error("apps_groups: group " + group + " has no process patterns");
  }
  return g;
}

const std::string& AppGroups::GroupOf(std::string_view comm) {
  auto it = cache_.find(std::string(comm));
  if (it != cache_.end()) return it->second;
  std::string group(comm);
  for (const auto& [pattern, name] : patterns_) {
    if (GlobMatch(pattern, comm)) {
      group = name;
      break;
    }
  }
  // Names are few (processes share them); the cache is bounded by what runs on the node.
  if (cache_.size() > 65536) cache_.clear();
  return cache_.emplace(std::string(comm), std::move(group)).first->second;
}

}  // namespace nodescope::sensor::kernel
