/* bpf/abi/l7.h: what the ebpf-net probe (bpf/progs/netflow.bpf.c, bpf/include/l7_capture.bpf.h)
 * hands to user space of socket payload, for the httpflow and dnsflow parsers. Plain C. */
#pragma once

#include "bpf/abi/netflow.h"

/* The most bytes one event carries of one send or receive call; the call's full length is in
 * the event, so a parser knows how many bytes it did not see. 4 KiB holds the headers of almost
 * every HTTP request and response, and any DNS message over UDP (RFC 1035 4.2.1: 512 B, EDNS
 * usually 1232 B). */
#define NS_L7_CAPTURE_MAX 4096
/* Events between two polls (100 ms), in a ring per possible CPU (l7_capture.bpf.h) of
 * NS_L7_RINGBUF_BYTES / CPUs, a power of two between NS_L7_RING_MIN_BYTES and
 * NS_L7_RING_MAX_BYTES. The reader is woken early once a quarter of one is used. */
#define NS_L7_RINGBUF_BYTES (16 << 20)
#define NS_L7_RING_MIN_BYTES (256 << 10)
#define NS_L7_RING_MAX_BYTES (4 << 20)
/* Events go to the rings in batches per CPU of at least this many bytes, or fewer when user space
 * flushes them before a read (l7_capture.bpf.h); each is an item of the batch: its length (u32),
 * 4 zero bytes, the event, padded to 8 bytes. */
#define NS_L7_BATCH_BYTES 8192
#define NS_L7_ITEM_HDR 8
/* iovec entries of one readv/writev/sendmsg/recvmsg looked at: nginx writes a chunked
 * response as headers, then size line, data and CRLF per chunk, then the last chunk, in one
 * writev; 16 entries hold a head and four chunks. */
#define NS_L7_MAX_IOV 16

/* What a connection carries, kept in the NS_CONN_L7_* bits of struct ns_conn.flags: decided on
 * its first payload, so a connection that is neither costs one map lookup per call after it. */
enum ns_l7_protocol {
	NS_L7_UNKNOWN = 0, /* no payload seen yet */
	NS_L7_HTTP = 1,    /* began with an HTTP/1.x request or status line */
	NS_L7_DNS = 2,     /* port 53 on either side, UDP or TCP */
	NS_L7_NONE = 3,    /* anything else: not captured */
};
#define NS_CONN_L7_SHIFT 3
#define NS_CONN_L7_MASK (3 << NS_CONN_L7_SHIFT)
/* struct ns_conn.flags: OpenSSL plaintext of this connection was sent (its close is said too). */
#define NS_CONN_TLS (1 << 5)

/* struct ns_conn.flags: the connection's HTTP payload is not copied, for a resource limit
 * (struct ns_l7_limit), until it closes; with NS_CONN_L7_SAMPLED_OUT sampling left it out, else
 * the l7_payload step did. */
#define NS_CONN_L7_SHED (1 << 6)
#define NS_CONN_L7_SAMPLED_OUT (1 << 7)

/* Bits of the probe's read-only `l7_capture`: which protocols to copy payload of. */
#define NS_L7_HTTP_ON 1
#define NS_L7_DNS_ON 2

enum ns_l7_direction {
	NS_L7_SEND = 0, /* the local process wrote the bytes */
	NS_L7_RECV = 1, /* the local process read them */
};

enum ns_l7_event_flag {
	/* The call's bytes were not in user memory (sendfile, splice, io_uring) or came through a
	 * call the probe does not read: only the length is known. Such calls on an HTTP
	 * connection are not reported at all: the next event's offset, or the close's totals,
	 * say the same. */
	NS_L7_NOT_COPIED = 1 << 0,
	/* The user buffer could not be read (paged out, or freed by another thread). */
	NS_L7_READ_FAILED = 1 << 1,
	/* Not a call: the TCP connection closed (len and captured are 0; offset is what the
	 * socket read in all, sent what it sent). */
	NS_L7_CLOSED = 1 << 2,
	/* Only body bytes, as user space said (struct ns_l7_skip): not copied. */
	NS_L7_SKIPPED = 1 << 3,
	/* Plaintext of an OpenSSL SSL_read/SSL_write on the connection; len is what the call
	 * moved, offset is 0. A separate stream from the connection's own (ciphertext) bytes. */
	NS_L7_TLS = 1 << 4,
	/* With NS_L7_CLOSED: the connection is open, but its capture ends here for a resource
	 * limit (l7_payload shed); offset and sent are its totals before the first call not
	 * copied, so user space ends the stream as at a close. */
	NS_L7_SHED = 1 << 5,
	/* A loopback client's first call, whose bytes are not sent: the local server socket in
	 * `peer` gets the same bytes at the same offsets, and user space takes this side's
	 * exchanges from that socket's parse. The client's later calls make no event: they keep
	 * the start of their latest run in each direction (struct ns_conn.l7_run_*), which its
	 * server's receives carry (`runs`), and user space places the exchanges in this side's
	 * time by them. */
	NS_L7_MIRROR = 1 << 6,
	/* A loopback server's call (copied as usual) whose client mirrors it: user space keeps its
	 * exchanges for that client, whichever of the two it hears from first. */
	NS_L7_MIRRORED = 1 << 7,
};

