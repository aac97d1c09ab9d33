// SPDX-License-Identifier: GPL-2.0
/* XDP ingress, hardware-offload flavor: what a SmartNIC can run (see
 * include/offload/offload.h for the rules). It answers single-key ASCII
 * "get <key>" requests over UDP from items the relay wrote to the device, and
 * invalidates on every mutating command (ASCII, meta and binary; UDP and
 * TCP). Compared with the host flavor (xdp_cache.c) it serves less — no
 * multi-get, gets or binary GETs, keys up to OFF_KEY_MAX, items up to
 * OFF_ITEM_MAX — and it is coarser on writes it cannot read: up to
 * OFF_MAX_CMDS commands per packet are read, anything beyond or unreadable
 * flushes the whole cache. Header parsing (parse.h) and the reply's header
 * rewrite (reply.h) are shared with the host flavor.
 *
 * The command reader (read_commands and its oc_* scanners) is in
 * include/offload/commands.h; the global functions below (oc_csum_ok, ...)
 * follow the same verifier shape described there. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#define XDPCACHE_OFFLOAD_MAPS
#include "include/common/structs.h"
#include "include/common/parse.h"
#include "include/common/reply.h"
#include "include/common/budget.h"
#include "include/common/text.h"
#include "include/offload/offload.h"
#include "include/offload/commands.h"

char _license[] SEC("license") = "GPL";

/* Would the kernel accept this request (IPv4 header checksum, UDP
 * checksum)? Requests served are short (OFF_REQ_MAX), so the sum is a
 * bounded loop. */
__noinline int oc_csum_ok(struct xdp_md *ctx, struct pkt *p, __u32 verify_udp)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (!p)
		return 0;
	__u32 l3 = p->l3_off & 0x1f, l4 = p->l4_off & 0xff;
	__u64 sum = 0;
	__u16 *w;
	if (!p->ipv6) {
		__u32 ihl = (l4 - l3) & 0x3c;
		w = data + l3;
#pragma unroll
		for (int i = 0; i < 30; i++) {
			if (i * 2 < ihl) {
				if ((void *)(w + i + 1) > data_end)
					return 0;
				sum += w[i];
			}
		}
		if (ihl < 20 || (void *)(w + 10) > data_end || csum_fold(sum))
			return 0;
		sum = (__u64)w[6] + w[7] + w[8] + w[9]; /* addresses */
	} else {
		w = data + l3 + 8;
		if ((void *)(w + 16) > data_end)
			return 0;
#pragma unroll
		for (int i = 0; i < 16; i++)
			sum += w[i];
	}
	if (!verify_udp)
		return 1;
	__u16 *u = data + l4;
	if ((void *)(u + 4) > data_end)
		return 0;
	if (u[3] == 0)
		return !p->ipv6; /* no checksum: allowed over IPv4 only */
	__u32 n = 8 + p->pl_len; /* UDP header + payload */
	if (n > 8 + OFF_REQ_MAX)
		return 0;
	sum += bpf_htons(IPPROTO_UDP) + u[2];
	__u8 *b = (__u8 *)u;
#pragma unroll
	for (int i = 0; i < 8 + OFF_REQ_MAX; i += 2) {
		if (i >= n || (void *)(b + i + 1) > data_end)
			continue;
		if (i + 1 == n || (void *)(b + i + 2) > data_end)
			sum += b[i]; /* odd length: pad with a zero byte (little-endian word) */
		else
			sum += *(__u16 *)(b + i);
	}
	return csum_fold(sum) == 0;
}

/* The address masked to prefixlen bits (IPv4 mapped: prefixlen counts the
 * 96 bits of ::ffff:). */
static __always_inline void mask_addr(__u8 *dst, const __u8 *src, __u32 prefixlen)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (prefixlen >= (i + 1) * 8)
			dst[i] = src[i];
		else if (prefixlen <= i * 8)
			dst[i] = 0;
		else
			dst[i] = src[i] & (__u8)(0xff << (8 - (prefixlen - i * 8)));
	}
}

/* Source and destination rules, as in the host flavor (docs/security.md),
 * with the allow-list as hash entries at the configured prefix lengths.
 * Returns the largest reply allowed (bytes of IP packet), 0 for none, and
 * the counter to charge when the reply is larger. */
static __always_inline __u32 oreply_budget(struct ocfg *cfg, struct pkt *p, __u32 req_ip_len, __u32 *reason)
{
	if (cfg->flags & CFG_REQUIRE_LOCAL) {
		struct local_addr la;
		__builtin_memcpy(la.addr, p->daddr, 16);
		if (!bpf_map_lookup_elem(&olocal_map, &la)) {
			*reason = STAT_PASS_NOT_LOCAL;
			return 0;
		}
	}
	struct allow_rule *rule = 0;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		__u32 pl = p->ipv6 ? cfg->prefix6[i] : cfg->prefix4[i]; /* bits + 1 */
		if (!pl || rule)
			continue;
		struct oallow_key k = { .prefixlen = p->ipv6 ? pl - 1 : pl - 1 + 96 };
		mask_addr(k.addr, p->saddr, k.prefixlen);
		rule = bpf_map_lookup_elem(&oallow_map, &k);
	}
	return amp_budget(rule, cfg->unlisted_amp, cfg->mtu, req_ip_len, reason);
}

