// SPDX-License-Identifier: GPL-2.0
/* Block I/O latency per device (Netdata's eBPF disk): the time from block_rq_issue (the request
 * handed to the driver) to block_rq_complete, added to a log2 histogram per disk.
 *
 * The same two hooks exist twice, one set per attach strategy; user space loads exactly one set
 * (programs are named <strategy>__<hook>, see sensor/bpf/strategy.h):
 *   tp_btf__*      BTF tracepoints: the struct request itself, whose address keys the request
 *                  while it is in flight and whose byte count tells a partial completion.
 *   tracepoint__*  classic tracepoints: only the trace record (dev, sector, rwbs), so a request
 *                  in flight is keyed by (dev, start sector), as Netdata's disk.bpf.c does. A
 *                  partial completion (an error in the middle of a request) is counted there and
 *                  the rest of the request then completes at another sector, without a start.
 *
 * What is counted is what the driver served: every issued request once, at its completion.
 * The flush machinery (block/blk-flush.c) also completes requests it never issued: an empty
 * PREFLUSH write (fsync, sync) is ended once its FLUSH request (issued, counted) is done, and a
 * PREFLUSH/FUA write on a device without FUA completes twice, once when the driver is done with
 * its data (counted) and once at the end of its post-flush. Both are writes without data at
 * completion; they go to counters[NS_DISK_CNT_FLUSH_SEQUENCE], not to the histogram. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf/abi/disk.h"

#define NS_COUNTERS_MAX NS_DISK_CNT_MAX
#include "counters.bpf.h"
#include "log2_hist.bpf.h"

char LICENSE[] SEC("license") = "GPL";

extern int LINUX_KERNEL_VERSION __kconfig;

/* REQ_OP_BITS of include/linux/blk_types.h (a macro, not in BTF) and enum req_op's REQ_OP_WRITE. */
#define NS_REQ_OP_MASK 0xff
#define NS_REQ_OP_WRITE 1

struct {
	__uint(type, BPF_MAP_TYPE_HASH); /* not LRU: a request not timed must be counted */
	__uint(max_entries, NS_DISK_INFLIGHT_MAX);
	__type(key, struct ns_disk_rq_key);
	__type(value, __u64); /* bpf_ktime_get_ns() at issue */
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NS_DISK_DEVICES_MAX);
	__type(key, __u32); /* the kernel's dev_t of the disk (NS_DISK_MAJOR/NS_DISK_MINOR) */
	__type(value, struct ns_hist);
} hists SEC(".maps");

static struct ns_hist zero_hist; /* a device's first histogram, copied from .bss */

static __always_inline void issue(struct ns_disk_rq_key *key)
{
	__u64 ts = bpf_ktime_get_ns();

	/* BPF_ANY: a requeued request is issued again and timed from then on. */
	if (bpf_map_update_elem(&inflight, key, &ts, BPF_ANY) != 0)
		count(NS_DISK_CNT_INFLIGHT_FULL);
}

static __always_inline void complete(struct ns_disk_rq_key *key, __u32 dev, __u64 now)
{
	__u64 *start = bpf_map_lookup_elem(&inflight, key);
	struct ns_hist *hist;
	__u64 ns;

	if (!start) {
		count(NS_DISK_CNT_NO_START);
		return;
	}
	ns = now > *start ? now - *start : 0;
	bpf_map_delete_elem(&inflight, key);
	hist = bpf_map_lookup_elem(&hists, &dev);
	if (!hist) {
		bpf_map_update_elem(&hists, &dev, &zero_hist, BPF_NOEXIST);
		hist = bpf_map_lookup_elem(&hists, &dev);
		if (!hist) {
			count(NS_DISK_CNT_DEVICES_FULL);
			return;
		}
	}
	ns_hist_add(hist, ns);
}

/* ---- strategy tp_btf ---- */

/* The disk of a request: rq->rq_disk until Linux 5.19 removed it (commit f3fa33acca9f "block:
 * remove the ->rq_disk field in struct request"); rq->q->disk (Linux 5.14, commit d152c682f03c
 * "block: add an explicit ->disk backpointer to the request_queue") since. */
