// uid -> user name, cached. On a node the sensor reads the host's /etc/passwd through HOST_ROOT
// (a container's own passwd knows nobody); elsewhere it asks the system (getpwuid_r, NSS).
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace nodescope::sensor::proc {

class UserResolver {
 public:
  // `host_root` empty: getpwuid_r; else <host_root>/etc/passwd, re-read when it changes.
  explicit UserResolver(std::string host_root = {});
  // HOST_ROOT from the environment, or empty.
  static std::string HostRootFromEnv();

  // The user name of `uid`; its decimal number when no user has it. Thread-safe.
  std::string Name(uint32_t uid);

  // "name:x:uid:gid:..." lines -> uid -> name (the first line of a uid wins, as getpwuid does).
  static std::unordered_map<uint32_t, std::string> ParsePasswd(std::string_view text);

 private:
  std::optional<std::string> LookupFile(uint32_t uid);
  static std::optional<std::string> LookupSystem(uint32_t uid);

  // A uid nobody had is asked again after this long: users get created after the sensor starts.
  static constexpr std::chrono::seconds kMissRetry{30};

  const std::string host_root_;
  std::mutex mu_;
  std::unordered_map<uint32_t, std::string> names_;
  std::unordered_map<uint32_t, std::chrono::steady_clock::time_point> misses_;
  std::unordered_map<uint32_t, std::string> passwd_;  // host_root_ mode: the parsed file
  timespec passwd_mtime_{};
  bool passwd_loaded_ = false;
};

}  // namespace nodescope::sensor::proc
