// SPDX-License-Identifier: GPL-2.0
/* L4 connection statistics: one `conns` entry per TCP or UDP socket, updated in place; user space
 * reads the map once per interval and takes deltas, and gets each TCP socket's final counters
 * from the ring buffer when it closes.
 *
 * Hooks (stable tracepoints for tp_btf and tracepoint, socket functions for fentry; programs are
 * named <strategy>__<hook>, see sensor/bpf/strategy.h):
 *   inet_sock_set_state  TCP lifecycle: SYN_SENT (connect, in the caller's context: pid),
 *                        ESTABLISHED (tuple, direction), CLOSE (final counters).
 *   sock_send_length,    every sendmsg/recvmsg on a socket (Linux 6.3+): bytes, the pid of an
 *   sock_recv_length     accepted socket (its handshake completes in softirq, with no task),
 *                        sockets older than the sensor, UDP.
 *   tcp_retransmit_skb   keeps total_retrans current on sockets that are not being written to.
 * No syscall tracepoints: enabling one moves every syscall of every task to the slow path. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf/abi/netflow.h"

#define NS_COUNTERS_MAX NS_NETFLOW_CNT_MAX
#include "counters.bpf.h"
#include "ringbuf.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define NS_AF_INET 2
#define NS_AF_INET6 10
#define NS_MSG_PEEK 2 /* peeked bytes are read again later: counting them would double them */

const volatile bool ipv6_disabled = false;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NS_NETFLOW_MAX_CONNS);
	__type(key, struct ns_conn_key);
	__type(value, struct ns_conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NS_NETFLOW_MAX_UDP_PEERS);
	__type(key, __u64); /* socket cookie */
	__type(value, struct ns_udp_peer);
} udp_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, NS_NETFLOW_RINGBUF_BYTES);
} events SEC(".maps");

#include "l7_capture.bpf.h"
#include "l7_tls.bpf.h"


static __always_inline bool family_wanted(__u16 family)
{
	if (family == NS_AF_INET)
		return true;
	return family == NS_AF_INET6 && !ipv6_disabled;
}

static __always_inline void v4_mapped(__u8 out[16], __u32 addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr, 4);
}

/* The hot paths (every send/recv, every state change) come in two flavours, chosen at compile
 * time by a constant `btf` argument of always-inline functions: tp_btf programs get typed, trusted
 * pointers and read fields with plain loads; tracepoint programs get addresses out of the trace
 * record and must go through bpf_probe_read_kernel (BPF_CORE_READ), a helper call per field,
 * which the bench measured at ~3x the cost of the whole tp_btf run. The dead flavour is removed
 * by the compiler, so the verifier never sees a plain load from an untrusted pointer. */
#define NS_SK_READ(btf, sk, field) ((btf) ? (sk)->field : BPF_CORE_READ(sk, field))

