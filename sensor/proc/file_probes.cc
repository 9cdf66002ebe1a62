#include "sensor/proc/file_probes.h"

#include <dirent.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <charconv>
#include <memory>

namespace nodescope::sensor::proc {

FileProbes::FileProbes(std::string probe, std::string subject, std::string proc_root, FindFn find,
                       AttachFn attach)
    : probe_(std::move(probe)),
      subject_(std::move(subject)),
      proc_root_(std::move(proc_root)),
      find_(std::move(find)),
      attach_(std::move(attach)) {}

FileProbes::Outcome FileProbes::Offer(uint32_t pid) {
  std::optional<std::vector<FoundFile>> found = find_(proc_root_, pid);
  if (!found) return Outcome::kGone;
  if (found->empty()) return Outcome::kNoMatch;
  // The most telling outcome of the process's files: attached, failed, known, gone.
  auto rank = [](Outcome o) {
    return o == Outcome::kAttached ? 4 : o == Outcome::kFailed ? 3 : o == Outcome::kKnown ? 2 : 1;
  };
  Outcome best = Outcome::kGone;
  const std::string where = "in pid " + std::to_string(pid);
  for (const FoundFile& file : *found) {
    Outcome o = Consider(file, where, pid);
    if (rank(o) > rank(best)) best = o;
  }
  return best;
}

FileProbes::Outcome FileProbes::OfferFile(const std::string& path, int kind) {
  return Consider(FoundFile{path, path, kind}, "on the host", std::nullopt);
}

FileProbes::Outcome FileProbes::Consider(const FoundFile& found, const std::string& where,
                                         std::optional<uint32_t> pid) {
  struct stat st {};
  if (stat(found.target.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return Outcome::kGone;
  const FileId id{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  {
    std::lock_guard lock(mu_);
    if (ignored_.count(id) != 0) return Outcome::kKnown;
    if (auto known = files_.find(id); known != files_.end()) {
      if (pid) {
        std::set<uint32_t>& pids = pids_[id];
        if (pids.size() < kMaxPids && pids.insert(*pid).second) ++known->second.processes;
      }
      return Outcome::kKnown;
    }
  }
  std::optional<Status> attached = attach_(found);
  std::lock_guard lock(mu_);
  if (!attached) {
    ignored_.insert(id);
    return Outcome::kKnown;
  }
  File file{id, found.path, found.kind, attached->ok(), {}, pid ? 1u : 0u};
  if (pid) pids_[id].insert(*pid);
  if (file.attached) {
    spdlog::info("probe {}: {}{} (dev {}, inode {}) probed, found {}", probe_, subject_, found.path,
                 id.dev, id.ino, where);
  } else {
    // Once per file: it stays in files_, so the next process with it does not try again.
    file.error = attached->message();
    spdlog::warn("probe {}: {}{} (dev {}, inode {}, found {}) is not probed: {}", probe_, subject_,
                 found.path, id.dev, id.ino, where, file.error);
  }
  files_.emplace(id, std::move(file));
  return attached->ok() ? Outcome::kAttached : Outcome::kFailed;
}

size_t FileProbes::Scan() {
  size_t attached = 0;
  for (uint32_t pid : ListPids(proc_root_)) {
    if (Offer(pid) == Outcome::kAttached) ++attached;
  }
  return attached;
}

std::vector<FileProbes::File> FileProbes::Files() const {
  std::lock_guard lock(mu_);
  std::vector<File> out;
  for (const auto& [id, file] : files_) out.push_back(file);
  return out;
}

size_t FileProbes::attached() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [id, file] : files_) n += file.attached ? 1 : 0;
  return n;
}

size_t FileProbes::failed() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [id, file] : files_) n += file.attached ? 0 : 1;
  return n;
}

std::vector<uint32_t> ListPids(const std::string& proc_root) {
  struct DirCloser {
    void operator()(DIR* d) const { closedir(d); }
  };
  std::vector<uint32_t> pids;
  std::unique_ptr<DIR, DirCloser> dir(opendir(proc_root.c_str()));
  if (!dir) {
    spdlog::warn("cannot list {}: processes already running are not looked at", proc_root);
    return pids;
  }
  while (dirent* entry = readdir(dir.get())) {
    std::string_view name = entry->d_name;
    uint32_t pid = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec == std::errc() && end == name.data() + name.size()) pids.push_back(pid);
  }
  return pids;
}

std::vector<MappedFile> ParseMaps(std::string_view text) {
  std::vector<MappedFile> out;
  std::set<std::string, std::less<>> seen;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    // address perms offset dev inode pathname; the name starts after the inode's padding and
    // may itself hold spaces.
    std::string_view fields[5];
    std::string_view rest = line;
    bool complete = true;
    for (std::string_view& field : fields) {
      size_t start = rest.find_first_not_of(' ');
      if (start == std::string_view::npos) {
        complete = false;
        break;
      }
      rest.remove_prefix(start);
      size_t end = rest.find(' ');
      field = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    }
    if (!complete) continue;
    uint64_t inode = 0;
    auto [end, ec] = std::from_chars(fields[4].data(), fields[4].data() + fields[4].size(), inode);
    if (ec != std::errc() || inode == 0) continue;  // anonymous, [heap], [vdso], ...
    size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) continue;
    std::string_view path = rest.substr(start);
    if (path.empty() || path[0] != '/') continue;
    MappedFile mapped{std::string(fields[0]), inode, {}, false};
    constexpr std::string_view kDeleted = " (deleted)";
    if (path.ends_with(kDeleted)) {
      path.remove_suffix(kDeleted.size());
      mapped.deleted = true;
    }
    if (seen.count(path) != 0) continue;
    seen.emplace(path);
    mapped.path = std::string(path);
    out.push_back(std::move(mapped));
  }
  return out;
}

}  // namespace nodescope::sensor::proc
