/* bpf/include/l7_capture.bpf.h: the payload of send and receive calls on HTTP and DNS
 * connections, for user-space parsers (sensor/protocols/). Included once by netflow.bpf.c, whose
 * sock_send_length/sock_recv_length programs already look the socket up in `conns`: the
 * connection's protocol lives in its flags, so a connection that is neither HTTP nor DNS costs
 * nothing more after its first payload.
 *
 * No syscall tracepoints: the socket tracepoints fire inside the call, and the call's user
 * buffer is in the task's saved user registers (bpf_task_pt_regs, Linux 5.15), so only socket
 * I/O pays, never a file read. When the tracepoint fires the received bytes are already in the
 * buffer and the sent ones still are. Calls whose bytes are not in user memory (sendfile,
 * splice, io_uring) send only their length. x86-64 only, like bpf/vmlinux/. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "bpf/abi/l7.h"
#include "ringbuf.bpf.h"

const volatile __u32 l7_capture = 0; /* NS_L7_*_ON bits (abi/l7.h); 0 copies nothing */
const volatile __u32 l7_capture_bytes = NS_L7_CAPTURE_MAX;

/* The event is built here, not on the 512-byte stack; twice the window so that an iovec's
 * offset and length, each proven <= NS_L7_CAPTURE_MAX, always fit. */
_Static_assert((NS_L7_CAPTURE_MAX & (NS_L7_CAPTURE_MAX - 1)) == 0, "the masks need a power of 2");

struct ns_l7_scratch {
	struct ns_l7_event e;
	__u8 data[2 * NS_L7_CAPTURE_MAX];
};

/* Events are built in a batch per CPU, which goes to the ring as one record when it holds
 * NS_L7_BATCH_BYTES or more, or when user space flushes it (flush__l7, run on every CPU before
 * each read): one ring record for many events, whose fixed cost (about 200 ns on wrk -> nginx)
 * was the largest part of the capture. Each event is an item: its length (u32), 4 zero bytes,
 * the event, padded to 8 bytes (sensor/bpf/merged_rings.h reads them). Only the captures and
 * the TLS uprobes build events in the batch, in process context, so they do not nest. A close,
 * often in a softirq that may have interrupted one of them, sends the batch and then itself
 * (ns_l7_closed), and the flush from user space runs in an interrupt: either may come between
 * the start of an event (ns_l7_begin) and its commit (ns_l7_commit), which then finds the
 * batch's length changed and sends that event alone. */
_Static_assert((NS_L7_BATCH_BYTES & (NS_L7_BATCH_BYTES - 1)) == 0, "the masks need a power of 2");
/* An item's start in the batch, proven below NS_L7_BATCH_BYTES and 8-byte aligned. */
#define NS_L7_ITEM_AT(pos) ((pos) & ((NS_L7_BATCH_BYTES - 1) & ~7ULL))

struct ns_l7_batch {
	__u64 used;     /* bytes of whole items in data, a multiple of 8, < NS_L7_BATCH_BYTES */
	__u64 building; /* where the item being built starts */
	__u8 data[NS_L7_BATCH_BYTES + NS_L7_ITEM_HDR + sizeof(struct ns_l7_scratch) + 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ns_l7_batch);
} l7_batch SEC(".maps");

/* A ring per CPU, in l7_rings at the CPU's number: user space makes one for every CPU online
 * after load, and for a CPU that comes online later when it sees it (within a second; until
 * then that CPU's events are counted, NS_NETFLOW_CNT_L7_NO_RING). Rings made later may be
 * smaller: each is asked its size. A record then never waits for
 * another CPU's lock, nor pulls the ring's positions out of another CPU's cache (with rings
 * picked by connection, both CPUs of this 2-CPU machine wrote every ring, and that cost 50-150 ns
 * a record: BPF statistics, wrk -> nginx), and each ring is in time order, which the batches
 * need. A socket whose calls run on two CPUs has records in two rings: user space reads the rings
 * as one stream in ts_ns order (sensor/bpf/merged_rings.h), which keeps every socket's calls in
 * order. */
