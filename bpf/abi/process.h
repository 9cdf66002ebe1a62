/* bpf/abi/process.h: what bpf/progs/process.bpf.c hands to sensor/plugins/process. Plain C,
 * shared by the BPF program and C++; every size and offset is asserted on both sides
 * (bpf/abi/process_abi_test.cc checks every offset against the compiled object's BTF). */
#pragma once

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define NS_TASK_COMM_LEN 16   /* TASK_COMM_LEN in include/linux/sched.h */
#define NS_FILENAME_LEN 256   /* longer exec paths are truncated, still NUL-terminated */

/* Ring buffer of struct ns_process_event: 1 MiB holds ~3,200 events between two polls. */
#define NS_PROCESS_RINGBUF_BYTES (1 << 20)

enum ns_process_kind {
	NS_PROCESS_EXEC = 1,
	NS_PROCESS_FORK = 2,
	NS_PROCESS_EXIT = 3,
};

/* Slots of the per-CPU counter array `counters`; user space sums over CPUs. */
enum ns_process_counter {
	NS_PROCESS_CNT_RINGBUF_DROPS = 0,   /* bpf_ringbuf_reserve failed: event lost */
	NS_PROCESS_CNT_FORK_UNRESOLVED = 1, /* tracepoint fork: child task not found, not emitted */
	NS_PROCESS_CNT_MAX = 2,
};

struct ns_process_event {
	__u64 ts_ns;         /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 start_time_ns; /* task->start_time of the process (CLOCK_MONOTONIC) */
	__u64 cgroup_id;     /* cgroup v2 id (kernfs inode number of the cgroup directory) */
	__u32 kind;          /* enum ns_process_kind */
	__u32 pid;           /* tgid: what ps calls PID */
	__u32 tid;           /* the thread that triggered the event */
	__u32 ppid;          /* real_parent->tgid */
	__u32 uid;           /* real uid (task->real_cred->uid) in the initial user namespace */
	__u32 exit_code;     /* exit: raw task->exit_code (status << 8 | signal, 0x80 = core) */
	__u8 comm[NS_TASK_COMM_LEN];
	__u8 filename[NS_FILENAME_LEN]; /* exec: path as passed to execve; else empty */
};

#ifdef __cplusplus
static_assert(sizeof(struct ns_process_event) == 320, "ns_process_event layout changed");
#else
_Static_assert(sizeof(struct ns_process_event) == 320, "ns_process_event layout changed");
#endif
