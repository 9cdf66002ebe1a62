#include "sensor/proc/cgroup_paths.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "sensor/proc/mountinfo.h"

namespace nodescope::sensor::proc {
namespace {

struct DirCloser {
  void operator()(DIR* dir) const { closedir(dir); }
};

std::optional<Mount> Cgroup2Of(const std::string& mountinfo) {
  Result<std::vector<Mount>> mounts = ReadMountInfo(mountinfo);
  if (!mounts.ok()) return std::nullopt;
  return FindMount(*mounts, "cgroup2");
}

bool IsDir(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

Cgroup2Mount FindCgroup2(const std::string& host_root, const std::string& proc_root,
                         const std::string& self_mountinfo) {
  if (!host_root.empty() && host_root != "/") {
    if (std::optional<Mount> host = Cgroup2Of(proc_root + "/1/mountinfo")) {
      std::string dir = host_root + host->mount_point;
      if (IsDir(dir)) return {dir, host->root};
    }
  }
  if (std::optional<Mount> own = Cgroup2Of(self_mountinfo)) return {own->mount_point, own->root};
  return {};
}

CgroupPaths::Found CgroupPaths::Find(uint64_t id) {
  auto it = paths_.find(id);
  if (it != paths_.end()) return {it->second, false};
  const auto now = std::chrono::steady_clock::now();
  walks_left_ = std::min<double>(
      kWalkBurst, walks_left_ + std::chrono::duration<double>(now - refilled_) / kWalkInterval);
  refilled_ = now;
  if (walks_left_ < 1) return {std::nullopt, false};
  walks_left_ -= 1;
  Walk();
  it = paths_.find(id);
  if (it != paths_.end()) return {it->second, false};
  return {std::nullopt, true};
}

std::string CgroupPaths::PathOf(uint64_t id) {
  Found found = Find(id);
  return found.path ? *found.path : "#" + std::to_string(id);
}

void CgroupPaths::Walk() {
  ++walks_;
  if (root_.empty()) return;
  std::unordered_map<uint64_t, std::string> found;
  struct stat st {};
  if (stat(root_.c_str(), &st) != 0) return;  // keep what the last walk found
  found[st.st_ino] = prefix_.empty() ? "/" : prefix_;
  // Depth first with an explicit stack. A directory that disappears mid-walk (a pod going away)
  // is skipped, not the end of the walk: on a node that happens every second. readdir's d_ino is
  // the kernfs id (what stat would say), so the walk costs no stat per cgroup.
  std::vector<std::string> pending = {""};
  while (!pending.empty()) {
    std::string relative = std::move(pending.back());
    pending.pop_back();
    std::unique_ptr<DIR, DirCloser> dir(opendir((root_ + relative).c_str()));
    if (!dir) continue;
    while (const dirent* entry = readdir(dir.get())) {
      if (entry->d_name[0] == '.' &&
          (entry->d_name[1] == '\0' || (entry->d_name[1] == '.' && entry->d_name[2] == '\0'))) {
        continue;
      }
      std::string child = relative + "/" + entry->d_name;
      uint64_t ino = entry->d_ino;
      if (entry->d_type == DT_UNKNOWN) {  // filesystems without d_type (not cgroup2)
        if (lstat((root_ + child).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        ino = st.st_ino;
      } else if (entry->d_type != DT_DIR) {
        continue;
      }
      found[ino] = prefix_ + child;
      pending.push_back(std::move(child));
    }
  }
  paths_ = std::move(found);
}

}  // namespace nodescope::sensor::proc
