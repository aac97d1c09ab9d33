// SPDX-License-Identifier: GPL-2.0
/* TC egress: fills the cache from memcached's own replies to GETs that the
 * XDP program passed (ASCII VALUE items, every item of a multi-get, binary
 * GET/GETQ/GETK/GETKQ responses) over UDP, and ASCII items over TCP found at
 * the reply boundaries of a stream followed from its SYN-ACK (reply_stream.h).
 * Never drops or changes a packet: every path returns TC_ACT_OK. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "include/common/parse.h"
#include "include/host/cache.h"
#include "include/host/reply_slots.h"
#include "include/host/ack.h"
#include "include/host/reply_stream.h"
#include "include/host/shadow.h"

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
	struct reply_state *rs; /* parse state across datagrams (UDP) or segments (TCP) */
	__u64 now;
	__u32 pos;
	__u32 len;
	__u32 tcp_ack; /* TCP: the reply's acknowledgement number */
	__u16 req_id;
	__u8 done;
	__u8 tcp;
};

static __always_inline void give_up(struct item_ctx *c)
{
	if (c->rs)
		c->rs->skip = ~0U;
}

/* Shadow mode: memcached's item for the key in s->key, value at s->in[voff...]. */
static __always_inline void shadow_got_ascii(struct item_ctx *c, __u32 kl, __u32 voff, __u32 vlen, __u32 flags,
					     __u64 cas)
{
	struct scratch *s = c->s;
	s->sh_got = (struct shadow_got){ .val_off = voff, .val_len = vlen, .flags = flags, .cas = cas };
	ticket_key_for(&s->tkey, c->p, c->req_id, 0, sc_hash(s, KEY_SLOT, kl, s->seed));
	sc_shadow_check(s);
}

