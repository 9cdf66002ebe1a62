// Reading the maps the ebpf-kernel families keep their histograms and in-flight starts in.
#pragma once

#include <bpf/bpf.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "bpf/abi/hist.h"

namespace nodescope::sensor::kernel {

// Calls `fn(key, value)` for every entry of the hash map `fd` (K key -> V value), by following its
// keys; an entry deleted between its key and its lookup is passed over.
template <typename K, typename V, typename Fn>
void ForEachEntry(int fd, Fn&& fn) {
  K key{}, next{};
  const void* previous = nullptr;
  while (bpf_map_get_next_key(fd, previous, &next) == 0) {
    V value{};
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) fn(next, value);
    key = next;
    previous = &key;
  }
}

// Deletes the entries of the hash map `fd` that `stale(key, value)` picks, once the walk is over
// (deleting the key a walk stands on restarts it from the first); returns how many were deleted,
// which leaves out those the programs deleted meanwhile.
template <typename K, typename V, typename Pred>
uint64_t DeleteEntries(int fd, Pred&& stale) {
  std::vector<K> picked;
  ForEachEntry<K, V>(fd, [&](const K& key, const V& value) {
    if (stale(key, value)) picked.push_back(key);
  });
  uint64_t deleted = 0;
  for (const K& key : picked) {
    if (bpf_map_delete_elem(fd, &key) == 0) ++deleted;
  }
  return deleted;
}

// An in-flight map swept every `every`: starts whose end the probe will never see (a skipped
// program run, a request aborted) would otherwise stay until they fill it.
class PeriodicSweep {
 public:
  explicit PeriodicSweep(std::chrono::seconds every) : every_(every) {}
  void Start() { next_ = std::chrono::steady_clock::now() + every_; }
  // Runs `sweep` (which returns how many entries it dropped) when `every` has passed since Start
  // or the previous run; returns the entries dropped since Start.
  uint64_t Run(const std::function<uint64_t()>& sweep) {
    if (std::chrono::steady_clock::now() >= next_) {
      dropped_ += sweep();
      next_ = std::chrono::steady_clock::now() + every_;
    }
    return dropped_;
  }

 private:
  const std::chrono::seconds every_;
  std::chrono::steady_clock::time_point next_;
  uint64_t dropped_ = 0;
};

// Entries of a BPF_MAP_TYPE_PERCPU_ARRAY of ns_hist, summed over the possible CPUs.
class PerCpuHists {
 public:
  explicit PerCpuHists(int fd);
  // False when libbpf cannot tell the number of possible CPUs: nothing can be read.
  bool ok() const { return !per_cpu_.empty(); }
  // Entry `key` summed over the CPUs into `sum`; false, with errno set, when the lookup fails.
  bool Read(uint32_t key, ns_hist& sum);

 private:
  int fd_;
  std::vector<ns_hist> per_cpu_;
};

}  // namespace nodescope::sensor::kernel
