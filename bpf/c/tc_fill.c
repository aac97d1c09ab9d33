// SPDX-License-Identifier: GPL-2.0
/* TC egress: fills the cache from memcached's own replies to GETs that the
 * XDP program passed (ASCII VALUE items, every item of a multi-get, binary
 * GET/GETQ/GETK/GETKQ responses) over UDP, and ASCII replies over TCP whose
 * segment starts where the GET's ticket says the reply starts. Never drops or
 * changes a packet: every path returns TC_ACT_OK. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "include/parse.h"
#include "include/cache.h"
#include "include/ack.h"

char _license[] SEC("license") = "GPL";

static __always_inline void ticket_key_for(struct ticket_key *tk, struct pkt *p, __u16 req_id, __u32 opaque,
					   __u64 hash)
{
	__builtin_memcpy(tk->addr, p->daddr, 16);
	tk->port = p->dport;
	tk->req_id = req_id;
	tk->opaque = opaque;
	tk->hash = hash;
}

/* Copies up to 24 bytes of text at s->in[off, off+n) into s->win[dst...]. */
static __always_inline void stash_text(struct scratch *s, __u32 dst, __u32 off)
{
	for (int i = 0; i < 3; i++)
		*(__u64 *)(s->win + dst + i * 8) = load8(s->in, BUF_MASK, off + i * 8);
}

struct item_ctx {
	struct config *cfg;
	struct scratch *s;
	struct pkt *p;
	struct reply_state *rs; /* UDP: parse state across datagrams; TCP: NULL */
	__u64 now;
	__u32 pos;
	__u32 len;
	__u32 tcp_seq;
	__u16 req_id;
	__u8 done;
	__u8 tcp;
};

static __always_inline void give_up(struct item_ctx *c)
{
	if (c->rs)
		c->rs->skip = ~0U;
}

/* One "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n" item, or END. */
static long item_step(__u32 idx, void *data)
{
	struct item_ctx *c = data;
	struct scratch *s = c->s;
	__u32 pos = c->pos, len = c->len;
	if (pos >= len)
		return 1;
	__u64 w = load8(s->in, BUF_MASK, pos);
	if (pos + 5 <= len && (w & MASKN(5)) == W5('E', 'N', 'D', '\r', '\n')) {
		c->done = 1;
		return 1;
	}
	if (pos + 6 > len || (w & MASKN(6)) != W6('V', 'A', 'L', 'U', 'E', ' '))
		goto malformed;
	pos += 6;
	int kl = sc_key(s, BUF_IN, pos, len, KEY_SLOT);
	if (kl <= 0 || kl > KEY_MAX)
		goto cut;
	pos += kl;
	__u32 num_at = pos;
	__s64 flags = 0, bytes = 0, cas = 0;
	if (AT(s->in, BUF_MASK, pos) != ' ')
		goto malformed;
	int n = sc_num(s, BUF_IN, pos + 1, len);
	if (n <= 0)
		goto cut;
	flags = s->num;
	pos += 1 + n;
	if (AT(s->in, BUF_MASK, pos) != ' ')
		goto cut;
	n = sc_num(s, BUF_IN, pos + 1, len);
	if (n <= 0 || s->num < 0)
		goto cut;
	bytes = s->num;
	pos += 1 + n;
	__u32 cas_at = pos, has_cas = 0;
	if (AT(s->in, BUF_MASK, pos) == ' ') {
		n = sc_num(s, BUF_IN, pos + 1, len);
		if (n <= 0)
			goto cut;
		cas = s->num;
		pos += 1 + n;
		has_cas = 1;
	}
	if (pos + 2 > len)
		goto cut;
	if (AT(s->in, BUF_MASK, pos) != '\r' || AT(s->in, BUF_MASK, pos + 1) != '\n')
		goto malformed;
	pos += 2;
	__u32 dend = pos + (__u32)bytes;
	if (bytes > (1 << 20))
		goto malformed;
	if (dend + 2 > len) {
		/* value continues in the next datagram(s) of this reply */
		if (c->rs)
			c->rs->skip = dend + 2 - len;
		return 1;
	}
	if (AT(s->in, BUF_MASK, dend) != '\r' || AT(s->in, BUF_MASK, dend + 1) != '\n')
		goto malformed;
	c->pos = dend + 2;

	if ((__u64)bytes > c->cfg->max_value || bytes > VAL_MAX) {
		stat_inc(STAT_FILL_TOO_BIG);
		return 0;
	}
	struct fill f = {
		.hash = sc_hash(s, KEY_SLOT, kl, c->cfg->seed),
		.cas = cas,
		.flags = flags,
		.key_len = kl,
		.val_off = pos,
		.val_len = bytes,
		.num_len = (has_cas ? cas_at : pos - 2) - num_at,
		.cas_len = has_cas ? pos - 2 - cas_at : 0,
		.has_cas = has_cas,
	};
	if (f.num_len > NUM_TXT || f.cas_len > CAS_TXT)
		goto malformed;
	stash_text(s, 0, num_at);
	stash_text(s, 32, cas_at);
	ticket_key_for(&s->tkey, c->p, c->req_id, c->tcp ? TICKET_TCP : 0, f.hash);
	struct ticket *t = bpf_map_lookup_elem(&ticket_map, &s->tkey);
	/* TCP: the segment must start where the reply to that GET starts */
	if (!t || t->binary || (c->tcp && t->tcp_seq != c->tcp_seq)) {
		stat_inc(STAT_FILL_NO_TICKET);
		return 0;
	}
	/* copy: the ticket may be replaced under us */
	struct ticket tc = {};
	tc.gen = t->gen;
	tc.epoch = t->epoch;
	tc.t_req_ns = t->t_req_ns;
	fill_commit(c->cfg, s, &f, &tc, c->now);
	bpf_map_delete_elem(&ticket_map, &s->tkey);
	return 0;
cut:
	/* an item header split across datagrams: give up on this reply */
	give_up(c);
	return 1;
malformed:
	stat_inc(STAT_FILL_MALFORMED);
	give_up(c);
	return 1;
}

