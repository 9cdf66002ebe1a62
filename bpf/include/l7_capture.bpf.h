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

#define NS_L7_HTTP_ON 1
#define NS_L7_DNS_ON 2
const volatile __u32 l7_capture = 0; /* NS_L7_*_ON bits; 0 copies nothing */
const volatile __u32 l7_capture_bytes = NS_L7_CAPTURE_MAX;

/* The event is built here, not on the 512-byte stack; twice the window so that an iovec's
 * offset and length, each proven <= NS_L7_CAPTURE_MAX, always fit. */
_Static_assert((NS_L7_CAPTURE_MAX & (NS_L7_CAPTURE_MAX - 1)) == 0, "the masks need a power of 2");

struct ns_l7_scratch {
	struct ns_l7_event e;
	__u8 data[2 * NS_L7_CAPTURE_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ns_l7_scratch);
} l7_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, NS_L7_RINGBUF_BYTES);
} l7_events SEC(".maps");

/* arch/x86/entry/syscalls/syscall_64.tbl */
#define NS_NR_READ 0
#define NS_NR_WRITE 1
#define NS_NR_READV 19
#define NS_NR_WRITEV 20
#define NS_NR_SENDTO 44
#define NS_NR_RECVFROM 45
#define NS_NR_SENDMSG 46
#define NS_NR_RECVMSG 47

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
		return ns_copy_iov(dst, (const struct iovec *)buf, count, want, flags);
	case NS_NR_SENDMSG:
	case NS_NR_RECVMSG: {
		struct user_msghdr msg;

		if (bpf_probe_read_user(&msg, sizeof(msg), (const void *)buf)) {
			*flags |= NS_L7_READ_FAILED;
			return 0;
		}
		return ns_copy_iov(dst, msg.msg_iov, msg.msg_iovlen, want, flags);
	}
	default:
		*flags |= NS_L7_NOT_COPIED;
		return 0;
	}
}

static __always_inline void ns_set_l7(struct ns_conn *c, __u8 l7)
{
	c->flags = (c->flags & ~NS_CONN_L7_MASK) | (l7 << NS_CONN_L7_SHIFT);
}

/* One send (`send`) or receive of `len` bytes on the connection `c` (key `key`). */
static __always_inline void ns_l7_capture(struct ns_conn *c, const struct ns_conn_key *key,
					  __u32 len, bool send, bool btf)
{
	__u8 l7 = (c->flags & NS_CONN_L7_MASK) >> NS_CONN_L7_SHIFT;
	struct ns_l7_scratch *s;
	__u32 zero = 0, got, want;
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

	s = bpf_map_lookup_elem(&l7_scratch, &zero);
	if (!s)
		return;
	want = len < l7_capture_bytes ? len : l7_capture_bytes;
	got = ns_copy_call(s->data, want, &flags, btf);
	if (l7 == NS_L7_UNKNOWN) {
		if (got < 4)
			return; /* decided by the next call that shows four bytes */
		l7 = ns_http_start(s->data) ? NS_L7_HTTP : NS_L7_NONE;
		ns_set_l7(c, l7);
		if (l7 == NS_L7_NONE)
			return;
	} else if ((c->flags & NS_CONN_L7_MASK) >> NS_CONN_L7_SHIFT != l7) {
		ns_set_l7(c, l7);
	}

	s->e.sk = key->sk;
	s->e.peer = key->peer;
	s->e.ts_ns = bpf_ktime_get_ns();
	s->e.cgroup_id = bpf_get_current_cgroup_id();
	__builtin_memcpy(s->e.saddr, c->saddr, 16);
	__builtin_memcpy(s->e.daddr, c->daddr, 16);
	s->e.pid = bpf_get_current_pid_tgid() >> 32;
	s->e.netns = c->netns;
	s->e.len = len;
	s->e.captured = got;
	s->e.sport = c->sport;
	s->e.dport = c->dport;
	s->e.family = c->family;
	s->e.protocol = c->protocol;
	s->e.l7 = l7;
	s->e.direction = send ? NS_L7_SEND : NS_L7_RECV;
	s->e.conn_direction = c->direction;
	s->e.flags = flags;
	__builtin_memcpy(s->e.comm, c->comm, NS_TASK_COMM_LEN);
	/* got <= the window; the mask (a no-op) proves the record inside the scratch value. */
	if (bpf_ringbuf_output(&l7_events, &s->e,
			       sizeof(s->e) + (got & (2 * NS_L7_CAPTURE_MAX - 1)),
			       bpf_ringbuf_query(&l7_events, BPF_RB_AVAIL_DATA) > NS_L7_RINGBUF_BYTES / 4
				       ? BPF_RB_FORCE_WAKEUP
				       : BPF_RB_NO_WAKEUP))
		count(NS_NETFLOW_CNT_L7_RINGBUF_DROPS);
}
