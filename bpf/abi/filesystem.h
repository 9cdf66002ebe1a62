/* bpf/abi/filesystem.h: what bpf/progs/filesystem.bpf.c hands to sensor/plugins/kernel/filesystem:
 * the latency of read, write, open and sync calls on regular files, per filesystem type, as a
 * struct ns_hist (bpf/abi/hist.h) per (type, op) in a per-CPU array. Plain C, shared by the BPF
 * program and C++; bpf/abi/filesystem_abi_test.cc checks every offset against the object's BTF. */
#pragma once

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#include "bpf/abi/hist.h"

/* The filesystem types measured, by index: the kernel's file_system_type.name, which is also the
 * third column of /proc/mounts. Netdata's filesystem charts cover ext4, xfs, btrfs, nfs and zfs;
 * nfs4 is NFS v4's own type name, f2fs the flash filesystem of Android and some SSD hosts, and
 * overlay what a container's root filesystem is: a call on a container's file meets the overlay
 * file, never the ext4 or xfs file under it, so without it container I/O would not be seen at all.
 * tmpfs is left out on purpose: its I/O is a memory copy with no device or server behind it to
 * wait for, and it carries the busiest IPC files (/dev/shm, /run), which would pay the histogram
 * update on the hottest non-storage path. Names are at most 7 bytes: the program compares the
 * first 8 bytes of the kernel's name, NUL included, with keys user space packs into .rodata. */
#define NS_FS_TYPES 8
#define NS_FS_NAME_KEY_LEN 8
#define NS_FS_TYPE_NAMES { "ext4", "xfs", "btrfs", "nfs", "nfs4", "f2fs", "zfs", "overlay" }
#define NS_FS_TYPE_NONE 0xffff /* an open's type is known at its exit only */

/* What a call does (the "op" label); the syscalls of each (x86_64 numbers, bpf/abi/kernel.h):
 *   read  read, pread64, readv, preadv, preadv2
 *   write write, pwrite64, writev, pwritev, pwritev2
 *   open  open, openat, openat2, creat that returned a file descriptor
 *   sync  fsync, fdatasync, sync_file_range */
enum ns_fs_op {
	NS_FS_OP_READ = 0,
	NS_FS_OP_WRITE = 1,
	NS_FS_OP_OPEN = 2,
	NS_FS_OP_SYNC = 3,
	NS_FS_OPS = 4,
};
#define NS_FS_OP_NAMES { "read", "write", "open", "sync" }

/* Index of the (type, op) histogram in the array `hists`. */
#define NS_FS_HIST_INDEX(fstype, op) ((fstype) * NS_FS_OPS + (op))
#define NS_FS_HISTS (NS_FS_TYPES * NS_FS_OPS)

/* Calls in flight (entered and not returned) being timed, over all threads: one entry per thread
 * inside an open (any file: its type is known only once it returned) or inside a read, write or
 * sync on a regular file of a measured type. A thread holds one entry at most; 16,384 threads
 * blocked at once in such calls (hung NFS servers, FIFOs waiting for a writer) is far beyond a
 * healthy host, and a call that finds the map full is counted, not timed. */
#define NS_FS_INFLIGHT_MAX 16384

/* Slots of the per-CPU counter array `counters`; user space sums over CPUs. */
enum ns_fs_counter {
	NS_FS_CNT_INFLIGHT_FULL = 0, /* a call not timed: `inflight` was full at its entry */
	NS_FS_CNT_UNMATCHED = 1,     /* a return found the entry of another syscall of its thread:
				      * that call's return was not seen; both are dropped */
	NS_FS_CNT_MAX = 2,
};

/* Value of the hash `inflight`, keyed by bpf_get_current_pid_tgid() (tgid << 32 | tid). */
struct ns_fs_start {
	__u64 ts;     /* bpf_ktime_get_ns() at sys_enter */
	__u32 nr;     /* the syscall number, matched at sys_exit */
	__u16 op;     /* enum ns_fs_op */
	__u16 fstype; /* index in NS_FS_TYPE_NAMES; NS_FS_TYPE_NONE for an open */
};

#ifdef __cplusplus
static_assert(sizeof(struct ns_fs_start) == 16, "ns_fs_start layout changed");
#else
_Static_assert(sizeof(struct ns_fs_start) == 16, "ns_fs_start layout changed");
#endif
