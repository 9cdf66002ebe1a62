/* bpf/include/l7_tls.bpf.h: the plaintext of OpenSSL connections, for httpflow-tls. Included
 * once by netflow.bpf.c after l7_capture.bpf.h.
 *
 * Uprobes on libssl's SSL_write/SSL_read (and the _ex variants) note the call per thread; the
 * socket call OpenSSL makes inside it (sock_send_length/sock_recv_length, already hooked) tells
 * which connection the SSL object writes to, remembered per SSL object for reads served from
 * OpenSSL's buffer; the uretprobe sends the plaintext the call moved as a payload event of that
 * connection, flagged NS_L7_TLS. No OpenSSL struct layout is read. Programs tls__* are loaded
 * only with httpflow-tls on and attached by user space to the library file (every process that
 * maps it, now or later). */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf/abi/l7.h"

const volatile bool l7_tls = false;

struct ns_tls_call {
	__u64 ssl;
	__u64 buf;
	__u64 done_ptr; /* _ex: where the byte count goes; 0 for SSL_read/SSL_write */
	__u64 sk;       /* the socket a call inside touched; 0 if none */
	__u64 peer;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct ns_tls_call);
} tls_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* SSL * */
	__type(value, struct ns_conn_key);
} tls_sockets SEC(".maps");

/* From on_io: the current thread moved bytes through socket `key`; inside an SSL call that is
 * the SSL object's socket. */
static __always_inline void ns_tls_saw_socket(const struct ns_conn_key *key)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ns_tls_call *call = bpf_map_lookup_elem(&tls_calls, &id);

	if (!call)
		return;
	call->sk = key->sk;
	call->peer = key->peer;
	bpf_map_update_elem(&tls_sockets, &call->ssl, key, BPF_ANY);
}

static __always_inline int ns_tls_enter(struct pt_regs *ctx, bool ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ns_tls_call call = {
		.ssl = PT_REGS_PARM1(ctx),
		.buf = PT_REGS_PARM2(ctx),
		.done_ptr = ex ? PT_REGS_PARM4(ctx) : 0,
	};

	bpf_map_update_elem(&tls_calls, &id, &call, BPF_ANY);
	return 0;
}

static __always_inline int ns_tls_exit(struct pt_regs *ctx, bool send, bool ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ns_tls_call *call = bpf_map_lookup_elem(&tls_calls, &id);
	struct ns_conn_key key = {};
	struct ns_l7_scratch *s;
	struct ns_conn *c;
	__u32 got;
	__u8 shed;
	bool first, new_conn;
	/* SSL_read/SSL_write return an int: only eax is defined, not the upper half of rax. */
	int ret = (int)PT_REGS_RC(ctx);
	__u64 moved = 0;

	if (!call)
		return 0;
	if (!call->buf) {
		/* the handshake: only the socket was wanted */
	} else if (ex) {
		if (ret == 1 && call->done_ptr)
			bpf_probe_read_user(&moved, sizeof(moved), (const void *)call->done_ptr);
	} else if (ret > 0) {
		moved = ret;
	}
	if (call->sk) {
		key.sk = call->sk;
		key.peer = call->peer;
	} else {
		struct ns_conn_key *known = bpf_map_lookup_elem(&tls_sockets, &call->ssl);

		if (known)
			key = *known;
	}
	if (!moved || !key.sk)
		goto out;
	c = bpf_map_lookup_elem(&conns, &key);
	s = ns_l7_begin();
	if (!c || !s)
		goto out;
	first = !(c->flags & NS_CONN_TLS);
	c->flags |= NS_CONN_TLS;
	shed = ns_l7_shed_reason(c, first);
	if (shed) {
		new_conn = !(c->flags & NS_CONN_L7_SHED);
		if (!first && new_conn)
			ns_l7_shed_end(s, c, &key, 0, send, true);
		c->flags |= shed;
		ns_l7_shed_count(shed, new_conn);
		goto out;
	}
	got = moved < l7_capture_bytes ? moved : l7_capture_bytes;
	if (got > NS_L7_CAPTURE_MAX)
		got = NS_L7_CAPTURE_MAX;
	if (got && bpf_probe_read_user(s->data, got, (const void *)call->buf))
		goto out;
	ns_l7_header(&s->e, c, &key, moved, got, NS_L7_HTTP, send ? NS_L7_SEND : NS_L7_RECV,
		     NS_L7_TLS);
	s->e.offset = 0; /* offsets are of the ciphertext stream: meaningless here */
	ns_l7_send(s, got);
out:
	bpf_map_delete_elem(&tls_calls, &id);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(tls__ssl_write)
{
	return ns_tls_enter(ctx, false);
}

SEC("uretprobe")
int BPF_KRETPROBE(tls__ssl_write_ret)
{
	return ns_tls_exit(ctx, true, false);
}

SEC("uprobe")
int BPF_KPROBE(tls__ssl_write_ex)
{
	return ns_tls_enter(ctx, true);
}

SEC("uretprobe")
int BPF_KRETPROBE(tls__ssl_write_ex_ret)
{
	return ns_tls_exit(ctx, true, true);
}

SEC("uprobe")
int BPF_KPROBE(tls__ssl_read)
{
	return ns_tls_enter(ctx, false);
}

SEC("uretprobe")
int BPF_KRETPROBE(tls__ssl_read_ret)
{
	return ns_tls_exit(ctx, false, false);
}

SEC("uprobe")
int BPF_KPROBE(tls__ssl_read_ex)
{
	return ns_tls_enter(ctx, true);
}

SEC("uretprobe")
int BPF_KRETPROBE(tls__ssl_read_ex_ret)
{
	return ns_tls_exit(ctx, false, true);
}

/* The handshake reads and writes the socket too: an SSL object whose first SSL_read is served
 * from what the handshake already buffered (a server's first request) is matched here. */
SEC("uprobe")
int BPF_KPROBE(tls__ssl_do_handshake)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ns_tls_call call = {.ssl = PT_REGS_PARM1(ctx)};

	bpf_map_update_elem(&tls_calls, &id, &call, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(tls__ssl_do_handshake_ret)
{
	return ns_tls_exit(ctx, false, false);
}
