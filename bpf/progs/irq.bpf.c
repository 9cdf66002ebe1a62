// SPDX-License-Identifier: GPL-2.0
/* Time spent in hardware interrupt handlers, per IRQ number (family hardirq), and in softirq
 * handlers, per vector (family softirq): an entry hook stamps the time in a per-CPU slot, the
 * exit hook adds the difference to the histogram of the IRQ or vector.
 *
 * Every hook exists twice, one per attach strategy; user space loads one strategy's programs of
 * the enabled families only (programs are named <strategy>__<hook>, see sensor/bpf/strategy.h),
 * and does not create the maps of a disabled family:
 *   tp_btf__*      BTF tracepoints (Linux 5.5+). A BPF program here is only skipped when the
 *                  same program is already running on the CPU, which cannot happen: handlers of
 *                  one kind do not nest.
 *   tracepoint__*  classic tracepoints. The kernel skips one (counting a recursion miss in
 *                  bpf_prog_info) when any kprobe/tracepoint BPF program is running on the CPU,
 *                  e.g. a hard IRQ arriving while a softirq program runs; user space reports
 *                  those misses as lost events.
 *
 * Hard IRQ handlers run with interrupts off and softirqs do not nest, so one start slot per CPU
 * and family is enough; the families need separate slots since a hard IRQ can arrive between a
 * softirq's entry and exit. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf/abi/irq.h"

#define NS_COUNTERS_MAX NS_IRQ_CNT_MAX
#include "counters.bpf.h"
#include "log2_hist.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct ns_irq_start {
	__u64 ts;  /* bpf_ktime_get_ns() at entry; 0 once the exit used it */
	__u32 id;  /* IRQ number or vector the entry was for */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ns_irq_start);
} hardirq_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ns_irq_start);
} softirq_start SEC(".maps");

/* Hard IRQs: a shared hash keyed by IRQ number, updated with atomic adds. IRQ numbers are sparse
 * (MSI vectors are allocated upwards from 24 on x86, into the thousands on big machines), so an
 * array would be mostly empty, and a per-CPU hash would cost NS_HARDIRQ_MAX_IRQS x 328 B per CPU
 * (84 MiB on 256 CPUs) to save two atomic adds. Those adds are uncontended: an IRQ line is
 * delivered to the CPUs of its affinity mask, usually one, so its histogram stays in that CPU's
 * cache. The hash lookup is the same either way. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NS_HARDIRQ_MAX_IRQS);
	__type(key, __u32);
	__type(value, struct ns_hist);
} hardirq_hists SEC(".maps");

/* Softirqs: a per-CPU array indexed by vector. Every CPU runs TIMER, RCU, SCHED and NET_RX many
 * times a second, so a shared histogram would bounce between CPUs and need atomic adds; here the
 * lookup is an index into this CPU's copy and the adds are plain (softirqs do not nest, and hard
 * IRQ programs never touch this map). 10 x 328 B per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NS_SOFTIRQ_VECTORS);
	__type(key, __u32);
	__type(value, struct ns_hist);
} softirq_hists SEC(".maps");

static const struct ns_hist empty_hist;

static __always_inline void stamp(void *start_map, __u32 id)
{
	__u32 zero = 0;
	struct ns_irq_start *s = bpf_map_lookup_elem(start_map, &zero);

	if (!s)
		return;
	s->ts = bpf_ktime_get_ns();
	s->id = id;
}

/* Sets *ns to the time since this CPU's entry for `id`; false (counted in `unmatched`) when
 * there was none. */
static __always_inline bool elapsed(void *start_map, __u32 id, __u32 unmatched, __u64 *ns)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 zero = 0;
	struct ns_irq_start *s = bpf_map_lookup_elem(start_map, &zero);
	__u64 ts;

	if (!s)
		return false;
	ts = s->ts;
	s->ts = 0;
	if (!ts || s->id != id || now < ts) {
		count(unmatched);
		return false;
	}
	*ns = now - ts;
	return true;
}

static __always_inline int hardirq_exit(__u32 irq)
{
	struct ns_hist *h;
	__u64 ns;

	if (!elapsed(&hardirq_start, irq, NS_IRQ_CNT_HARDIRQ_UNMATCHED, &ns))
		return 0;
	h = bpf_map_lookup_elem(&hardirq_hists, &irq);
	if (!h) {
		/* First time for this IRQ: EEXIST when another CPU created it meanwhile. */
		bpf_map_update_elem(&hardirq_hists, &irq, &empty_hist, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hardirq_hists, &irq);
		if (!h) {
			count(NS_IRQ_CNT_HARDIRQ_MAP_FULL);
			return 0;
		}
	}
	ns_hist_add(h, ns);
	return 0;
}

static __always_inline int softirq_entry(__u32 vec)
{
	stamp(&softirq_start, vec);
	return 0;
}

static __always_inline int softirq_exit(__u32 vec)
{
	struct ns_hist *h;
	__u64 ns;

	if (!elapsed(&softirq_start, vec, NS_IRQ_CNT_SOFTIRQ_UNMATCHED, &ns))
		return 0;
	if (vec >= NS_SOFTIRQ_VECTORS) {
		count(NS_IRQ_CNT_SOFTIRQ_BAD_VECTOR);
		return 0;
	}
	h = bpf_map_lookup_elem(&softirq_hists, &vec);
	if (h)
		ns_hist_add_percpu(h, ns);
	return 0;
}

/* ---- strategy tp_btf ---- */

SEC("tp_btf/irq_handler_entry")
int BPF_PROG(tp_btf__irq_handler_entry, int irq, struct irqaction *action)
{
	stamp(&hardirq_start, irq);
	return 0;
}

SEC("tp_btf/irq_handler_exit")
int BPF_PROG(tp_btf__irq_handler_exit, int irq, struct irqaction *action, int ret)
{
	return hardirq_exit(irq);
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(tp_btf__softirq_entry, unsigned int vec)
{
	return softirq_entry(vec);
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(tp_btf__softirq_exit, unsigned int vec)
{
	return softirq_exit(vec);
}

/* ---- strategy tracepoint ---- */

SEC("tracepoint/irq/irq_handler_entry")
int tracepoint__irq_handler_entry(struct trace_event_raw_irq_handler_entry *ctx)
{
	stamp(&hardirq_start, ctx->irq);
	return 0;
}

SEC("tracepoint/irq/irq_handler_exit")
int tracepoint__irq_handler_exit(struct trace_event_raw_irq_handler_exit *ctx)
{
	return hardirq_exit(ctx->irq);
}

SEC("tracepoint/irq/softirq_entry")
int tracepoint__softirq_entry(struct trace_event_raw_softirq *ctx)
{
	return softirq_entry(ctx->vec);
}

SEC("tracepoint/irq/softirq_exit")
int tracepoint__softirq_exit(struct trace_event_raw_softirq *ctx)
{
	return softirq_exit(ctx->vec);
}
