/* bpf/include/ringbuf.bpf.h: when a ring buffer record wakes its reader. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* Waking the reader costs an irq_work per record (about a microsecond at high event rates); the
 * sensor polls every 100 ms and reads the ring directly anyway, so only a ring more than a
 * quarter full (`bytes` is its size) wakes it early. */
static __always_inline __u64 ns_lazy_wakeup(void *ring, __u64 bytes)
{
	return bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) > bytes / 4 ? BPF_RB_FORCE_WAKEUP
								      : BPF_RB_NO_WAKEUP;
}
