// SPDX-License-Identifier: GPL-2.0
/* Benchmark floor (bench_test.go): the least an XDP program must do to answer
 * a memcached UDP GET of a 32-byte value, so the cache's costs can be read as
 * multiples of it. It parses Ethernet, option-less IPv4 and UDP to the key,
 * hashes the key (the cache's key_hash), looks it up in one array, writes
 * "VALUE <key> 0 32\r\n<value>\r\nEND\r\n" straight into the packet, swaps
 * addresses and ports, fixes the IPv4 header checksum and computes the UDP
 * checksum, and sends the frame back. Nothing else: no request checksum
 * check, no allow-list, no locking, no age, no tickets, no counters.
 * Not part of xdpcache. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "include/common/reply.h" /* csum_replace2, csum_fold */

char _license[] SEC("license") = "GPL";

#define FLOOR_PORT 11211
#define FLOOR_ENTRIES 1024 /* a power of two */
#define FLOOR_KEY_MAX 32
#define FLOOR_VAL 32
#define FLOOR_SEED 0x5eedULL

struct floor_val {
	__u8 v[FLOOR_VAL];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct floor_val);
	__uint(max_entries, FLOOR_ENTRIES);
} floor_map SEC(".maps");

/* Request: eth(14) ip(20) udp(8) frame(8) "get " key "\r\n" */
#define PL 42
#define KEY_AT (PL + 8 + 4)
/* Reply grows by "VALUE" vs "get" (+2), " 0 32\r\n" (+7), the value (+32)
 * and "\r\nEND\r\n" (+7), less the request's "\r\n" (-2). */
#define GROW (2 + 7 + FLOOR_VAL + 7 - 2)

SEC("xdp")
int floor_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp = data + PL - 8;
	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP ||
	    (ip->frag_off & bpf_htons(0x3fff)) || udp->dest != bpf_htons(FLOOR_PORT))
		return XDP_PASS;
	__u8 *g = data + PL + 8;
	if ((void *)(g + 4) > data_end || g[0] != 'g' || g[1] != 'e' || g[2] != 't' || g[3] != ' ')
		return XDP_PASS;

	/* the key, zero-padded, up to "\r\n" */
	__u64 key[FLOOR_KEY_MAX / 8] = {};
	__u32 klen = 0;
	__u8 *k = data + KEY_AT;
	for (int i = 0; i < FLOOR_KEY_MAX; i++) {
		if ((void *)(k + i + 1) > data_end)
			return XDP_PASS;
		if (k[i] == '\r')
			break;
		((__u8 *)key)[i] = k[i];
		klen++;
	}
	if (klen == 0 || klen >= FLOOR_KEY_MAX)
		return XDP_PASS;
	__u16 pl_len = bpf_ntohs(udp->len) - 8;
	if (pl_len != 8 + 4 + klen + 2)
		return XDP_PASS;

	/* key_hash (text.h) over at most four words */
	__u64 h = FLOOR_SEED ^ ((__u64)klen * 0x9E3779B97F4A7C15ULL);
	for (int i = 0; i < FLOOR_KEY_MAX / 8; i++) {
		if (i * 8 >= klen)
			break;
		h ^= key[i];
		h *= 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	__u32 idx = (__u32)h & (FLOOR_ENTRIES - 1);
	struct floor_val *v = bpf_map_lookup_elem(&floor_map, &idx);
	if (!v)
		return XDP_PASS;

	if (bpf_xdp_adjust_tail(ctx, GROW))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	ip = data + sizeof(*eth);
	udp = data + PL - 8;
	__u8 *pl = data + PL;
	/* the key's four words end inside the grown payload (61 bytes or more) */
	if ((void *)(pl + 14 + FLOOR_KEY_MAX) > data_end)
		return XDP_DROP;

	/* payload: the request's frame header stays (id, sequence 0 of 1) */
	__builtin_memcpy(pl + 8, "VALUE ", 6);
	__u64 *kd = (__u64 *)(pl + 14);
	for (int i = 0; i < FLOOR_KEY_MAX / 8; i++)
		kd[i] = key[i];
	__u8 *q = pl + 14 + (klen & (FLOOR_KEY_MAX - 1));
	if ((void *)(q + 7 + FLOOR_VAL + 7) > data_end)
		return XDP_DROP;
	__builtin_memcpy(q, " 0 32\r\n", 7);
	__u64 *vs = (__u64 *)v->v, *vd = (__u64 *)(q + 7);
	for (int i = 0; i < FLOOR_VAL / 8; i++)
		vd[i] = vs[i];
	__builtin_memcpy(q + 7 + FLOOR_VAL, "\r\nEND\r\n", 7);
	__u16 new_pl = 8 + 6 + klen + 7 + FLOOR_VAL + 7;

	/* addresses and ports */
	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	__be32 a = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = a;
	__be16 port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;

	/* lengths; the IPv4 header checksum incrementally */
	__u16 old_len = ip->tot_len;
	ip->tot_len = bpf_htons(20 + 8 + new_pl);
	ip->check = csum_replace2(ip->check, old_len, ip->tot_len);
	udp->len = bpf_htons(8 + new_pl);

	/* UDP checksum: pseudo header, UDP header, the payload read back */
	__u64 sum = (__u64)ip->saddr + ip->daddr + bpf_htons(IPPROTO_UDP) + udp->len;
	sum += udp->source + udp->dest + udp->len;
	__u8 *c = pl;
	for (int i = 0; i < (8 + 6 + FLOOR_KEY_MAX + GROW) / 8; i++) {
		if ((void *)(c + 8) > data_end)
			break;
		__u64 w = *(__u64 *)c;
		sum += (w & 0xffffffff) + (w >> 32);
		c += 8;
	}
	for (int i = 0; i < 7; i++) {
		if ((void *)(c + 1) > data_end)
			break;
		sum += (__u64)*c << (i & 1 ? 8 : 0); /* little-endian 16-bit words */
		c++;
	}
	udp->check = 0;
	__u16 ck = csum_fold(sum);
	udp->check = ck ? ck : 0xffff;
	return XDP_TX;
}