/* Does the item in chunk 0 of (bucket, fill) start "VALUE <key> " for the
 * request's key at [pos, pos + len)? */
__noinline int oc_key_matches(struct xdp_md *ctx, __u32 pos, __u32 len, __u32 bucket, __u32 fill)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ochunk_key ck = { .bucket = bucket, .fill = fill << OFF_FILL_SHIFT };
	struct ochunk *c = bpf_map_lookup_elem(&ochunk_map, &ck);
	if (!c || pos > OFF_POS_MAX || len > OFF_KEY_MAX)
		return 0;
	if (*(__u32 *)c->b != W4('V', 'A', 'L', 'U') || c->b[4] != 'E' || c->b[5] != ' ')
		return 0;
	__u8 *k = data + POS_BOUND(pos);
#pragma unroll
	for (int i = 0; i < OFF_KEY_MAX; i++) {
		if (i < len && ((void *)(k + i + 1) > data_end || k[i] != c->b[6 + i]))
			return 0;
	}
	return c->b[6 + (len & 0x3f)] == ' ';
}

/* Are all of the item's chunks there (the relay deletes a replaced item's
 * chunks after publishing the new entry)? */
__noinline int oc_chunks_present(__u32 bucket, __u32 fill, __u32 len)
{
#pragma unroll
	for (int i = 1; i < OFF_MAX_CHUNKS; i++) {
		struct ochunk_key ck = { .bucket = bucket, .fill = fill << OFF_FILL_SHIFT | i };
		if (i * OFF_CHUNK < len && !bpf_map_lookup_elem(&ochunk_map, &ck))
			return 0;
	}
	return 1;
}

/* Copies the item's bytes into the packet at pos (the frame already has its
 * final length): whole 8-byte words from the chunks, then the last 8 bytes
 * from the entry (overlapping the words before them), so no byte-sized
 * tail loop is needed. Returns -1 when a chunk vanished meanwhile. */
__noinline int oc_write_item(struct xdp_md *ctx, __u32 pos, __u32 bucket, const struct oentry *e)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (!e)
		return -1;
	__u32 len = e->len, fill = e->fill;
	__u64 tail = e->tail;
	if (pos > OFF_POS_MAX || len < 8 || len > OFF_ITEM_MAX)
		return -1;
	__u8 *out = data + POS_BOUND(pos);
#pragma unroll
	for (int i = 0; i < OFF_MAX_CHUNKS; i++) {
		if (i * OFF_CHUNK >= len)
			break;
		struct ochunk_key ck = { .bucket = bucket, .fill = fill << OFF_FILL_SHIFT | i };
		struct ochunk *c = bpf_map_lookup_elem(&ochunk_map, &ck);
		if (!c)
			return -1;
#pragma unroll
		for (int j = 0; j < OFF_CHUNK_WORDS; j++) {
			__u32 off = i * OFF_CHUNK + j * 8;
			if (off + 8 > len)
				break;
			if ((void *)(out + off + 8) > data_end)
				return -1;
			*(__u64 *)(out + off) = *(__u64 *)(c->b + j * 8);
		}
	}
	__u8 *t = out + ((len - 8) & 0x1ff);
	if ((void *)(t + 8) > data_end)
		return -1;
	*(__u64 *)t = tail;
	return 0;
}

/* Answers a single-key GET from the device's cache, or records a ticket so
 * the relay can fill the item from memcached's reply. */
