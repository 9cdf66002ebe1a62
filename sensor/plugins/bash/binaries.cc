#include "sensor/plugins/bash/binaries.h"

#include <unistd.h>

#include <cerrno>

namespace nodescope::sensor::bash {
namespace {

std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// The executable of `pid` when it is bash; nullopt when the process is gone.
std::optional<std::vector<proc::FoundFile>> FindBash(const std::string& proc_root, uint32_t pid) {
  const std::string exe = proc_root + "/" + std::to_string(pid) + "/exe";
  char target[4096];
  ssize_t n = readlink(exe.c_str(), target, sizeof(target) - 1);
  if (n < 0) {
    if (errno == ENOENT || errno == ESRCH) return std::nullopt;
    return std::vector<proc::FoundFile>{};
  }
  const std::string path(target, static_cast<size_t>(n));
  if (!Binaries::IsBash(path)) return std::vector<proc::FoundFile>{};
  return std::vector<proc::FoundFile>{{exe, path, 0}};
}

}  // namespace

Binaries::Binaries(std::string proc_root, AttachFn attach)
    : files_("bash", "readline of ", std::move(proc_root), FindBash,
             [attach = std::move(attach)](const proc::FoundFile& file) -> std::optional<Status> {
               return attach(file.target, file.path);
             }) {}

bool Binaries::Candidate(std::string_view filename) {
  std::string_view base = BaseName(filename);
  return base == "bash" || base == "rbash" || base == "sh";
}

bool Binaries::IsBash(std::string_view exe_target) {
  // A file replaced on disk (a bash upgrade while shells run) reads "<path> (deleted)"; the
  // link still reaches the old file, which those shells keep running.
  constexpr std::string_view kDeleted = " (deleted)";
  if (exe_target.ends_with(kDeleted)) exe_target.remove_suffix(kDeleted.size());
  std::string_view base = BaseName(exe_target);
  return base == "bash" || base == "rbash";
}

}  // namespace nodescope::sensor::bash
