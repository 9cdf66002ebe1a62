/* bpf/include/log2_hist.bpf.h: adding one latency to a struct ns_hist (bpf/abi/hist.h). */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "bpf/abi/hist.h"

/* floor(log2(v)) for v > 0, 0 for v == 0; branch-free halving, as the verifier needs no loop. */
static __always_inline __u32 ns_log2(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xffffffffULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xffff) << 4; v >>= shift; r |= shift;
	shift = (v > 0xff) << 3; v >>= shift; r |= shift;
	shift = (v > 0xf) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 ns_hist_slot(__u64 ns)
{
	__u32 slot = ns_log2(ns);

	return slot < NS_HIST_SLOTS ? slot : NS_HIST_SLOTS - 1;
}

/* Adds `ns` to `h` with atomic adds: a histogram in a shared (not per-CPU) map may be updated from
 * several CPUs at once. */
static __always_inline void ns_hist_add(struct ns_hist *h, __u64 ns)
{
	__u32 slot = ns_hist_slot(ns);

	if (slot < NS_HIST_SLOTS) /* a bound the verifier can see */
		__sync_fetch_and_add(&h->slots[slot], 1);
	__sync_fetch_and_add(&h->sum_ns, ns);
}

/* ns_hist_add for a histogram in a per-CPU map, which only this CPU writes: plain adds. Callers
 * make sure their programs do not nest on one CPU over the same histogram. */
static __always_inline void ns_hist_add_percpu(struct ns_hist *h, __u64 ns)
{
	__u32 slot = ns_hist_slot(ns);

	if (slot < NS_HIST_SLOTS) /* a bound the verifier can see */
		h->slots[slot] += 1;
	h->sum_ns += ns;
}
