/* bpf/abi/disk.h: what bpf/progs/disk.bpf.c hands to sensor/plugins/kernel/disk: a latency
 * histogram (bpf/abi/hist.h) per block device, issue to completion. Plain C, shared by the BPF
 * program and C++; bpf/abi/disk_abi_test.cc checks every offset against the object's BTF. */
#pragma once

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#include "bpf/abi/hist.h"

/* Requests issued and not completed yet, over all devices. A request waits in the driver at most
 * its queue depth allows: 1,023 per NVMe hardware queue, 128 for the default nr_requests of a
 * scheduled queue; 16,384 covers a host with many busy disks (biolatency keeps 10,240). */
#define NS_DISK_INFLIGHT_MAX 16384
/* Devices with a histogram (whole disks: requests are issued to a disk, not a partition). */
#define NS_DISK_DEVICES_MAX 1024

/* The kernel's dev_t, as block tracepoints report it: MKDEV(major, minor) of include/linux/kdev_t.h,
 * not user space's encoding. */
#define NS_DISK_MINOR_BITS 20
#define NS_DISK_MAJOR(dev) ((dev) >> NS_DISK_MINOR_BITS)
#define NS_DISK_MINOR(dev) ((dev) & ((1U << NS_DISK_MINOR_BITS) - 1))

/* Slots of the per-CPU counter array `counters`; user space sums over CPUs. */
enum ns_disk_counter {
	NS_DISK_CNT_INFLIGHT_FULL = 0, /* issue not timed: `inflight` full; its completion is lost */
	NS_DISK_CNT_NO_START = 1,      /* completion of an issued request whose issue was not seen
					* (issued before the probe attached, or not timed) */
	NS_DISK_CNT_DEVICES_FULL = 2,  /* completion not counted: `hists` full */
	/* Not a loss: a write without data that the flush machinery (block/blk-flush.c) ended
	 * without issuing it, an empty PREFLUSH write (fsync, sync) whose flush is the FLUSH request
	 * counted on its own, or the final completion of a PREFLUSH/FUA write whose data part was
	 * counted when the driver completed it. */
	NS_DISK_CNT_FLUSH_SEQUENCE = 3,
	NS_DISK_CNT_MAX = 4,
};

/* Key of the hash `inflight`: the tp_btf strategy has the struct request itself (id = its
 * address, dev = 0); the classic tracepoint records only say where the request goes
 * (id = start sector, dev). */
struct ns_disk_rq_key {
	__u64 id;
	__u32 dev;
	__u32 pad; /* always 0: part of the hashed key */
};

#ifdef __cplusplus
static_assert(sizeof(struct ns_disk_rq_key) == 16, "ns_disk_rq_key layout changed");
#else
_Static_assert(sizeof(struct ns_disk_rq_key) == 16, "ns_disk_rq_key layout changed");
#endif
