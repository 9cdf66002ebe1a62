/* bpf/abi/netflow.h: what bpf/progs/netflow.bpf.c hands to sensor/plugins/netflow. Plain C,
 * shared by the BPF program and C++; sizes are asserted on both sides and every offset is
 * checked against the object's BTF (bpf/abi/netflow_abi_test.cc). */
#pragma once

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#ifndef NS_TASK_COMM_LEN
#define NS_TASK_COMM_LEN 16 /* TASK_COMM_LEN in include/linux/sched.h */
#endif

/* Live sockets tracked at once. An entry is 152 bytes (+ key and hash overhead), so 65536 cost 14.5 MiB of locked memory;
 * beyond that the LRU evicts the least recently used socket, which user space counts. */
#define NS_NETFLOW_MAX_CONNS 65536
/* Remote addresses of unconnected UDP sockets' last sendmsg/recvmsg, by socket cookie. */
#define NS_NETFLOW_MAX_UDP_PEERS 16384
/* Close events (128 B + 8 B header) between two polls (100 ms): 4 MiB holds ~30,000, i.e.
 * 300,000 closes/s; the reader is woken early once a quarter is used. */
#define NS_NETFLOW_RINGBUF_BYTES (4 << 20)

enum ns_conn_direction {
	NS_CONN_DIR_UNKNOWN = 0, /* first seen mid-life (older than the sensor): user space decides */
	NS_CONN_DIR_OUTGOING = 1,
	NS_CONN_DIR_INCOMING = 2,
};

enum ns_conn_flag {
	NS_CONN_ESTABLISHED = 1 << 0, /* reached ESTABLISHED while the probe was attached */
	NS_CONN_PREEXISTING = 1 << 1, /* first seen on a send/recv, not at its handshake */
	NS_CONN_PID_SET = 1 << 2,     /* pid/comm/cgroup come from a task that used the socket */
	/* bits 3-4: enum ns_l7_protocol, 5: NS_CONN_TLS, 6-7: NS_CONN_L7_SHED* (bpf/abi/l7.h) */
};

/* Slots of the per-CPU counter array `counters`; user space sums over CPUs. */
enum ns_netflow_counter {
	NS_NETFLOW_CNT_RINGBUF_DROPS = 0, /* a close event could not be queued: its last bytes lost */
	NS_NETFLOW_CNT_MAP_FULL = 1,      /* an insert into `conns` failed */
	NS_NETFLOW_CNT_L7_RINGBUF_DROPS = 2, /* a payload event (bpf/abi/l7.h) could not be queued */
	/* Shedding for resource limits (struct ns_l7_limit): HTTP connections whose payload is not
	 * copied, and their calls not copied, by the step that left them out. */
	NS_NETFLOW_CNT_L7_SHED_CONNS_PAYLOAD = 3,
	NS_NETFLOW_CNT_L7_SHED_CONNS_SAMPLED = 4,
	NS_NETFLOW_CNT_L7_SHED_CALLS_PAYLOAD = 5,
	NS_NETFLOW_CNT_L7_SHED_CALLS_SAMPLED = 6,
	/* a payload event on a CPU the sensor has not made a ring for yet: one that came online
	 * after it started, in the second before it noticed */
	NS_NETFLOW_CNT_L7_NO_RING = 7,
	NS_NETFLOW_CNT_MAX = 8,
};

/* Key of `conns`: the socket, and for an unconnected UDP socket the peer it talked to, so a DNS
 * server's traffic is split per client. */
struct ns_conn_key {
	__u64 sk;   /* struct sock address */
	__u64 peer; /* 0; or the peer of an unconnected UDP socket: IPv4 (1 << 63 | addr << 16 |
		     * port), exact; IPv6 a 63-bit hash of address and port */
};

/* What the cgroup sendmsg/recvmsg hooks saw of an unconnected UDP socket's peer. */
struct ns_udp_peer {
	__u8 addr[16]; /* IPv4 as v4-mapped IPv6 */
	__u16 port;    /* host order */
	__u8 pad[6];
};

/* One socket, keyed in `conns` by struct ns_conn_key. Byte counters are what the applications
 * passed through the socket calls (sendmsg/recvmsg and everything built on them: read, write,
 * sendfile, splice to a socket), which is what the reference's tcp_sendmsg/tcp_cleanup_rbuf
 * kprobes count: payload only, no headers, no retransmitted copies. */
struct ns_conn {
	__u64 start_ns;      /* bpf_ktime_get_ns() at creation: tells a reused address apart */
	__u64 cgroup_id;     /* cgroup v2 id of the task that set pid */
	__u64 bytes_read;    /* atomically added */
	__u64 bytes_written; /* atomically added */
	__u8 saddr[16];      /* local; IPv4 as v4-mapped IPv6 */
	__u8 daddr[16];      /* remote */
	__u32 total_retrans; /* tcp_sock.total_retrans, last read */
	__u32 retrans_base;  /* total_retrans when a preexisting socket was first seen */
	__u32 srtt_us;       /* tcp_sock.srtt_us >> 3: smoothed RTT, µs */
	__u32 mdev_us;       /* tcp_sock.mdev_us >> 2: RTT mean deviation, µs */
	__u32 pid;           /* tgid of the task that connected or first used the socket */
	__u32 netns;         /* inode of the socket's network namespace */
	__u16 sport;         /* local port, host order */
	__u16 dport;         /* remote port, host order */
	__u8 family;         /* 4 or 6 (of the socket; a v4-mapped IPv6 socket says 6) */
	__u8 protocol;       /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 direction;      /* enum ns_conn_direction */
	__u8 flags;          /* enum ns_conn_flag */
	__u8 comm[NS_TASK_COMM_LEN]; /* the process's (group leader's) comm */
	/* HTTP capture of a loopback pair (bpf/include/l7_capture.bpf.h): 0 undecided, 1 its
	 * payload is copied; a client's: the address of the local server socket whose copy it uses;
	 * a server's: its client's address | 1, that client mirrors it. */
	__u64 l7_peer;
	/* A mirroring client's latest run of sends [0] and of receives [1] (calls in one direction
	 * with none in the other between): bpf_ktime_get_ns() at its first call (0 while it is
	 * being rewritten) and the socket offset that call began at. */
	__u64 l7_run_ts[2];
	__u64 l7_run_off[2];
};

/* Ring buffer record: a socket's entry left `conns` with its final counters: a TCP socket went
 * to CLOSE, or a UDP entry was replaced by a new socket at its address (UDP has no close to see).
 * `sk` and `peer` are its key (struct ns_conn_key). */
struct ns_conn_close {
	__u64 sk;
	__u64 peer;
	__u64 ts_ns;
	struct ns_conn conn;
};

#ifdef __cplusplus
static_assert(sizeof(struct ns_conn_key) == 16, "ns_conn_key layout changed");
static_assert(sizeof(struct ns_udp_peer) == 24, "ns_udp_peer layout changed");
static_assert(sizeof(struct ns_conn) == 152, "ns_conn layout changed");
static_assert(sizeof(struct ns_conn_close) == 176, "ns_conn_close layout changed");
#else
_Static_assert(sizeof(struct ns_conn_key) == 16, "ns_conn_key layout changed");
_Static_assert(sizeof(struct ns_udp_peer) == 24, "ns_udp_peer layout changed");
_Static_assert(sizeof(struct ns_conn) == 152, "ns_conn layout changed");
_Static_assert(sizeof(struct ns_conn_close) == 176, "ns_conn_close layout changed");
#endif
