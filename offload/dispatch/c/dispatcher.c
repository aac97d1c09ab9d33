// SPDX-License-Identifier: GPL-2.0
/* A multi-program XDP dispatcher in the format of libxdp's protocol
 * (xdp-tools lib/libxdp/protocol.org, dispatcher version 2), so that
 * libxdp and xdp-loader see it as theirs: the program is named
 * xdp_dispatcher, its only map is the read-only configuration below, and
 * its ten slot functions prog0..prog9 are what component programs replace
 * (freplace). Written from the protocol's description. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SLOTS 10
/* What an empty slot returns; its bit is in every slot's chain-call mask,
 * so a slot whose program went away passes the packet on. */
#define EMPTY_SLOT_RET 31

struct xdp_dispatcher_config {
	__u8 magic;             /* 236 */
	__u8 dispatcher_version; /* 2 */
	__u8 num_progs_enabled;
	__u8 is_xdp_frags;
	__u32 chain_call_actions[SLOTS]; /* bit n: go on after action n */
	__u32 run_prios[SLOTS];
	__u32 program_flags[SLOTS];      /* BPF_F_XDP_HAS_FRAGS per slot */
};

/* Set before load; frozen .rodata, so the verifier prunes the slots past
 * num_progs_enabled. volatile: clang must not fold the zero initialiser. */
volatile const struct xdp_dispatcher_config conf = {};

/* A slot. Global (freplace only replaces global functions) and noinline;
 * the volatile return keeps clang from propagating the constant into the
 * caller. The no-op bpf_xdp_adjust_tail marks the slot as one that may
 * change packet data: kernels since 6.13 refuse to replace a function that
 * does not with a program that does (the cache moves the packet's tail). */
#define SLOT(n)                                                   \
	__attribute__((noinline)) int prog##n(struct xdp_md *ctx) \
	{                                                         \
		volatile int ret = EMPTY_SLOT_RET;                \
		if (!ctx)                                         \
			return XDP_ABORTED;                       \
		bpf_xdp_adjust_tail(ctx, 0);                      \
		return ret;                                       \
	}
SLOT(0)
SLOT(1)
SLOT(2)
SLOT(3)
SLOT(4)
SLOT(5)
SLOT(6)
SLOT(7)
SLOT(8)
SLOT(9)

/* Run slot n unless fewer are enabled; stop with its action unless the
 * slot's mask says to go on. */
#define RUN(n)                                             \
	if (conf.num_progs_enabled <= n)                   \
		return XDP_PASS;                           \
	ret = prog##n(ctx);                                \
	if (!((1U << ret) & conf.chain_call_actions[n])) \
		return ret;

SEC("xdp")
int xdp_dispatcher(struct xdp_md *ctx)
{
	int ret;

	RUN(0)
	RUN(1)
	RUN(2)
	RUN(3)
	RUN(4)
	RUN(5)
	RUN(6)
	RUN(7)
	RUN(8)
	RUN(9)
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
