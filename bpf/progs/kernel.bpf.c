// SPDX-License-Identifier: GPL-2.0
/* ebpf-kernel, the families counted per process: process, fd, vfs, sync, mount, shm, socket,
 * oomkill and cachestat (Netdata's eBPF process/fd/vfs/sync/mount/shm/socket/oomkill/cachestat
 * threads).
 *
 * Netdata hooks kernel functions (do_sys_openat2, vfs_read, ...) with kprobes; kprobes and fentry
 * do not exist on every kernel (KERNEL.md), so every count here comes from stable hooks:
 *   - one program on the raw sys_exit tracepoint for every syscall-based dimension. It runs for
 *     each syscall but costs a switch on the syscall number, where a classic per-syscall tracepoint
 *     fills a perf record first; and the return value it sees gives calls, bytes and errors in
 *     one place (the arguments are still in the task's saved registers at exit);
 *   - sock_send_length / sock_recv_length (Linux 6.3+): every send and receive on a socket,
 *     whatever the syscall (write() on a TCP socket included), with the socket and the result;
 *   - sched_process_fork / exit / free, tcp_retransmit_skb, inet_sock_set_state, mark_victim;
 *   - mm_filemap_add_to_page_cache and writeback_dirty_folio for cachestat's misses and dirties
 *     (its hits need mark_page_accessed, which has no tracepoint).
 * Each hook exists twice, one set per attach strategy (sensor/bpf/strategy.h): tp_btf__* (BTF
 * tracepoints) and raw_tp__* (raw tracepoints, same arguments). Bodies read through CO-RE
 * (BPF_CORE_READ) so they are valid in both.
 *
 * Counters are kept twice: host-wide in a per-CPU array (exact: no map can fill) and per process
 * in a hash keyed by (cgroup, tgid, exec_id) (bpf/abi/kernel.h), which user space folds into
 * applications and cgroups. Per-CPU host slots are written without atomics: a slot is written from
 * one context only (release from the RCU callback, retransmits from softirq/timers, the rest from
 * the task itself), so a program interrupting another on the same CPU never touches its slot. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf/abi/kernel.h"

#define NS_COUNTERS_MAX NS_KERNEL_CNT_MAX
#include "counters.bpf.h"
#include "task.bpf.h"
#include "tp_hook.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define NS_AF_INET 2
#define NS_AF_INET6 10
#define NS_IPPROTO_TCP 6
#define NS_IPPROTO_UDP 17
#define NS_MSG_PEEK 2
#define NS_O_CREAT 0100 /* octal, include/uapi/asm-generic/fcntl.h */
#define NS_AT_REMOVEDIR 0x200

/* Set by user space before load. */
const volatile __u32 families = 0;       /* NS_KF_* */
const volatile bool return_mode = false; /* count the error dimensions */
const volatile bool track_procs = true;  /* per-process entries (apps or cgroups wanted) */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, NS_KERNEL_RINGBUF_BYTES);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ns_kernel_host);
} host SEC(".maps");

/* max_entries is the configured pid table size; entries are allocated as processes count, not up
 * front, so kernel memory follows the processes that exist. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ns_kernel_proc_key);
	__type(value, struct ns_kernel_proc);
} procs SEC(".maps");

/* A zeroed entry to insert from: 456 bytes would not fit the 512-byte stack with the rest. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ns_kernel_proc);
} scratch SEC(".maps");

/* Where one event counts: the host slots of this CPU and the process's entry (NULL when
 * per-process counting is off or the table is full). */
struct target {
	struct ns_kernel_host *host;
	struct ns_kernel_proc *proc;
};

static __always_inline struct ns_kernel_proc *proc_entry(struct ns_kernel_proc_key *key,
							  struct task_struct *task)
{
	struct ns_kernel_proc *p = bpf_map_lookup_elem(&procs, key);
	__u32 zero = 0;
	long err;