struct ns_l7_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	/* Only the template the array is made with (the kernel does not compare an inner ring's
	 * size): a page. */
	__uint(max_entries, 4096);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1); /* user space sets it: the possible CPUs */
	__type(key, __u32);
	__array(values, struct ns_l7_ring);
} l7_rings SEC(".maps");

/* Writes an event to this CPU's ring; a full ring, or a CPU without one, is counted. */
static __always_inline void ns_l7_output(void *data, __u64 size)
{
	__u32 cpu = bpf_get_smp_processor_id();
	void *ring = bpf_map_lookup_elem(&l7_rings, &cpu);
	__u64 bytes;

	if (!ring) {
		count(NS_NETFLOW_CNT_L7_NO_RING);
		return;
	}
	bytes = bpf_ringbuf_query(ring, BPF_RB_RING_SIZE);
	if (bpf_ringbuf_output(ring, data, size, ns_lazy_wakeup(ring, bytes, size)))
		count(NS_NETFLOW_CNT_L7_RINGBUF_DROPS);
}

/* Set by user space after load: NS_L7_BATCH_BYTES once it has run the flush, which batching
 * needs; 0 sends every event at once. */
__u64 l7_batch_limit = 0;

/* Items are bytes to the verifier: this keeps the event's layout in the object's BTF, where the
 * ABI test (bpf/abi/abi_testing.h) compares it with the C++ one. */
struct ns_l7_scratch *ns_l7_layout;

/* Where the next event is built: after the batch's items. */
static __always_inline struct ns_l7_scratch *ns_l7_begin(void)
{
	__u32 zero = 0;
	struct ns_l7_batch *b = bpf_map_lookup_elem(&l7_batch, &zero);
	__u64 off;

	if (!b)
		return NULL;
	off = NS_L7_ITEM_AT(b->used);
	b->building = off;
	return (struct ns_l7_scratch *)(b->data + off + NS_L7_ITEM_HDR);
}

/* Sends this CPU's batch to its ring now. */
static __always_inline void ns_l7_flush_batch(void)
{
	__u32 zero = 0;
	struct ns_l7_batch *b = bpf_map_lookup_elem(&l7_batch, &zero);
	__u64 n;

	if (!b)
		return;
	n = b->used;
	barrier_var(n);
	if (n == 0 || n > NS_L7_BATCH_BYTES + NS_L7_ITEM_HDR + sizeof(struct ns_l7_scratch))
		return;
	if (__sync_val_compare_and_swap(&b->used, n, 0) == n)
		ns_l7_output(b->data, n);
}

/* The event ns_l7_begin started, `size` bytes, joins the batch; a full batch goes to the ring. */
static __always_inline void ns_l7_commit(__u64 size)
{
	__u32 zero = 0;
	struct ns_l7_batch *b = bpf_map_lookup_elem(&l7_batch, &zero);
	__u64 off, n, end;

	if (!b)
		return;
	off = NS_L7_ITEM_AT(b->building);
	barrier_var(size);
	if (size > sizeof(struct ns_l7_scratch))
		return;
	*(__u32 *)(b->data + off) = size;
	*(__u32 *)(b->data + off + 4) = 0;
	n = NS_L7_ITEM_HDR + ((size + 7) & ~7ULL);
	end = off + n;
	if (__sync_val_compare_and_swap(&b->used, off, end) != off) {
		/* The flush took the batch while this event was built: it goes alone. */
		ns_l7_output(b->data + off, n);
		return;
	}
	if (end >= l7_batch_limit)
		ns_l7_flush_batch();
}

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ns_conn_key);
	__type(value, struct ns_l7_skip);
} l7_skip SEC(".maps");

/* Both ends of a loopback TCP connection are sockets this probe sees, and the bytes one sends
 * are the bytes the other receives, at the same offsets. Copying and parsing them twice (a
 * sidecar and its application, or any client and server on one host) is half wasted: the
 * server's copy is parsed; the client sends one event (NS_L7_MIRROR), then only keeps where
 * and when its runs of calls began (ns_l7_run), which the server's receives carry, and from
 * which user space places the server's exchanges in the client's time.
 * The two sockets are paired at the server's handshake, by the tuple the client left here at
 * its own (which comes first). */
