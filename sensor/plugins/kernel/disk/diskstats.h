// Reading /proc/diskstats: the kernel names the disk series are labelled with ("sda", "loop3",
// "nvme0n1"), and the kernel's own completion counts the probe tests compare against.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace nodescope::sensor::kernel::disk {

// One line of /proc/diskstats (diskstats_show() in block/genhd.c; fields documented in
// Documentation/admin-guide/iostats.rst). Linux 4.18 added the four discard fields and 5.5 the
// two flush fields; an older kernel's line leaves them 0.
struct DiskStats {
  uint32_t major = 0;
  uint32_t minor = 0;
  std::string name;
  uint64_t reads = 0;  // reads completed
  uint64_t reads_merged = 0;
  uint64_t read_sectors = 0;
  uint64_t read_ms = 0;
  uint64_t writes = 0;  // writes completed
  uint64_t writes_merged = 0;
  uint64_t write_sectors = 0;
  uint64_t write_ms = 0;
  uint64_t in_flight = 0;  // requests issued to the driver and not completed
  uint64_t io_ms = 0;
  uint64_t weighted_io_ms = 0;
  uint64_t discards = 0;  // discards completed
  uint64_t discards_merged = 0;
  uint64_t discard_sectors = 0;
  uint64_t discard_ms = 0;
  uint64_t flushes = 0;  // flush requests completed
  uint64_t flush_ms = 0;
};

// Parses the whole text of /proc/diskstats. Lines that are not "major minor name" followed by
// at least the 11 fields of every kernel are an error: the file is the kernel's, a bad line
// means it is not that file.
Result<std::vector<DiskStats>> ParseDiskstats(std::string_view text);

// The kernel's dev_t (MKDEV of include/linux/kdev_t.h, as the block tracepoints report it) of
// every device in `stats`, to its name.
std::map<uint32_t, std::string> KernelDevNames(const std::vector<DiskStats>& stats);

// The label of a device no file names (removed meanwhile): "major:minor".
std::string DevLabel(uint32_t kernel_dev);

// Reads and parses `<proc_root>/diskstats`.
Result<std::vector<DiskStats>> ReadDiskstats(const std::string& proc_root);

}  // namespace nodescope::sensor::kernel::disk
