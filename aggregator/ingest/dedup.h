// The last committed batch sequence number per sensor instance: a batch at or below it is a
// duplicate the sensor resent after a lost ack. With a state directory the numbers survive an
// aggregator restart (one 8-byte file per instance), so batches committed just before a crash
// and resent afterwards are not delivered twice.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"

namespace nodescope::aggregator::ingest {

// Longer sensor instance ids are refused at ingest: the hex file name must fit NAME_MAX.
inline constexpr size_t kMaxInstanceIdLength = 120;

class SeqStore {
 public:
  struct Instance;

  // Holds one instance's lock from the duplicate check until the commit, so two streams of the
  // same instance (a reconnect racing the old stream) cannot both commit a batch.
  class Guard {
   public:
    Guard(std::shared_ptr<Instance> instance, SeqStore* store);
    ~Guard();
    Guard(Guard&&) = default;
    uint64_t last() const;
    // Records `seq` as committed; with a state directory, writes it before returning.
    Status Commit(uint64_t seq);

   private:
    std::shared_ptr<Instance> instance_;
    std::unique_lock<std::mutex> lock_;
    SeqStore* store_;
  };

  // `state_dir` empty: in memory only. Otherwise the directory is created when missing, and the
  // numbers found there are loaded; files untouched for longer than `idle_ttl` are deleted.
  static Result<std::unique_ptr<SeqStore>> Open(
      const std::string& state_dir, std::chrono::nanoseconds idle_ttl = std::chrono::hours(24));
  ~SeqStore();

  Guard Lock(const std::string& sensor_instance, int64_t now_unix_nano);
  // Forgets (and deletes the files of) instances not seen for idle_ttl. Returns how many.
  size_t ForgetIdle(int64_t now_unix_nano);
  size_t size() const;

  // The file name holding an instance's number: the id itself when it is a safe file name,
  // hex otherwise. Exposed for tests.
  static std::string FileName(const std::string& sensor_instance);

 private:
  SeqStore(std::string state_dir, std::chrono::nanoseconds idle_ttl);
  Status Load(int64_t now_unix_nano);
  Status Persist(Instance* instance, uint64_t seq);

  const std::string state_dir_;
  const std::chrono::nanoseconds idle_ttl_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Instance>> instances_;
};

}  // namespace nodescope::aggregator::ingest