struct ns_l7_pair_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 netns;
	__u16 sport;
	__u16 dport;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ns_l7_pair_key);
	__type(value, __u64); /* the client's socket */
} l7_pairs SEC(".maps");

/* 127.0.0.0/8 (v4-mapped) or ::1. */
static __always_inline bool ns_loopback(const __u8 a[16])
{
	__u64 hi, lo;

	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&lo, a + 8, 8);
	if (hi)
		return false;
	/* little-endian loads: bytes 8-15 of ::ffff:127.x.y.z are 00 00 ff ff 7f x y z */
	return (lo & 0xffffffffULL) == 0xffff0000ULL ? (lo >> 32 & 0xff) == 127
						      : lo == 0x0100000000000000ULL;
}

/* A TCP connection `c` (key `key`) reached ESTABLISHED: a loopback client leaves its tuple, a
 * loopback server looks for its client's and, when that socket has moved no payload yet, tells
 * it to mirror this one. */
static __always_inline void ns_l7_pair(struct ns_conn *c, const struct ns_conn_key *key)
{
	struct ns_l7_pair_key k = {};
	struct ns_conn_key client_key = {};
	struct ns_conn *peer;
	__u64 *client_sk;
	bool client;

	if (!(l7_capture & NS_L7_HTTP_ON) || c->protocol != IPPROTO_TCP || !ns_loopback(c->daddr))
		return;
	if (c->direction != NS_CONN_DIR_OUTGOING && c->direction != NS_CONN_DIR_INCOMING)
		return;
	/* Keyed by the client's tuple, which is the server's reversed. */
	client = c->direction == NS_CONN_DIR_OUTGOING;
	__builtin_memcpy(k.saddr, client ? c->saddr : c->daddr, 16);
	__builtin_memcpy(k.daddr, client ? c->daddr : c->saddr, 16);
	k.sport = client ? c->sport : c->dport;
	k.dport = client ? c->dport : c->sport;
	k.netns = c->netns;
	if (client) {
		bpf_map_update_elem(&l7_pairs, &k, &key->sk, BPF_ANY);
		return;
	}
	client_sk = bpf_map_lookup_elem(&l7_pairs, &k);
	if (!client_sk)
		return;
	client_key.sk = *client_sk;
	bpf_map_delete_elem(&l7_pairs, &k);
	peer = bpf_map_lookup_elem(&conns, &client_key);
	/* The entry may be older than the socket now at that address: the tuple says. */
	if (!peer || peer->netns != c->netns || peer->sport != c->dport || peer->dport != c->sport ||
	    (peer->flags & NS_CONN_PREEXISTING))
		return;
	if (__sync_val_compare_and_swap(&peer->l7_peer, 0, key->sk) == 0)
		c->l7_peer = client_key.sk | 1;
}

/* `c` is a client that mirrors its server (ns_l7_pair): its value is a socket address, even. */
static __always_inline bool ns_l7_mirrors(const struct ns_conn *c)
{
	return c->l7_peer > 1 && !(c->l7_peer & 1);
}

/* `c` is a server whose client mirrors it: its value is that client's address | 1. */
static __always_inline bool ns_l7_mirrored(const struct ns_conn *c)
{
	return c->l7_peer > 1 && (c->l7_peer & 1);
}

/* A call of a mirroring client: one in the other direction than its latest run's begins a run,
 * whose time and offset it keeps for its server's receives to carry (ns_l7_read_runs): no event,
 * only a clock read when a run begins. The time is cleared first and set last, so a reader on
 * another CPU that sees one time both before and after reading the offset has read a matching
 * pair (x86 keeps stores and loads in order; the barriers keep the compiler from reordering). */
static __always_inline void ns_l7_run(struct ns_conn *c, __u32 len, bool send)
{
	int d = send ? 0 : 1;
	__u64 moved = send ? c->bytes_written : c->bytes_read;

	if (c->l7_run_ts[d] && c->l7_run_ts[d] >= c->l7_run_ts[1 - d])
		return; /* the run goes on */
	*(volatile __u64 *)&c->l7_run_ts[d] = 0;
	barrier();
	*(volatile __u64 *)&c->l7_run_off[d] = moved >= len ? moved - len : 0;
	barrier();
	*(volatile __u64 *)&c->l7_run_ts[d] = bpf_ktime_get_ns();
}

