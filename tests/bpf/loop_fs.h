// Filesystems on loop devices for probe tests (disk, filesystem), and the shell and file helpers
// they need. Every guard undoes what it made in its destructor, so a failing test leaves no loop
// device, mount or image behind.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace nodescope::test {

// mkfs.xfs (6.1) refuses less than 300 MB; a sparse file costs only what is written.
inline constexpr uint64_t kLoopImageBytes = 512ull << 20;

// Runs `command` through sh; its exit status, or -1.
int RunShell(const std::string& command);
// The standard output of `command`, without trailing newlines and spaces.
std::string Capture(const std::string& command);
bool WriteFile(const std::string& path, const std::string& text);
std::string ReadFile(const std::string& path);
// "" when losetup, mkfs.ext4 and mkfs.xfs are all installed; otherwise which is missing.
std::string MissingLoopFsTools();

class SparseFile {
 public:
  explicit SparseFile(std::string path) : path_(std::move(path)) {}
  ~SparseFile();
  SparseFile(const SparseFile&) = delete;
  SparseFile& operator=(const SparseFile&) = delete;
  bool Create(uint64_t bytes);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class LoopDevice {
 public:
  LoopDevice() = default;
  ~LoopDevice();
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  bool Attach(const std::string& file);
  const std::string& device() const { return device_; }
  std::string name() const;  // "loop3"
  dev_t rdev() const;        // user space's dev_t of the device node; 0 when unknown

 private:
  std::string device_;
};

class MountPoint {
 public:
  explicit MountPoint(std::string dir) : dir_(std::move(dir)) {}
  ~MountPoint();  // unmounts (lazily if busy) and removes the directory
  MountPoint(const MountPoint&) = delete;
  MountPoint& operator=(const MountPoint&) = delete;
  // Mounts with noatime: reading must not dirty inodes that a later journal commit would write.
  bool Mount(const std::string& device, const std::string& fstype);
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

// One filesystem on a loop device over a sparse file: /tmp/<prefix>_<pid>.img mounted at
// /tmp/<prefix>_<pid>.mnt.
struct LoopFs {
  LoopFs(std::string fstype, const std::string& prefix);
  // Creates the image, attaches it, runs `mkfs` on the device and mounts it; "" or what failed.
  std::string Setup(const std::string& mkfs, uint64_t bytes = kLoopImageBytes);

  std::string fstype;
  // Declaration order is teardown order reversed: unmount, detach, delete.
  SparseFile image;
  LoopDevice loop;
  MountPoint mnt;
};

}  // namespace nodescope::test