static __always_inline void fill_ascii(struct config *cfg, struct scratch *s, struct pkt *p, __u32 len, __u64 now)
{
	__u16 req_id = *(__u16 *)s->in;
	ticket_key_for(&s->tkey, p, req_id, 0, 0);
	struct reply_state *rs = bpf_map_lookup_elem(&reply_map, &s->tkey);
	if (!rs) {
		stat_inc(STAT_FILL_NO_TICKET);
		return;
	}
	__u32 body = len - MC_FRAME_LEN;
	if (rs->skip >= body) {
		if (rs->skip != ~0U)
			rs->skip -= body;
		return;
	}
	struct item_ctx c = {
		.cfg = cfg, .s = s, .p = p, .rs = rs, .now = now,
		.pos = MC_FRAME_LEN + rs->skip, .len = len, .req_id = req_id,
	};
	rs->skip = 0;
	bpf_loop(MAX_GET_KEYS + 1, item_step, &c, 0);
	if (c.done) {
		ticket_key_for(&s->tkey, p, req_id, 0, 0);
		bpf_map_delete_elem(&reply_map, &s->tkey);
	}
}

/* ASCII reply over TCP: only a segment that begins a reply (its sequence
 * number is the one the GET's ticket recorded) is parsed, from its start. */
static __always_inline void fill_tcp(struct config *cfg, struct scratch *s, struct pkt *p, __u32 len, __u64 now)
{
	__u64 w = load8(s->in, BUF_MASK, 0);
	if ((w & MASKN(6)) != W6('V', 'A', 'L', 'U', 'E', ' '))
		return;
	struct item_ctx c = {
		.cfg = cfg, .s = s, .p = p, .now = now, .pos = 0, .len = len, .tcp = 1, .tcp_seq = p->tcp_seq,
	};
	bpf_loop(MAX_GET_KEYS + 1, item_step, &c, 0);
}

/* The ticket a binary GET-family response answers, copied into *tc and
 * s->key (with its hash and length), or 0. GETK/GETKQ: the ticket of the
 * echoed key, which must be the key asked for. GET/GETQ: the one ticket of
 * (client, request id, opaque), counted down as every response answers a
 * request (a miss too), and refused while it is ambiguous (sc_issue_bin_ticket). */
static __always_inline int bin_ticket(struct config *cfg, struct scratch *s, struct pkt *p, __u8 op, __u32 klen,
				      __u32 koff, __u16 status, struct ticket *tc)
{
	__u8 *h = s->in + MC_FRAME_LEN;
	__u64 hash = 0;
	if (op == BIN_GETK || op == BIN_GETKQ) {
		if (status != 0)
			return 0;
		if (klen == 0 || klen > KEY_MAX || koff + klen > BUF_SIZE) {
			stat_inc(STAT_FILL_MALFORMED);
			return 0;
		}
		sc_copy_key(s, BUF_IN, koff, klen, KEY_SLOT);
		hash = sc_hash(s, KEY_SLOT, klen, cfg->seed);
	} else if (klen != 0) {
		stat_inc(STAT_FILL_MALFORMED);
		return 0;
	}
	ticket_key_for(&s->tkey, p, *(__u16 *)s->in, *(__u32 *)(h + 12), hash);
	struct ticket *t = bpf_map_lookup_elem(&ticket_map, &s->tkey);
	if (!t || !t->binary || t->pending == 0) {
		stat_inc(STAT_FILL_NO_TICKET);
		return 0;
	}
	if (!hash) {
		__sync_fetch_and_add(&t->pending, -1);
		if (status != 0)
			return 0; /* a miss answered one of the requests */
		if (t->binary != TICKET_BINARY) {
			stat_inc(STAT_FILL_AMBIGUOUS);
			return 0;
		}
	}
	__u32 tklen = t->key_len;
	if (tklen == 0 || tklen > KEY_MAX)
		return 0;
	if (hash) {
		/* the echoed key must be the one asked for */
		if (klen != tklen || t->hash != hash)
			return 0;
		for (int i = 0; i < KEY_WORDS; i++)
			if (((__u64 *)s->key)[i] != ((__u64 *)t->key)[i])
				return 0;
	} else {
		for (int i = 0; i < KEY_WORDS; i++)
			((__u64 *)s->key)[i] = ((__u64 *)t->key)[i];
	}
	tc->gen = t->gen;
	tc->epoch = t->epoch;
	tc->t_req_ns = t->t_req_ns;
	tc->hash = t->hash;
	tc->key_len = tklen;
	/* a keyed ticket is used once; a GET/GETQ one stays, counted down */
	if (hash)
		bpf_map_delete_elem(&ticket_map, &s->tkey);
	return 1;
}

