// SPDX-License-Identifier: GPL-2.0
/* Empty programs on the hook points ebpf-kernel's default families attach (bench/hook_floor/
 * run.sh): what crossing the hooks costs before any program body runs. Each group is built
 * alone (-DSYSEXIT, -DSOCK, -DIRQ) or together. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#ifdef SYSEXIT
/* fd, vfs, sync, mount and shm: one raw sys_exit program, as bpf/progs/kernel.bpf.c. */
SEC("raw_tp/sys_exit")
int sys_exit(void *ctx) { return 0; }
#endif

#ifdef SOCK
/* socket (and netflow): every send and receive on a socket. */
SEC("tp_btf/sock_send_length")
int sock_send(void *ctx) { return 0; }
SEC("tp_btf/sock_recv_length")
int sock_recv(void *ctx) { return 0; }
#endif

#ifdef IRQ
/* hardirq and softirq latency: entry and exit. */
SEC("tp_btf/softirq_entry")
int softirq_entry(void *ctx) { return 0; }
SEC("tp_btf/softirq_exit")
int softirq_exit(void *ctx) { return 0; }
SEC("tp_btf/irq_handler_entry")
int irq_entry(void *ctx) { return 0; }
SEC("tp_btf/irq_handler_exit")
int irq_exit(void *ctx) { return 0; }
#endif
