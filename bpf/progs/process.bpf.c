// SPDX-License-Identifier: GPL-2.0
/* Process lifecycle: exec, fork (new processes only) and exit (thread-group leader only).
 *
 * The same three hooks exist twice, one set per attach strategy; user space loads exactly one
 * set (programs are named <strategy>__<hook>, see sensor/bpf/strategy.h):
 *   tp_btf__*      BTF tracepoints (Linux 5.5+): typed task_struct arguments.
 *   tracepoint__*  classic tracepoints: the current task plus the trace record, whose layout is
 *                  read through CO-RE because it changed: sched_process_fork's comms are
 *                  __data_loc strings on recent kernels (seen on 6.18) where they were char[16],
 *                  which moves parent_pid and child_pid. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf/abi/process.h"

#define NS_COUNTERS_MAX NS_PROCESS_CNT_MAX
#include "counters.bpf.h"
#include "task.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, NS_PROCESS_RINGBUF_BYTES);
} events SEC(".maps");


static __always_inline struct ns_process_event *reserve(void)
{
	struct ns_process_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		count(NS_PROCESS_CNT_RINGBUF_DROPS);
	return e;
}

/* What every kind carries, read from the task the event is about. __noinline keeps
 * struct ns_process_event in the object's BTF, which bpf/abi/process_abi_test.cc compares with
 * the C++ layout. */
static __noinline int fill_task(struct ns_process_event *e, struct task_struct *task, __u32 kind,
				__u64 cgroup_id)
{
	e->ts_ns = bpf_ktime_get_ns();
	e->start_time_ns = BPF_CORE_READ(task, start_time);
	e->cgroup_id = cgroup_id;
	e->kind = kind;
	e->pid = BPF_CORE_READ(task, tgid);
	e->tid = BPF_CORE_READ(task, pid);
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = BPF_CORE_READ(task, real_cred, uid.val);
	e->exit_code = 0;
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	e->filename[0] = '\0';
	return 0;
}

/* Both strategies' fork hooks, once the child is known to be a new process. The tracepoint runs
 * in the parent; CLONE_INTO_CGROUP may have placed the child elsewhere, so its own cgroup counts. */
static __always_inline int emit_fork(struct task_struct *child)
{
	struct ns_process_event *e = reserve();

	if (!e)
		return 0;
	fill_task(e, child, NS_PROCESS_FORK, ns_task_cgroup_id(child));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* ---- strategy tp_btf ---- */

SEC("tp_btf/sched_process_exec")
int BPF_PROG(tp_btf__exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct ns_process_event *e = reserve();

	if (!e)
		return 0;
	fill_task(e, p, NS_PROCESS_EXEC, bpf_get_current_cgroup_id());
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(tp_btf__fork, struct task_struct *parent, struct task_struct *child)
{
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0; /* CLONE_THREAD: a thread, not a process */
	return emit_fork(child);
}

/* Both strategies' exit hooks: the exiting task is the current one. */
static __always_inline int emit_exit(struct task_struct *p)
{
	struct ns_process_event *e;

	if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
		return 0; /* a thread other than the leader; the process lives on */
	e = reserve();
	if (!e)
		return 0;
	fill_task(e, p, NS_PROCESS_EXIT, bpf_get_current_cgroup_id());
	e->exit_code = BPF_CORE_READ(p, exit_code);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(tp_btf__exit, struct task_struct *p)
{
	return emit_exit(p);
}

/* ---- strategy tracepoint ---- */

SEC("tracepoint/sched/sched_process_exec")
int tracepoint__exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	/* __data_loc: low 16 bits are the string's offset in the record, high 16 its length. */
	__u32 loc = ctx->__data_loc_filename;
	struct ns_process_event *e = reserve();

	if (!e)
		return 0;
	fill_task(e, task, NS_PROCESS_EXEC, bpf_get_current_cgroup_id());
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (void *)ctx + (loc & 0xffff));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* The fork record holds only the child's pid, but telling a process from a thread and reading
 * the child's parent and start time need its task_struct. copy_process() (kernel/fork.c) appends
 * a new process at the tail of real_parent->children (real_parent is the caller, or the
 * caller's parent with CLONE_PARENT) and a new thread at the tail of signal->thread_head, and
 * the child does not run before this tracepoint, so it is the last entry of one of those lists. */
#define NS_THREAD_SCAN 4 /* sibling threads cloning at the same moment may append after ours */

static __always_inline struct task_struct *last_child(struct task_struct *parent, pid_t pid)
{
	void *head = (void *)parent + bpf_core_field_offset(struct task_struct, children);
	void *last = BPF_CORE_READ(parent, children.prev);
	struct task_struct *task;

	if (!last || last == head)
		return NULL;
	task = last - bpf_core_field_offset(struct task_struct, sibling);
	return BPF_CORE_READ(task, pid) == pid ? task : NULL;
}

static __always_inline bool is_new_thread(struct task_struct *parent, pid_t pid)
{
	struct signal_struct *signal = BPF_CORE_READ(parent, signal);
	void *head = (void *)signal + bpf_core_field_offset(struct signal_struct, thread_head);
	struct list_head *pos = BPF_CORE_READ(signal, thread_head.prev);
	bool found = false;

	/* No early exit: clang 14 unrolls only a loop with a single exit. */
#pragma unroll
	for (int i = 0; i < NS_THREAD_SCAN; i++) {
		if (!found && pos && (void *)pos != head) {
			struct task_struct *task =
				(void *)pos - bpf_core_field_offset(struct task_struct, thread_node);

			found = BPF_CORE_READ(task, pid) == pid;
			pos = BPF_CORE_READ(pos, prev);
		}
	}
	return found;
}

SEC("tracepoint/sched/sched_process_fork")
int tracepoint__fork(struct trace_event_raw_sched_process_fork *ctx)
{
	struct task_struct *parent = (struct task_struct *)bpf_get_current_task();
	pid_t child_pid = ctx->child_pid;
	struct task_struct *child;

	child = last_child(parent, child_pid);
	if (!child)
		child = last_child(BPF_CORE_READ(parent, real_parent), child_pid);
	if (!child) {
		if (!is_new_thread(parent, child_pid))
			count(NS_PROCESS_CNT_FORK_UNRESOLVED);
		return 0;
	}
	return emit_fork(child);
}

SEC("tracepoint/sched/sched_process_exit")
int tracepoint__exit(void *ctx)
{
	return emit_exit((struct task_struct *)bpf_get_current_task());
}
