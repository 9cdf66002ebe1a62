/* bpf/include/tp_hook.bpf.h: one hook offered under two attach strategies from one body. Include
 * after vmlinux.h and bpf_tracing.h. */
#pragma once

/* Every hook twice, one body: tp_btf__<hook> (BTF tracepoint: pointer arguments readable
 * directly, `btf` true) and raw_tp__<hook> (raw tracepoint: probe reads only). */
#define NS_HOOK(hook, call, ...)                                                      \
	SEC("tp_btf/" #hook)                                                          \
	int BPF_PROG(tp_btf__##hook, ##__VA_ARGS__)                                   \
	{                                                                             \
		const bool btf = true;                                                \
		(void)btf;                                                            \
		return call;                                                          \
	}                                                                             \
	SEC("raw_tp/" #hook)                                                          \
	int BPF_PROG(raw_tp__##hook, ##__VA_ARGS__)                                   \
	{                                                                             \
		const bool btf = false;                                               \
		(void)btf;                                                            \
		return call;                                                          \
	}
