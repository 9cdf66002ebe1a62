#include "sensor/plugins/kernel/cgroup_paths.h"

#include <sys/stat.h>

#include <filesystem>
#include <system_error>

namespace nodescope::sensor::kernel {

std::string CgroupPaths::PathOf(uint64_t id) {
  auto it = paths_.find(id);
  if (it != paths_.end()) return it->second;
  auto now = std::chrono::steady_clock::now();
  if (now - last_walk_ >= std::chrono::seconds(1)) {
    last_walk_ = now;
    Walk();
    it = paths_.find(id);
    if (it != paths_.end()) return it->second;
  }
  return "#" + std::to_string(id);
}

void CgroupPaths::Walk() {
  namespace fs = std::filesystem;
  if (root_.empty()) return;
  std::unordered_map<uint64_t, std::string> found;
  struct stat st {};
  if (stat(root_.c_str(), &st) == 0) found[st.st_ino] = prefix_.empty() ? "/" : prefix_;
  std::error_code ec;
  fs::recursive_directory_iterator it(root_, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_directory(type_ec) || it->is_symlink(type_ec)) {
      it.disable_recursion_pending();
      continue;
    }
    if (stat(it->path().c_str(), &st) != 0) continue;
    found[st.st_ino] = prefix_ + "/" + fs::relative(it->path(), root_, type_ec).string();
  }
  paths_ = std::move(found);
}

}  // namespace nodescope::sensor::kernel