/* The runs of the mirroring client `p` (ns_l7_run), its totals read first: a run that began
 * after them ends up empty rather than spanning bytes it does not hold. */
static __always_inline void ns_l7_read_runs(struct ns_l7_runs *r, struct ns_conn *p)
{
	r->moved[0] = *(volatile __u64 *)&p->bytes_written;
	r->moved[1] = *(volatile __u64 *)&p->bytes_read;
	for (int d = 0; d < 2; d++) {
		__u64 ts = *(volatile __u64 *)&p->l7_run_ts[d], off;

		barrier();
		off = *(volatile __u64 *)&p->l7_run_off[d];
		barrier();
		if (ts && ts == *(volatile __u64 *)&p->l7_run_ts[d]) {
			r->ts[d] = ts;
			r->off[d] = off;
		}
	}
}

/* Shedding for resource limits, written by user space (struct ns_l7_limit). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ns_l7_limit);
} l7_limit SEC(".maps");

/* Whether the HTTP payload of `c` is to be left out now, and why: 0 no; NS_CONN_L7_SHED (the
 * l7_payload step); NS_CONN_L7_SHED | NS_CONN_L7_SAMPLED_OUT (sampling). `first`: none of its
 * payload was sent yet. Sampling only leaves out connections whole, so no exchange is cut by it;
 * a connection left out stays so until it closes. */
static __always_inline __u8 ns_l7_shed_reason(const struct ns_conn *c, bool first)
{
	struct ns_l7_limit *limit;
	__u32 zero = 0;

	if (c->flags & NS_CONN_L7_SHED)
		return c->flags & (NS_CONN_L7_SHED | NS_CONN_L7_SAMPLED_OUT);
	limit = bpf_map_lookup_elem(&l7_limit, &zero);
	if (!limit)
		return 0;
	if (limit->payload_off)
		return NS_CONN_L7_SHED;
	/* A hash of the connection, not a running count: no shared state between CPUs. Not of the
	 * socket address: under tp_btf it is a trusted pointer, and the verifier refuses
	 * arithmetic on one. */
	if (first && limit->keep_one_in > 1 &&
	    (((c->start_ns ^ ((__u64)c->sport << 16 | c->dport)) * 0xC2B2AE3D27D4EB4FULL) >> 32) %
		    limit->keep_one_in)
		return NS_CONN_L7_SHED | NS_CONN_L7_SAMPLED_OUT;
	return 0;
}

/* Counts a call left out for `reason` (NS_CONN_L7_* bits), and its connection when `conn`. */
static __always_inline void ns_l7_shed_count(__u8 reason, bool conn)
{
	bool sampled = reason & NS_CONN_L7_SAMPLED_OUT;

	if (conn)
		count(sampled ? NS_NETFLOW_CNT_L7_SHED_CONNS_SAMPLED
			      : NS_NETFLOW_CNT_L7_SHED_CONNS_PAYLOAD);
	count(sampled ? NS_NETFLOW_CNT_L7_SHED_CALLS_SAMPLED : NS_NETFLOW_CNT_L7_SHED_CALLS_PAYLOAD);
}

/* arch/x86/entry/syscalls/syscall_64.tbl */
#define NS_NR_READ 0
#define NS_NR_WRITE 1
#define NS_NR_READV 19
#define NS_NR_WRITEV 20
#define NS_NR_SENDTO 44
#define NS_NR_RECVFROM 45
#define NS_NR_SENDMSG 46
#define NS_NR_RECVMSG 47
#define NS_NR_RECVMMSG 299
#define NS_NR_SENDMMSG 307

/* sendmmsg/recvmmsg pass every message through sock_sendmsg/sock_recvmsg in vector order, but
 * nothing in the tracepoint says which one: the index is counted per thread. A thread is in one
 * system call at a time; a count is taken for the same call when the vector, the call and a
 * gap under 50 ms (a sender preempted on a busy machine) agree, and restarts at 0 otherwise,
 * also once the count reached the vector's length (glibc's resolver sends A and AAAA with one
 * sendmmsg, dig and libuv use it for single datagrams). */
