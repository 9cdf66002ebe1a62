/* bpf/abi/irq.h: what bpf/progs/irq.bpf.c hands to sensor/plugins/kernel/irq: time spent in
 * hardware interrupt handlers per IRQ number (hardirq) and in softirq handlers per vector
 * (softirq), as struct ns_hist (bpf/abi/hist.h) in BPF maps the sensor reads every update_every.
 * Plain C; bpf/abi/irq_abi_test.cc checks the maps' key and value sizes and ns_hist's layout
 * against the compiled object. */
#pragma once

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#include "bpf/abi/hist.h"

/* NR_SOFTIRQS (include/linux/interrupt.h): 10 since IRQ_POLL took BLOCK_IOPOLL's slot (Linux 4.5);
 * vector v is the v-th row of /proc/softirqs. */
#define NS_SOFTIRQ_VECTORS 10

/* Entries of the hardirq histogram map (keyed by IRQ number). A large server with multi-queue
 * NICs and NVMe drives has a few hundred IRQ lines; 1024 x 328 B = 336 KiB preallocated. A line
 * that finds the map full is counted in NS_IRQ_CNT_HARDIRQ_MAP_FULL, not measured. */
#define NS_HARDIRQ_MAX_IRQS 1024

/* Slots of the per-CPU counter array `counters`; user space sums over CPUs. Each family has
 * its own slots: a hard IRQ can interrupt a softirq program between its read and its write of a
 * counter, and the increments are not atomic (bpf/include/counters.bpf.h). */
enum ns_irq_counter {
	/* hardirq exit with no entry of the same IRQ on this CPU: the entry came before the
	 * programs attached, or was skipped (a BPF program already running on this CPU) */
	NS_IRQ_CNT_HARDIRQ_UNMATCHED = 0,
	NS_IRQ_CNT_HARDIRQ_MAP_FULL = 1, /* IRQ number not in hardirq_hists and no room for it */
	NS_IRQ_CNT_SOFTIRQ_UNMATCHED = 2, /* as HARDIRQ_UNMATCHED, for a softirq vector */
	NS_IRQ_CNT_SOFTIRQ_BAD_VECTOR = 3, /* vector >= NS_SOFTIRQ_VECTORS: a newer kernel's */
	NS_IRQ_CNT_MAX = 4,
};
