/* SPDX-License-Identifier: GPL-2.0 */
/* Turning a UDP request's headers into the reply's, shared by the host and
 * the hardware-offload XDP programs so the two cannot drift. Plain
 * instructions only (no helpers): NICs that run XDP in hardware accept
 * neither bpf_csum_diff nor the load/store helpers. */
#ifndef XDPCACHE_REPLY_H
#define XDPCACHE_REPLY_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include "parse.h"

#define REPLY_TTL 64

/* Checksum after one 16-bit word changed from old to new (RFC 1624). */
static __always_inline __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + (__u32) new;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Folds a sum of 16- and 32-bit words into the 16-bit one's complement of
 * the Internet checksum. */
static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Rewrites the request's headers in [data, data_end) into the reply's:
 * swaps MAC and IP addresses and UDP ports, sets the IP and UDP lengths for a
 * UDP payload of pl_len bytes, TTL / hop limit 64, and the IPv4 header
 * checksum (incrementally). The frame must already have its final length.
 * Returns the unfolded sum of the UDP pseudo header and UDP header (with the
 * checksum field zero), to which the caller adds the payload's sum, or -1
 * when the headers are not where p says. */
static __always_inline __s64 reply_headers(void *data, void *data_end, struct pkt *p, __u32 pl_len)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return -1;
	/* as three 16-bit words each (a byte-wise memcpy otherwise: the
	 * frame's alignment is unknown) */
	__u16 *m = (__u16 *)eth;
	__u16 d0 = m[0], d1 = m[1], d2 = m[2];
	m[0] = m[3];
	m[1] = m[4];
	m[2] = m[5];
	m[3] = d0;
	m[4] = d1;
	m[5] = d2;

	__u32 l3 = p->l3_off & 0x1f; /* at most 14 + 2 VLAN tags */
	__u32 l4 = p->l4_off & 0xff;
	__u16 udp_len = sizeof(struct udphdr) + pl_len;
	__u64 sum = 0;

	if (p->ipv6) {
		struct ipv6hdr *ip6 = data + l3;
		if ((void *)(ip6 + 1) > data_end)
			return -1;
		struct in6_addr a = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = a;
		/* the request's extension headers stay in the reply: they
		 * count in the payload length (the UDP checksum covers only UDP) */
		__u32 ext = (l4 - l3 - sizeof(*ip6)) & 0xff;
		ip6->payload_len = bpf_htons(ext + udp_len);
		ip6->hop_limit = REPLY_TTL;
		/* both addresses, as eight 32-bit words */
		__u32 *w = (__u32 *)&ip6->saddr;
#pragma unroll
		for (int i = 0; i < 8; i++)
			sum += w[i];
	} else {
		struct iphdr *iph = data + l3;
		if ((void *)(iph + 1) > data_end)
			return -1;
		__u32 ihl = (l4 - l3) & 0x3c;
		if (ihl < sizeof(*iph) || (void *)iph + ihl > data_end)
			return -1;
		__be32 a = iph->saddr;
		iph->saddr = iph->daddr;
		iph->daddr = a;
		/* Only the length and TTL change; swapping the addresses leaves
		 * the header sum as it was. */
		__u16 old_len = iph->tot_len, old_ttl = *(__u16 *)&iph->ttl;
		iph->tot_len = bpf_htons(ihl + udp_len);
		iph->ttl = REPLY_TTL;
		__u16 chk = csum_replace2(iph->check, old_len, iph->tot_len);
		iph->check = csum_replace2(chk, old_ttl, *(__u16 *)&iph->ttl);
		sum += (__u64)iph->saddr + iph->daddr;
	}
	struct udphdr *udp = data + l4;
	if ((void *)(udp + 1) > data_end)
		return -1;
	__be16 port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	udp->len = bpf_htons(udp_len);
	udp->check = 0;
	/* pseudo header: addresses (above), protocol, UDP length; UDP header */
	sum += bpf_htons(IPPROTO_UDP) + udp->len;
	sum += udp->source + udp->dest + udp->len;
	return sum;
}

/* Stores the folded checksum into the reply's UDP header (0 is sent as
 * 0xffff: zero means "no checksum"). */
static __always_inline int reply_set_udp_csum(void *data, void *data_end, struct pkt *p, __u64 sum)
{
	struct udphdr *udp = data + (p->l4_off & 0xff);
	if ((void *)(udp + 1) > data_end)
		return -1;
	__u16 c = csum_fold(sum);
	udp->check = c ? c : 0xffff;
	return 0;
}

#endif