struct ns_mmsg_state {
	__u64 vec;
	__u64 ts_ns;
	__u32 next;
	__u32 nr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct ns_mmsg_state);
} l7_mmsg SEC(".maps");

static __always_inline __u32 ns_mmsg_index(long nr, __u64 vec, __u64 vlen)
{
	__u64 id = bpf_get_current_pid_tgid(), now = bpf_ktime_get_ns();
	struct ns_mmsg_state *st, fresh = {.vec = vec, .ts_ns = now, .next = 1, .nr = nr};
	__u32 i;

	if (vlen <= 1)
		return 0;
	st = bpf_map_lookup_elem(&l7_mmsg, &id);
	if (!st || st->vec != vec || st->nr != nr || st->next >= vlen ||
	    now - st->ts_ns > 50000000) {
		bpf_map_update_elem(&l7_mmsg, &id, &fresh, BPF_ANY);
		return 0;
	}
	i = st->next;
	st->next = i + 1;
	st->ts_ns = now;
	return i;
}

/* A request line's method (RFC 9110 9.1) or a status line, by its first four bytes; user space
 * parses the rest. */
static __always_inline bool ns_http_start(const __u8 *p)
{
	__u32 w = (__u32)p[0] | (__u32)p[1] << 8 | (__u32)p[2] << 16 | (__u32)p[3] << 24;

#define NS_W(a, b, c, d) ((__u32)(a) | (__u32)(b) << 8 | (__u32)(c) << 16 | (__u32)(d) << 24)
	return w == NS_W('G', 'E', 'T', ' ') || w == NS_W('P', 'O', 'S', 'T') ||
	       w == NS_W('P', 'U', 'T', ' ') || w == NS_W('H', 'E', 'A', 'D') ||
	       w == NS_W('D', 'E', 'L', 'E') || w == NS_W('P', 'A', 'T', 'C') ||
	       w == NS_W('O', 'P', 'T', 'I') || w == NS_W('C', 'O', 'N', 'N') ||
	       w == NS_W('T', 'R', 'A', 'C') || w == NS_W('H', 'T', 'T', 'P');
#undef NS_W
}

/* Copies up to `want` bytes from the first NS_L7_MAX_IOV entries of a user iovec array. */
static __always_inline __u32 ns_copy_iov(__u8 *dst, const struct iovec *iov, __u64 count,
					 __u32 want, __u8 *flags)
{
	__u32 off = 0;

	for (int i = 0; i < NS_L7_MAX_IOV; i++) {
		struct iovec v;
		__u64 n;

		if (i >= count || off >= want)
			break;
		if (bpf_probe_read_user(&v, sizeof(v), &iov[i])) {
			*flags |= NS_L7_READ_FAILED;
			break;
		}
		n = want - off;
		if (v.iov_len < n)
			n = v.iov_len;
		/* off < want <= the window and n <= want - off, but the verifier does not learn
		 * bounds from comparing two registers: the mask (a no-op, off < 4096) and the
		 * check (never taken) are for it; the barrier keeps clang from dropping the check. */
		barrier_var(n);
		if (n > NS_L7_CAPTURE_MAX)
			break;
		if (n && bpf_probe_read_user(dst + (off & (NS_L7_CAPTURE_MAX - 1)), n, v.iov_base)) {
			*flags |= NS_L7_READ_FAILED;
			break;
		}
		off += n;
	}
	return off;
}

/* Copies the first `want` bytes the current system call moved through the socket into `dst`;
 * returns how many, or sets NS_L7_NOT_COPIED when the call is not one whose buffer is known. */
