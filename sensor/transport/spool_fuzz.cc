// libFuzzer target for reading spool files back (registered with nodescope_fuzz in this folder's
// CMakeLists.txt; spool_fuzz_test links this file too and replays testdata/spool_fuzz/ through
// CheckSpoolInput()).
//
// A spool file on disk can be anything after a disk error, a crash or an operator's edit. One
// input is: a control byte, then the bytes of the file a stopped sensor left as batch kInputSeq.
// The control byte adds a valid batch written by Spool::Append before or after it (bit 0, bit 1:
// after) and a leftover ".tmp" write holding the same bytes (bit 2). Each input gets a directory
// of its own on tmpfs, which a new Spool opens and Load()s until nothing is left.
// Invariants: no crash, leak or sanitizer report; every file is loaded once, in seq order, as a
// batch or as an error, never both; the input file is a batch exactly when an independent
// reading of the header (magic, seq of its name, CRC-32 of the header's first 20 bytes and the
// rest) says it is whole, with that message and event count, and otherwise its events are reported
// lost when its header names them; the valid batch always comes back as written; damaged and
// leftover files are deleted, loaded ones stay until released; the released spool removes its
// directory; no file descriptor is left open.
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "sensor/transport/spool.h"

namespace nodescope::sensor {

std::string CheckSpoolInput(const uint8_t* data, size_t size);  // the unit test calls this too

namespace {

constexpr uint64_t kInputSeq = 5;
constexpr uint64_t kValidBefore = 4, kValidAfter = 6;
constexpr size_t kValidEvents = 3;
// An encoded SensorMessage (node "node-a", sensor_instance "fuzz"), as the transport spools it.
constexpr char kValidMessage[] =
    "\x1a\x06node-a\x22\x04"
    "fuzz";
constexpr char kInstance[] = "fz";

// The lowest free descriptor: a file the spool leaves open moves it up.
int LowestFreeFd() {
  const int fd = dup(0);
  if (fd >= 0) close(fd);
  return fd;
}

// A fresh directory on tmpfs (/tmp when there is none), removed with everything in it.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = std::filesystem::is_directory("/dev/shm") ? "/dev/shm/ns-spool-fuzz-XXXXXX"
                                                                 : "/tmp/ns-spool-fuzz-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code error;
    if (!path_.empty()) std::filesystem::remove_all(path_, error);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

uint64_t Le(const std::string& bytes, size_t at, int n) {
  uint64_t value = 0;
  for (int i = 0; i < n; ++i) value |= uint64_t(static_cast<uint8_t>(bytes[at + i])) << (8 * i);
  return value;
}

// What the input file holds, read independently of spool.cc: a whole batch, or nothing (and how
// many events its header names, when it has one).
struct Expected {
  bool whole = false;
  size_t header_events = 0;
  std::string message;
};

Expected Read(const std::string& file) {
  Expected e;
  if (file.size() < Spool::kHeaderSize || file.compare(0, 8, "NSSPOOL2") != 0) return e;
  e.header_events = static_cast<size_t>(Le(file, 16, 4));
  e.message = file.substr(Spool::kHeaderSize);
  // The CRC covers the first 20 header bytes (magic, seq, events), then the message.
  std::string checked = file.substr(0, 20) + e.message;
  const uint32_t crc = static_cast<uint32_t>(
      crc32(crc32(0, nullptr, 0), reinterpret_cast<const Bytef*>(checked.data()), checked.size()));
  e.whole = Le(file, 8, 8) == kInputSeq && Le(file, 20, 4) == crc;
  return e;
}

bool WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

size_t FilesIn(const std::string& dir) {
  size_t n = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().filename() != ".lock") ++n;
  }
  return n;
}

