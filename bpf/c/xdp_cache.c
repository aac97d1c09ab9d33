// SPDX-License-Identifier: GPL-2.0
/* XDP ingress: answers memcached GETs over UDP from the cache (XDP_TX) and
 * invalidates keys on every mutating command (UDP and TCP). Anything it does
 * not fully understand goes to memcached untouched (XDP_PASS). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "include/common/parse.h"
#include "include/common/csum.h"
#include "include/common/reply.h"
#include "include/common/budget.h"
#include "include/host/cache.h"
#include "include/host/reply_slots.h"
#include "include/host/mutate.h"
#include "include/host/ack.h"
#include "include/host/reply_stream.h"
#include "include/host/shadow.h"

char _license[] SEC("license") = "GPL";

/* Copies n bytes, n in [8, SHORT_COPY], between the frame at offset off and
 * buf (scratch) with plain loads and stores: into the frame if to_frame
 * (a constant at every call), else out of it. Cheaper than
 * bpf_xdp_store_bytes / bpf_xdp_load_bytes for a small GET or reply. Whole
 * words, then the last 8 bytes again, overlapping (the frame may end right
 * after them). Returns -1 if they are not all in the frame. */
static __always_inline int pkt_copy_short(struct xdp_md *ctx, __u32 off, __u8 *buf, __u32 n, int to_frame)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (off > HDR_MAX || n < 8 || n > SHORT_COPY)
		return -1;
	__u8 *pkt = data + off;
	for (int i = 0; i < SHORT_COPY / 8; i++) {
		if (i * 8 + 8 > n)
			break;
		__u8 *w = pkt + i * 8;
		if ((void *)(w + 8) > data_end)
			return -1;
		if (to_frame)
			*(__u64 *)w = *(__u64 *)(buf + i * 8);
		else
			*(__u64 *)(buf + i * 8) = *(__u64 *)w;
	}
	/* masked, an identity here, so that 6.1's verifier bounds the
	 * packet offset (it loses n's bounds across the subtraction) */
	__u32 t = (n - 8) & (SHORT_COPY - 1);
	__u8 *last = pkt + t;
	if ((void *)(last + 8) > data_end)
		return -1;
	if (to_frame)
		*(__u64 *)last = *(__u64 *)(buf + t);
	else
		*(__u64 *)(buf + t) = *(__u64 *)last;
	return 0;
}

/* The allow-list's and the local-address table's answers for p's
 * addresses into m (the lookups behind reply_budget; their keys in scratch,
 * off the main program's frame, which is at the stack limit). */
static __always_inline void access_lookup(struct config *cfg, struct scratch *s, struct pkt *p,
					  struct access_memo *m)
{
	m->local = 1;
	if (cfg->flags & CFG_REQUIRE_LOCAL) {
		__builtin_memcpy(s->alocal.addr, p->daddr, 16);
		m->local = bpf_map_lookup_elem(&local_map, &s->alocal) != 0;
	}
	struct allow_rule *rule;
	if (p->ipv6) {
		s->akey6.prefixlen = 128;
		__builtin_memcpy(s->akey6.addr, p->saddr, 16);
		rule = bpf_map_lookup_elem(&allow6_map, &s->akey6);
	} else {
		s->akey4.prefixlen = 32;
		__builtin_memcpy(s->akey4.addr, p->saddr + 12, 4);
		rule = bpf_map_lookup_elem(&allow4_map, &s->akey4);
	}
	m->listed = rule != 0;
	m->max_amp = rule ? rule->max_amp : 0;
}

/* Source and destination rules (docs/security.md). Returns the largest reply
 * allowed for this request (in bytes of IP packet), 0 if none may be sent,
 * and sets *reason to the pass counter. The lookups' answers are memoized
 * per CPU for the pair of addresses (struct access_memo): config's
 * access_gen is read before the lookups and stored with their answers, and
 * xdpcache writes a new one after every change of either table, so a memo
 * is used only while it reflects the tables (a change races a lookup only as
 * a lookup a moment earlier would). */
static __always_inline __u32 reply_budget(struct config *cfg, struct scratch *s, struct pkt *p, __u32 req_ip_len,
					 __u32 *reason)
{
	__u64 gen = *(volatile __u64 *)&cfg->access_gen;
	const __u64 *sa = (const __u64 *)p->saddr, *da = (const __u64 *)p->daddr;
	__u32 i = (__u32)((sa[1] ^ (sa[1] >> 29) ^ sa[0]) * 0x9E3779B97F4A7C15ULL >> 60) & (ACCESS_MEMOS - 1);
	struct access_memo *m = &s->memo[i];
	const __u64 *ms = (const __u64 *)m->saddr, *md = (const __u64 *)m->daddr;
	if (!m->valid || m->gen != gen || ms[0] != sa[0] || ms[1] != sa[1] || md[0] != da[0] || md[1] != da[1]) {
		m->valid = 0;
		access_lookup(cfg, s, p, m);
		__builtin_memcpy(m->saddr, p->saddr, 16);
		__builtin_memcpy(m->daddr, p->daddr, 16);
		m->gen = gen;
		m->valid = 1;
	}
	if (!m->local) {
		*reason = STAT_PASS_NOT_LOCAL;
		return 0;
	}
	return amp_budget_of(m->listed, m->max_amp, cfg->unlisted_amp, cfg->mtu, req_ip_len, reason);
}

