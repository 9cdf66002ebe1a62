#include "tests/bpf/loop_fs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace nodescope::test {

int RunShell(const std::string& command) {
  const int status = std::system(command.c_str());
  return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Capture(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[256];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string MissingLoopFsTools() {
  if (RunShell("command -v losetup >/dev/null") != 0) return "losetup (util-linux) is missing";
  if (RunShell("command -v mkfs.ext4 >/dev/null") != 0) return "mkfs.ext4 (e2fsprogs) is missing";
  if (RunShell("command -v mkfs.xfs >/dev/null") != 0) {
    return "mkfs.xfs is missing: install xfsprogs (scripts/install-deps.sh lists it)";
  }
  return "";
}

SparseFile::~SparseFile() { unlink(path_.c_str()); }

bool SparseFile::Create(uint64_t bytes) {
  int fd = open(path_.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool ok = ftruncate(fd, static_cast<off_t>(bytes)) == 0;
  close(fd);
  return ok;
}

LoopDevice::~LoopDevice() {
  if (!device_.empty() && RunShell("losetup -d " + device_) != 0) {
    std::cerr << "could not detach " << device_ << "\n";
  }
}

bool LoopDevice::Attach(const std::string& file) {
  device_ = Capture("losetup --find --show " + file + " 2>/dev/null");
  if (device_.rfind("/dev/loop", 0) == 0) return true;
  device_.clear();  // nothing to detach
  return false;
}

std::string LoopDevice::name() const { return std::filesystem::path(device_).filename(); }

dev_t LoopDevice::rdev() const {
  struct stat st {};
  if (stat(device_.c_str(), &st) != 0) return 0;
  return st.st_rdev;
}

MountPoint::~MountPoint() {
  if (mounted_ && umount2(dir_.c_str(), 0) != 0) {
    std::cerr << "umount " << dir_ << ": " << std::strerror(errno) << "; detaching lazily\n";
    umount2(dir_.c_str(), MNT_DETACH);
  }
  rmdir(dir_.c_str());
}

bool MountPoint::Mount(const std::string& device, const std::string& fstype) {
  if (mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) return false;
  mounted_ = mount(device.c_str(), dir_.c_str(), fstype.c_str(), MS_NOATIME, nullptr) == 0;
  return mounted_;
}

LoopFs::LoopFs(std::string type, const std::string& prefix)
    : fstype(std::move(type)),
      image("/tmp/" + prefix + "_" + std::to_string(getpid()) + ".img"),
      mnt("/tmp/" + prefix + "_" + std::to_string(getpid()) + ".mnt") {}

std::string LoopFs::Setup(const std::string& mkfs, uint64_t bytes) {
  if (!image.Create(bytes)) return "cannot create " + image.path();
  if (!loop.Attach(image.path())) return "losetup failed for " + image.path();
  if (RunShell(mkfs + " " + loop.device() + " >/dev/null 2>&1") != 0) return mkfs + " failed";
  if (!mnt.Mount(loop.device(), fstype)) return "mount " + fstype + ": " + std::strerror(errno);
  return "";
}

}  // namespace nodescope::test
