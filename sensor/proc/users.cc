#include "sensor/proc/users.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace nodescope::sensor::proc {

UserResolver::UserResolver(std::string host_root) : host_root_(std::move(host_root)) {}

std::string UserResolver::HostRootFromEnv() {
  const char* root = std::getenv("HOST_ROOT");
  return root != nullptr ? std::string(root) : std::string();
}

std::unordered_map<uint32_t, std::string> UserResolver::ParsePasswd(std::string_view text) {
  std::unordered_map<uint32_t, std::string> users;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty() || line.front() == '#') continue;
    size_t name_end = line.find(':');
    if (name_end == std::string_view::npos || name_end == 0) continue;
    size_t pass_end = line.find(':', name_end + 1);
    if (pass_end == std::string_view::npos) continue;
    size_t uid_end = line.find(':', pass_end + 1);
    std::string_view uid_text = line.substr(pass_end + 1, uid_end - pass_end - 1);
    if (uid_text.empty() || uid_text.size() > 10) continue;
    uint64_t uid = 0;
    bool digits = true;
    for (char c : uid_text) {
      if (c < '0' || c > '9') digits = false;
      uid = uid * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!digits || uid > UINT32_MAX) continue;
    users.emplace(static_cast<uint32_t>(uid), std::string(line.substr(0, name_end)));
  }
  return users;
}

std::optional<std::string> UserResolver::LookupFile(uint32_t uid) {
  std::string path = host_root_ + "/etc/passwd";
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 &&
      (!passwd_loaded_ || st.st_mtim.tv_sec != passwd_mtime_.tv_sec ||
       st.st_mtim.tv_nsec != passwd_mtime_.tv_nsec)) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    if (in) {
      passwd_ = ParsePasswd(text.str());
      passwd_mtime_ = st.st_mtim;
      passwd_loaded_ = true;
    }
  }
  auto it = passwd_.find(uid);
  if (it == passwd_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> UserResolver::LookupSystem(uint32_t uid) {
  int64_t suggested = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(suggested > 0 ? static_cast<size_t>(suggested) : 16384);
  passwd entry{};
  passwd* result = nullptr;
  for (;;) {
    int err = getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &result);
    if (err == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (err != 0 || result == nullptr) return std::nullopt;
    return std::string(result->pw_name);
  }
}

std::string UserResolver::Name(uint32_t uid) {
  std::lock_guard lock(mu_);
  if (auto it = names_.find(uid); it != names_.end()) return it->second;
  auto now = std::chrono::steady_clock::now();
  if (auto it = misses_.find(uid); it != misses_.end() && now - it->second < kMissRetry) {
    return std::to_string(uid);
  }
  std::optional<std::string> name = host_root_.empty() ? LookupSystem(uid) : LookupFile(uid);
  if (!name) {
    misses_[uid] = now;
    return std::to_string(uid);
  }
  misses_.erase(uid);
  names_.emplace(uid, *name);
  return *name;
}

}  // namespace nodescope::sensor::proc
