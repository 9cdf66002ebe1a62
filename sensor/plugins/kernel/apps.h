// Application groups: which application a process counts for, from its name, as Netdata's
// apps_groups.conf does it ("group: pattern pattern*"). A name no pattern matches is its own
// application.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"

namespace nodescope::sensor::kernel {

// Kernel threads, grouped so per-CPU workers (kworker/0:1, ksoftirqd/3, ...) make one series.
inline const std::map<std::string, std::string> kDefaultAppsGroups = {
    {"kernel",
     "kworker/* ksoftirqd/* migration/* cpuhp/* irq/* rcu_* kthreadd idle_inject/* watchdog/* "
     "kcompactd* kswapd* khugepaged oom_reaper jbd2/* kauditd writeback kblockd"},
};

class AppGroups {
 public:
  // `groups`: group name -> space-separated patterns; '*' matches any run of characters. Fails on
  // an empty group name or a group without patterns.
  static Result<AppGroups> Build(const std::map<std::string, std::string>& groups);

  // The application `comm` counts for. Patterns are tried in group-name order, then in the order
  // written; the first match wins.
  const std::string& GroupOf(std::string_view comm);

 private:
  std::vector<std::pair<std::string, std::string>> patterns_;  // (pattern, group)
  std::unordered_map<std::string, std::string> cache_;        // comm -> group
};

// '*'-only glob (no other special characters; a comm is at most 15 bytes).
bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace nodescope::sensor::kernel
