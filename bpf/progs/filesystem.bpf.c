// SPDX-License-Identifier: GPL-2.0
/* Latency of read, write, open and sync calls on regular files per filesystem type (Netdata's
 * eBPF filesystem: ext4, xfs, btrfs, nfs, zfs, ...), measured at the syscall boundary.
 *
 * Netdata times the filesystems' own functions (ext4_file_read_iter, xfs_file_fsync, ...) with
 * kprobes; kprobes and fentry do not exist on every kernel (KERNEL.md), so here the raw sys_enter
 * and sys_exit tracepoints time the whole call as the application sees it (page cache included,
 * as in Netdata's read and write charts). The hooks exist twice, one set per attach strategy
 * (sensor/bpf/strategy.h): tp_btf__* (BTF tracepoints) and raw_tp__* (raw tracepoints, same
 * arguments); the bodies read everything through CO-RE so they are valid in both.
 *
 * sys_enter, for a call on a file descriptor (read, write, sync): finds the file the descriptor
 * names (current->files->fdt->fd[fd]) and keeps going only for a regular file whose superblock is
 * of a measured type; then stores (start, syscall, op, type) keyed by the thread. The inode's mode
 * is read before the type's name, so a socket or a pipe costs the fd-table walk and nothing else:
 * no name read, no map update. Looking the file up at entry also times the file the call works on,
 * even if another thread closes or replaces the descriptor while the call runs.
 * sys_enter, for an open: stores the start for every open; the file exists only at its return.
 * sys_exit: takes the thread's start if there is one for this syscall; an open that returned a
 * descriptor looks its file up the same way. The latency goes to the (type, op) histogram. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf/abi/filesystem.h"
#include "bpf/abi/kernel.h" /* NS_SYS_*: the x86_64 syscall numbers */

#define NS_COUNTERS_MAX NS_FS_CNT_MAX
#include "counters.bpf.h"
#include "log2_hist.bpf.h"
#include "tp_hook.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* include/uapi/linux/stat.h (octal) */
#define NS_S_IFMT 00170000
#define NS_S_IFREG 0100000
/* arch/x86/include/asm/thread_info.h: set while a 32-bit (ia32) syscall runs, whose numbers are
 * not the x86_64 ones (ia32 3 is read, x86_64 3 is close). x32 calls have __X32_SYSCALL_BIT set
 * in their number and match none of ours. */
#define NS_TS_COMPAT 0x0002

/* First NS_FS_NAME_KEY_LEN bytes of each name of NS_FS_TYPE_NAMES, NUL-padded, as the CPU loads
 * them; set by user space before load (one list of names, in bpf/abi/filesystem.h). */
const volatile __u64 fstype_keys[NS_FS_TYPES] = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH); /* not LRU: a call not timed must be counted */
	__uint(max_entries, NS_FS_INFLIGHT_MAX);
	__type(key, __u64); /* bpf_get_current_pid_tgid() */
	__type(value, struct ns_fs_start);
} inflight SEC(".maps");

/* Per CPU: reads and writes on ext4 run on every CPU many times a second, and a shared histogram
 * would bounce its cache lines between them (NS_FS_HISTS x 328 B = 10.5 KiB per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NS_FS_HISTS);
	__type(key, __u32); /* NS_FS_HIST_INDEX(fstype, op) */
	__type(value, struct ns_hist);
} hists SEC(".maps");

/* The op of an x86_64 syscall, or -1 for any other: the first thing both hooks do, so the ~300
 * syscalls that are none of ours cost a switch. */
static __always_inline int op_of(long nr)
{
	switch (nr) {
	case NS_SYS_READ: case NS_SYS_PREAD64: case NS_SYS_READV: case NS_SYS_PREADV:
	case NS_SYS_PREADV2:
		return NS_FS_OP_READ;
	case NS_SYS_WRITE: case NS_SYS_PWRITE64: case NS_SYS_WRITEV: case NS_SYS_PWRITEV:
	case NS_SYS_PWRITEV2:
		return NS_FS_OP_WRITE;
	case NS_SYS_OPEN: case NS_SYS_OPENAT: case NS_SYS_OPENAT2: case NS_SYS_CREAT:
		return NS_FS_OP_OPEN;
	case NS_SYS_FSYNC: case NS_SYS_FDATASYNC: case NS_SYS_SYNC_FILE_RANGE:
		return NS_FS_OP_SYNC;
	default:
		return -1;
	}
}

/* The file descriptor `fd` of `task` names, or NULL: fd_file(files_lookup_fd_raw()) without the
 * RCU read lock, which a probe read does not need (a freed table reads as zeroes or fails). */
