/* bpf/include/task.bpf.h: reading a task_struct that is not the current task. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

/* The cgroup v2 id of any task, as bpf_get_current_cgroup_id() gives it for the current one: the
 * kernfs node id of its cgroup in the default hierarchy (the directory's inode number). kn->id
 * is a u64 since Linux 5.5; the ring buffer already needs 5.8, so no shim for older layouts. */
static __always_inline __u64 ns_task_cgroup_id(struct task_struct *task)
{
	return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}