	if (p)
		return p;
	p = bpf_map_lookup_elem(&scratch, &zero);
	if (!p)
		return NULL;
	__builtin_memset(p->v, 0, sizeof(p->v));
	BPF_CORE_READ_STR_INTO(&p->comm, task, group_leader, comm);
	err = bpf_map_update_elem(&procs, key, p, BPF_NOEXIST);
	if (err && err != -17 /* EEXIST: another CPU made it first */) {
		count(NS_KERNEL_CNT_PID_TABLE_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&procs, key);
}

static __always_inline bool host_target(struct target *t)
{
	__u32 zero = 0;

	t->host = bpf_map_lookup_elem(&host, &zero);
	t->proc = NULL;
	return t->host != NULL;
}

/* The target of an event about another task than the current one (rare events: read through
 * probe reads). */
static __always_inline bool target_of(struct target *t, struct task_struct *task, __u64 cgroup_id)
{
	struct ns_kernel_proc_key key = {
		.cgroup_id = cgroup_id,
		.tgid = BPF_CORE_READ(task, tgid),
		.exec_id = (__u32)BPF_CORE_READ(task, self_exec_id),
	};

	if (!host_target(t))
		return false;
	if (track_procs)
		t->proc = proc_entry(&key, task);
	return true;
}

/* The current task's target: the hot path of every hook. bpf_get_current_task_btf() gives a
 * pointer the verifier lets the program read directly (no probe-read helper call), in raw_tp
 * programs too. */
static __always_inline bool current_target(struct target *t)
{
	struct task_struct *task;
	struct ns_kernel_proc_key key;

	if (!host_target(t))
		return false;
	if (!track_procs)
		return true;
	task = bpf_get_current_task_btf();
	key.cgroup_id = bpf_get_current_cgroup_id();
	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.exec_id = (__u32)task->self_exec_id;
	t->proc = proc_entry(&key, task);
	return true;
}

static __always_inline void add(struct target *t, __u32 slot, __u64 n)
{
	if (slot >= NS_K_SLOTS) /* a bound the verifier can see */
		return;
	t->host->v[slot] += n;
	if (t->proc)
		__sync_fetch_and_add(&t->proc->v[slot], n);
}

/* A call that either returns a size or fails: calls, bytes, and errors in return mode. */
static __always_inline void add_io(struct target *t, long ret, __u32 calls, __u32 bytes, __u32 errors)
{
	add(t, calls, 1);
	if (ret > 0)
		add(t, bytes, ret);
	else if (ret < 0 && return_mode)
		add(t, errors, 1);
}

static __always_inline void add_call(struct target *t, long ret, __u32 calls, __u32 errors)
{
	add(t, calls, 1);
	if (ret < 0 && return_mode)
		add(t, errors, 1);
}

/* open, openat, openat2, creat: fd counts the calls, vfs the files opened and created. */
static __always_inline void on_open(struct target *t, long nr, struct pt_regs *regs, long ret)
{
	bool create = nr == NS_SYS_CREAT;

	if (families & NS_KF_FD)
		add_call(t, ret, NS_K_FD_OPEN, NS_K_FD_OPEN_ERRORS);
	if (!(families & NS_KF_VFS))
		return;
	if (ret >= 0)
		add(t, NS_K_VFS_OPEN, 1);
	else if (return_mode)
		add(t, NS_K_VFS_OPEN_ERRORS, 1);
	if (nr == NS_SYS_OPEN) {
		create = BPF_CORE_READ(regs, si) & NS_O_CREAT;
	} else if (nr == NS_SYS_OPENAT) {
		create = BPF_CORE_READ(regs, dx) & NS_O_CREAT;
	} else if (nr == NS_SYS_OPENAT2) {
		struct open_how *how = (struct open_how *)BPF_CORE_READ(regs, dx);
		__u64 flags = 0;

		bpf_probe_read_user(&flags, sizeof(flags), &how->flags);
		create = flags & NS_O_CREAT;
	}
	if (create)
		add_call(t, ret, NS_K_VFS_CREATE, NS_K_VFS_CREATE_ERRORS);
}

/* `btf`: the program is a tp_btf one, whose pointer arguments can be read directly; a raw_tp
 * program must use probe reads. A constant at every call, so each program keeps one branch. */
static __always_inline int on_sys_exit(struct pt_regs *regs, long ret, bool btf)
{
	long nr = btf ? regs->orig_ax : BPF_CORE_READ(regs, orig_ax);
	struct target t;

	/* The common case first: most syscalls are none of ours. */
	switch (nr) {
	case NS_SYS_READ: case NS_SYS_PREAD64: case NS_SYS_WRITE: case NS_SYS_PWRITE64:
	case NS_SYS_READV: case NS_SYS_PREADV: case NS_SYS_PREADV2:
	case NS_SYS_WRITEV: case NS_SYS_PWRITEV: case NS_SYS_PWRITEV2:
	case NS_SYS_UNLINK: case NS_SYS_UNLINKAT:
		if (!(families & NS_KF_VFS))
			return 0;
		break;
	case NS_SYS_OPEN: case NS_SYS_OPENAT: case NS_SYS_OPENAT2: case NS_SYS_CREAT:
		if (!(families & (NS_KF_FD | NS_KF_VFS)))
			return 0;
		break;
	case NS_SYS_MKNOD: case NS_SYS_MKNODAT:
		if (!(families & NS_KF_VFS))
			return 0;
		break;
	case NS_SYS_CLOSE:
		if (!(families & NS_KF_FD))
			return 0;
		break;
	case NS_SYS_FSYNC: case NS_SYS_FDATASYNC:
		if (!(families & (NS_KF_VFS | NS_KF_SYNC)))
			return 0;
		break;
	case NS_SYS_SYNC: case NS_SYS_SYNCFS: case NS_SYS_MSYNC: case NS_SYS_SYNC_FILE_RANGE:
		if (!(families & NS_KF_SYNC))
			return 0;
		break;
	case NS_SYS_MOUNT: case NS_SYS_UMOUNT2:
		if (!(families & NS_KF_MOUNT))
			return 0;
		break;
	case NS_SYS_SHMGET: case NS_SYS_SHMAT: case NS_SYS_SHMDT: case NS_SYS_SHMCTL:
		if (!(families & NS_KF_SHM))
			return 0;
		break;
	case NS_SYS_ACCEPT: case NS_SYS_ACCEPT4:
		if (!(families & NS_KF_SOCKET) || ret < 0)
			return 0;
		break;
	case NS_SYS_CLONE: case NS_SYS_CLONE3: case NS_SYS_FORK: case NS_SYS_VFORK:
		if (!(families & NS_KF_PROCESS) || !return_mode || ret >= 0)
			return 0;
		break;
	default:
		return 0;
	}
	if (!current_target(&t))
		return 0;

	switch (nr) {
	case NS_SYS_READ: case NS_SYS_PREAD64:
		add_io(&t, ret, NS_K_VFS_READ, NS_K_VFS_READ_BYTES, NS_K_VFS_READ_ERRORS);
		break;
	case NS_SYS_WRITE: case NS_SYS_PWRITE64:
		add_io(&t, ret, NS_K_VFS_WRITE, NS_K_VFS_WRITE_BYTES, NS_K_VFS_WRITE_ERRORS);
		break;
	case NS_SYS_READV: case NS_SYS_PREADV: case NS_SYS_PREADV2:
		add_io(&t, ret, NS_K_VFS_READV, NS_K_VFS_READV_BYTES, NS_K_VFS_READV_ERRORS);
		break;
	case NS_SYS_WRITEV: case NS_SYS_PWRITEV: case NS_SYS_PWRITEV2:
		add_io(&t, ret, NS_K_VFS_WRITEV, NS_K_VFS_WRITEV_BYTES, NS_K_VFS_WRITEV_ERRORS);
		break;
	case NS_SYS_UNLINKAT:
		if (BPF_CORE_READ(regs, dx) & NS_AT_REMOVEDIR)
			break; /* rmdir, not an unlink */
		add_call(&t, ret, NS_K_VFS_UNLINK, NS_K_VFS_UNLINK_ERRORS);
		break;
	case NS_SYS_UNLINK:
		add_call(&t, ret, NS_K_VFS_UNLINK, NS_K_VFS_UNLINK_ERRORS);
		break;
	case NS_SYS_OPEN: case NS_SYS_OPENAT: case NS_SYS_OPENAT2: case NS_SYS_CREAT:
		on_open(&t, nr, regs, ret);
		break;
	case NS_SYS_MKNOD: case NS_SYS_MKNODAT:
		add_call(&t, ret, NS_K_VFS_CREATE, NS_K_VFS_CREATE_ERRORS);
		break;
	case NS_SYS_CLOSE:
		add_call(&t, ret, NS_K_FD_CLOSE, NS_K_FD_CLOSE_ERRORS);
		break;
	case NS_SYS_FSYNC: case NS_SYS_FDATASYNC:
		if (families & NS_KF_VFS)
			add_call(&t, ret, NS_K_VFS_FSYNC, NS_K_VFS_FSYNC_ERRORS);
		if (families & NS_KF_SYNC)
			add(&t, nr == NS_SYS_FSYNC ? NS_K_SYNC_FSYNC : NS_K_SYNC_FDATASYNC, 1);
		break;
	case NS_SYS_SYNC:
		add(&t, NS_K_SYNC_SYNC, 1);
		break;
	case NS_SYS_SYNCFS:
		add(&t, NS_K_SYNC_SYNCFS, 1);
		break;
	case NS_SYS_MSYNC:
		add(&t, NS_K_SYNC_MSYNC, 1);
		break;
	case NS_SYS_SYNC_FILE_RANGE:
		add(&t, NS_K_SYNC_SYNC_FILE_RANGE, 1);
		break;
	case NS_SYS_MOUNT:
		add_call(&t, ret, NS_K_MOUNT_MOUNT, NS_K_MOUNT_MOUNT_ERRORS);
		break;
	case NS_SYS_UMOUNT2:
		add_call(&t, ret, NS_K_MOUNT_UMOUNT, NS_K_MOUNT_UMOUNT_ERRORS);
		break;
	case NS_SYS_SHMGET:
		add(&t, NS_K_SHM_SHMGET, 1);
		break;
	case NS_SYS_SHMAT:
		add(&t, NS_K_SHM_SHMAT, 1);
		break;
	case NS_SYS_SHMDT:
		add(&t, NS_K_SHM_SHMDT, 1);
		break;
	case NS_SYS_SHMCTL:
		add(&t, NS_K_SHM_SHMCTL, 1);
		break;
	case NS_SYS_ACCEPT: case NS_SYS_ACCEPT4:
		add(&t, NS_K_SOCKET_CONNECTIONS_INBOUND, 1);
		break;
	default: /* clone, clone3, fork, vfork that failed */
		add(&t, NS_K_PROCESS_CREATE_ERRORS, 1);
		break;
	}
	return 0;
}

/* sock_send_length / sock_recv_length: one send or receive on a socket; ret is the byte count or
 * -errno. A MSG_PEEK receive leaves the bytes queued, so they count when really read. */
static __always_inline int on_sock_io(struct sock *sk, int ret, int flags, bool send, bool btf)
{
	__u16 family = btf ? sk->__sk_common.skc_family : BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 protocol = btf ? sk->sk_protocol : BPF_CORE_READ(sk, sk_protocol);
	__u32 calls, bytes;
	struct target t;

	if (family != NS_AF_INET && family != NS_AF_INET6)
		return 0;
	if (protocol == NS_IPPROTO_TCP) {
		calls = send ? NS_K_SOCKET_TCP_SEND : NS_K_SOCKET_TCP_RECEIVE;
		bytes = send ? NS_K_SOCKET_TCP_SEND_BYTES : NS_K_SOCKET_TCP_RECEIVE_BYTES;
	} else if (protocol == NS_IPPROTO_UDP) {
		calls = send ? NS_K_SOCKET_UDP_SEND : NS_K_SOCKET_UDP_RECEIVE;
		bytes = send ? NS_K_SOCKET_UDP_SEND_BYTES : NS_K_SOCKET_UDP_RECEIVE_BYTES;
	} else {
		return 0;
	}
	if (!current_target(&t))
		return 0;
	add(&t, calls, 1);
	if (ret > 0 && !(flags & NS_MSG_PEEK))
		add(&t, bytes, ret);
	return 0;
}

/* A new task: a process unless CLONE_THREAD put it in the caller's thread group. Counted for the
 * caller, as Netdata counts the fork calls of an application. */
static __always_inline int on_fork(struct task_struct *child)
{
	struct target t;

	if (!current_target(&t))
		return 0;
	if (BPF_CORE_READ(child, pid) == BPF_CORE_READ(child, tgid))
		add(&t, NS_K_PROCESS_CREATE, 1);
	else
		add(&t, NS_K_THREAD_CREATE, 1);
	return 0;
}

/* Every task's do_exit. When the last task of a thread group exits (signal->live is decremented
 * before the tracepoint, kernel/exit.c), user space is told, so it takes the group's final totals
 * and frees its entries: stale processes go on their exit, not on a poll. */
static __always_inline int on_exit(struct task_struct *task)
{
	struct ns_kernel_exit_event *e;
	struct target t;

	if (!current_target(&t))
		return 0;
	if (families & NS_KF_PROCESS)
		add(&t, NS_K_PROCESS_EXIT, 1);
	if (!track_procs || BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(NS_KERNEL_CNT_RINGBUF_DROPS);
		return 0;
	}
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->tgid = BPF_CORE_READ(task, tgid);
	e->exec_id = (__u32)BPF_CORE_READ(task, self_exec_id);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* The task's memory is freed (an RCU callback after release_task): host-wide only, since the
 * group's entries are gone by then and the context is not the task's. */
static __always_inline int on_free(void)
{
	__u32 zero = 0;
	struct ns_kernel_host *h = bpf_map_lookup_elem(&host, &zero);

	if (h)
		h->v[NS_K_PROCESS_RELEASE] += 1;
	return 0;
}

static __always_inline int on_retransmit(void)
{
	__u32 zero = 0;
	struct ns_kernel_host *h = bpf_map_lookup_elem(&host, &zero);

	if (h)
		h->v[NS_K_SOCKET_TCP_RETRANSMITS] += 1;
	return 0;
}

/* A TCP socket that goes CLOSE -> SYN_SENT is a connect() of the current task. */
static __always_inline int on_state(struct sock *sk, int newstate)
{
	struct target t;

	if (newstate != TCP_SYN_SENT || BPF_CORE_READ(sk, sk_protocol) != NS_IPPROTO_TCP)
		return 0;
	if (!current_target(&t))
		return 0;
	add(&t, NS_K_SOCKET_CONNECTIONS_OUTBOUND, 1);
	return 0;
}

/* The OOM killer chose `task`: counted for the victim's application and cgroup, not for the task
 * whose allocation ran out. */
static __always_inline int on_victim(struct task_struct *task)
{
	struct target t;

	if (!target_of(&t, task, ns_task_cgroup_id(task)))
		return 0;
	add(&t, NS_K_OOMKILL_KILLS, 1);
	return 0;
}

/* cachestat misses: pages added to the page cache by anything but a write call (reads,
 * readahead, page faults). Netdata counts every add_to_page_cache_lru and subtracts the pages
 * dirtied in the interval, because a write that fills a new page adds it too; here the syscall
 * the task is in (its saved orig_ax; -1 in a page fault) says directly which adds are writes. */
/* Pages in a folio: 1, or 2^order for a large one (PG_head set; the order is the low byte of
 * _flags_1, folio_large_order() since Linux 6.x). Read by offset: `flags` changed type
 * (memdesc_flags_t, Linux 6.17) but not place or size. Filesystems with large folios (xfs, and
 * ext4 since 6.16) add a whole readahead window as one folio. */
static __always_inline __u64 folio_pages(struct folio *folio)
{
	unsigned long flags = 0, flags_1 = 0;

	bpf_probe_read_kernel(&flags, sizeof(flags),
			      (void *)folio + bpf_core_field_offset(struct folio, flags));
	if (!(flags & (1UL << bpf_core_enum_value(enum pageflags, PG_head))))
		return 1;
	bpf_probe_read_kernel(&flags_1, sizeof(flags_1),
			      (void *)folio + bpf_core_field_offset(struct folio, _flags_1));
	return 1ULL << (flags_1 & 0xff);
}

static __always_inline int on_page_added(struct folio *folio, bool btf)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	long nr;
	struct target t;

	if (!regs)
		return 0;
	nr = btf ? regs->orig_ax : BPF_CORE_READ(regs, orig_ax);
	switch (nr) {
	case NS_SYS_WRITE: case NS_SYS_PWRITE64: case NS_SYS_WRITEV: case NS_SYS_PWRITEV:
	case NS_SYS_PWRITEV2:
		return 0;
	}
	if (!current_target(&t))
		return 0;
	add(&t, NS_K_CACHESTAT_MISSES, folio_pages(folio));
	return 0;
}

/* cachestat dirties: a folio of the page cache became dirty (Netdata counts mark_buffer_dirty
 * calls, one per buffer; here one per folio, whatever its size, as the kernel's own dirty
 * accounting event counts them). */
static __always_inline int on_dirtied(void)
{
	struct target t;

	if (!current_target(&t))
		return 0;
	add(&t, NS_K_CACHESTAT_DIRTIES, 1);
	return 0;
}

NS_HOOK(sys_exit, on_sys_exit(regs, ret, btf), struct pt_regs *regs, long ret)
NS_HOOK(sock_send_length, on_sock_io(sk, ret, flags, true, btf), struct sock *sk, int ret, int flags)
NS_HOOK(sock_recv_length, on_sock_io(sk, ret, flags, false, btf), struct sock *sk, int ret,
	int flags)
NS_HOOK(sched_process_fork, on_fork(child), struct task_struct *parent, struct task_struct *child)
NS_HOOK(sched_process_exit, on_exit(task), struct task_struct *task)
NS_HOOK(sched_process_free, on_free(), struct task_struct *task)
NS_HOOK(tcp_retransmit_skb, on_retransmit())
NS_HOOK(inet_sock_set_state, on_state(sk, newstate), struct sock *sk, int oldstate, int newstate)
NS_HOOK(mark_victim, on_victim(task), struct task_struct *task)
NS_HOOK(mm_filemap_add_to_page_cache, on_page_added(folio, btf), struct folio *folio)
NS_HOOK(writeback_dirty_folio, on_dirtied(), struct folio *folio, struct address_space *mapping)