static __always_inline struct file *fd_file_of(struct task_struct *task, __u32 fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = NULL;

	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (!fds || bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) != 0)
		return NULL;
	return file;
}

/* The index of `file`'s filesystem type in NS_FS_TYPE_NAMES, or -1 when it is not a regular file
 * or not of a measured type. */
static __always_inline int fstype_of(struct file *file)
{
	struct inode *inode;
	const char *name;
	union {
		__u64 key;
		/* room past the key: a name of 8 bytes or more keeps a non-NUL byte at 7 and so
		 * matches no key (a key of 8 would truncate "overlayX" to "overlay") */
		char bytes[2 * NS_FS_NAME_KEY_LEN];
	} buf = {};
	int found = -1;

	if (!file)
		return -1;
	inode = BPF_CORE_READ(file, f_inode);
	if (!inode || (BPF_CORE_READ(inode, i_mode) & NS_S_IFMT) != NS_S_IFREG)
		return -1;
	name = BPF_CORE_READ(inode, i_sb, s_type, name);
	if (!name || bpf_probe_read_kernel_str(buf.bytes, sizeof(buf.bytes), name) <= 0)
		return -1;
	/* no early exit: clang 14 unrolls only single-exit loops (bpf/README.md) */
	for (int i = 0; i < NS_FS_TYPES; i++) {
		if (buf.key == fstype_keys[i])
			found = i;
	}
	return found;
}

static __always_inline int on_sys_enter(struct pt_regs *regs, long nr)
{
	struct task_struct *task;
	struct ns_fs_start start = {.nr = (__u32)nr, .fstype = NS_FS_TYPE_NONE};
	__u64 id;
	int op = op_of(nr);

	if (op < 0)
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	start.op = (__u16)op;
	if (op != NS_FS_OP_OPEN) {
		/* the first argument of every fd-based call of ours is the descriptor */
		int fstype = fstype_of(fd_file_of(task, (__u32)BPF_CORE_READ(regs, di)));

		if (fstype < 0)
			return 0;
		start.fstype = (__u16)fstype;
	}
	/* After the file: the common socket or pipe call of a 64-bit task is done without it. A
	 * 32-bit call's "descriptor" above was some other register, whatever it named. */
	if (bpf_core_field_exists(task->thread_info.status) &&
	    (BPF_CORE_READ(task, thread_info.status) & NS_TS_COMPAT))
		return 0;
	id = bpf_get_current_pid_tgid();
	start.ts = bpf_ktime_get_ns(); /* last: the lookups above are not the call's time */
	/* BPF_ANY: an entry left by a call whose return was not seen is replaced */
	if (bpf_map_update_elem(&inflight, &id, &start, BPF_ANY) != 0)
		count(NS_FS_CNT_INFLIGHT_FULL);
	return 0;
}

static __always_inline int on_sys_exit(struct pt_regs *regs, long ret)
{
	long nr = BPF_CORE_READ(regs, orig_ax);
	struct ns_fs_start *s;
	struct ns_hist *h;
	__u64 now, id, ts;
	__u32 index;
	int fstype, op;

	if (op_of(nr) < 0)
		return 0;
	id = bpf_get_current_pid_tgid();
	s = bpf_map_lookup_elem(&inflight, &id);
	if (!s)
		return 0; /* a call on no measured file, or entered before the probe attached */
	/* after the lookup, which most calls (sockets, pipes) end at; it adds its ~20 ns to the
	 * calls measured */
	now = bpf_ktime_get_ns();
	ts = s->ts;
	op = s->op;
	fstype = s->fstype;
	if (s->nr != (__u32)nr) {
		bpf_map_delete_elem(&inflight, &id);
		count(NS_FS_CNT_UNMATCHED);
		return 0;
	}
	bpf_map_delete_elem(&inflight, &id);
	if (op == NS_FS_OP_OPEN) {
		if (ret < 0)
			return 0; /* no file: Netdata's open hooks do not run for a failed lookup either */
		fstype = fstype_of(fd_file_of((struct task_struct *)bpf_get_current_task(), (__u32)ret));
	}
	if (fstype < 0 || fstype >= NS_FS_TYPES || op < 0 || op >= NS_FS_OPS)
		return 0;
	index = NS_FS_HIST_INDEX((__u32)fstype, (__u32)op);
	h = bpf_map_lookup_elem(&hists, &index);
	if (!h)
		return 0;
	ns_hist_add_percpu(h, now > ts ? now - ts : 0);
	return 0;
}

NS_HOOK(sys_enter, on_sys_enter(regs, id), struct pt_regs *regs, long id)
NS_HOOK(sys_exit, on_sys_exit(regs, ret), struct pt_regs *regs, long ret)