static __always_inline __u32 ns_copy_call(__u8 *dst, __u32 want, __u8 *flags, bool btf)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	const struct iovec *iov;
	long nr;
	__u64 buf, count;

	if (!regs) {
		*flags |= NS_L7_NOT_COPIED;
		return 0;
	}
	nr = btf ? regs->orig_ax : BPF_CORE_READ(regs, orig_ax);
	buf = btf ? regs->si : BPF_CORE_READ(regs, si);
	count = btf ? regs->dx : BPF_CORE_READ(regs, dx);
	barrier_var(want);
	if (want > NS_L7_CAPTURE_MAX)
		want = NS_L7_CAPTURE_MAX;

	/* One copy loop for every call kind (the verifier walks each inlined copy of it). */
	switch (nr) {
	case NS_NR_READ:
	case NS_NR_WRITE:
	case NS_NR_SENDTO:
	case NS_NR_RECVFROM:
		if (want && bpf_probe_read_user(dst, want, (const void *)buf)) {
			*flags |= NS_L7_READ_FAILED;
			return 0;
		}
		return want;
	case NS_NR_READV:
	case NS_NR_WRITEV:
		iov = (const struct iovec *)buf;
		break;
	case NS_NR_SENDMSG:
	case NS_NR_RECVMSG:
	case NS_NR_SENDMMSG:
	case NS_NR_RECVMMSG: {
		struct user_msghdr msg;
		__u64 at = buf;

		if (nr == NS_NR_SENDMMSG || nr == NS_NR_RECVMMSG)
			at += (__u64)ns_mmsg_index(nr, buf, count) * sizeof(struct mmsghdr);
		if (bpf_probe_read_user(&msg, sizeof(msg), (const void *)at)) {
			*flags |= NS_L7_READ_FAILED;
			return 0;
		}
		iov = msg.msg_iov;
		count = msg.msg_iovlen;
		break;
	}
	default:
		*flags |= NS_L7_NOT_COPIED;
		return 0;
	}
	return ns_copy_iov(dst, iov, count, want, flags);
}

/* The header of a payload event of connection `c`, from the calling task. */
static __always_inline void ns_l7_header(struct ns_l7_event *e, const struct ns_conn *c,
					 const struct ns_conn_key *key, __u32 len, __u32 got,
					 __u8 l7, __u8 direction, __u8 flags)
{
	/* The counters already hold this call (netflow adds before the capture). */
	__u64 moved = direction == NS_L7_SEND ? c->bytes_written : c->bytes_read;

	e->sk = key->sk;
	e->peer = key->peer;
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = c->cgroup_id; /* of the task netflow named the socket by */
	__builtin_memcpy(e->saddr, c->saddr, 16);
	__builtin_memcpy(e->daddr, c->daddr, 16);
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->netns = c->netns;
	e->len = len;
	e->captured = got;
	e->sport = c->sport;
	e->dport = c->dport;
	e->family = c->family;
	e->protocol = c->protocol;
	e->l7 = l7;
	e->direction = direction;
	e->conn_direction = c->direction;
	e->flags = flags;
	e->offset = moved >= len ? moved - len : 0;
	e->conn_start_ns = c->start_ns;
	__builtin_memcpy(e->comm, c->comm, NS_TASK_COMM_LEN);
	__builtin_memset(&e->runs, 0, sizeof(e->runs));
}

/* Sends the event built in `s` with `got` bytes of payload; a full ring is counted. */
static __always_inline void ns_l7_send(struct ns_l7_scratch *s, __u32 got)
{
	ns_l7_commit(sizeof(s->e) + (got & (2 * NS_L7_CAPTURE_MAX - 1)));
}

/* The capture of a connection user space was parsing ends before this call of `len` bytes, for
 * the l7_payload step: said like a close (NS_L7_SHED), at the totals before the call, so what
 * the stream began is counted. Built in `s`. */
static __always_inline void ns_l7_shed_end(struct ns_l7_scratch *s, const struct ns_conn *c,
					   const struct ns_conn_key *key, __u32 len, bool send,
					   bool tls)
{
	ns_l7_header(&s->e, c, key, 0, 0, NS_L7_HTTP, NS_L7_RECV,
		     NS_L7_CLOSED | NS_L7_SHED | (tls ? NS_L7_TLS : 0));
	s->e.sent = c->bytes_written;
	if (send && s->e.sent >= len)
		s->e.sent -= len;
	if (!send && s->e.offset >= len)
		s->e.offset -= len;
	ns_l7_commit(sizeof(s->e));
}

/* A TCP connection whose payload was captured closed: stamped like its payload, so user space,
 * reading the rings in ts_ns order, sees the close after the connection's last bytes. */
