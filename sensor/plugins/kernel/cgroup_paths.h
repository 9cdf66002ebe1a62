// cgroup v2 id -> the cgroup's path under the v2 root, for the `cgroup` label: the id is the
// kernfs inode number of the cgroup's directory, so a walk of the mounted hierarchy finds it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace nodescope::sensor::kernel {

class CgroupPaths {
 public:
  // `root`: where cgroup2 is mounted (the sensor's own view; "" when it is not), `prefix`: the
  // hierarchy path mounted there ("/" unless the sensor runs in a cgroup namespace).
  CgroupPaths(std::string root, std::string prefix)
      : root_(std::move(root)), prefix_(prefix == "/" ? "" : std::move(prefix)) {}

  // "/system.slice/x.service"; "/" for the root. A cgroup made after the last walk triggers a new
  // walk (at most one per second); one that is already gone is named by its id ("#1234").
  std::string PathOf(uint64_t id);

 private:
  void Walk();

  std::string root_;
  std::string prefix_;
  std::unordered_map<uint64_t, std::string> paths_;
  std::chrono::steady_clock::time_point last_walk_{};
};

}  // namespace nodescope::sensor::kernel
