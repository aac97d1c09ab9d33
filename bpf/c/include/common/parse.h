/* SPDX-License-Identifier: GPL-2.0 */
/* Header parsing shared by XDP and TC: Ethernet with up to two VLAN tags,
 * IPv4 (with options) or IPv6 (up to three extension headers), then UDP or
 * TCP. Of a fragmented datagram only the first fragment is parsed, for its
 * ports; later fragments fail (their datagram is not delivered before its
 * first fragment arrives). Works on [data, data_end) so both hooks can use it. */
#ifndef XDPCACHE_PARSE_H
#define XDPCACHE_PARSE_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include "structs.h"

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

struct pkt {
	__u32 l3_off;
	__u32 l4_off;
	__u32 pl_off;  /* first payload byte */
	__u32 pl_len;  /* payload length from the IP header (trailer padding excluded) */
	__u32 tcp_seq; /* host order */
	__u32 tcp_ack; /* host order */
	__u16 sport;   /* network order */
	__u16 dport;
	__u8 ipv6;
	__u8 proto;
	__u8 tcp_flags;
	__u8 first_frag; /* the first fragment of a datagram (only the ports are read), or
			  * FRAG_NO_PORTS: one too short for them */
	__u8 saddr[16] __attribute__((aligned(8))); /* IPv4 as ::ffff:a.b.c.d; read as words */
	__u8 daddr[16];
};

static __always_inline void map_v4(__u8 *dst, __be32 a)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &a, 4);
}

#define FRAG_NO_PORTS 2

/* Returns 0 when p describes a UDP or TCP packet whose headers lie inside
 * [data, data_end) and whose payload lies inside the first frame_len bytes.
 * The addresses are left to parse_addrs. */
static __always_inline int parse_pkt(void *data, void *data_end, __u32 frame_len, struct pkt *p)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 proto;

	/* Keep clang from turning the pointer checks below into offset
	 * arithmetic against frame_len, which the verifier cannot follow. */
	asm volatile("" : "+r"(data_end));

	if ((void *)(eth + 1) > data_end)
		return -1;
	proto = eth->h_proto;

	/* Up to two VLAN tags (802.1Q / 802.1ad); unrolled so offsets stay constant. */
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		__u16 *tag = data + off;
		if ((void *)(tag + 2) > data_end)
			return -1;
		proto = tag[1];
		off += 4;
	}

	p->l3_off = off;
	p->first_frag = 0;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = data + off;
		if ((void *)(iph + 1) > data_end)
			return -1;
		if (iph->version != 4)
			return -1;
		__u32 ihl = iph->ihl * 4;
		if (ihl < sizeof(*iph))
			return -1;
		/* Fragments: only the first carries the L4 header. Later ones
		 * pass; the first is reported so a mutation in it is not missed. */
		if (iph->frag_off & bpf_htons(0x1fff))
			return -1;
		p->first_frag = (iph->frag_off & bpf_htons(0x2000)) != 0;
		__u32 tot = bpf_ntohs(iph->tot_len);
		if (tot < ihl)
			return -1;
		p->ipv6 = 0;
		p->proto = iph->protocol;
		p->l4_off = off + ihl;
		p->pl_len = tot - ihl; /* L4 header + payload for now */
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > data_end)
			return -1;
		if (ip6->version != 6)
			return -1;
		p->ipv6 = 1;
		__u8 nh = ip6->nexthdr;
		__u32 l4 = off + sizeof(*ip6);
		__u32 len = bpf_ntohs(ip6->payload_len);
		/* Follow up to three extension headers (hop-by-hop, routing,
		 * destination options, fragment), so that a mutation behind them
		 * is still seen. */
