/* bpf/include/ringbuf.bpf.h: when a ring buffer record wakes its reader. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* Waking the reader costs an irq_work and a self-IPI per record (about a microsecond at high
 * event rates), and asking the ring how full it is reads the position its reader writes after
 * every record (a cache line that moves between CPUs). The sensor polls every 100 ms and reads
 * the ring directly anyway, so the fill level is looked at about once per 1/64 of the ring
 * written (`bytes` is its size, a power of two; a record of `size` bytes looks with probability
 * size / (bytes / 64)), and only a ring more than a quarter full wakes the reader early: a ring
 * of any size, written in records of any size, wakes its reader well before it is full, and at
 * most about 64 times per ring's worth of records however full it stays while the reader
 * catches up. */
static __always_inline __u64 ns_lazy_wakeup(void *ring, __u64 bytes, __u64 size)
{
	__u64 span = bytes / 64;

	if (size < span && (bpf_get_prandom_u32() & (span - 1)) >= size)
		return BPF_RB_NO_WAKEUP;
	return bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) > bytes / 4 ? BPF_RB_FORCE_WAKEUP
								      : BPF_RB_NO_WAKEUP;
}
