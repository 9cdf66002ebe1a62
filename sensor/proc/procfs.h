// Parsers of the /proc/<pid> files the process cache reads (proc(5)).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nodescope::sensor::proc {

struct StatFields {
  std::string comm;
  uint32_t ppid = 0;
  uint64_t start_ticks = 0;  // field 22: clock ticks after boot (CLOCK_BOOTTIME)
};

// The words of `text`, split at spaces, tabs and newlines (empty words dropped).
std::vector<std::string_view> SplitSpaces(std::string_view text);

// /proc/<pid>/stat. comm may hold spaces and parentheses: it ends at the last ')'.
std::optional<StatFields> ParseStat(std::string_view text);
// The real uid of the "Uid:" line of /proc/<pid>/status.
std::optional<uint32_t> ParseStatusUid(std::string_view text);
// The cgroup v2 path ("0::/path" line) of /proc/<pid>/cgroup.
std::optional<std::string> ParseCgroupV2Path(std::string_view text);

// A /proc start time (ticks after boot, CLOCK_BOOTTIME) on the kernel's task->start_time scale
// (CLOCK_MONOTONIC ns): the two clocks differ by the time spent suspended (exact unless the
// machine was suspended while the process ran; /proc has 10 ms resolution anyway).
uint64_t BootTicksToMonotonicNs(uint64_t ticks);

Result<std::string> ReadWholeFile(const std::string& path);

}  // namespace nodescope::sensor::proc