static __always_inline void ns_l7_closed(struct ns_conn *c, const struct ns_conn_key *key)
{
	__u8 l7 = (c->flags & NS_CONN_L7_MASK) >> NS_CONN_L7_SHIFT;
	bool tls = c->flags & NS_CONN_TLS;
	struct {
		__u32 len;
		__u32 zero;
		struct ns_l7_event e;
	} item = {.len = sizeof(struct ns_l7_event)};

	if (l7 != NS_L7_HTTP && l7 != NS_L7_DNS && !tls)
		return;
	if (l7 == NS_L7_HTTP)
		bpf_map_delete_elem(&l7_skip, key);
	/* Left out for a limit: user space never saw it, or saw its end (ns_l7_shed_end). */
	if (c->flags & NS_CONN_L7_SHED)
		return;
	ns_l7_header(&item.e, c, key, 0, 0, tls ? NS_L7_HTTP : l7, NS_L7_RECV,
		     NS_L7_CLOSED | (tls ? NS_L7_TLS : 0));
	item.e.sent = c->bytes_written;
	if (ns_l7_mirrors(c))
		ns_l7_read_runs(&item.e.runs, c);
	/* Often in a softirq, which may have interrupted a capture building its event in the batch:
	 * the close is built here, and goes out alone after the batch (whose events are older). */
	ns_l7_flush_batch();
	ns_l7_output(&item, sizeof(item));
}

/* The first call of a loopback client that mirrors its server (struct ns_conn.l7_peer): its
 * length, offset and time, no bytes; its later calls only keep their runs (ns_l7_run). */
static __always_inline void ns_l7_mirror(struct ns_l7_scratch *s, const struct ns_conn *c,
					 const struct ns_conn_key *key, __u32 len, bool send)
{
	ns_l7_header(&s->e, c, key, len, 0, NS_L7_HTTP, send ? NS_L7_SEND : NS_L7_RECV,
		     NS_L7_MIRROR);
	s->e.peer = c->l7_peer;
	ns_l7_send(s, 0);
}

static __always_inline void ns_set_l7(struct ns_conn *c, __u8 l7)
{
	c->flags = (c->flags & ~NS_CONN_L7_MASK) | (l7 << NS_CONN_L7_SHIFT);
}

/* Shedding for a limit, on a connection that is or may be HTTP (`l7`): true when this call is
 * left out (counted). A connection not classified yet is only marked: the caller copies enough
 * to tell whether it is HTTP, and counts it then. Kept in the connection's flags rather than in
 * a variable, which the verifier would carry through the copy loops as one more state. */
static __always_inline bool ns_l7_shed_http(struct ns_l7_scratch *s, struct ns_conn *c,
					    const struct ns_conn_key *key, __u8 l7, __u32 len,
					    bool send)
{
	__u8 reason = ns_l7_shed_reason(c, l7 == NS_L7_UNKNOWN);
	bool new_conn = !(c->flags & NS_CONN_L7_SHED);

	if (!reason)
		return false;
	c->flags |= reason;
	if (l7 != NS_L7_HTTP)
		return false;
	if (new_conn)
		ns_l7_shed_end(s, c, key, len, send, false);
	ns_l7_shed_count(reason, new_conn);
	return true;
}