std::string CheckLoaded(const Spool::Loaded& loaded, uint64_t seq, const Expected& input) {
  if (loaded.batch.has_value() == !loaded.error.empty()) return "a load with a batch and an error";
  if (loaded.error.find('\n') != std::string::npos) return "an error of more than one line";
  if (seq == kInputSeq) {
    if (loaded.batch.has_value() != input.whole) {
      return input.whole ? "a whole file refused: " + loaded.error : "a damaged file loaded";
    }
    if (loaded.batch && (loaded.batch->seq != seq || loaded.batch->message != input.message ||
                         loaded.batch->events != input.header_events)) {
      return "the input batch read back otherwise than written";
    }
    if (!loaded.batch && (loaded.lost_seq != seq || loaded.lost_events != input.header_events)) {
      return "lost seq " + std::to_string(loaded.lost_seq) + " and " +
             std::to_string(loaded.lost_events) + " events, expected " + std::to_string(seq) +
             " and " + std::to_string(input.header_events);
    }
    return "";
  }
  if (!loaded.batch) return "the valid batch refused: " + loaded.error;
  if (loaded.batch->seq != seq || loaded.batch->message != kValidMessage ||
      loaded.batch->events != kValidEvents) {
    return "the valid batch read back otherwise than written";
  }
  return "";
}

std::string Check(const ScratchDir& root, uint8_t control, const std::string& file) {
  const std::string dir = root.path() + "/" + kInstance;
  std::vector<uint64_t> seqs = {kInputSeq};
  if (control & 1) {
    // Written as a sensor does before it stops; its Spool keeps the directory (it holds a batch).
    const uint64_t seq = (control & 2) ? kValidAfter : kValidBefore;
    auto writer = Spool::Open(root.path(), kInstance, 1 << 20);
    if (!writer.ok()) return "cannot open the spool to write: " + writer.status().message();
    Status appended = (*writer)->Append(seq, kValidEvents, {kValidMessage});
    if (!appended.ok()) return "cannot append: " + appended.message();
    seqs.insert(seq < kInputSeq ? seqs.begin() : seqs.end(), seq);
  } else {
    std::filesystem::create_directories(dir);
  }
  const std::string input_path = dir + "/" + Spool::FileName(kInputSeq);
  if (!WriteFile(input_path, file)) return "cannot write " + input_path;
  const std::string leftover = dir + "/" + Spool::FileName(kValidAfter + 1) + ".tmp";
  if ((control & 4) && !WriteFile(leftover, file)) return "cannot write " + leftover;

  auto spool = Spool::Open(root.path(), kInstance, 1 << 20);
  if (!spool.ok()) return "cannot open the spool: " + spool.status().message();
  if ((*spool)->batches() != seqs.size()) return "files indexed otherwise than written";
  if (std::filesystem::exists(leftover)) return "a leftover .tmp file kept";
  const Expected input = Read(file);
  size_t loads = 0, kept = 0;
  while (std::optional<Spool::Loaded> loaded = (*spool)->Load()) {
    if (loads >= seqs.size()) return "more loads than files";
    const uint64_t seq = seqs[loads++];
    if (std::string why = CheckLoaded(*loaded, seq, input); !why.empty()) {
      return "seq " + std::to_string(seq) + ": " + why;
    }
    if (loaded->batch) ++kept;
  }
  if (loads != seqs.size()) return "fewer loads than files";
  if ((*spool)->HasUnloaded() || (*spool)->unloaded_events() != 0) return "events left unloaded";
  // Damaged files are gone; loaded ones stay until the aggregator has them.
  if ((*spool)->batches() != kept || FilesIn(dir) != kept) return "damaged files left on disk";
  (*spool)->Release(seqs.back());
  if ((*spool)->batches() != 0 || (*spool)->bytes() != 0 || FilesIn(dir) != 0) {
    return "released files left";
  }
  spool->reset();
  if (std::filesystem::exists(dir)) return "an empty spool left its directory";
  return "";
}

}  // namespace

std::string CheckSpoolInput(const uint8_t* data, size_t size) {
  static const int free_fd = LowestFreeFd();
  if (size == 0) return "";
  std::string why;
  {
    const ScratchDir root;
    if (root.path().empty()) return "cannot create a scratch directory";
    why = Check(root, data[0], std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  }
  if (why.empty() && LowestFreeFd() != free_fd) why = "a file descriptor left open";
  return why;
}

}  // namespace nodescope::sensor

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string why = nodescope::sensor::CheckSpoolInput(data, size);
  if (!why.empty()) {
    std::fprintf(stderr, "invariant broken: %s\n", why.c_str());
    std::abort();
  }
  return 0;
}
