// SPDX-License-Identifier: GPL-2.0
/* Interactive bash: every line readline() returns, from a uretprobe on each bash binary.
 *
 * The program has no target of its own (SEC("uretprobe")): user space attaches it once per bash
 * executable file it finds (per inode), with pid -1, which covers every process mapping that
 * file, on readline_internal_teardown() (whose return value readline() returns; the call starts
 * at Enter, so a shell already waiting in readline() when the probe is attached is covered) or,
 * where the binary lacks that symbol, on readline() itself (sensor/plugins/bash/probe.h). Its
 * strategy is "uprobe" (programs are named <strategy>__<hook>, see sensor/bpf/strategy.h); there
 * is no alternative hook into a user-space function. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf/abi/bash.h"

#define NS_COUNTERS_MAX NS_BASH_CNT_MAX
#include "counters.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, NS_BASH_RINGBUF_BYTES);
} events SEC(".maps");

/* Which attachment speaks for a thread. User space attaches once per file as stat() shows it,
 * but the kernel puts a uprobe on the real inode (d_real_inode()): containers started from one
 * image show their shared bash through different overlayfs mounts (different st_dev), and
 * every attachment on that file fires for every return. The first attachment (bpf cookie) seen
 * in a thread's current program keeps its lines; the others count a duplicate. */
struct ns_bash_owner {
	__u64 cookie;
	__u64 start_time;   /* task->start_time: a reused tid is another thread */
	__u64 self_exec_id; /* bumped by every exec: another program in the same thread */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NS_BASH_OWNERS);
	__type(key, __u32);
	__type(value, struct ns_bash_owner);
} owners SEC(".maps");

static __always_inline bool owns_line(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct ns_bash_owner now = {
		.cookie = bpf_get_attach_cookie(ctx),
		.start_time = BPF_CORE_READ(task, start_time),
		.self_exec_id = BPF_CORE_READ(task, self_exec_id),
	};
	struct ns_bash_owner *owner = bpf_map_lookup_elem(&owners, &tid);

	if (owner && owner->start_time == now.start_time &&
	    owner->self_exec_id == now.self_exec_id)
		return owner->cookie == now.cookie;
	/* A full map evicts the oldest thread: at worst a line is sent twice, never lost. */
	bpf_map_update_elem(&owners, &tid, &now, BPF_ANY);
	return true;
}

/* __noinline keeps struct ns_bash_event in the object's BTF, which bpf/abi/bash_abi_test.cc
 * compares with the C++ layout. */
static __noinline int fill_task(struct ns_bash_event *e)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct tty_struct *tty = BPF_CORE_READ(task, signal, tty);
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->flags = 0;
	e->tty[0] = '\0';
	if (tty)
		bpf_probe_read_kernel_str(e->tty, sizeof(e->tty), &tty->name);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(uprobe__readline_ret, const char *line)
{
	struct ns_bash_event *e;
	char first = 0;
	long n;

	/* NULL (end of input) and "" (an empty Enter) are not lines anyone typed. */
	if (!line || bpf_probe_read_user(&first, 1, line) != 0 || first == '\0')
		return 0;
	if (!owns_line(ctx)) {
		count(NS_BASH_CNT_DUPLICATE);
		return 0;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(NS_BASH_CNT_RINGBUF_DROPS);
		return 0;
	}
	fill_task(e);
	/* One byte more than kept: a full read says the line went on past NS_BASH_LINE_MAX only
	 * when that byte is not the end. */
	n = bpf_probe_read_user_str(e->line, NS_BASH_LINE_MAX + 1, line);
	if (n <= 1) {
		count(NS_BASH_CNT_READ_FAILED);
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	if (n == NS_BASH_LINE_MAX + 1) {
		e->length = NS_BASH_LINE_MAX;
		e->line[NS_BASH_LINE_MAX] = '\0';
		if (bpf_probe_read_user(&first, 1, line + NS_BASH_LINE_MAX) == 0 && first != '\0')
			e->flags |= NS_BASH_TRUNCATED;
	} else {
		e->length = n - 1;
	}
	/* Lines are rare (typed by people): wake the reader for each, so it is logged at once. */
	bpf_ringbuf_submit(e, 0);
	return 0;
}