/* One send (`send`) or receive of `len` bytes on the connection `c` (key `key`). */
static __always_inline void ns_l7_capture(struct ns_conn *c, const struct ns_conn_key *key,
					  __u32 len, bool send, bool btf)
{
	__u8 l7 = (c->flags & NS_CONN_L7_MASK) >> NS_CONN_L7_SHIFT;
	struct ns_l7_scratch *s;
	__u32 got, want;
	__u8 flags = 0;

	if (l7 == NS_L7_NONE)
		return;
	if (l7 == NS_L7_UNKNOWN && (c->sport == 53 || c->dport == 53))
		l7 = NS_L7_DNS;
	if ((l7 == NS_L7_DNS && !(l7_capture & NS_L7_DNS_ON)) ||
	    (l7 != NS_L7_DNS && (!(l7_capture & NS_L7_HTTP_ON) || c->protocol != IPPROTO_TCP))) {
		ns_set_l7(c, NS_L7_NONE);
		return;
	}

	s = ns_l7_begin();
	if (!s)
		return;
	/* HTTP, or what may turn out to be: shedding for a limit. TLS ciphertext never is. */
	if (l7 != NS_L7_DNS && !(c->flags & NS_CONN_TLS) && ns_l7_shed_http(s, c, key, l7, len, send))
		return;
	/* A connection marked to be left out is not classified yet: this one copy tells whether it
	 * is HTTP (copying less would be a second copy path for the verifier to walk). */
	want = len < l7_capture_bytes ? len : l7_capture_bytes;
	/* Whether a loopback client mirrors its server is settled by its first payload: a server
	 * that pairs later would leave user space half of this side's stream parsed. */
	if (l7 == NS_L7_UNKNOWN && c->protocol == IPPROTO_TCP && !c->l7_peer)
		__sync_val_compare_and_swap(&c->l7_peer, 0, 1);
	if (l7 == NS_L7_HTTP && ns_l7_mirrors(c)) {
		ns_l7_run(c, len, send);
		return;
	}
	if (l7 == NS_L7_HTTP && len > want) {
		/* Only a call longer than the window is worth not copying; the lookup costs every
		 * call. */
		struct ns_l7_skip *skip = bpf_map_lookup_elem(&l7_skip, key);
		__u64 end = send ? c->bytes_written : c->bytes_read;

		if (skip && skip->start_ns == c->start_ns &&
		    end <= skip->until[send ? NS_L7_SEND : NS_L7_RECV]) {
			/* All body. Before the body's last call nothing is said: user space sees
			 * the bytes in the next event's offset. The last one says the body ended. */
			if (end < skip->until[send ? NS_L7_SEND : NS_L7_RECV])
				return;
			want = 0;
			flags |= NS_L7_SKIPPED;
		}
	}
	got = want ? ns_copy_call(s->data, want, &flags, btf) : 0;
	/* nginx sends every static body with sendfile: such a call would be a record that only
	 * says its length, which the next event's offset says too (user space counts the bytes
	 * between two events as a gap, and the close or the socket's counters end a body no
	 * event followed). A fifth of the records of keep-alive static traffic. */
	if (l7 == NS_L7_HTTP && (flags & NS_L7_NOT_COPIED))
		return;
	if (l7 == NS_L7_UNKNOWN) {
		if (got < 4)
			return; /* decided by the next call that shows four bytes */
		l7 = ns_http_start(s->data) ? NS_L7_HTTP : NS_L7_NONE;
		ns_set_l7(c, l7);
		if (l7 == NS_L7_NONE) {
			c->flags &= ~(NS_CONN_L7_SHED | NS_CONN_L7_SAMPLED_OUT);
			return;
		}
		if (c->flags & NS_CONN_L7_SHED) {
			ns_l7_shed_count(c->flags, true);
			return;
		}
	} else if ((c->flags & NS_CONN_L7_MASK) >> NS_CONN_L7_SHIFT != l7) {
		ns_set_l7(c, l7);
	}

	/* A mirroring client's first call was copied like any other, only to tell HTTP: changing
	 * what is copied for it would be one more state for the verifier to carry through the copy
	 * loops (it gave up on a million instructions). */
	if (l7 == NS_L7_HTTP && ns_l7_mirrors(c)) {
		ns_l7_run(c, len, send);
		ns_l7_mirror(s, c, key, len, send);
		return;
	}
	ns_l7_header(&s->e, c, key, len, got, l7, send ? NS_L7_SEND : NS_L7_RECV, flags);
	if (ns_l7_mirrored(c)) {
		struct ns_conn_key client = {.sk = c->l7_peer & ~1ULL};
		struct ns_conn *p;

		s->e.flags |= NS_L7_MIRRORED;
		/* What its client has read ends the bodies this side sent unreported (sendfile), and
		 * its runs place the exchanges in its time: carried where it has sent a request. The
		 * entry may be a later socket's at that address: the client names this one. */
		p = send ? NULL : bpf_map_lookup_elem(&conns, &client);
		if (p && p->l7_peer == key->sk)
			ns_l7_read_runs(&s->e.runs, p);
	}
	ns_l7_send(s, got);
}
