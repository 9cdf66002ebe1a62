// The on-disk part of the transport's queue: batches that do not fit in memory while the
// aggregator is unreachable (or slower than the node), and every unacknowledged batch when the
// sensor stops, kept in `spool_dir/<instance>/` as one file per batch, named by sequence number.
//
// A file is the batch's encoded SensorMessage (node, instance, seq and events: exactly the bytes
// that go on the wire) behind a 24-byte header: magic, seq, event count and a CRC-32 of those and
// the message. Files are written under a temporary name and renamed, so a crash leaves either the
// whole file or none. The directory is held with an flock while its Spool is open: a second
// sensor cannot take it, and a directory nobody holds belongs to a sensor that has stopped, whose
// batches the next sensor replays under that sensor's instance (so the aggregator's duplicate
// check by instance and seq still applies).
//
// Not thread-safe: the transport's sender thread is its only user while it runs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nodescope::sensor {

class Spool {
 public:
  struct Batch {
    uint64_t seq = 0;
    size_t events = 0;
    std::string message;  // the encoded SensorMessage
  };
  // What Load() found: a batch, or a file that could not be read back (deleted; its events, when
  // the header could still be read, are lost and counted by the caller).
  struct Loaded {
    std::optional<Batch> batch;
    uint64_t lost_seq = 0;
    size_t lost_events = 0;
    std::string error;
  };

  static constexpr size_t kHeaderSize = 24;

  // Creates `dir`/`instance`/ when missing, takes its lock, and indexes the batch files already
  // there (a replay). Fails with a message naming the directory when it cannot be created or
  // locked (another sensor uses it).
  static Result<std::unique_ptr<Spool>> Open(const std::string& dir, const std::string& instance,
                                             uint64_t max_bytes);
  // Instances under `dir` whose directory no running sensor holds.
  static std::vector<std::string> Orphans(const std::string& dir);
  ~Spool();  // releases the lock; removes the directory when it holds no batch

  // Writes one batch (the concatenation of `pieces`). Fails when it would exceed max_bytes
  // (`full()` then stays true until space is freed) or the write fails.
  Status Append(uint64_t seq, size_t events, const std::vector<std::string_view>& pieces);
  // Reads the oldest batch not loaded yet. Its file stays until Release() passes its seq.
  std::optional<Loaded> Load();
  // Deletes the files of every batch with seq <= `seq`.
  void Release(uint64_t seq);

  bool Contains(uint64_t seq) const { return files_.count(seq) > 0; }
  bool HasUnloaded() const { return !unloaded_.empty(); }
  uint64_t bytes() const { return bytes_; }
  uint64_t max_bytes() const { return max_bytes_; }
  size_t unloaded_events() const { return unloaded_events_; }
  size_t batches() const { return files_.size(); }
  // Sequence numbers on disk: [first_seq(), last_seq()]; 0 when empty.
  uint64_t first_seq() const { return files_.empty() ? 0 : files_.begin()->first; }
  uint64_t last_seq() const { return files_.empty() ? 0 : files_.rbegin()->first; }
  const std::string& path() const { return path_; }

  static std::string FileName(uint64_t seq);

 private:
  struct File {
    size_t events = 0;
    uint64_t bytes = 0;
  };
  Spool(std::string path, int lock_fd, uint64_t max_bytes);
  Status Index();
  void Remove(std::map<uint64_t, File>::iterator it);

  const std::string path_;
  const int lock_fd_;
  const uint64_t max_bytes_;
  std::map<uint64_t, File> files_;
  std::set<uint64_t> unloaded_;  // files not loaded yet
  uint64_t bytes_ = 0;
  size_t unloaded_events_ = 0;
};

}  // namespace nodescope::sensor
