/* bpf/abi/kernel.h: what bpf/progs/kernel.bpf.c hands to sensor/plugins/kernel (the ebpf-kernel
 * families counted per process: process, fd, vfs, sync, mount, shm, socket, oomkill, cachestat).
 * Plain C;
 * sizes and offsets are checked against the object's BTF by bpf/abi/kernel_abi_test.cc. */
#pragma once

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define NS_KERNEL_COMM_LEN 16
/* Exit events between two reads (update_every): 1 MiB holds 43,000. */
#define NS_KERNEL_RINGBUF_BYTES (1 << 20)

/* One slot per counter; the same layout counts host-wide (a per-CPU array) and per process. */
enum ns_kernel_slot {
	NS_K_PROCESS_CREATE = 0,
	NS_K_THREAD_CREATE,
	NS_K_PROCESS_EXIT,
	NS_K_PROCESS_RELEASE,
	NS_K_PROCESS_CREATE_ERRORS,
	NS_K_FD_OPEN,
	NS_K_FD_OPEN_ERRORS,
	NS_K_FD_CLOSE,
	NS_K_FD_CLOSE_ERRORS,
	NS_K_VFS_READ,
	NS_K_VFS_WRITE,
	NS_K_VFS_READV,
	NS_K_VFS_WRITEV,
	NS_K_VFS_READ_BYTES,
	NS_K_VFS_WRITE_BYTES,
	NS_K_VFS_READV_BYTES,
	NS_K_VFS_WRITEV_BYTES,
	NS_K_VFS_READ_ERRORS,
	NS_K_VFS_WRITE_ERRORS,
	NS_K_VFS_READV_ERRORS,
	NS_K_VFS_WRITEV_ERRORS,
	NS_K_VFS_UNLINK,
	NS_K_VFS_UNLINK_ERRORS,
	NS_K_VFS_FSYNC,
	NS_K_VFS_FSYNC_ERRORS,
	NS_K_VFS_OPEN,
	NS_K_VFS_OPEN_ERRORS,
	NS_K_VFS_CREATE,
	NS_K_VFS_CREATE_ERRORS,
	NS_K_SYNC_SYNC,
	NS_K_SYNC_SYNCFS,
	NS_K_SYNC_FSYNC,
	NS_K_SYNC_FDATASYNC,
	NS_K_SYNC_MSYNC,
	NS_K_SYNC_SYNC_FILE_RANGE,
	NS_K_MOUNT_MOUNT,
	NS_K_MOUNT_UMOUNT,
	NS_K_MOUNT_MOUNT_ERRORS,
	NS_K_MOUNT_UMOUNT_ERRORS,
	NS_K_SHM_SHMGET,
	NS_K_SHM_SHMAT,
	NS_K_SHM_SHMDT,
	NS_K_SHM_SHMCTL,
	NS_K_SOCKET_TCP_SEND,
	NS_K_SOCKET_TCP_RECEIVE,
	NS_K_SOCKET_TCP_SEND_BYTES,
	NS_K_SOCKET_TCP_RECEIVE_BYTES,
	NS_K_SOCKET_UDP_SEND,
	NS_K_SOCKET_UDP_RECEIVE,
	NS_K_SOCKET_UDP_SEND_BYTES,
	NS_K_SOCKET_UDP_RECEIVE_BYTES,
	NS_K_SOCKET_TCP_RETRANSMITS,
	NS_K_SOCKET_CONNECTIONS_INBOUND,
	NS_K_SOCKET_CONNECTIONS_OUTBOUND,
	NS_K_OOMKILL_KILLS,
	NS_K_CACHESTAT_MISSES,
	NS_K_CACHESTAT_DIRTIES,
	NS_K_SLOTS,
};

/* Slots of the per-CPU `counters` array (the probe's own health). */
enum ns_kernel_counter {
	NS_KERNEL_CNT_RINGBUF_DROPS = 0, /* an exit event was lost: its entry waits for the sweep */
	NS_KERNEL_CNT_PID_TABLE_FULL = 1, /* a process got no entry: counted host-wide only */
	NS_KERNEL_CNT_MAX = 2,
};

/* Per-process state is keyed by the thread group, its program image and its cgroup, so an exec
 * starts a new application and a move to another cgroup a new series: short-lived processes are
 * attributed to what they were when they counted. exec_id is task->self_exec_id (one more per
 * execve, inherited by threads and fork children until they exec). */
struct ns_kernel_proc_key {
	__u64 cgroup_id; /* bpf_get_current_cgroup_id() */
	__u32 tgid;
	__u32 exec_id;
};

struct ns_kernel_proc {
	__u64 v[NS_K_SLOTS];
	__u8 comm[NS_KERNEL_COMM_LEN]; /* the thread-group leader's comm when the entry was made */
};

struct ns_kernel_host {
	__u64 v[NS_K_SLOTS];
};

/* A thread group died (its last task reached sched_process_exit): user space takes the final
 * totals of its entries and deletes them. */
struct ns_kernel_exit_event {
	__u64 cgroup_id;
	__u32 tgid;
	__u32 exec_id;
};

/* x86_64 syscall numbers the sys_exit hook dispatches on (arch/x86/entry/syscalls/syscall_64.tbl);
 * bpf/abi/kernel_abi_test.cc checks them against <sys/syscall.h>. */
#define NS_SYS_READ 0
#define NS_SYS_WRITE 1
#define NS_SYS_OPEN 2
#define NS_SYS_CLOSE 3
#define NS_SYS_PREAD64 17
#define NS_SYS_PWRITE64 18
#define NS_SYS_READV 19
#define NS_SYS_WRITEV 20
#define NS_SYS_MSYNC 26
#define NS_SYS_SHMGET 29
#define NS_SYS_SHMAT 30
#define NS_SYS_SHMCTL 31
#define NS_SYS_ACCEPT 43
#define NS_SYS_CLONE 56
#define NS_SYS_FORK 57
#define NS_SYS_VFORK 58
#define NS_SYS_SHMDT 67
#define NS_SYS_FSYNC 74
#define NS_SYS_FDATASYNC 75
#define NS_SYS_CREAT 85
#define NS_SYS_UNLINK 87
#define NS_SYS_MKNOD 133
#define NS_SYS_SYNC 162
#define NS_SYS_MOUNT 165
#define NS_SYS_UMOUNT2 166
#define NS_SYS_OPENAT 257
#define NS_SYS_MKNODAT 259
#define NS_SYS_UNLINKAT 263
#define NS_SYS_SYNC_FILE_RANGE 277
#define NS_SYS_ACCEPT4 288
#define NS_SYS_PREADV 295
#define NS_SYS_PWRITEV 296
#define NS_SYS_SYNCFS 306
#define NS_SYS_PREADV2 327
#define NS_SYS_PWRITEV2 328
#define NS_SYS_CLONE3 435
#define NS_SYS_OPENAT2 437

/* Families switched on, in the object's read-only data (bit per family). */
#define NS_KF_PROCESS (1u << 0)
#define NS_KF_FD (1u << 1)
#define NS_KF_VFS (1u << 2)
#define NS_KF_SYNC (1u << 3)
#define NS_KF_MOUNT (1u << 4)
#define NS_KF_SHM (1u << 5)
#define NS_KF_SOCKET (1u << 6)
#define NS_KF_OOMKILL (1u << 7)
#define NS_KF_CACHESTAT (1u << 8)