static __always_inline int serve_get(struct xdp_md *ctx, struct ocfg *cfg, struct pkt *p, struct oreq *r)
{
	ostat_inc(STAT_GET_REQS);
	if (r->key_len > OFF_KEY_MAX) {
		ostat_inc(STAT_MISS_TOO_BIG);
		return XDP_PASS;
	}
	if (!oc_csum_ok(ctx, p, cfg->flags & CFG_VERIFY_UDP_CSUM)) {
		ostat_inc(STAT_PASS_BAD_CSUM);
		return XDP_PASS;
	}
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u16 *frame = data + (p->pl_off & 0x1ff);
	if ((void *)(frame + 4) > data_end)
		return XDP_PASS;
	__u16 req_id = frame[0];

	__u32 hash = oc_hash(ctx, r->key_off, r->key_len, OINST_SEED(cfg->seed, p->dport));
	__u32 b = hash & cfg->buckets_mask, zero = 0;
	struct ogen *g = bpf_map_lookup_elem(&ogen_map, &b);
	struct ostate *st = bpf_map_lookup_elem(&ostate_map, &zero);
	struct oentry *ep = bpf_map_lookup_elem(&oentry_map, &b);
	if (!g || !st || !ep)
		return XDP_PASS;
	__u64 gen = g->gen, epoch = st->epoch;
	struct oentry e = *ep; /* one copy: checked as a whole below */

	int hit = e.len >= 8 && e.len <= OFF_ITEM_MAX && e.gen == gen && e.epoch == epoch && e.hash == hash &&
		  e.key_len == r->key_len && e.check == oentry_check(&e) &&
		  oc_key_matches(ctx, r->key_off, r->key_len, b, e.fill) && oc_chunks_present(b, e.fill, e.len);
	if (!hit) {
		struct oticket_key tk = { .port = p->sport, .req_id = req_id, .hash = hash };
		__builtin_memcpy(tk.addr, p->saddr, 16);
		struct oticket t = { .gen = gen, .epoch = epoch };
		bpf_map_update_elem(&oticket_map, &tk, &t, BPF_ANY);
		ostat_inc(STAT_MISS_ABSENT);
		return XDP_PASS;
	}

	__u32 hdr_len = (p->pl_off - p->l3_off) & 0x1ff; /* IP + UDP headers */
	__u32 reply_ip = hdr_len + MC_FRAME_LEN + e.len;
	__u32 reason = 0;
	if (reply_ip > oreply_budget(cfg, p, hdr_len + p->pl_len, &reason)) {
		ostat_inc(reason);
		return XDP_PASS;
	}
	int delta = (int)(p->pl_off + MC_FRAME_LEN + e.len) - (int)(data_end - data);
	if (bpf_xdp_adjust_tail(ctx, delta)) {
		ostat_inc(STAT_MISS_NO_ROOM);
		return XDP_PASS;
	}
	/* From here on the packet is changed: a failure drops it (the client
	 * retries) rather than pass a half-written request. */
	if (oc_write_item(ctx, p->pl_off + MC_FRAME_LEN, b, &e) < 0)
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	frame = data + (p->pl_off & 0x1ff);
	if ((void *)(frame + 4) > data_end)
		return XDP_DROP;
	/* frame header: request id, sequence 0 of 1, reserved 0 */
	frame[1] = 0;
	frame[2] = bpf_htons(1);
	frame[3] = 0;
	__s64 hsum = reply_headers(data, data_end, p, MC_FRAME_LEN + e.len);
	if (hsum < 0)
		return XDP_DROP;
	__u64 sum = (__u64)hsum + req_id + bpf_htons(1) + e.sum;
	if (reply_set_udp_csum(data, data_end, p, sum) < 0)
		return XDP_DROP;
	ostat_inc(STAT_HITS);
	ostat_inc(STAT_HIT_KEYS);
	return XDP_TX;
}

SEC("xdp")
int xdpcache_offload(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct pkt p;

	ostat_inc(STAT_XDP_PACKETS);
	struct ocfg *cfg = ocfg_get();
	if (!cfg)
		return XDP_PASS;
	if (parse_pkt(data, data_end, data_end - data, &p))
		return XDP_PASS;
	if (p.first_frag == FRAG_NO_PORTS) {
		oflush(1); /* a first fragment too short to show its ports */
		return XDP_PASS;
	}
	if (!port_in(cfg->ports, p.dport) || parse_addrs(data, data_end, &p))
		return XDP_PASS;
	ostat_inc(STAT_MC_PACKETS);
	if (p.first_frag) {
		/* a fragmented request: what it mutates cannot be read here */
		oflush(1);
		return XDP_PASS;
	}
	__u32 pos = p.pl_off, end = p.pl_off + p.pl_len;
	if (p.proto == IPPROTO_TCP) {
		ostat_inc(STAT_TCP_SEGMENTS);
		if (p.pl_len) {
			struct oreq r = {};
			read_commands(ctx, pos, end, &r, OINST_SEED(cfg->seed, p.dport));
		}
		return XDP_PASS;
	}
	__u16 *frame = data + (pos & 0x1ff);
	if (p.pl_len <= MC_FRAME_LEN || (void *)(frame + 4) > data_end) {
		ostat_inc(STAT_PASS_MALFORMED);
		return XDP_PASS;
	}
	/* memcached answers single-datagram requests only */
	if (frame[1] != 0 || frame[2] != bpf_htons(1)) {
		ostat_inc(STAT_PASS_MULTI_FRAME);
		return XDP_PASS;
	}
	struct oreq r = {};
	read_commands(ctx, pos + MC_FRAME_LEN, end, &r, OINST_SEED(cfg->seed, p.dport));
	if (r.get)
		return serve_get(ctx, cfg, &p, &r);
	ostat_inc(STAT_PASS_OTHER);
	return XDP_PASS;
}