/* Value of the probe's one-entry array `l7_limit`, written by user space while it sheds load
 * for resource limits (sensor/limits/). DNS is never shed: its messages are small, and dnsflow
 * and every record's dst_domain depend on it. */
struct ns_l7_limit {
	__u32 payload_off; /* nonzero: no HTTP payload copied; captured connections end (NS_L7_SHED) */
	__u32 keep_one_in; /* > 1: the payload of 1 in this many new HTTP connections is copied */
};

/* Value of `l7_skip`, by struct ns_conn_key, written by user space: the parser knows from a
 * Content-Length or chunk size that the bytes up to until[direction] (an offset in the socket's
 * bytes_written / bytes_read) are body, so calls that end before it are not copied. */
struct ns_l7_skip {
	__u64 until[2]; /* [enum ns_l7_direction] */
	__u64 start_ns; /* ns_conn.start_ns of the connection meant: a hint that arrives after its
			 * socket closed must not apply to a new socket at the same address */
};

/* A mirroring client's latest run in each direction, [0] sends and [1] receives (struct
 * ns_conn.l7_run_*), with what it had sent and read in all, read before them: a run of
 * direction d covers the bytes [off[d], moved[d]) at most. ts 0: no run, or one being
 * rewritten when it was read. */
struct ns_l7_runs {
	__u64 ts[2];
	__u64 off[2];
	__u64 moved[2];
};

/* One send or receive on a connection of interest; a ring buffer record of
 * sizeof(struct ns_l7_event) + captured bytes, the payload right after the header. */
struct ns_l7_event {
	__u64 sk;        /* struct sock address: the connection, as in struct ns_conn_key */
	union {
		__u64 peer; /* ns_conn_key.peer: the peer of an unconnected UDP socket, else 0;
			     * NS_L7_MIRROR: the local server socket (its sk) */
		__u64 sent; /* NS_L7_CLOSED (TCP only, so no peer): bytes the socket sent in all */
	};
	__u64 ts_ns;     /* bpf_ktime_get_ns() when the call returned its bytes */
	__u64 cgroup_id; /* of the task that named the connection (ns_conn.cgroup_id) */
	__u8 saddr[16];  /* local; IPv4 as v4-mapped IPv6 */
	__u8 daddr[16];  /* remote */
	__u32 pid;       /* tgid of the calling task */
	__u32 netns;
	__u32 len;       /* bytes the call moved */
	__u32 captured;  /* bytes of payload in this record, at most NS_L7_CAPTURE_MAX */
	__u16 sport;     /* host order */
	__u16 dport;
	__u8 family;     /* 4 or 6 */
	__u8 protocol;   /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 l7;         /* enum ns_l7_protocol */
	__u8 direction;  /* enum ns_l7_direction */
	__u8 conn_direction; /* enum ns_conn_direction of the connection */
	__u8 flags;      /* enum ns_l7_event_flag */
	__u8 pad[6];
	__u64 offset;    /* bytes this socket had moved in this direction before the call */
	__u64 conn_start_ns; /* ns_conn.start_ns: tells this socket from a later one at its address */
	__u8 comm[NS_TASK_COMM_LEN];
	/* On a mirroring client's server's receives (NS_L7_MIRRORED, NS_L7_RECV) and on the
	 * client's own close: that client's runs. 0 on every other event. */
	struct ns_l7_runs runs;
};

/* Counters of the l7 part share the probe's per-CPU array, after netflow's slots. */

#ifdef __cplusplus
static_assert(sizeof(struct ns_l7_event) == 176, "ns_l7_event layout changed");
static_assert(sizeof(struct ns_l7_skip) == 24, "ns_l7_skip layout changed");
static_assert(sizeof(struct ns_l7_limit) == 8, "ns_l7_limit layout changed");
#else
_Static_assert(sizeof(struct ns_l7_event) == 176, "ns_l7_event layout changed");
_Static_assert(sizeof(struct ns_l7_skip) == 24, "ns_l7_skip layout changed");
_Static_assert(sizeof(struct ns_l7_limit) == 8, "ns_l7_limit layout changed");
#endif
