/* bpf/abi/hist.h: the latency histogram every ebpf-kernel family keeps in BPF maps (disk, hard
 * and soft IRQ, filesystem): log2 nanosecond slots, like libbpf-tools' biolatency but in ns, so
 * sub-microsecond IRQ handlers and multi-second disk stalls share one layout. Plain C. */
#pragma once

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Slot i counts values v with floor(log2(v)) == i (0 and 1 in slot 0); the last slot also takes
 * everything above 2^NS_HIST_SLOTS ns (~18 minutes). */
#define NS_HIST_SLOTS 40

struct ns_hist {
	__u64 slots[NS_HIST_SLOTS];
	__u64 sum_ns; /* sum of the values counted */
};
