/* bpf/include/counters.bpf.h: the per-CPU counter array every probe keeps (drops, map-full, ...),
 * which user space sums over CPUs (sensor/bpf/loaded_probe.h). Include once, after vmlinux.h;
 * NS_COUNTERS_MAX is the probe's number of slots. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NS_COUNTERS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &slot);

	if (value)
		*value += 1; /* per-CPU slot, programs do not nest on one CPU here: no atomic needed */
}
