// cgroup v2 id -> the cgroup's path under the v2 root: the id BPF records
// (bpf_get_current_cgroup_id) is the kernfs inode number of the cgroup's directory, so a walk of
// the mounted hierarchy finds it. Used for the kernel plugin's `cgroup` label and for containers.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace nodescope::sensor::proc {

// Where the cgroup2 hierarchy is mounted, as the sensor reaches it.
struct Cgroup2Mount {
  std::string dir;           // "" when there is none
  std::string prefix = "/";  // the hierarchy path mounted there
};

// With `host_root` set (the sensor in a container, the host's / mounted there): the host's own
// cgroup2 mount (from <proc_root>/1/mountinfo) under host_root. A container in a cgroup namespace
// of its own (the default under cgroup v2) mounts only its own subtree at /sys/fs/cgroup, and
// would find no other pod's cgroup. Otherwise, or when that directory is not there, the sensor's
// own mount (/proc/self/mountinfo).
Cgroup2Mount FindCgroup2(const std::string& host_root, const std::string& proc_root,
                         const std::string& self_mountinfo = "/proc/self/mountinfo");

class CgroupPaths {
 public:
  // A walk opens every cgroup directory of the host (a few ms for a few thousand cgroups), so
  // walks are rationed: kWalkBurst at once, one more each kWalkInterval. The burst is for a pod
  // whose containers start back to back: each one's first exec names a cgroup made since the
  // last walk, and must find it then (a process event comes once). Sustained churn walks once a
  // second.
  static constexpr int kWalkBurst = 8;
  static constexpr std::chrono::seconds kWalkInterval{1};

  // `root`: where cgroup2 is mounted ("" when it is not), `prefix`: the hierarchy path mounted
  // there ("/" unless the mount shows a subtree, e.g. in a cgroup namespace).
  CgroupPaths(std::string root, std::string prefix)
      : root_(std::move(root)), prefix_(prefix == "/" ? "" : std::move(prefix)) {}
  explicit CgroupPaths(const Cgroup2Mount& mount) : CgroupPaths(mount.dir, mount.prefix) {}

  struct Found {
    std::optional<std::string> path;  // "/system.slice/x.service"; "/" for the root
    // No path, and a walk made during this call did not find it either: the cgroup is gone (or
    // outside the mount) and asking again will not help. False when no walk was left to make.
    bool gone = false;
  };
  // A cgroup made after the last walk triggers a new walk, if one is left (kWalkBurst).
  Found Find(uint64_t id);

  // Find's path, or "#<id>" for a cgroup it cannot name.
  std::string PathOf(uint64_t id);

  uint64_t walks() const { return walks_; }

 private:
  void Walk();

  std::string root_;
  std::string prefix_;
  std::unordered_map<uint64_t, std::string> paths_;
  double walks_left_ = kWalkBurst;
  std::chrono::steady_clock::time_point refilled_{};
  uint64_t walks_ = 0;
};

}  // namespace nodescope::sensor::proc