static __always_inline void read_tuple(struct ns_conn *c, struct sock *sk, bool btf)
{
	__u16 family = NS_SK_READ(btf, sk, __sk_common.skc_family);

	if (family == NS_AF_INET) {
		v4_mapped(c->saddr, NS_SK_READ(btf, sk, __sk_common.skc_rcv_saddr));
		v4_mapped(c->daddr, NS_SK_READ(btf, sk, __sk_common.skc_daddr));
		c->family = 4;
	} else if (btf) {
		__builtin_memcpy(c->saddr, sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(c->daddr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
		c->family = 6;
	} else {
		BPF_CORE_READ_INTO(&c->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&c->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		c->family = 6;
	}
	c->sport = NS_SK_READ(btf, sk, __sk_common.skc_num);
	c->dport = bpf_ntohs(NS_SK_READ(btf, sk, __sk_common.skc_dport));
	c->netns = btf ? sk->__sk_common.skc_net.net->ns.inum
		       : BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* The process, not the thread: a worker thread's comm is its own, the record names the program. */
static __always_inline void set_task(struct ns_conn *c, bool btf)
{
	c->pid = bpf_get_current_pid_tgid() >> 32;
	c->cgroup_id = bpf_get_current_cgroup_id();
	if (btf) {
		struct task_struct *task = bpf_get_current_task_btf();

		__builtin_memcpy(c->comm, task->group_leader->comm, sizeof(c->comm));
	} else {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		struct task_struct *leader = BPF_CORE_READ(task, group_leader);

		BPF_CORE_READ_STR_INTO(&c->comm, leader, comm);
	}
	c->flags |= NS_CONN_PID_SET;
}

static __always_inline void read_tcp_stats(struct ns_conn *c, struct sock *sk, bool btf)
{
	if (btf) {
		/* A cast would not change the verifier's idea of the type: ask for the tcp_sock. */
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

		if (!tp)
			return;
		c->srtt_us = tp->srtt_us >> 3; /* stored << 3 (tcp_rtt_estimator) */
		c->mdev_us = tp->mdev_us >> 2; /* stored << 2 */
		c->total_retrans = tp->total_retrans;
	} else {
		struct tcp_sock *tp = (struct tcp_sock *)sk;

		c->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
		c->mdev_us = BPF_CORE_READ(tp, mdev_us) >> 2;
		c->total_retrans = BPF_CORE_READ(tp, total_retrans);
	}
}

static __always_inline struct ns_conn *insert(struct ns_conn_key *key, struct ns_conn *fresh)
{
	long err = bpf_map_update_elem(&conns, key, fresh, BPF_NOEXIST);

	if (err && err != -17 /* EEXIST: another CPU inserted it first */)
		count(NS_NETFLOW_CNT_MAP_FULL);
	return bpf_map_lookup_elem(&conns, key);
}

/* __noinline keeps struct ns_conn_close in the object's BTF, which bpf/abi/netflow_abi_test.cc
 * compares with the C++ layout. */
static __noinline int fill_close(struct ns_conn_close *e, __u64 sk, __u64 peer, struct ns_conn *c)
{
	e->sk = sk;
	e->peer = peer;
	e->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(&e->conn, c, sizeof(e->conn));
	return 0;
}

/* Removes the entry `c` of `key`, telling user space its final counters (a full ring is
 * counted): user space would otherwise see the entry vanish, with what it counted since the
 * last walk, or never see it at all. */
static __always_inline void end_entry(struct ns_conn_key *key, struct ns_conn *c)
{
	struct ns_conn_close *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (e) {
		fill_close(e, key->sk, key->peer, c);
		bpf_ringbuf_submit(e, ns_lazy_wakeup(&events, NS_NETFLOW_RINGBUF_BYTES, sizeof(*e)));
	} else {
		count(NS_NETFLOW_CNT_RINGBUF_DROPS);
	}
	bpf_map_delete_elem(&conns, key);
}

static __always_inline int on_state(struct sock *sk, __u16 protocol, int oldstate, int newstate,
				    bool btf)
{
	struct ns_conn_key key = {.sk = (__u64)sk};
	struct ns_conn *c;

	/* Ten transitions per connection, half of them of no interest: leave before any read. */
	if (newstate != TCP_SYN_SENT && newstate != TCP_ESTABLISHED && newstate != TCP_FIN_WAIT1 &&
	    newstate != TCP_LAST_ACK && newstate != TCP_CLOSE)
		return 0;
	if (protocol != IPPROTO_TCP || !family_wanted(NS_SK_READ(btf, sk, __sk_common.skc_family)))
		return 0;

	if (newstate == TCP_SYN_SENT) {
		/* connect(): the caller's context. The source port may not be chosen yet
		 * (tcp_v4_connect sets the state before inet_hash_connect), so the tuple is read
		 * again at ESTABLISHED. */
		struct ns_conn fresh = {};

		fresh.start_ns = bpf_ktime_get_ns();
		fresh.protocol = IPPROTO_TCP;
		fresh.direction = NS_CONN_DIR_OUTGOING;
		read_tuple(&fresh, sk, btf);
		set_task(&fresh, btf);
		/* An entry already here was left by an earlier socket at this address whose end was
		 * not seen: it ends now, with its counters, rather than being overwritten. */
		c = bpf_map_lookup_elem(&conns, &key);
		if (c)
			end_entry(&key, c);
		bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY);
		return 0;
	}

	if (newstate == TCP_ESTABLISHED) {
		c = bpf_map_lookup_elem(&conns, &key);
		/* A UDP socket's entry outlives it (UDP has no close to see): a TCP socket at its
		 * address starts over. */
		if (c && c->protocol != IPPROTO_TCP) {
			end_entry(&key, c);
			c = NULL;
		}
		if (!c) {
			/* Passive open (SYN_RECV -> ESTABLISHED, in softirq: no task to name yet), or
			 * an active one whose connect() predates the probe. */
			struct ns_conn fresh = {};

			fresh.start_ns = bpf_ktime_get_ns();
			fresh.protocol = IPPROTO_TCP;
			fresh.direction = oldstate == TCP_SYN_RECV ? NS_CONN_DIR_INCOMING
								   : NS_CONN_DIR_OUTGOING;
			c = insert(&key, &fresh);
			if (!c)
				return 0;
		}
		read_tuple(c, sk, btf);
		c->flags |= NS_CONN_ESTABLISHED;
		ns_l7_pair(c, &key);
		return 0;
	}

	if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK) {
		/* close() or shutdown(): the owner's context. An accepted socket closed without one
		 * byte read or written gets its process here. */
		c = bpf_map_lookup_elem(&conns, &key);
		if (c && !(c->flags & NS_CONN_PID_SET))
			set_task(c, btf);
		return 0;
	}

	if (newstate == TCP_CLOSE) {
		c = bpf_map_lookup_elem(&conns, &key);
		if (!c)
			return 0;
		read_tcp_stats(c, sk, btf);
		if (l7_capture)
			ns_l7_closed(c, &key);
		end_entry(&key, c);
	}
	return 0;
}

static __always_inline bool tcp_has_data_state(struct sock *sk, bool btf)
{
	int state = NS_SK_READ(btf, sk, __sk_common.skc_state);

	return state == TCP_ESTABLISHED || state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 ||
	       state == TCP_CLOSE_WAIT || state == TCP_CLOSING || state == TCP_LAST_ACK;
}

/* An entry left by a closed socket whose memory a new socket now has. TCP entries go at CLOSE,
 * but UDP sockets have no close to see, so a UDP entry stays until user space finds it idle: a
 * new socket at that address shows as a different protocol or local port, or for a connected
 * UDP socket a different remote port. */
static __always_inline bool stale(const struct ns_conn *c, struct sock *sk, __u16 protocol,
				  bool btf)
{
	__u16 dport;

	if (c->protocol != protocol)
		return true;
	if (protocol != IPPROTO_UDP)
		return false;
	if (c->sport != NS_SK_READ(btf, sk, __sk_common.skc_num))
		return true;
	dport = bpf_ntohs(NS_SK_READ(btf, sk, __sk_common.skc_dport));
	return dport != 0 && c->dport != 0 && dport != c->dport;
}

/* A peer's id in struct ns_conn_key: exact for IPv4, a 63-bit mix for IPv6 (top bit clear, so
 * the two never meet; never 0, which means "no peer"). */
static __always_inline __u64 peer_id(const struct ns_udp_peer *p)
{
	__u64 hi, lo, mixed;

	if (p->addr[10] == 0xff && p->addr[11] == 0xff && !p->addr[0] && !p->addr[8]) {
		__u32 v4;

		__builtin_memcpy(&v4, p->addr + 12, 4);
		return (1ULL << 63) | ((__u64)v4 << 16) | p->port;
	}
	__builtin_memcpy(&hi, p->addr, 8);
	__builtin_memcpy(&lo, p->addr + 8, 8);
	mixed = (hi * 0x9e3779b97f4a7c15ULL) ^ (lo * 0xc2b2ae3d27d4eb4fULL) ^ p->port;
	mixed ^= mixed >> 29;
	return (mixed & ~(1ULL << 63)) | 1;
}

static __always_inline int on_io(struct sock *sk, __u16 family, __u16 protocol, int ret, int flags,
				 bool send, bool btf)
{
	struct ns_conn_key key = {.sk = (__u64)sk};
	struct ns_udp_peer *peer = NULL;
	struct ns_conn *c;

	if (ret <= 0 || (!send && (flags & NS_MSG_PEEK)))
		return 0;
	if ((protocol != IPPROTO_TCP && protocol != IPPROTO_UDP) || !family_wanted(family))
		return 0;
	if (protocol == IPPROTO_UDP && NS_SK_READ(btf, sk, __sk_common.skc_dport) == 0) {
		/* Unconnected: the peer of this very call, left by the cgroup hook just before. */
		__u64 cookie = NS_SK_READ(btf, sk, __sk_common.skc_cookie.counter);

		if (cookie)
			peer = bpf_map_lookup_elem(&udp_peers, &cookie);
		if (peer)
			key.peer = peer_id(peer);
	}

	c = bpf_map_lookup_elem(&conns, &key);
	if (c && stale(c, sk, protocol, btf)) {
		end_entry(&key, c);
		c = NULL;
	}
	if (!c) {
		struct ns_conn fresh = {};

		if (protocol == IPPROTO_TCP) {
			/* A connection older than the probe: count from now on. */
			if (!tcp_has_data_state(sk, btf))
				return 0;
			fresh.flags = NS_CONN_PREEXISTING;
			read_tcp_stats(&fresh, sk, btf);
			fresh.retrans_base = fresh.total_retrans;
		} else {
			/* UDP has no handshake: who sent first initiated. */
			fresh.direction = send ? NS_CONN_DIR_OUTGOING : NS_CONN_DIR_INCOMING;
		}
		fresh.start_ns = bpf_ktime_get_ns();
		fresh.protocol = protocol;
		read_tuple(&fresh, sk, btf);
		if (peer) {
			__builtin_memcpy(fresh.daddr, peer->addr, 16);
			fresh.dport = peer->port;
		}
		set_task(&fresh, btf);
		c = insert(&key, &fresh);
		if (!c)
			return 0;
	} else if (!(c->flags & NS_CONN_PID_SET)) {
		set_task(c, btf);
	}
	/* A UDP socket connect()ed after its first datagram (socat's UDP-LISTEN does this). */
	if (protocol == IPPROTO_UDP && !key.peer && c->dport == 0)
		read_tuple(c, sk, btf);

	if (send)
		__sync_fetch_and_add(&c->bytes_written, ret);
	else
		__sync_fetch_and_add(&c->bytes_read, ret);
	if (protocol == IPPROTO_TCP)
		read_tcp_stats(c, sk, btf);
	if (l7_tls && protocol == IPPROTO_TCP)
		ns_tls_saw_socket(&key);
	if (l7_capture)
		ns_l7_capture(c, &key, ret, send, btf);
	return 0;
}

static __always_inline int on_retransmit(struct sock *sk, bool btf)
{
	struct ns_conn_key key = {.sk = (__u64)sk};
	struct ns_conn *c = bpf_map_lookup_elem(&conns, &key);

	if (c)
		read_tcp_stats(c, sk, btf);
	return 0;
}

/* ---- fentry: the first choice where BPF trampolines are allowed (not here: lockdown refuses
 * them). The byte hooks are the socket functions themselves, as the reference collector's
 * kprobes, so kernels before 6.3 (no sock_*_length tracepoints) are covered; lifecycle and
 * retransmissions keep their tracepoints. ---- */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(fentry__inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	return on_state(sk, sk->sk_protocol, oldstate, newstate, true);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(fentry__tcp_retransmit_skb, struct sock *sk)
{
	return on_retransmit(sk, true);
}

SEC("fexit/tcp_sendmsg")
int BPF_PROG(fentry__tcp_sendmsg, struct sock *sk, struct msghdr *msg, size_t size, int ret)
{
	return on_io(sk, sk->__sk_common.skc_family, IPPROTO_TCP, ret, 0, true, true);
}

/* tcp_recvmsg hands the bytes it copied to user space here (also what tcptop counts). */
SEC("fentry/tcp_cleanup_rbuf")
int BPF_PROG(fentry__tcp_cleanup_rbuf, struct sock *sk, int copied)
{
	return on_io(sk, sk->__sk_common.skc_family, IPPROTO_TCP, copied, 0, false, true);
}

SEC("fexit/udp_sendmsg")
int BPF_PROG(fentry__udp_sendmsg, struct sock *sk, struct msghdr *msg, size_t len, int ret)
{
	return on_io(sk, sk->__sk_common.skc_family, IPPROTO_UDP, ret, 0, true, true);
}

SEC("fexit/udp_recvmsg")
int BPF_PROG(fentry__udp_recvmsg, struct sock *sk, struct msghdr *msg, size_t len, int flags,
	     int *addr_len, int ret)
{
	return on_io(sk, sk->__sk_common.skc_family, IPPROTO_UDP, ret, flags, false, true);
}

SEC("fexit/udpv6_sendmsg")
int BPF_PROG(fentry__udpv6_sendmsg, struct sock *sk, struct msghdr *msg, size_t len, int ret)
{
	return on_io(sk, sk->__sk_common.skc_family, IPPROTO_UDP, ret, 0, true, true);
}

SEC("fexit/udpv6_recvmsg")
int BPF_PROG(fentry__udpv6_recvmsg, struct sock *sk, struct msghdr *msg, size_t len, int flags,
	     int *addr_len, int ret)
{
	return on_io(sk, sk->__sk_common.skc_family, IPPROTO_UDP, ret, flags, false, true);
}

/* ---- tp_btf: typed arguments (Linux 5.5+; sock_*_length need 6.3) ---- */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_btf__inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	return on_state(sk, sk->sk_protocol, oldstate, newstate, true);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tp_btf__sock_send_length, struct sock *sk, int ret, int flags)
{
	return on_io(sk, sk->__sk_common.skc_family, sk->sk_protocol, ret, flags, true, true);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_btf__sock_recv_length, struct sock *sk, int ret, int flags)
{
	return on_io(sk, sk->__sk_common.skc_family, sk->sk_protocol, ret, flags, false, true);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tp_btf__tcp_retransmit_skb, struct sock *sk)
{
	return on_retransmit(sk, true);
}

/* ---- tracepoint: the trace records, read through CO-RE ---- */

SEC("tracepoint/sock/inet_sock_set_state")
int tracepoint__inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	return on_state((struct sock *)ctx->skaddr, ctx->protocol, ctx->oldstate, ctx->newstate,
			false);
}

SEC("tracepoint/sock/sock_send_length")
int tracepoint__sock_send_length(struct trace_event_raw_sock_msg_length *ctx)
{
	return on_io((struct sock *)ctx->sk, ctx->family, ctx->protocol, ctx->ret, ctx->flags, true,
		     false);
}

SEC("tracepoint/sock/sock_recv_length")
int tracepoint__sock_recv_length(struct trace_event_raw_sock_msg_length *ctx)
{
	return on_io((struct sock *)ctx->sk, ctx->family, ctx->protocol, ctx->ret, ctx->flags,
		     false, false);
}

/* The record was struct trace_event_raw_tcp_event_sk_skb (shared with tcp_send_reset) until the
 * tracepoint got its own class with `err` (Linux 6.x); skaddr is read by name either way. */
SEC("tracepoint/tcp/tcp_retransmit_skb")
int tracepoint__tcp_retransmit_skb(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	return on_retransmit((struct sock *)ctx->skaddr, false);
}

/* ---- cgroup: strategy-independent helpers (Linux 4.18+), attached to the cgroup v2 root ----
 * An unconnected UDP socket's peer is in the msghdr, which sock_*_length do not see; these hooks
 * run inside the same sendmsg/recvmsg (only for unconnected UDP sockets) just before, and leave
 * the peer by socket cookie. They never change the address and always allow the call. */

static __always_inline int remember_peer(struct bpf_sock_addr *ctx, bool v6)
{
	struct ns_udp_peer p = {};
	__u64 cookie = bpf_get_socket_cookie(ctx);

	if (v6) {
		__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2],
		      w3 = ctx->user_ip6[3];

		__builtin_memcpy(p.addr, &w0, 4);
		__builtin_memcpy(p.addr + 4, &w1, 4);
		__builtin_memcpy(p.addr + 8, &w2, 4);
		__builtin_memcpy(p.addr + 12, &w3, 4);
	} else {
		v4_mapped(p.addr, ctx->user_ip4);
	}
	p.port = bpf_ntohs((__u16)ctx->user_port);
	bpf_map_update_elem(&udp_peers, &cookie, &p, BPF_ANY);
	return 1;
}

/* Sends this CPU's batch of L7 events to its ring (l7_capture.bpf.h): never attached, run by user
 * space on every CPU (BPF_PROG_TEST_RUN with BPF_F_TEST_RUN_ON_CPU) before each read, in an
 * interrupt on that CPU. */
SEC("raw_tp")
int flush__l7(void *ctx)
{
	ns_l7_flush_batch();
	return 0;
}

SEC("cgroup/sendmsg4")
int cgroup__udp_sendmsg4(struct bpf_sock_addr *ctx)
{
	return remember_peer(ctx, false);
}

SEC("cgroup/recvmsg4")
int cgroup__udp_recvmsg4(struct bpf_sock_addr *ctx)
{
	return remember_peer(ctx, false);
}

SEC("cgroup/sendmsg6")
int cgroup__udp_sendmsg6(struct bpf_sock_addr *ctx)
{
	return remember_peer(ctx, true);
}

SEC("cgroup/recvmsg6")
int cgroup__udp_recvmsg6(struct bpf_sock_addr *ctx)
{
	return remember_peer(ctx, true);
}
