// SPDX-License-Identifier: GPL-2.0
/* A test program for sharing an interface: counts packets and passes every
 * one on (XDP_PASS). Tests load it with xdp-loader, as an operator would
 * load a filter, and read its counters to tell whether it ran. */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char _license[] SEC("license") = "GPL";

/* Slots of count_map. */
enum {
	COUNT_ALL = 0,      /* every packet */
	COUNT_UDP_MC = 1,   /* UDP to port 11211 (memcached's) */
	COUNT_UDP_OTHER = 2, /* UDP to any other port */
	COUNT_SLOTS = 3,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, COUNT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} count_map SEC(".maps");

/* libxdp's run configuration, read by xdp-loader from the object's BTF
 * (protocol.org, "Processing program metadata"): priority 10, go on after
 * XDP_PASS. Each member's value is the length of the array it points to. */
struct {
	int (*priority)[10];
	int (*XDP_PASS)[1];
} _xdp_count SEC(".xdp_run_config");

static __always_inline void bump(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&count_map, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;
	__u8 proto;

	bump(COUNT_ALL);
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->ihl != 5)
			return XDP_PASS;
		proto = ip->protocol;
		udp = (void *)(ip + 1);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		proto = ip6->nexthdr;
		udp = (void *)(ip6 + 1);
	} else {
		return XDP_PASS;
	}
	if (proto != IPPROTO_UDP || (void *)(udp + 1) > end)
		return XDP_PASS;
	bump(udp->dest == bpf_htons(11211) ? COUNT_UDP_MC : COUNT_UDP_OTHER);
	return XDP_PASS;
}
