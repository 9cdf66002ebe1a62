#include "sensor/proc/process_cache.h"

#include <dirent.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "sensor/proc/mountinfo.h"
#include "sensor/proc/procfs.h"

namespace nodescope::sensor::proc {
namespace {

std::optional<uint32_t> ParsePid(const char* name) {
  if (*name == '\0') return std::nullopt;
  uint64_t pid = 0;
  for (const char* c = name; *c != '\0'; ++c) {
    if (*c < '0' || *c > '9') return std::nullopt;
    pid = pid * 10 + static_cast<uint64_t>(*c - '0');
    if (pid > UINT32_MAX) return std::nullopt;
  }
  return static_cast<uint32_t>(pid);
}

struct DirCloser {
  void operator()(DIR* dir) const { closedir(dir); }
};

std::string ReadLink(const std::string& path) {
  std::vector<char> buffer(4096);
  ssize_t n = readlink(path.c_str(), buffer.data(), buffer.size());
  if (n <= 0) return {};  // kernel threads have no exe; others may be gone or hidden
  return std::string(buffer.data(), static_cast<size_t>(n));
}

}  // namespace

std::string ProcessCache::ProcRootFromEnv() {
  const char* root = std::getenv("HOST_PROC");
  return root != nullptr && *root != '\0' ? std::string(root) : std::string("/proc");
}

ProcessCache::ProcessCache(UserResolver* users, Options options)
    : users_(users), options_(std::move(options)) {
  Result<std::vector<Mount>> mounts = ReadMountInfo(options_.mountinfo);
  if (mounts.ok()) {
    if (std::optional<Mount> cgroup2 = FindMount(*mounts, "cgroup2")) {
      cgroup2_dir_ = cgroup2->mount_point;
      cgroup2_root_ = cgroup2->root;
    }
  }
  if (cgroup2_dir_.empty()) {
    spdlog::warn("no cgroup2 mount in {}: cgroup ids of processes seeded from {} are 0",
                 options_.mountinfo, options_.proc_root);
  }
}

Result<uint64_t> ProcessCache::CgroupId(const std::string& cgroup_file) const {
  if (cgroup2_dir_.empty()) return uint64_t{0};  // no cgroup v2 hierarchy mounted
  Result<std::string> text = ReadWholeFile(cgroup_file);
  if (!text.ok()) return text.status();
  std::optional<std::string> path = ParseCgroupV2Path(*text);
  if (!path) return uint64_t{0};
  // Paths are relative to the hierarchy root; the mount may expose a subtree of it.
  std::string relative = *path;
  if (cgroup2_root_ != "/" && relative.starts_with(cgroup2_root_)) {
    relative = relative.substr(cgroup2_root_.size());
  }
  std::string dir = cgroup2_dir_ + (relative.starts_with("/") ? "" : "/") + relative;
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) {
    return Status::Error("stat " + dir + ": " + std::strerror(errno));
  }
  return static_cast<uint64_t>(st.st_ino);
}

Result<ProcessInfo> ProcessCache::ReadFromProc(uint32_t pid) const {
  const std::string dir = options_.proc_root + "/" + std::to_string(pid);
  Result<std::string> stat_text = ReadWholeFile(dir + "/stat");
  if (!stat_text.ok()) return stat_text.status();
  std::optional<StatFields> stat = ParseStat(*stat_text);
  if (!stat) return Status::Error("cannot parse " + dir + "/stat");
  Result<std::string> status_text = ReadWholeFile(dir + "/status");
  if (!status_text.ok()) return status_text.status();
  std::optional<uint32_t> uid = ParseStatusUid(*status_text);
  if (!uid) return Status::Error("no Uid line in " + dir + "/status");

  ProcessInfo info;
  info.pid = pid;
  info.ppid = stat->ppid;
  info.comm = stat->comm;
  info.start_time_ns = BootTicksToMonotonicNs(stat->start_ticks);
  info.uid = *uid;
  info.user = users_->Name(*uid);
  info.filename = ReadLink(dir + "/exe");
  Result<uint64_t> cgroup_id = CgroupId(dir + "/cgroup");
  info.cgroup_id = cgroup_id.ok() ? *cgroup_id : 0;
  return info;
}

Result<size_t> ProcessCache::SeedFromProc() {
  std::unique_ptr<DIR, DirCloser> dir(opendir(options_.proc_root.c_str()));
  if (!dir) {
    return Status::Error("cannot list " + options_.proc_root + ": " + std::strerror(errno) +
                         " (set HOST_PROC to the host's /proc)");
  }
  std::vector<uint32_t> pids;
  errno = 0;
  while (dirent* entry = readdir(dir.get())) {
    if (std::optional<uint32_t> pid = ParsePid(entry->d_name)) pids.push_back(*pid);
  }
  if (errno != 0) {
    return Status::Error("list " + options_.proc_root + ": " + std::strerror(errno));
  }
  size_t added = 0;
  for (uint32_t pid : pids) {
    Result<ProcessInfo> info = ReadFromProc(pid);
    if (!info.ok()) continue;  // exited since readdir
    std::lock_guard lock(mu_);
    // An event may have arrived while seeding; it is newer than /proc.
    if (entries_.emplace(pid, Entry{std::move(info).value(), {}}).second) ++added;
  }
  return added;
}

std::optional<ProcessInfo> ProcessCache::Lookup(uint32_t pid) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(pid);
  if (it == entries_.end()) return std::nullopt;
  return it->second.info;
}

void ProcessCache::OnExec(ProcessInfo info) {
  if (info.user.empty()) info.user = users_->Name(info.uid);
  info.exited = false;
  const uint32_t pid = info.pid;
  std::lock_guard lock(mu_);
  entries_[pid] = Entry{std::move(info), {}};
}

void ProcessCache::OnFork(ProcessInfo child) {
  if (child.user.empty()) child.user = users_->Name(child.uid);
  child.exited = false;
  std::lock_guard lock(mu_);
  if (child.filename.empty()) {
    if (auto parent = entries_.find(child.ppid); parent != entries_.end()) {
      child.filename = parent->second.info.filename;
    }
  }
  const uint32_t pid = child.pid;
  entries_[pid] = Entry{std::move(child), {}};
}

void ProcessCache::OnExit(uint32_t pid, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(pid);
  if (it == entries_.end()) return;
  it->second.info.exited = true;
  it->second.exited_at = now;
}

size_t ProcessCache::ExpireExited(Clock::time_point now) {
  std::lock_guard lock(mu_);
  return std::erase_if(entries_, [&](const auto& item) {
    return item.second.info.exited && now - item.second.exited_at >= options_.exit_grace;
  });
}

size_t ProcessCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace nodescope::sensor::proc
