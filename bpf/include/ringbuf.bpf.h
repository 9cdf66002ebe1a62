/* bpf/include/ringbuf.bpf.h: when a ring buffer record wakes its reader. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* Waking the reader costs an irq_work and a self-IPI per record (about a microsecond at high
 * event rates), and asking the ring how full it is reads the position its reader writes after
 * every record (a cache line that moves between CPUs). The sensor polls every 100 ms and reads
 * the ring directly anyway, so only about one record in 64 looks at the fill level, and only a
 * ring more than a quarter full (`bytes` is its size) wakes the reader early: at most one
 * wakeup per 64 records however full the ring stays while the reader catches up. */
static __always_inline __u64 ns_lazy_wakeup(void *ring, __u64 bytes)
{
	if (bpf_get_prandom_u32() & 63)
		return BPF_RB_NO_WAKEUP;
	return bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) > bytes / 4 ? BPF_RB_FORCE_WAKEUP
								      : BPF_RB_NO_WAKEUP;
}
