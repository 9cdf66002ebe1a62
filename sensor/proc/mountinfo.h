// /proc/<pid>/mountinfo: which filesystem is mounted where (proc(5)).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nodescope::sensor::proc {

struct Mount {
  std::string root;         // the directory of the filesystem that is mounted (4th field)
  std::string mount_point;  // octal escapes (\040 for a space) decoded
  std::string fstype;
  std::string source;
};

std::vector<Mount> ParseMountInfo(std::string_view text);
Result<std::vector<Mount>> ReadMountInfo(const std::string& path);

// The first mount of `fstype` (e.g. "cgroup2"), optionally at exactly `mount_point`.
std::optional<Mount> FindMount(const std::vector<Mount>& mounts, std::string_view fstype,
                               std::string_view mount_point = {});

}  // namespace nodescope::sensor::proc
