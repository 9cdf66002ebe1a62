/* bpf/abi/bash.h: what bpf/progs/bash.bpf.c hands to sensor/plugins/bash. Plain C, shared by the
 * BPF program and C++; bpf/abi/bash_abi_test.cc checks every offset against the compiled
 * object's BTF. */
#pragma once

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Bytes of a line kept; a longer line is cut here and flagged NS_BASH_TRUNCATED. */
#define NS_BASH_LINE_MAX 4096
/* The line buffer: NS_BASH_LINE_MAX bytes plus the NUL bpf_probe_read_user_str always writes,
 * rounded up to 8 so the record stays 8-byte aligned. */
#define NS_BASH_LINE_BUF (NS_BASH_LINE_MAX + 8)
#define NS_BASH_TTY_LEN 64 /* tty_struct.name (include/linux/tty.h) */

/* Ring buffer of struct ns_bash_event: 1 MiB holds ~250 lines between two polls (100 ms), far
 * beyond typing speed, enough for a pasted script. */
#define NS_BASH_RINGBUF_BYTES (1 << 20)

enum ns_bash_flags {
	NS_BASH_TRUNCATED = 1, /* the line was longer than NS_BASH_LINE_MAX */
};

/* Slots of the per-CPU counter array `counters`; user space sums over CPUs. */
enum ns_bash_counter {
	NS_BASH_CNT_RINGBUF_DROPS = 0, /* bpf_ringbuf_reserve failed: line lost */
	NS_BASH_CNT_READ_FAILED = 1,   /* the line could not be read from user memory */
	NS_BASH_CNT_DUPLICATE = 2,     /* a second uprobe on the same file saw the line: not sent */
	NS_BASH_CNT_MAX = 3,
};

/* Threads whose uprobe owner is remembered (map `owners`); a shell is one thread. */
#define NS_BASH_OWNERS 16384

struct ns_bash_event {
	__u64 ts_ns;     /* bpf_ktime_get_ns(): CLOCK_MONOTONIC, when readline returned */
	__u64 cgroup_id; /* bpf_get_current_cgroup_id(): cgroup v2 id of the shell */
	__u32 pid;       /* tgid: what ps calls PID */
	__u32 tid;
	__u32 ppid;      /* real_parent->tgid */
	__u32 uid;       /* real uid in the initial user namespace */
	__u32 length;    /* bytes of `line` that are the line, at most NS_BASH_LINE_MAX */
	__u32 flags;     /* enum ns_bash_flags */
	__u8 tty[NS_BASH_TTY_LEN];    /* the controlling tty's name ("pts3", "tty1"); "" if none */
	__u8 line[NS_BASH_LINE_BUF];  /* the bytes readline returned, NUL-terminated */
};

#ifdef __cplusplus
static_assert(sizeof(struct ns_bash_event) == 4208, "ns_bash_event layout changed");
#else
_Static_assert(sizeof(struct ns_bash_event) == 4208, "ns_bash_event layout changed");
#endif