/* Turns the request into the reply held in s->out[0, out_len) (memcached
 * frame header included): grows or shrinks the tail, swaps addresses and
 * ports, fixes lengths and both checksums. Returns XDP_TX, or a negative
 * number when the packet is unchanged (caller passes it; -2: no room, already
 * counted), or XDP_DROP when it was changed and can no longer be passed. */
static __always_inline int send_reply(struct xdp_md *ctx, struct pkt *p, struct scratch *s, __u32 out_len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (out_len > BUF_SIZE - 16 || out_len < MC_FRAME_LEN)
		return -1;
	/* zero padding so the checksum can round up to 4 bytes */
	*(__u32 *)(s->out + (out_len & BUF_MASK)) = 0;

	int delta = (int)(p->pl_off + out_len) - (int)s->frame_len;
	/* If the tail cannot grow (veth frames built from small skbs have
	 * little tailroom), the frame grows at the front instead, into the
	 * headroom XDP guarantees: the headers (Ethernet to UDP, at most
	 * 14 + 8 + 60 + 8 bytes) are kept aside in s->hdr and written back. */
	__u32 hlen = p->pl_off;
	if (hlen < sizeof(struct ethhdr) || hlen > HDR_MAX)
		return -1;
	if (bpf_xdp_adjust_tail(ctx, delta)) {
		/* the frame is unchanged so far */
		if (delta <= 0 || bpf_xdp_load_bytes(ctx, 0, s->hdr, SIZE_1_TO(hlen, HDR_MAX)) < 0 ||
		    bpf_xdp_adjust_head(ctx, -delta)) {
			stat_inc(STAT_MISS_NO_ROOM);
			return -2;
		}
		if (bpf_xdp_store_bytes(ctx, 0, s->hdr, SIZE_1_TO(hlen, HDR_MAX)) < 0)
			return XDP_DROP;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;

	__s64 hsum = reply_headers(data, data_end, p, out_len);
	if (hsum < 0)
		return XDP_DROP;
	__u64 sum = hsum;

	/* re-bound the length where the verifier needs it (its bounds were
	 * lost across the helper calls above) */
	__u32 n = out_len & BUF_MASK;
	asm volatile("" : "+r"(n));
	if (n < MC_FRAME_LEN)
		return XDP_DROP;
	if (n <= SHORT_COPY) {
		if (pkt_copy_short(ctx, p->pl_off, s->out, n, 1) < 0)
			return XDP_DROP;
	} else if (bpf_xdp_store_bytes(ctx, p->pl_off, s->out, SIZE_1_TO(n, BUF_SIZE)) < 0) {
		return XDP_DROP;
	}
	sum = csum_buf_short(s->out, out_len, sum);

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (reply_set_udp_csum(data, data_end, p, sum) < 0)
		return XDP_DROP;
	return XDP_TX;
}

/* Would the kernel accept this request? It drops IPv4 headers and UDP
 * datagrams whose checksums are wrong; XDP runs before that check, so a
 * request is verified before it is answered. The headers are summed where
 * they are, in the packet (unchanged since parse_pkt); the payload is
 * s->in[0, len). */
static __always_inline int request_csum_ok(struct xdp_md *ctx, struct config *cfg, struct pkt *p, struct scratch *s,
					   __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 l3 = p->l3_off & 0x1f, l4 = p->l4_off & 0xff;
	__u64 sum = 0;
	if (!p->ipv6) {
		__u32 ihl = (l4 - l3) & 0x3c;
		__u32 *ip = data + l3;
		if (ihl < 20 || (void *)(ip + 5) > data_end)
			return 0;
		__u64 h = (__u64)ip[0] + ip[1] + ip[2] + ip[3] + ip[4];
		if (ihl > 20) {
			/* options (rare): summed from a copy, as a loop over
			 * packet words would need a bounds check per word */
			if (bpf_xdp_load_bytes(ctx, l3 + 20, s->hdr, SIZE_1_TO(ihl - 20, 64)) < 0)
				return 0;
			for (int i = 0; i < 10; i++) {
				if (i * 4 >= ihl - 20)
					break;
				h += *(__u32 *)(s->hdr + i * 4);
			}
		}
		if (csum_fold(h) != 0)
			return 0;
		sum = (__u64)ip[3] + ip[4]; /* addresses */
	} else {
		__u32 *ip6 = data + l3; /* addresses: words 2..9 */
		if ((void *)(ip6 + 10) > data_end)
			return 0;
#pragma unroll
		for (int i = 2; i < 10; i++)
			sum += ip6[i];
	}
	if (!(cfg->flags & CFG_VERIFY_UDP_CSUM))
		return 1;
	__u16 *udp = data + l4;
	if ((void *)(udp + 4) > data_end)
		return 0;
	if (udp[3] == 0) /* no checksum: allowed over IPv4 only */
		return !p->ipv6;
	sum += bpf_htons(IPPROTO_UDP) + udp[2]; /* pseudo header: protocol, length */
	sum += udp[0] + udp[1] + udp[2] + udp[3];
	*(__u32 *)(s->in + (len & BUF_MASK)) = 0; /* pad to a multiple of 4 */
	return csum_fold(csum_buf_short(s->in, len, sum)) == 0;
}

/* Set by the loader for the program xdpcache attaches to the interfaces it
 * only watches for writes (lo, interfaces not served): it invalidates as
 * the serving program does, and never answers or tickets a UDP GET. A
 * constant, so the serving program pays nothing for it. */
const volatile __u32 watch_only = 0;

/* Checks the kernel would accept a GET about to be answered (see
 * request_csum_ok). Only answers are checked: a request that goes to memcached is
 * checked by the kernel, and its tickets only ever refuse fills (a forged
 * request can carry a valid checksum as well). */
static __always_inline int admit_get(struct xdp_md *ctx, struct config *cfg, struct pkt *p, struct scratch *s, __u32 len)
{
	if (!request_csum_ok(ctx, cfg, p, s, len)) {
		stat_inc(STAT_PASS_BAD_CSUM);
		return 0;
	}
	return 1;
}

/* Records what the TC program needs to fill from memcached's reply. */
static __always_inline void issue_ticket(struct scratch *s, struct pkt *p, __u16 req_id, __u32 opaque, __u64 hash,
					 __u64 gen, __u64 epoch, __u64 now)
{
	struct ticket_key *tk = &s->tkey;
	__builtin_memcpy(tk->addr, p->saddr, 16);
	tk->port = p->sport;
	tk->req_id = req_id;
	tk->opaque = opaque;
	tk->hash = hash;
	s->tk.gen = gen;
	s->tk.epoch = epoch;
	s->tk.t_req_ns = now;
	bpf_map_update_elem(&ticket_map, tk, &s->tk, BPF_ANY);
}

/* Same key in the ticket as in s->tk? */
static __always_inline int ticket_same_key(struct ticket *t, struct ticket *n)
{
	if (t->hash != n->hash || t->key_len != n->key_len)
		return 0;
	for (int i = 0; i < KEY_WORDS; i++)
		if (((__u64 *)t->key)[i] != ((__u64 *)n->key)[i])
			return 0;
	return 1;
}

/* Binary GET-family miss over UDP; s->tk holds the key, its hash, the
 * opcode, gen, epoch and arrival time. A ticket must name the key its reply
 * answers:
 * - GETK/GETKQ replies echo the key: the ticket is keyed by its hash, as an
 *   ASCII one, and the TC program compares the echoed key with it.
 * - GET/GETQ replies carry no key: the ticket (hash 0) names the key the
 *   (client, request id, opaque) asked for and counts the requests not yet
 *   answered. A request for another key while some are pending makes it
 *   ambiguous: no reply fills from it until every request it counts has
 *   been answered (then the next request starts afresh).
 * A second request for the same key keeps the older ticket: its generation
 * and time are the conservative ones. Global: see scan.h. */
__noinline int sc_issue_bin_ticket(struct scratch *s, struct pkt *p, __u32 opaque, __u32 with_key)
{
	if (!s || !p)
		return -1;
	s = get_scratch(); /* map-value pointer: see sc_issue_tickets */
	if (!s)
		return -1;
	struct ticket_key *tk = &s->tkey;
	__builtin_memcpy(tk->addr, p->saddr, 16);
	tk->port = p->sport;
	tk->req_id = *(__u16 *)s->in;
	tk->opaque = opaque;
	tk->hash = with_key ? s->tk.hash : 0;
	s->tk.binary = TICKET_BINARY;
	s->tk.pending = 1;
	int rc = bpf_map_update_elem(&ticket_map, tk, &s->tk, BPF_NOEXIST);
	if (rc == 0 || with_key)
		goto out;
	struct ticket *t = bpf_map_lookup_elem(&ticket_map, tk);
	if (!t)
		goto out;
	if (t->pending == 0) {
		/* every request it counted was answered */
		bpf_map_update_elem(&ticket_map, tk, &s->tk, BPF_ANY);
		goto out;
	}
	__sync_fetch_and_add(&t->pending, 1);
	if (t->binary != TICKET_BINARY || !ticket_same_key(t, &s->tk))
		t->binary = TICKET_BINARY_AMBIGUOUS;
out:
	s->tk.binary = 0;
	s->tk.pending = 0;
	return 0;
}

#define GET_TOO_MANY_KEYS -2

/* Parses the keys of "get <k1> <k2> ...\r\n" from s->in[pos, len) into the
 * key slots. Returns nkeys | (offset after the line's '\n') << 8, 0 when
 * malformed, GET_TOO_MANY_KEYS beyond MAX_GET_KEYS. Global: see scan.h. */
__noinline int sc_parse_get(struct scratch *s, struct config *cfg, __u32 pos, __u32 len)
{
	if (!s || !cfg)
		return 0;
	__u32 nkeys = 0;
	for (int k = 0; k <= MAX_GET_KEYS; k++) {
		pos = sc_spaces(s, BUF_IN, pos, len);
		if (pos >= len)
			return 0;
		__u8 c = AT(s->in, BUF_MASK, pos);
		if (c == '\r' || c == '\n')
			break;
		if (k == MAX_GET_KEYS)
			return GET_TOO_MANY_KEYS;
		int kl = sc_get_key(s, pos, len, k);
		if (kl <= 0 || kl > KEY_MAX)
			return 0;
		s->key_lens[k & (MAX_GET_KEYS - 1)] = kl;
		pos += kl;
		nkeys++;
	}
	if (!nkeys)
		return 0;
	if (AT(s->in, BUF_MASK, pos) == '\r')
		pos++;
	if (pos >= len || AT(s->in, BUF_MASK, pos) != '\n')
		return 0;
	return nkeys | ((pos + 1) << 8);
}

/* Miss: memcached answers. Leaves a ticket per key and a reply state so the
 * egress program can fill from the answer. Global: see scan.h. */
__noinline int sc_issue_tickets(struct scratch *s, struct config *cfg, struct pkt *p, __u32 nkeys)
{
	if (!s || !cfg || !p)
		return -1;
	/* Kernels before 6.2 take map keys and values only from the stack or
	 * map values, not from the plain memory a global function's argument
	 * points to: reach the same scratch element through a map-value pointer. */
	s = get_scratch();
	if (!s)
		return -1;
	int tcp = p->proto == IPPROTO_TCP;
	__u16 req_id = tcp ? 0 : *(__u16 *)s->in;
	__u32 req_end = 0;
	/* TCP: only where TC follows the replies, never for a retransmission;
	 * the reply must come after the server acknowledged the request */
	if (tcp && !stream_ticket_ok(p, &req_end))
		return 0;
	s->tk.tcp_seq = req_end;
	if (!tcp) {
		struct ticket_key *rk = &s->tkey;
		__builtin_memcpy(rk->addr, p->saddr, 16);
		rk->port = p->sport;
		rk->req_id = req_id;
		rk->opaque = 0;
		rk->hash = 0;
		struct reply_slot *sl = reply_slot_of(s, cfg, rk);
		if (!sl)
			return 0;
		struct reply_state *rs = &s->rs_new;
		rs->skip = 0;
		rs->has_ticket = 0;
		if (nkeys == 1) {
			/* the one key's ticket rides in the reply state (its
			 * generation read before the slot's lock: no call under it) */
			__u64 h = s->hashes[0];
			rs->has_ticket = 1;
			rs->t_hash = h;
			rs->t_gen = ticket_gen(s, cfg, 0, h);
			rs->t_epoch = s->q_epoch;
			rs->t_req_ns = s->q_now;
		}
		int rc = reply_slot_claim(sl, rk, rs, s->q_now);
		if (rc == SLOT_BUSY) {
			/* another reply stands inside a value there: this one
			 * will have no state, so it cannot fill (no tickets) */
			stat_inc(STAT_FILL_SLOT_BUSY);
			return 0;
		}
		/* SLOT_OWN_MID: a reply to this client's request id is out
		 * mid-value (the id reused): its state stays, or the rest of that
		 * value would be read as items; the tickets go to ticket_map and
		 * the new reply is read with that state once the value ends. */
		if (rc == SLOT_CLAIMED && nkeys == 1)
			return 0;
	}
	for (int k = 0; k < MAX_GET_KEYS; k++) {
		if (k >= nkeys)
			break;
		__u64 h = s->hashes[k];
		issue_ticket(s, p, req_id, tcp ? TICKET_TCP : 0, h, ticket_gen(s, cfg, k, h), s->q_epoch, s->q_now);
	}
	return 0;
}

/* A TCP segment that is exactly one "get"/"gets" line: leave tickets so the
 * reply can fill (memcached answers it over the same connection). */
static __always_inline int tcp_get_tickets(struct xdp_md *ctx, struct config *cfg, struct scratch *s, struct pkt *p,
					   __u64 now)
{
	__u32 len = p->pl_len;
	if (len < 6 || len > BUF_SIZE)
		return 0;
	if (bpf_xdp_load_bytes(ctx, p->pl_off, s->in, SIZE_1_TO(len, BUF_SIZE)) < 0)
		return 0;
	__u64 w = load8(s->in, BUF_MASK, 0);
	__u32 start;
	if ((w & MASKN(4)) == W4('g', 'e', 't', ' '))
		start = 4;
	else if ((w & MASKN(5)) == W5('g', 'e', 't', 's', ' '))
		start = 5;
	else
		return 0;
	int n = sc_parse_get(s, cfg, start, len);
	if (n <= 0 || ((__u32)n >> 8) != len)
		return 0;
	struct global_state *gs = get_global();
	if (!gs)
		return 0;
	s->q_epoch = inst_epoch_of(gs, s->inst);
	s->q_now = now;
	s->q_ngen = 0;
	sc_issue_tickets(s, cfg, p, n & 0xff);
	return 1;
}

/* The connection can no longer be read exactly: the cache goes, and the
 * connection is read conservatively from here on (FLOW_UNSYNCED). */
static __always_inline void flow_lose_track(struct config *cfg, struct flow_state *fs, __u64 now)
{
	fs->sync = FLOW_UNSYNCED;
	fs->skip = 0;
	fs->pend = 0;
	fs->carry_len = 0;
	fs->mode = FLOW_AT_COMMAND;
	flush_cache(cfg, now, 0, 1);
	stat_inc(STAT_FLUSH_UNSYNCED);
}

/* Reads a segment of a connection whose positions cannot be trusted
 * (FLOW_UNSYNCED). A segment that continues the last one, of an ASCII
 * connection or of one whose protocol is unknown and that holds no 0x80
 * byte (so no binary request), has every line read for mutations (data
 * lengths ignored, so data that looks like commands costs only
 * invalidations); anything else flushes. */
static __always_inline void scan_unsynced(struct xdp_md *ctx, struct config *cfg, struct scratch *s,
					  struct flow_state *fs, struct pkt *p, __u32 from, int contiguous, __u64 now)
{
	int binary = fs->proto == FLOW_PROTO_BINARY ||
		     (fs->proto == FLOW_PROTO_UNKNOWN && sc_has_magic(ctx, s, p->pl_off, p->pl_len));
	if (binary || !contiguous) {
		/* binary (headers can no longer be found; a connection whose
		 * protocol is unknown may be binary where a segment holds a
		 * 0x80 byte, with which every binary request begins), or the
		 * segment may start inside a line whose start we missed */
		flow_lose_track(cfg, fs, now);
		return;
	}
	fs->skip = 0;
	s->q_now = now;
	if (sc_stream(ctx, s, cfg, fs, STREAM_RANGE(p->pl_off, from, p->pl_len, 0)) < 0)
		flow_lose_track(cfg, fs, now);
}

/* TCP segment to memcached: the connection is followed from its SYN in
 * sequence order (mutate.h). */
static __always_inline void scan_tcp(struct xdp_md *ctx, struct config *cfg, struct scratch *s, struct pkt *p,
				     struct flow_key *fk, __u64 now)
{
	struct flow_state *fs;
	int joined = 0;
	__u32 seq = p->tcp_seq;
	int closing = p->tcp_flags & (TCPF_FIN | TCPF_RST);

	if (p->tcp_flags & TCPF_SYN) {
		/* a new connection: its first byte has sequence number seq + 1
		 * (data on a SYN too: TCP Fast Open) */
		if (bpf_map_update_elem(&flow_map, fk, &s->flow_zero, BPF_ANY) == 0)
			stat_inc(STAT_FLOWS_NEW);
		seq++;
		fs = bpf_map_lookup_elem(&flow_map, fk);
		if (fs)
			fs->next_seq = seq;
	} else {
		fs = bpf_map_lookup_elem(&flow_map, fk);
	}
	if (p->pl_len == 0)
		goto out;
	stat_inc(STAT_TCP_SEGMENTS);
	if (p->pl_len > 0xffff && fs) {
		/* larger than we read (BIG TCP) */
		flow_lose_track(cfg, fs, now);
		fs->next_seq = seq + p->pl_len;
		goto out;
	}
	if (!fs) {
		/* a connection whose start we never saw: its protocol and
		 * where its commands start are unknown */
		if (bpf_map_update_elem(&flow_map, fk, &s->flow_zero, BPF_NOEXIST) == 0)
			stat_inc(STAT_FLOWS_UNSYNCED);
		fs = bpf_map_lookup_elem(&flow_map, fk);
		if (!fs) {
			flush_cache(cfg, now, 0, 1);
			stat_inc(STAT_FLUSH_UNSYNCED);
			goto out;
		}
		fs->sync = FLOW_UNSYNCED;
		fs->next_seq = seq;
		joined = 1; /* the segment may start inside a line we never saw */
	}
	__s32 d = (__s32)(seq - fs->next_seq);
	if (d > 0 && fs->sync == FLOW_SYNCED) {
		/* bytes before this segment were not seen (lost or
		 * reordered): from here on the connection is read
		 * conservatively */
		fs->sync = FLOW_UNSYNCED;
		fs->pend = 0;
		stat_inc(STAT_FLOWS_UNSYNCED);
	}
	if (fs->sync == FLOW_UNSYNCED) {
		/* only a segment that starts where the last one ended can be
		 * read line by line; one before it may fill a hole rather
		 * than repeat what was seen */
		scan_unsynced(ctx, cfg, s, fs, p, 0, d == 0 && !joined, now);
		if (d >= 0)
			fs->next_seq = seq + p->pl_len;
		goto out;
	}
	__u32 from = 0;
	if (d < 0) {
		/* a retransmission of bytes already read (nothing was
		 * skipped on this connection): read only the new ones */
		if ((__u32)(-d) >= p->pl_len)
			goto out;
		from = (__u32)(-d);
	}
	if (fs->proto == FLOW_PROTO_UNKNOWN) {
		__u8 first = 0;
		if (bpf_xdp_load_bytes(ctx, p->pl_off + from, &first, 1) < 0)
			goto out;
		fs->proto = first == 0x80 ? FLOW_PROTO_BINARY : FLOW_PROTO_ASCII;
		if (cfg->flags & CFG_PROTO_ASCII)
			fs->proto = FLOW_PROTO_ASCII;
		else if (cfg->flags & CFG_PROTO_BINARY)
			fs->proto = FLOW_PROTO_BINARY;
	}
	if (fs->proto == FLOW_PROTO_ASCII && from == 0 && !fs->skip && !fs->carry_len &&
	    fs->mode == FLOW_AT_COMMAND)
		tcp_get_tickets(ctx, cfg, s, p, now);
	s->q_now = now;
	if (sc_stream(ctx, s, cfg, fs, STREAM_RANGE(p->pl_off, from, p->pl_len, 0)) < 0) {
		/* a line or request that cannot be followed exactly */
		flow_lose_track(cfg, fs, now);
		stat_inc(STAT_FLOWS_UNSYNCED);
	}
	fs->next_seq = seq + p->pl_len;
out:
	if (closing && fs)
		bpf_map_delete_elem(&flow_map, fk);
}

/* Scans a TCP segment and logs what it mutated for rule A (ack.h). Always
 * passes the segment on. */
static __always_inline void handle_tcp(struct xdp_md *ctx, struct config *cfg, struct scratch *s, struct pkt *p,
				       __u64 now)
{
	struct global_state *g = get_global();
	__u64 epoch = g ? inst_epoch_of(g, s->inst) : 0;
	/* one key for flow_map and ack_map, in scratch (the main program's
	 * frame is at the stack limit) */
	struct flow_key *fk = &s->tcp_fk;
	__builtin_memset(fk, 0, sizeof(*fk));
	flow_key_in(fk, p);
	__builtin_memcpy(&s->ack_fk, fk, sizeof(*fk));
	if (p->tcp_flags & (TCPF_SYN | TCPF_RST))
		sc_ack_drop(s, cfg, now); /* a log of an earlier connection on these ports */
	/* mutations are logged for their own reply only where TC counts replies */
	s->ack_ok = stream_counted(fk);
	s->inv_logged = 0;
	s->inv_logging = 1;
	s->ncmds = 0;
	scan_tcp(ctx, cfg, s, p, fk, now);
	s->inv_logging = 0;
	/* a flush by another CPU meanwhile is counted too: one extra flush */
	if (sc_ack_record(s, cfg, g && inst_epoch_of(g, s->inst) != epoch, now) < 0) {
		struct flow_state *fs = bpf_map_lookup_elem(&flow_map, fk);
		if (fs)
			fs->pend_held = 1; /* no log: a store's data block to come is held too */
	}
}

struct get_ctx {
	struct config *cfg;
	struct scratch *s;
	__u32 nkeys;
	__u32 miss; /* first miss reason, 0 = all hit so far */
};

static long get_key_step(__u32 k, void *data)
{
	struct get_ctx *g = data;
	if (k >= g->nkeys || k >= MAX_GET_KEYS)
		return 1;
	int miss = sc_serve_ascii(g->s, g->cfg, k);
	if (miss) {
		g->miss = miss;
		return 1;
	}
	return 0;
}

/* ASCII "get"/"gets" over UDP. The request is in s->in[0, len) (frame
 * header first). */
static __always_inline int udp_ascii_get(struct xdp_md *ctx, struct config *cfg, struct scratch *s, struct pkt *p,
					 __u32 len, __u32 want_cas, __u64 now)
{
	int n = sc_parse_get(s, cfg, MC_FRAME_LEN + (want_cas ? 5 : 4), len);
	if (n == GET_TOO_MANY_KEYS) {
		stat_inc(STAT_PASS_TOO_MANY_KEYS);
		return XDP_PASS;
	}
	if (n <= 0)
		goto malformed;
	__u32 nkeys = n & 0xff, pos = (__u32)n >> 8;
	if (pos != len) {
		/* more commands follow in the datagram: leave it to memcached */
		scan_udp(ctx, cfg, s, p, bpf_ktime_get_ns(), p->pl_off, MC_FRAME_LEN, len);
		stat_inc(STAT_PASS_OTHER);
		return XDP_PASS;
	}
	stat_inc(STAT_GET_REQS);

	struct global_state *gs = get_global();
	if (!gs)
		return XDP_PASS;
	__u32 reason = 0;
	__u32 ip_hdr = p->pl_off - 8 - p->l3_off; /* IP header length */
	__u32 budget = reply_budget(cfg, s, p, ip_hdr + 8 + len, &reason);
	struct get_ctx g = { .cfg = cfg, .s = s, .nkeys = nkeys };
	__u64 epoch = inst_epoch_of(gs, s->inst);
	s->q_epoch = epoch;
	s->q_now = now;
	s->q_want_cas = want_cas;
	s->q_out = MC_FRAME_LEN;
	s->q_ngen = 0;
	if (!budget) {
		stat_inc(reason);
		return XDP_PASS;
	}
	/* payload limit: budget minus IP and UDP headers, END\r\n and slack */
	if (budget < ip_hdr + 8 + MC_FRAME_LEN + 5 + 1) {
		stat_inc(reason);
		return XDP_PASS;
	}
	s->q_limit = budget - ip_hdr - 8 - 5;
	if (s->q_limit > BUF_SIZE - 64)
		s->q_limit = BUF_SIZE - 64;

	if (nkeys == 1)
		g.miss = sc_serve_ascii(s, cfg, 0); /* bpf_loop's calls cost more than the one key */
	else
		bpf_loop(MAX_GET_KEYS, get_key_step, &g, 0);
	if (!g.miss && (cfg->flags & CFG_SHADOW))
		g.miss = sc_shadow_ascii(s, p, nkeys); /* counted as the "miss": memcached answers */
	if (!g.miss) {
		__u32 o = s->q_out;
		*(__u64 *)(s->out + (o & BUF_MASK)) = W5('E', 'N', 'D', '\r', '\n');
		o += 5;
		/* frame header: echo the request id, sequence 0 of 1 */
		*(__u16 *)s->out = *(__u16 *)s->in;
		*(__u16 *)(s->out + 2) = 0;
		*(__u16 *)(s->out + 4) = bpf_htons(1);
		*(__u16 *)(s->out + 6) = 0;
		if (!admit_get(ctx, cfg, p, s, len))
			return XDP_PASS;
		int rc = send_reply(ctx, p, s, o);
		if (rc == XDP_TX) {
			stat_inc(STAT_HITS);
			stat_add(STAT_HIT_KEYS, nkeys);
			return XDP_TX;
		}
		if (rc == XDP_DROP)
			return XDP_DROP;
		g.miss = rc == -2 ? 0 : STAT_MISS_TOO_BIG;
	}
	if (g.miss)
		stat_inc(g.miss == STAT_MISS_TOO_BIG && budget < cfg->mtu ? STAT_PASS_AMPLIFICATION : g.miss);

	/* Miss: memcached answers. Leave a ticket per key and a reply state so
	 * the egress program can fill from the answer. */
	sc_issue_tickets(s, cfg, p, nkeys);
	return XDP_PASS;

malformed:
	stat_inc(STAT_PASS_MALFORMED);
	scan_udp(ctx, cfg, s, p, bpf_ktime_get_ns(), p->pl_off, MC_FRAME_LEN, len);
	return XDP_PASS;
}

static __always_inline int bin_is_get(__u8 op)
{
	return op == BIN_GET || op == BIN_GETQ || op == BIN_GETK || op == BIN_GETKQ;
}

/* Binary GET/GETQ/GETK/GETKQ over UDP, one request per datagram. */
static __always_inline int udp_binary(struct xdp_md *ctx, struct config *cfg, struct scratch *s, struct pkt *p,
				      __u32 len, __u64 now)
{
	__u8 *h = s->in + MC_FRAME_LEN;
	__u8 op = h[1];
	__u32 klen = ((__u32)h[2] << 8) | h[3];
	__u32 elen = h[4];
	__u32 body = ((__u32)h[8] << 24) | ((__u32)h[9] << 16) | ((__u32)h[10] << 8) | h[11];
	if (!bin_is_get(op) || elen != 0 || klen == 0 || klen > KEY_MAX || body != klen ||
	    MC_FRAME_LEN + MC_BIN_HDR_LEN + klen != len) {
		/* not a single GET: invalidate what it mutates */
		scan_udp(ctx, cfg, s, p, bpf_ktime_get_ns(), p->pl_off, MC_FRAME_LEN, len);
		stat_inc(STAT_PASS_OTHER);
		return XDP_PASS;
	}
	stat_inc(STAT_GET_REQS);
	__u64 *k64 = (__u64 *)s->keys[0];
	sc_copy_key(s, BUF_IN, MC_FRAME_LEN + MC_BIN_HDR_LEN, klen, 0);
	s->key_lens[0] = klen;
	s->hashes[0] = sc_hash(s, 0, klen, s->seed);

	struct global_state *gs = get_global();
	if (!gs)
		return XDP_PASS;
	s->q_epoch = inst_epoch_of(gs, s->inst); /* in scratch: fewer registers to spill */
	__u32 reason = 0;
	__u32 ip_hdr = p->pl_off - 8 - p->l3_off;
	__u32 budget = reply_budget(cfg, s, p, ip_hdr + 8 + len, &reason);
	if (!budget || budget < ip_hdr + 8 + MC_FRAME_LEN + MC_BIN_HDR_LEN + 4) {
		stat_inc(reason ? reason : STAT_PASS_NOT_ALLOWED);
		return XDP_PASS;
	}
	__u32 limit = budget - ip_hdr - 8;
	if (limit > BUF_SIZE - 64)
		limit = BUF_SIZE - 64;
	int with_key = op == BIN_GETK || op == BIN_GETKQ;
	s->q_now = now;
	s->q_out = MC_FRAME_LEN + MC_BIN_HDR_LEN;
	s->q_limit = limit;
	s->q_ngen = 0;
	int miss = sc_serve_binary(s, cfg, with_key);
	if (!miss && (cfg->flags & CFG_SHADOW))
		miss = sc_shadow_binary(s, p, *(__u32 *)(h + 12), with_key); /* as in udp_ascii_get */
	if (!miss) {
		__u32 kl = with_key ? klen : 0;
		__u32 vlen = s->q_vlen, o = s->q_out;
		__u8 *o8 = s->out;
		/* frame header */
		*(__u16 *)o8 = *(__u16 *)s->in;
		*(__u16 *)(o8 + 2) = 0;
		*(__u16 *)(o8 + 4) = bpf_htons(1);
		*(__u16 *)(o8 + 6) = 0;
		/* response header */
		__u8 *rh = o8 + MC_FRAME_LEN;
		rh[0] = 0x81;
		rh[1] = op;
		*(__u16 *)(rh + 2) = bpf_htons(kl);
		rh[4] = 4;
		rh[5] = 0;
		*(__u16 *)(rh + 6) = 0;
		*(__u32 *)(rh + 8) = bpf_htonl(4 + kl + vlen);
		*(__u32 *)(rh + 12) = *(__u32 *)(h + 12); /* opaque */
		*(__u64 *)(rh + 16) = bpf_cpu_to_be64(s->q_cas);
		if (!admit_get(ctx, cfg, p, s, len))
			return XDP_PASS;
		int rc = send_reply(ctx, p, s, o);
		if (rc == XDP_TX) {
			stat_inc(STAT_HITS);
			stat_inc(STAT_HIT_KEYS);
			return XDP_TX;
		}
		if (rc == XDP_DROP)
			return XDP_DROP;
		miss = rc == -2 ? 0 : STAT_MISS_TOO_BIG;
	}
	if (miss)
		stat_inc(miss);
	/* The ticket keeps the key: the reply to GET/GETQ carries none. */
	__u64 *tk64 = (__u64 *)s->tk.key;
	for (int i = 0; i < KEY_WORDS; i++)
		tk64[i] = k64[i];
	s->tk.key_len = klen;
	s->tk.hash = s->hashes[0];
	s->tk.opcode = op;
	s->tk.gen = ticket_gen(s, cfg, 0, s->hashes[0]);
	s->tk.epoch = s->q_epoch;
	s->tk.t_req_ns = now;
	sc_issue_bin_ticket(s, p, *(__u32 *)(h + 12), with_key);
	return XDP_PASS;
}

static __always_inline int handle_udp(struct xdp_md *ctx, struct config *cfg, struct scratch *s, struct pkt *p)
{
	__u32 len = p->pl_len;
	udp_pending_flush(cfg);
	__u64 now = bpf_ktime_get_ns();
	if (len < MC_FRAME_LEN + 1) {
		stat_inc(STAT_PASS_MALFORMED);
		return XDP_PASS;
	}
	if (len > BUF_SIZE) {
		/* too long to serve; still look for mutations (scan_udp picks
		 * the protocol by the first byte) */
		scan_udp(ctx, cfg, s, p, bpf_ktime_get_ns(), p->pl_off, MC_FRAME_LEN, len);
		stat_inc(STAT_PASS_OTHER);
		return XDP_PASS;
	}
	if (len <= SHORT_COPY ? pkt_copy_short(ctx, p->pl_off, s->in, len, 0) < 0
			      : bpf_xdp_load_bytes(ctx, p->pl_off, s->in, SIZE_1_TO(len, BUF_SIZE)) < 0)
		return XDP_PASS;
	/* frame header: memcached drops a datagram whose total is not 1 and
	 * ignores its sequence number (try_read_udp); only sequence 0 of 1 is
	 * served, any other it runs is still read for mutations */
	if (*(__u16 *)(s->in + 4) != bpf_htons(1)) {
		stat_inc(STAT_PASS_MULTI_FRAME);
		return XDP_PASS;
	}
	if (*(__u16 *)(s->in + 2) != 0) {
		scan_udp(ctx, cfg, s, p, bpf_ktime_get_ns(), p->pl_off, MC_FRAME_LEN, len);
		stat_inc(STAT_PASS_MULTI_FRAME);
		return XDP_PASS;
	}
	if (watch_only) {
		/* an interface only watched for writes: memcached answers
		 * every GET; the datagram is read for mutations alone */
		scan_udp(ctx, cfg, s, p, bpf_ktime_get_ns(), p->pl_off, MC_FRAME_LEN, len);
		stat_inc(STAT_PASS_OTHER);
		return XDP_PASS;
	}
	if (s->in[MC_FRAME_LEN] == 0x80) {
		if (len < MC_FRAME_LEN + MC_BIN_HDR_LEN) {
			stat_inc(STAT_PASS_MALFORMED);
			return XDP_PASS;
		}
		return udp_binary(ctx, cfg, s, p, len, now);
	}
	__u64 w = load8(s->in, BUF_MASK, MC_FRAME_LEN);
	if (len >= MC_FRAME_LEN + 5 && (w & MASKN(4)) == W4('g', 'e', 't', ' '))
		return udp_ascii_get(ctx, cfg, s, p, len, 0, now);
	if (len >= MC_FRAME_LEN + 6 && (w & MASKN(5)) == W5('g', 'e', 't', 's', ' '))
		return udp_ascii_get(ctx, cfg, s, p, len, 1, now);
	scan_udp(ctx, cfg, s, p, bpf_ktime_get_ns(), p->pl_off, MC_FRAME_LEN, len);
	stat_inc(STAT_PASS_OTHER);
	return XDP_PASS;
}

SEC("xdp")
int xdpcache_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct pkt p;

	stat_inc(STAT_XDP_PACKETS);
	struct config *cfg = get_config();
	if (!cfg)
		return XDP_PASS;
	if (parse_pkt(data, data_end, data_end - data, &p))
		return XDP_PASS;
	if (p.first_frag == FRAG_NO_PORTS) {
		/* a first fragment too short to show its ports: it may be any
		 * instance's */
		flush_every_instance(cfg, bpf_ktime_get_ns());
		return XDP_PASS;
	}
	if (!port_match(cfg, p.dport) || parse_addrs(data, data_end, &p))
		return XDP_PASS;
	stat_inc(STAT_MC_PACKETS);
	if (p.first_frag) {
		/* A fragmented request: whatever it mutates cannot be read here
		 * (before packet_instance: every instance). */
		flush_every_instance(cfg, bpf_ktime_get_ns());
		return XDP_PASS;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return XDP_PASS;
	s->frame_len = data_end - data; /* the frame is linear (no frags) */
	packet_instance(s, cfg, &p, 0);
	if (p.proto == IPPROTO_TCP) {
		handle_tcp(ctx, cfg, s, &p, bpf_ktime_get_ns());
		return XDP_PASS;
	}
	return handle_udp(ctx, cfg, s, &p);
}
