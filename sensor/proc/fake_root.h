// Tests only: a fake host root for the process cache — <root>/etc/passwd (root and alice),
// <root>/mountinfo, and <root>/proc for the processes a test writes.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "common/testing/temp_dir.h"
#include "sensor/proc/process_cache.h"

namespace nodescope::sensor::proc {

class FakeRoot {
 public:
  explicit FakeRoot(const std::string& mountinfo = "") {
    std::filesystem::create_directories(path() + "/etc");
    std::ofstream(path() + "/etc/passwd") << "root:x:0:0::/:\nalice:x:1000:1000::/:\n";
    std::ofstream(path() + "/mountinfo") << mountinfo;
  }
  const std::string& path() const { return dir_.path(); }

  ProcessCache::Options Options() const {
    ProcessCache::Options options;
    options.proc_root = path() + "/proc";
    options.mountinfo = path() + "/mountinfo";
    return options;
  }

 private:
  test::TempDir dir_;
};

}  // namespace nodescope::sensor::proc