/* Binary GET-family response, alone in its datagram. */
static __always_inline void fill_binary(struct config *cfg, struct scratch *s, struct pkt *p, __u32 len, __u64 now)
{
	__u8 *h = s->in + MC_FRAME_LEN;
	__u8 op = h[1];
	__u32 klen = ((__u32)h[2] << 8) | h[3];
	__u32 elen = h[4];
	__u16 status = ((__u16)h[6] << 8) | h[7];
	__u32 body = ((__u32)h[8] << 24) | ((__u32)h[9] << 16) | ((__u32)h[10] << 8) | h[11];
	if (op != BIN_GET && op != BIN_GETQ && op != BIN_GETK && op != BIN_GETKQ)
		return;
	if (MC_FRAME_LEN + MC_BIN_HDR_LEN + body != len || elen + klen > body) {
		stat_inc(STAT_FILL_MALFORMED);
		return;
	}
	if (status == 0 && elen != 4) {
		stat_inc(STAT_FILL_MALFORMED);
		return;
	}
	__u32 koff = MC_FRAME_LEN + MC_BIN_HDR_LEN + elen;
	struct ticket tc = {};
	if (!bin_ticket(cfg, s, p, op, klen, koff, status, &tc))
		return; /* no ticket, or a miss or an error: nothing to fill */
	__u32 tklen = tc.key_len;
	__u64 hash = tc.hash;
	__u32 vlen = body - elen - klen;
	if (vlen > cfg->max_value || vlen > VAL_MAX) {
		stat_inc(STAT_FILL_TOO_BIG);
		return;
	}
	__u32 flags = ((__u32)h[24] << 24) | ((__u32)h[25] << 16) | ((__u32)h[26] << 8) | h[27];
	__u64 cas = bpf_be64_to_cpu(*(__u64 *)(h + 16));
	/* The ASCII text a hit needs: " <flags> <bytes>" and " <cas>". */
	__u32 n1 = fmt_space_u64(s->win + 64, flags) & 15;
	__u32 n2 = fmt_space_u64(s->win + 96, vlen) & 15;
	for (int i = 0; i < 16; i++) {
		if (i < n1)
			s->win[i] = s->win[64 + i];
		else if (i < n1 + n2)
			s->win[i] = s->win[96 + ((i - n1) & 15)];
	}
	__u32 n3 = fmt_space_u64(s->win + 32, cas) & 31;
	struct fill f = {
		.hash = hash,
		.cas = cas,
		.flags = flags,
		.key_len = tklen,
		.val_off = koff + klen,
		.val_len = vlen,
		.num_len = n1 + n2,
		.cas_len = n3,
		.has_cas = 1,
	};
	fill_commit(cfg, s, &f, &tc, now);
}

SEC("tc")
int xdpcache_tc(struct __sk_buff *skb)
{
	struct pkt p;
	struct config *cfg = get_config();
	if (!cfg)
		return TC_ACT_OK;
	void *data, *data_end;
	TC_PULL_HEADERS(skb, data, data_end);
	if (parse_pkt(data, data_end, skb->len, &p))
		return TC_ACT_OK;
	if (p.first_frag || !port_match(cfg, p.sport) || parse_addrs(data, data_end, &p))
		return TC_ACT_OK;
	stat_inc(STAT_TC_PACKETS);
	__u64 now = bpf_ktime_get_ns();
	/* rule A first: any reply on a writer's connection, GSO bursts included */
	if (p.proto == IPPROTO_TCP && p.pl_len)
		ack_invalidate(cfg, &p, now);
	struct scratch *s = get_scratch();
	if (!s)
		return TC_ACT_OK;
	__u32 len = p.pl_len;
	if (len < MC_FRAME_LEN + 5 || len > BUF_SIZE)
		return TC_ACT_OK; /* too short for an item, or a large (GSO) TCP burst */
	if (bpf_skb_load_bytes(skb, p.pl_off, s->in, SIZE_1_TO(len, BUF_SIZE)) < 0)
		return TC_ACT_OK;
	if (p.proto == IPPROTO_TCP) {
		fill_tcp(cfg, s, &p, len, now);
		return TC_ACT_OK;
	}
	if (s->in[MC_FRAME_LEN] == 0x81) {
		if (len >= MC_FRAME_LEN + MC_BIN_HDR_LEN + 4)
			fill_binary(cfg, s, &p, len, now);
	} else {
		fill_ascii(cfg, s, &p, len, now);
	}
	return TC_ACT_OK;
}