struct request___ns_old {
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

static __always_inline __u32 rq_dev(struct request *rq)
{
	struct gendisk *disk;

	if (bpf_core_field_exists(((struct request___ns_old *)0)->rq_disk))
		disk = BPF_CORE_READ((struct request___ns_old *)rq, rq_disk);
	else
		disk = BPF_CORE_READ(rq, q, disk);
	if (!disk)
		return 0;
	/* disk_devt(): the whole disk, as the block tracepoints report it */
	return ((__u32)BPF_CORE_READ(disk, major) << NS_DISK_MINOR_BITS) |
	       (__u32)BPF_CORE_READ(disk, first_minor);
}

/* Linux 5.11 dropped the request_queue argument of the request tracepoints (commit a54895fa057c
 * "block: remove the request_queue to argument request based tracepoints"): block_rq_issue is
 * (struct request *rq) since, (struct request_queue *q, struct request *rq) before. The kernel
 * version is a constant of the frozen .kconfig map, so the verifier never walks the branch that
 * reads an argument this kernel does not have. */
SEC("tp_btf/block_rq_issue")
int tp_btf__block_rq_issue(u64 *ctx)
{
	struct ns_disk_rq_key key = {};

	if (LINUX_KERNEL_VERSION >= KERNEL_VERSION(5, 11, 0))
		key.id = ctx[0];
	else
		key.id = ctx[1];
	issue(&key);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(tp_btf__block_rq_complete, struct request *rq, blk_status_t error,
	     unsigned int nr_bytes)
{
	__u64 now = bpf_ktime_get_ns();
	struct ns_disk_rq_key key = {.id = (__u64)rq};
	__u32 op = BPF_CORE_READ(rq, cmd_flags) & NS_REQ_OP_MASK;

	if (nr_bytes == 0 && op == NS_REQ_OP_WRITE) {
		count(NS_DISK_CNT_FLUSH_SEQUENCE);
		return 0;
	}
	/* blk_update_request() traces before it consumes nr_bytes: fewer than the request holds is
	 * a partial completion, and the request is timed when its last byte completes. */
	if (nr_bytes < BPF_CORE_READ(rq, __data_len))
		return 0;
	complete(&key, rq_dev(rq), now);
	return 0;
}

/* ---- strategy tracepoint ---- */

/* The op letter of a record's rwbs (blk_fill_rwbs()): 'F' first is the PREFLUSH flag, then
 * comes the op: W, R, D, F (a FLUSH request) or N (any other op). */
static __always_inline char rwbs_op(char c0, char c1)
{
	if (c0 == 'F' && (c1 == 'W' || c1 == 'R' || c1 == 'D' || c1 == 'F' || c1 == 'N'))
		return c1;
	return c0;
}

/* block_rq_issue shares the event class block_rq with block_rq_insert. */
struct trace_event_raw_block_rq___ns {
	dev_t dev;
	sector_t sector;
	char rwbs[10];
} __attribute__((preserve_access_index));

/* block_rq_complete had an event class of its own until commit d5869fdc189f ("block: introduce
 * block_rq_error tracepoint") made it the class block_rq_completion, shared with block_rq_error.
 * The fields read here kept their names; CO-RE moves them. */
struct trace_event_raw_block_rq_completion___ns {
	dev_t dev;
	sector_t sector;
	unsigned int nr_sector;
	char rwbs[10];
} __attribute__((preserve_access_index));

struct trace_event_raw_block_rq_complete___ns {
	dev_t dev;
	sector_t sector;
	unsigned int nr_sector;
	char rwbs[10];
} __attribute__((preserve_access_index));

SEC("tracepoint/block/block_rq_issue")
int tracepoint__block_rq_issue(struct trace_event_raw_block_rq___ns *ctx)
{
	struct ns_disk_rq_key key = {.id = ctx->sector, .dev = ctx->dev};

	issue(&key);
	return 0;
}

SEC("tracepoint/block/block_rq_complete")
int tracepoint__block_rq_complete(void *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	struct ns_disk_rq_key key = {};
	__u32 nr_sector;
	char op;

	if (bpf_core_type_exists(struct trace_event_raw_block_rq_completion___ns)) {
		struct trace_event_raw_block_rq_completion___ns *r = ctx;

		key.dev = r->dev;
		key.id = r->sector;
		nr_sector = r->nr_sector;
		op = rwbs_op(r->rwbs[0], r->rwbs[1]);
	} else {
		struct trace_event_raw_block_rq_complete___ns *r = ctx;

		key.dev = r->dev;
		key.id = r->sector;
		nr_sector = r->nr_sector;
		op = rwbs_op(r->rwbs[0], r->rwbs[1]);
	}
	if (nr_sector == 0 && op == 'W') {
		count(NS_DISK_CNT_FLUSH_SEQUENCE);
		return 0;
	}
	/* The issue record's sector went through blk_rq_trace_sector(), which says 0 for a request
	 * without one (a FLUSH: blk_rq_pos() is (sector_t)-1); the completion record has
	 * blk_rq_pos() itself (seen on 6.18: issue 0, complete 18446744073709551615). */
	if (key.id == (__u64)-1)
		key.id = 0;
	complete(&key, key.dev, now);
	return 0;
}