#pragma unroll
		for (int i = 0; i < 3; i++) {
			if (nh != 0 && nh != 43 && nh != 60 && nh != 44)
				break;
			__u8 *eh = data + (l4 & 0xff);
			if ((void *)(eh + 8) > data_end)
				return -1;
			__u32 ehlen = nh == 44 ? 8 : (eh[1] + 1) * 8;
			if (nh == 44) {
				if ((eh[2] << 5 | eh[3] >> 3) != 0)
					return -1; /* not the first fragment */
				p->first_frag = eh[3] & 1;
			}
			if (ehlen > len)
				return -1;
			nh = eh[0];
			l4 += ehlen;
			len -= ehlen;
		}
		if (l4 > 0xff)
			return -1;
		p->proto = nh;
		p->l4_off = l4;
		p->pl_len = len;
	} else {
		return -1;
	}

	/* l4_off is at most 14 + 8 + 60; the mask tells the verifier so. */
	__u32 l4 = p->l4_off & 0xff;
	if (p->first_frag && (p->proto == IPPROTO_UDP || p->proto == IPPROTO_TCP)) {
		/* The caller only needs the ports (it flushes): IPv4 lets a
		 * first fragment end inside the TCP header, after 8 bytes. */
		__u16 *ports = data + l4;
		p->tcp_seq = p->tcp_ack = 0;
		p->tcp_flags = 0;
		p->pl_off = l4;
		if ((void *)(ports + 2) > data_end || p->pl_len < 4) {
			p->first_frag = FRAG_NO_PORTS;
			p->sport = p->dport = 0;
		} else {
			asm volatile("" : "+r"(ports));
			p->sport = ports[0];
			p->dport = ports[1];
		}
		p->pl_len = 0;
		return 0;
	}
	if (p->proto == IPPROTO_UDP) {
		struct udphdr *udp = data + l4;
		if ((void *)(udp + 1) > data_end)
			return -1;
		/* use this checked pointer, not a recomputed data + l4 */
		asm volatile("" : "+r"(udp));
		if (p->pl_len < sizeof(*udp))
			return -1;
		p->sport = udp->source;
		p->dport = udp->dest;
		p->pl_off = l4 + sizeof(*udp);
		p->pl_len -= sizeof(*udp);
	} else if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + l4;
		if ((void *)(tcp + 1) > data_end)
			return -1;
		asm volatile("" : "+r"(tcp));
		__u32 doff = tcp->doff * 4;
		if (doff < sizeof(*tcp) || p->pl_len < doff)
			return -1;
		p->sport = tcp->source;
		p->dport = tcp->dest;
		p->tcp_seq = bpf_ntohl(tcp->seq);
		p->tcp_ack = bpf_ntohl(tcp->ack_seq);
		p->tcp_flags = ((__u8 *)tcp)[13];
		p->pl_off = l4 + doff;
		p->pl_len -= doff;
	} else {
		return -1;
	}
	if (p->pl_off + p->pl_len > frame_len)
		return -1;
	return 0;
}

/* Fills p->saddr and p->daddr. Kept out of parse_pkt: most packets are not
 * memcached's and are passed on after the port check, without the copies. */
static __always_inline int parse_addrs(void *data, void *data_end, struct pkt *p)
{
	void *l3 = data + (p->l3_off & 0x1f);
	if (p->ipv6) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > data_end)
			return -1;
		__builtin_memcpy(p->saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->daddr, &ip6->daddr, 16);
	} else {
		struct iphdr *iph = l3;
		if ((void *)(iph + 1) > data_end)
			return -1;
		map_v4(p->saddr, iph->saddr);
		map_v4(p->daddr, iph->daddr);
	}
	return 0;
}

/* Is port (network order) one of ports (host order, 0 = unused slot)? */
static __always_inline int port_in(const __u16 ports[MAX_PORTS], __u16 port_be)
{
	__u16 port = bpf_ntohs(port_be);
#pragma unroll
	for (int i = 0; i < MAX_PORTS; i++)
		if (ports[i] && ports[i] == port)
			return 1;
	return 0;
}

/* TC: makes sure the first bytes the parser reads are in the linear part of
 * the skb (headers may sit in paged data), and sets data and data_end. */
#define TC_PULL_HEADERS(skb, data, data_end)                                              \
	do {                                                                              \
		data = (void *)(long)(skb)->data;                                         \
		data_end = (void *)(long)(skb)->data_end;                                 \
		if (data + 128 > data_end && (skb)->len > data_end - data) {              \
			bpf_skb_pull_data(skb, (skb)->len < 128 ? (skb)->len : 128);      \
			data = (void *)(long)(skb)->data;                                 \
			data_end = (void *)(long)(skb)->data_end;                         \
		}                                                                         \
	} while (0)

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

#endif
