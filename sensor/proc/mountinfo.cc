#include "sensor/proc/mountinfo.h"

#include "sensor/proc/procfs.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nodescope::sensor::proc {
namespace {

std::string Unescape(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && field[i + 1] >= '0' && field[i + 1] <= '3' &&
        field[i + 2] >= '0' && field[i + 2] <= '7' && field[i + 3] >= '0' && field[i + 3] <= '7') {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                               (field[i + 3] - '0'));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}


}  // namespace

std::vector<Mount> ParseMountInfo(std::string_view text) {
  std::vector<Mount> mounts;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    // id parent major:minor root mount_point options [optional...] - fstype source super_options
    std::vector<std::string_view> fields = SplitSpaces(line);
    size_t dash = 6;
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (fields.size() < 6 || dash + 2 >= fields.size()) continue;
    mounts.push_back(Mount{Unescape(fields[3]), Unescape(fields[4]), std::string(fields[dash + 1]),
                           Unescape(fields[dash + 2])});
  }
  return mounts;
}

Result<std::vector<Mount>> ReadMountInfo(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Error("read " + path + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return ParseMountInfo(text.str());
}

std::optional<Mount> FindMount(const std::vector<Mount>& mounts, std::string_view fstype,
                               std::string_view mount_point) {
  for (const Mount& m : mounts) {
    if (m.fstype == fstype && (mount_point.empty() || m.mount_point == mount_point)) return m;
  }
  return std::nullopt;
}

}  // namespace nodescope::sensor::proc
