#include "sensor/plugins/kernel/maps.h"

#include <bpf/libbpf.h>

namespace nodescope::sensor::kernel {

// A per-CPU lookup fills one value per possible CPU, each rounded up to 8 bytes, which
// sizeof(ns_hist) already is.
static_assert(sizeof(ns_hist) % 8 == 0);

PerCpuHists::PerCpuHists(int fd) : fd_(fd) {
  const int cpus = libbpf_num_possible_cpus();
  per_cpu_.resize(cpus > 0 ? static_cast<size_t>(cpus) : 0);
}

bool PerCpuHists::Read(uint32_t key, ns_hist& sum) {
  if (per_cpu_.empty() || bpf_map_lookup_elem(fd_, &key, per_cpu_.data()) != 0) return false;
  sum = ns_hist{};
  for (const ns_hist& h : per_cpu_) {
    for (size_t i = 0; i < NS_HIST_SLOTS; ++i) sum.slots[i] += h.slots[i];
    sum.sum_ns += h.sum_ns;
  }
  return true;
}

}  // namespace nodescope::sensor::kernel