/* One "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n" item, or END. */
static __always_inline long item_core(struct item_ctx *c)
{
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
	if (!c->tcp && (c->cfg->flags & CFG_SHADOW))
		shadow_got_ascii(c, kl, pos, bytes, flags, cas);

	if ((__u64)bytes > c->cfg->max_value || bytes > VAL_MAX) {
		stat_inc(STAT_FILL_TOO_BIG);
		return 0;
	}
	struct fill f = {
		.hash = sc_hash(s, KEY_SLOT, kl, s->seed),
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
	/* copy (into scratch, off the stack): the ticket may be replaced under us */
	struct ticket *tc = &s->tk;
	struct reply_state *rs = c->rs;
	if (!c->tcp && rs && rs->has_ticket && rs->t_hash == f.hash) {
		/* a one-key GET's ticket, kept in its reply state */
		rs->has_ticket = 0;
		tc->gen = rs->t_gen;
		tc->epoch = rs->t_epoch;
		tc->t_req_ns = rs->t_req_ns;
		fill_commit(c->cfg, s, &f, tc, c->now);
		return 0;
	}
	ticket_key_for(&s->tkey, c->p, c->req_id, c->tcp ? TICKET_TCP : 0, f.hash);
	struct ticket *t = bpf_map_lookup_elem(&ticket_map, &s->tkey);
	/* TCP: the server had the whole GET when it sent this reply */
	if (!t || t->binary || (c->tcp && (__s32)(c->tcp_ack - t->tcp_seq) < 0)) {
		stat_inc(STAT_FILL_NO_TICKET);
		return 0;
	}
	tc->gen = t->gen;
	tc->epoch = t->epoch;
	tc->t_req_ns = t->t_req_ns;
	fill_commit(c->cfg, s, &f, tc, c->now);
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

static long item_step(__u32 idx, void *data)
{
	return item_core(data);
}

/* ASCII reply over UDP. Global: keeps its locals off the main program's
 * frame (the stack of every call chain is bounded). The reply's slot is
 * held from its first look to the end (host/reply_slots.h): its state is
 * parsed in place. */
__noinline int sc_fill_ascii(struct pkt *p, __u32 len, __u64 now)
{
	struct config *cfg = get_config();
	struct scratch *s = get_scratch();
	if (!p || !cfg || !s)
		return 0;
	__u16 req_id = *(__u16 *)s->in;
	ticket_key_for(&s->tkey, p, req_id, 0, 0);
	struct reply_slot *sl = reply_slot_of(s, cfg, &s->tkey);
	if (sl)
		sl = reply_slot_take(sl, &s->tkey, now);
	if (!sl) {
		stat_inc(STAT_FILL_NO_TICKET);
		return 0;
	}
	struct reply_state *rs = &sl->rs;
	__u32 body = len - MC_FRAME_LEN;
	if (*(__u16 *)(s->in + 2) != 0) {
		/* a later datagram of one memcached response (memcached.c
		 * build_udp_header numbers them): the rest of a value, never a
		 * reply boundary */
		if (rs->skip != ~0U)
			rs->skip = rs->skip > body ? rs->skip - body : 0;
		goto out;
	}
	if (rs->skip >= body) {
		if (rs->skip != ~0U)
			rs->skip -= body;
		goto out;
	}
	struct item_ctx c = {
		.cfg = cfg, .s = s, .p = p, .rs = rs, .now = now,
		.pos = MC_FRAME_LEN + rs->skip, .len = len, .req_id = req_id,
	};
	rs->skip = 0;
	bpf_loop(MAX_GET_KEYS + 1, item_step, &c, 0);
	if (c.done && (cfg->flags & CFG_SHADOW))
		sc_shadow_end(s, p, req_id);
	if (c.done)
		sl->used = 0;
out:
	reply_slot_unlock(sl);
	return 0;
}

/* The item at s->in[rel, lim) of a followed TCP reply ("VALUE " seen):
 * parses it and fills from it. Returns the offset after a whole item, 0 when
 * its header is cut or unlike memcached's, or -(bytes still to skip) when
 * its value continues past lim. Global: checked once. */
__noinline int sc_tcp_item(struct scratch *s, struct pkt *p, __u32 rel, __u32 lim)
{
	__u64 now = bpf_ktime_get_ns();
	if (!s || !p)
		return 0;
	s = get_scratch(); /* a map-value pointer for map keys (see xdp_cache.c) */
	struct config *cfg = get_config();
	if (!s || !cfg)
		return 0;
	struct reply_state rs = {};
	struct item_ctx ic = {
		.cfg = cfg, .s = s, .p = p, .rs = &rs, .now = now,
		.pos = rel, .len = lim, .tcp = 1, .tcp_ack = p->tcp_ack,
	};
	if (item_core(&ic) == 0)
		return ic.pos > 0 ? (int)ic.pos : 0;
	if (rs.skip == ~0U || rs.skip == 0 || rs.skip > (1 << 30))
		return 0;
	return -(int)rs.skip;
}

/* Walking one server segment of a followed stream (reply_stream.h): one
 * bpf_loop step loads a chunk of the segment into s->in, skips value bytes,
 * looks for the end of a line, or reads the reply at a boundary. */
struct walk_ctx {
	struct __sk_buff *skb;
	struct pkt *p;
	__u32 pos;       /* payload offset of the next byte to walk */
	__u32 len;       /* payload length */
	__u32 chunk_off; /* payload offset of s->in[0] */
	__u32 chunk_len; /* bytes in s->in; 0: none loaded */
	__u32 skip;
	__u32 mode;
	__u32 units;     /* reply units begun in the segment (rule A, ack.h) */
};

/* Room a reply at a boundary needs in s->in: the longest item that can fill
 * (header, value, "\r\n") and any header line memcached writes. */
#define WALK_LOOKAHEAD 1800
/* scratch bytes in s->win that fills never use (they use [0, 128)) */
#define WIN_FLOW_KEY 256
#define WIN_STREAM_STATE 320
#define WALK_STEPS 1024
#define WALK_LINE_SCAN 256

static __always_inline void walk_lost(struct walk_ctx *c)
{
	c->mode = RS_LOST;
	stat_inc(STAT_STREAM_LOST);
}

/* Offset in s->in of the first '\n' in [rel, lim), scanning at most
 * WALK_LINE_SCAN bytes; -1 if none. Global: checked once. */
__noinline int walk_find_nl(struct scratch *s, __u32 rel, __u32 lim)
{
	if (!s)
		return -1;
	for (__u32 i = 0; i < WALK_LINE_SCAN; i++) {
		if (rel + i >= lim)
			return -1;
		if (AT(s->in, BUF_MASK, rel + i) == '\n')
			return rel + i;
	}
	return -1;
}

/* The reply starting at s->in[rel]: c->pos, c->skip and c->mode move past its
 * header (and, for an item, parse it and fill from it). */
static __always_inline long walk_boundary(struct walk_ctx *c, struct scratch *s, __u32 rel)
{
	__u32 lim = c->chunk_len, at_end = c->chunk_off + c->chunk_len >= c->len;
	__u8 b0 = AT(s->in, BUF_MASK, rel);
	if (b0 == 0x81 || c->mode == RS_BINARY) {
		/* memcached picked the protocol once, for the connection: a
		 * 24-byte header and its body (proto_bin.c), one reply unit each
		 * (rule A), never a fill */
		if (b0 != 0x81 || rel + MC_BIN_HDR_LEN > lim)
			goto lost; /* not a response, or its header cut by the segment's end */
		c->mode = RS_BINARY;
		c->units++;
		c->pos = c->chunk_off + rel + MC_BIN_HDR_LEN;
		c->skip = ((__u32)AT(s->in, BUF_MASK, rel + 8) << 24) | ((__u32)AT(s->in, BUF_MASK, rel + 9) << 16) |
			  ((__u32)AT(s->in, BUF_MASK, rel + 10) << 8) | AT(s->in, BUF_MASK, rel + 11);
		return 0;
	}
	if (rel + 6 > lim) {
		/* the segment ends within 6 bytes: "V", "VA", "VALU"... may be an
		 * item header that it cuts (WALK_LOOKAHEAD keeps s->in this full
		 * elsewhere) */
		if (b0 == 'V' || !at_end)
			goto lost;
		c->mode = RS_LINE;
		c->units++;
		return 0;
	}
	__u64 w = load8(s->in, BUF_MASK, rel);
	if ((w & MASKN(6)) == W6('V', 'A', 'L', 'U', 'E', ' ')) {
		int r = sc_tcp_item(s, c->p, rel, lim);
		if (r > 0) {
			c->pos = c->chunk_off + (__u32)r; /* a whole item, filled or not */
			return 0;
		}
		if (r == 0) {
			walk_lost(c); /* header cut by the segment's end, or unlike memcached's */
			return 1;
		}
		/* the value continues past what is loaded */
		c->pos = c->chunk_off + lim;
		c->skip = (__u32)-r;
		return 0;
	}
	if ((w & MASKN(3)) == W3('V', 'A', ' ')) {
		/* meta "VA <n> <flags>*\r\n" + n bytes + "\r\n" */
		int n = sc_num(s, BUF_IN, rel + 3, lim);
		int nl = walk_find_nl(s, rel, lim);
		if (n <= 0 || nl < 0 || s->num < 0 || s->num > (1 << 30)) {
			walk_lost(c);
			return 1;
		}
		c->pos = c->chunk_off + (__u32)nl + 1;
		c->skip = (__u32)s->num + 2;
		c->units++; /* one mg reply */
		return 0;
	}
	/* any other reply is one line: one reply unit (a get's END ends its
	 * items; the replies of commands with several lines, such as stats,
	 * are not counted by XDP either) */
	c->units++;
	int nl = walk_find_nl(s, rel, lim);
	if (nl >= 0) {
		c->pos = c->chunk_off + (__u32)nl + 1;
		return 0;
	}
	c->mode = RS_LINE; /* its end is further on */
	return 0;
lost:
	walk_lost(c);
	return 1;
}

static long walk_step(__u32 idx, void *data)
{
	struct walk_ctx *c = data;
	struct scratch *s = get_scratch();
	if (!s || c->pos >= c->len)
		return 1;
	if (c->skip) {
		__u32 n = c->len - c->pos;
		if (n > c->skip)
			n = c->skip;
		c->pos += n;
		c->skip -= n;
		return 0;
	}
	/* s->in must hold pos and, at a boundary, what follows it */
	__u32 cend = c->chunk_off + c->chunk_len;
	if (!c->chunk_len || c->pos < c->chunk_off || c->pos >= cend ||
	    ((c->mode == RS_TRACK || c->mode == RS_BINARY) && c->pos != c->chunk_off && cend < c->len &&
	     c->pos + WALK_LOOKAHEAD > cend)) {
		__u32 n = c->len - c->pos;
		if (n > BUF_SIZE)
			n = BUF_SIZE;
		if (bpf_skb_load_bytes(c->skb, c->p->pl_off + c->pos, s->in, SIZE_1_TO(n, BUF_SIZE)) < 0) {
			walk_lost(c);
			return 1;
		}
		c->chunk_off = c->pos;
		c->chunk_len = n;
		return 0;
	}
	__u32 rel = c->pos - c->chunk_off;
	if (c->mode == RS_LINE) {
		int nl = walk_find_nl(s, rel, c->chunk_len);
		if (nl < 0) {
			__u32 scanned = c->chunk_len - rel;
			if (scanned > WALK_LINE_SCAN)
				scanned = WALK_LINE_SCAN;
			c->pos += scanned;
		} else {
			c->pos = c->chunk_off + (__u32)nl + 1;
			c->mode = RS_TRACK;
		}
		return 0;
	}
	return walk_boundary(c, s, rel);
}

/* Every TCP segment memcached sends: follows the stream, fills at reply
 * boundaries. Global: checked once, apart from the paths leading to it. */
__noinline int sc_follow_tcp(struct __sk_buff *skb, struct pkt *p)
{
	struct scratch *s = get_scratch();
	if (!skb || !p || !s)
		return 0;
	/* key and new value in scratch, off the stack: the call chain down to
	 * sc_tcp_item must stay within 512 bytes (6.1 rounds each frame up) */
	struct flow_key *fk = (struct flow_key *)(s->win + WIN_FLOW_KEY);
	struct stream_state *ns = (struct stream_state *)(s->win + WIN_STREAM_STATE);
	__builtin_memset(fk, 0, sizeof(*fk));
	flow_key_out(fk, p);
	if (p->tcp_flags & TCPF_SYN) {
		if (!(p->tcp_flags & TCPF_ACK))
			return 0;
		/* memcached accepts a connection: its replies start after the SYN */
		ns->next_seq = p->tcp_seq + 1;
		ns->skip = 0;
		ns->req_end = p->tcp_ack;
		ns->mode = p->pl_len ? RS_LOST : RS_TRACK;
		bpf_map_update_elem(&stream_map, fk, ns, BPF_ANY);
		return 0;
	}
	struct stream_state *st = bpf_map_lookup_elem(&stream_map, fk);
	s->tc_counted = 0;
	if (!st) {
		if (p->pl_len)
			stat_inc(STAT_STREAM_UNTRACKED);
		return 0;
	}
	if (p->tcp_flags & TCPF_RST) {
		bpf_map_delete_elem(&stream_map, fk);
		return 0;
	}
	__u32 len = p->pl_len;
	if (!len || st->mode == RS_LOST)
		return 0;
	__s32 d = (__s32)(st->next_seq - p->tcp_seq);
	if (d < 0) {
		/* bytes in between that TC never saw */
		st->mode = RS_LOST;
		stat_inc(STAT_STREAM_LOST);
		return 0;
	}
	if ((__u32)d >= len) {
		/* a retransmission of bytes already followed */
		s->tc_counted = 1;
		s->tc_replies = st->replies;
		return 0;
	}
	/* Kernels before 6.7 check a bpf_loop callback once, from the state
	 * its context has at the call, and hard-wire the branches that state
	 * decides: every field the steps change must look unknown here. zero
	 * (config's _pad, always 0) is 0 to the program, unknown to the
	 * verifier; as flags it also keeps the loop from being inlined. */
	struct config *cfg = get_config();
	if (!cfg)
		return 0;
	__u32 zero = cfg->_pad;
	struct walk_ctx c = {
		.skb = skb, .p = p, .pos = (__u32)d, .len = len, .chunk_off = zero, .chunk_len = zero,
		.skip = st->skip, .mode = st->mode, .units = zero,
	};
	bpf_loop(WALK_STEPS, walk_step, &c, zero);
	if (c.mode != RS_LOST && c.pos < c.len) {
		c.mode = RS_LOST; /* more replies than one walk takes */
		stat_inc(STAT_STREAM_LOST);
	}
	st->next_seq = p->tcp_seq + len;
	st->skip = c.skip;
	st->mode = c.mode;
	st->replies += c.units;
	if (c.mode != RS_LOST) {
		s->tc_counted = 1;
		s->tc_replies = st->replies;
	}
	return 0;
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
		hash = sc_hash(s, KEY_SLOT, klen, s->seed);
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

/* Binary GET-family response, alone in its datagram. Global: keeps its
 * locals off the main program's frame. */
__noinline int sc_fill_binary(struct pkt *p, __u32 len, __u64 now)
{
	struct config *cfg = get_config();
	struct scratch *s = get_scratch();
	if (!p || !cfg || !s)
		return 0;
	__u8 *h = s->in + MC_FRAME_LEN;
	__u8 op = h[1];
	__u32 klen = ((__u32)h[2] << 8) | h[3];
	__u32 elen = h[4];
	__u16 status = ((__u16)h[6] << 8) | h[7];
	__u32 body = ((__u32)h[8] << 24) | ((__u32)h[9] << 16) | ((__u32)h[10] << 8) | h[11];
	if (op != BIN_GET && op != BIN_GETQ && op != BIN_GETK && op != BIN_GETKQ)
		return 0;
	if (MC_FRAME_LEN + MC_BIN_HDR_LEN + body != len || elen + klen > body) {
		stat_inc(STAT_FILL_MALFORMED);
		return 0;
	}
	if (status == 0 && elen != 4) {
		stat_inc(STAT_FILL_MALFORMED);
		return 0;
	}
	if (cfg->flags & CFG_SHADOW)
		sc_shadow_binary_reply(s, p);
	__u32 koff = MC_FRAME_LEN + MC_BIN_HDR_LEN + elen;
	struct ticket *tc = &s->tk; /* the copy, in scratch (off the stack) */
	if (!bin_ticket(cfg, s, p, op, klen, koff, status, tc))
		return 0; /* no ticket, or a miss or an error: nothing to fill */
	__u32 tklen = tc->key_len;
	__u64 hash = tc->hash;
	__u32 vlen = body - elen - klen;
	if (vlen > cfg->max_value || vlen > VAL_MAX) {
		stat_inc(STAT_FILL_TOO_BIG);
		return 0;
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
	fill_commit(cfg, s, &f, tc, now);
	return 0;
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
	struct scratch *s = get_scratch();
	if (!s)
		return TC_ACT_OK;
	packet_instance(s, cfg, &p, 1);
	if (p.proto == IPPROTO_TCP) {
		s->tc_counted = 0;
		sc_follow_tcp(skb, &p);
		/* rule A: any reply on a writer's connection, GSO bursts
		 * included, once the walk counted its reply units */
		if (p.pl_len || (p.tcp_flags & (TCPF_FIN | TCPF_RST)))
			sc_ack_invalidate(&p, now, s->tc_counted, s->tc_replies);
		return TC_ACT_OK;
	}
	__u32 len = p.pl_len;
	if (len < MC_FRAME_LEN + 3 || len > BUF_SIZE)
		return TC_ACT_OK; /* too short for any reply, or larger than we read */
	if (bpf_skb_load_bytes(skb, p.pl_off, s->in, SIZE_1_TO(len, BUF_SIZE)) < 0)
		return TC_ACT_OK;
	if (sc_udp_ack(&p, len, now)) /* rule A over UDP */
		return TC_ACT_OK;
	if (len < MC_FRAME_LEN + 5)
		return TC_ACT_OK; /* too short for an item */
	if (s->in[MC_FRAME_LEN] == 0x81) {
		/* no extras: a GETK "not found" echoing a key under 4 bytes (shadow mode counts it) */
		if (len >= MC_FRAME_LEN + MC_BIN_HDR_LEN)
			sc_fill_binary(&p, len, now);
	} else {
		sc_fill_ascii(&p, len, now);
	}
	return TC_ACT_OK;
}
