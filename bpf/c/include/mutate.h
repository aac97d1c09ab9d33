/* SPDX-License-Identifier: GPL-2.0 */
/* Finding mutating commands in request payloads (UDP datagrams and TCP
 * segments) and invalidating what they touch.
 *
 * ASCII: stateless. Every command line begins either at the start of a
 * segment or right after a '\n' inside one, so each such position is parsed.
 * A line cut off at the end of a segment whose verb is (or may become) a
 * mutating one, or whose key is cut, flushes the whole cache: the rest of
 * the key is in a segment we will see only after memcached may have acted.
 * Data blocks of storage commands are skipped when they end inside the
 * segment; a block that runs past the end makes the next segment start
 * mid-data, where extra matches can only cause extra invalidations.
 *
 * Binary: requests are walked header to header; for TCP the sequence number
 * of the next header is kept per flow (flow_map), so the tail of a large
 * value is never misread as a header. Losing track flushes the cache. */
#ifndef XDPCACHE_MUTATE_H
#define XDPCACHE_MUTATE_H

#include "cache.h"

enum verb_kind {
	VERB_NONE = 0,
	VERB_STORE,      /* set add replace cas: key flags exptime bytes ... + data */
	VERB_STORE_KEEP, /* append prepend: exptime ignored by memcached, + data */
	VERB_KEY,        /* delete incr decr md ma: key */
	VERB_TOUCH,      /* touch key exptime */
	VERB_GAT,        /* gat gats exptime key... */
	VERB_MS,         /* ms key datalen flags... (+ data; T<ttl> flag) */
	VERB_MG,         /* mg key flags...: mutates only with T/N/E flags */
	VERB_FLUSH,      /* flush_all [delay] */
	VERB_SHUTDOWN,   /* shutdown: memcached loses everything */
	VERB_PREFIX,     /* cut off: could still become a mutating verb */
};

/* Classifies the verb of length n whose first 8 bytes are w. */
static __always_inline int classify_verb(__u64 w, int n, int complete)
{
	w &= MASKN(n > 8 ? 8 : n);
	if (!complete) {
		/* Partial token at the end of a segment: is it a prefix of a
		 * mutating verb? (all of ours are at most 9 chars; 8 suffice) */
		static const __u64 verbs[] = {
			W3('s', 'e', 't'), W3('a', 'd', 'd'), W7('r', 'e', 'p', 'l', 'a', 'c', 'e'),
			W6('a', 'p', 'p', 'e', 'n', 'd'), W7('p', 'r', 'e', 'p', 'e', 'n', 'd'),
			W3('c', 'a', 's'), W6('d', 'e', 'l', 'e', 't', 'e'), W4('i', 'n', 'c', 'r'),
			W4('d', 'e', 'c', 'r'), W5('t', 'o', 'u', 'c', 'h'), W4('g', 'a', 't', 's'),
			W2('m', 's'), W2('m', 'd'), W2('m', 'a'), W2('m', 'g'),
			W8('f', 'l', 'u', 's', 'h', '_', 'a', 'l'), W8('s', 'h', 'u', 't', 'd', 'o', 'w', 'n'),
		};
		if (n == 0)
			return VERB_PREFIX;
		if (n > 8)
			return VERB_NONE;
#pragma unroll
		for (int i = 0; i < (int)(sizeof(verbs) / sizeof(verbs[0])); i++)
			if ((verbs[i] & MASKN(n)) == w)
				return VERB_PREFIX;
		return VERB_NONE;
	}
	switch (n) {
	case 2:
		if (w == W2('m', 's'))
			return VERB_MS;
		if (w == W2('m', 'd') || w == W2('m', 'a'))
			return VERB_KEY;
		if (w == W2('m', 'g'))
			return VERB_MG;
		return VERB_NONE;
	case 3:
		if (w == W3('s', 'e', 't') || w == W3('a', 'd', 'd') || w == W3('c', 'a', 's'))
			return VERB_STORE;
		if (w == W3('g', 'a', 't'))
			return VERB_GAT;
		return VERB_NONE;
	case 4:
		if (w == W4('i', 'n', 'c', 'r') || w == W4('d', 'e', 'c', 'r'))
			return VERB_KEY;
		if (w == W4('g', 'a', 't', 's'))
			return VERB_GAT;
		return VERB_NONE;
	case 5:
		return w == W5('t', 'o', 'u', 'c', 'h') ? VERB_TOUCH : VERB_NONE;
	case 6:
		if (w == W6('d', 'e', 'l', 'e', 't', 'e'))
			return VERB_KEY;
		if (w == W6('a', 'p', 'p', 'e', 'n', 'd'))
			return VERB_STORE_KEEP;
		return VERB_NONE;
	case 7:
		if (w == W7('r', 'e', 'p', 'l', 'a', 'c', 'e'))
			return VERB_STORE;
		if (w == W7('p', 'r', 'e', 'p', 'e', 'n', 'd'))
			return VERB_STORE_KEEP;
		return VERB_NONE;
	case 8:
		return w == W8('s', 'h', 'u', 't', 'd', 'o', 'w', 'n') ? VERB_SHUTDOWN : VERB_NONE;
	case 9:
		/* "flush_all": the first 8 bytes, the 9th checked by the caller */
		return w == W8('f', 'l', 'u', 's', 'h', '_', 'a', 'l') ? VERB_FLUSH : VERB_NONE;
	}
	return VERB_NONE;
}

/* Loads payload bytes into s->win. Global so that the size, which the
 * verifier must know exactly at a helper call, is exact only in here: in the
 * scan loops the offsets then stay imprecise and their states converge. */
__noinline int sc_load_win(struct xdp_md *ctx, struct scratch *s, __u32 off, __u32 len)
{
	__u64 n = len;
	if (!s)
		return -1;
	if (n > WIN_SIZE)
		n = WIN_SIZE;
	asm volatile("" : "+r"(n)); /* keep the 64-bit bounds checks */
	if (n < 1 || n > WIN_SIZE)
		return -1;
	return bpf_xdp_load_bytes(ctx, off, s->win, SIZE_1_TO(n, WIN_SIZE));
}

struct scan_ctx {
	struct xdp_md *ctx;
	struct config *cfg;
	struct scratch *s;
	__u64 now;
	__u32 base;      /* packet offset of the payload */
	__u32 end;       /* payload length */
	__u32 pos;       /* current offset into the payload */
	__u32 line_start;/* pos is the start of a line */
};

/* Parses the command at the start of the window (wlen bytes, at_end: the
 * window reaches the end of the payload). Returns the data block length to
 * skip after the line (0 if none). */
__noinline __u32 sc_ascii_command(struct scratch *s, struct config *cfg, __u32 wlen, int at_end, __u64 now)
{
	if (!s || !cfg)
		return 0;
	struct {
		struct config *cfg;
		__u64 now;
	} cc = { cfg, now }, *c = &cc;
	__u8 *w = s->win;
	__u32 p = sc_spaces(s, BUF_WIN, 0, wlen);
	int vl = sc_token(s, BUF_WIN, p, wlen);
	int complete = vl >= 0;
	if (!complete) {
		if (!at_end)
			return 0; /* a line longer than the window is no command of ours */
		vl = wlen - p;
	}
	if (vl < 0 || vl > WIN_SIZE)
		return 0;
	int kind = classify_verb(load8(w, WIN_MASK, p), vl, complete);
	if (kind == VERB_NONE)
		return 0;
	if (kind == VERB_PREFIX) {
		flush_cache(c->cfg, c->now, 0, 1);
		return 0;
	}
	if (kind == VERB_FLUSH && AT(w, WIN_MASK, p + 8) != 'l')
		return 0;
	p = sc_spaces(s, BUF_WIN, p + vl, wlen);

	if (kind == VERB_FLUSH || kind == VERB_SHUTDOWN) {
		if (kind == VERB_FLUSH && sc_num(s, BUF_WIN, p, wlen) > 0 && s->num > 0) {
			/* flush_all <delay>: memcached drops items at now+delay
			 * (absolute times as exptime). Flush now and refuse fills
			 * until then. */
			__u64 d = exptime_deadline(c->cfg, s->num, c->now);
			flush_cache(c->cfg, c->now, d > c->now ? d - c->now + 2 * NSEC : 0, 0);
		} else {
			flush_cache(c->cfg, c->now, 0, 0);
		}
		return 0;
	}

	__s64 exptime = 0;
	int known_exp = 0;
	int n;
	if (kind == VERB_GAT) {
		n = sc_num(s, BUF_WIN, p, wlen);
		if (n <= 0) {
			if (at_end) /* keys cut off */
				flush_cache(c->cfg, c->now, 0, 1);
			return 0;
		}
		exptime = s->num;
		known_exp = 1;
		p = sc_spaces(s, BUF_WIN, p + n, wlen);
		/* gat/gats touch every key listed. */
		for (int i = 0; i < MAX_GET_KEYS; i++) {
			if (p >= wlen) {
				if (at_end) /* more keys may follow in the next segment */
					flush_cache(c->cfg, c->now, 0, 1);
				return 0;
			}
			if (AT(w, WIN_MASK, p) == '\r' || AT(w, WIN_MASK, p) == '\n')
				return 0;
			int kl = sc_key(s, BUF_WIN, p, wlen, KEY_SLOT);
			if (kl <= 0 || kl > KEY_MAX) {
				flush_cache(c->cfg, c->now, 0, 1);
				return 0;
			}
			invalidate_key(s, c->cfg, kl, c->now, known_exp, exptime);
			p = sc_spaces(s, BUF_WIN, p + kl, wlen);
		}
		/* more keys than we follow: the rest are unknown */
		flush_cache(c->cfg, c->now, 0, 1);
		return 0;
	}

	int kl = sc_key(s, BUF_WIN, p, wlen, KEY_SLOT);
	if (kl <= 0 || kl > KEY_MAX) {
		/* Key cut off by the segment end, or too long / missing: memcached
		 * may still apply something we cannot name. */
		if (kl < 0 || kl > KEY_MAX || at_end)
			flush_cache(c->cfg, c->now, 0, 1);
		return 0;
	}
	p += kl;
	__u32 skip = 0;
	switch (kind) {
	case VERB_STORE:
	case VERB_STORE_KEEP:
		/* flags exptime bytes */
		p = sc_spaces(s, BUF_WIN, p, wlen);
		n = sc_num(s, BUF_WIN, p, wlen);
		p = sc_spaces(s, BUF_WIN, p + n, wlen);
		n = sc_num(s, BUF_WIN, p, wlen);
		if (kind == VERB_STORE) {
			known_exp = 1;
			/* unreadable exptime: never fill until the next mutation */
			exptime = n > 0 ? s->num : -1;
		}
		p = sc_spaces(s, BUF_WIN, p + n, wlen);
		n = sc_num(s, BUF_WIN, p, wlen);
		if (n > 0 && s->num >= 0 && s->num < (1 << 30))
			skip = s->num + 2;
		break;
	case VERB_TOUCH:
		p = sc_spaces(s, BUF_WIN, p, wlen);
		n = sc_num(s, BUF_WIN, p, wlen);
		known_exp = 1;
		exptime = n > 0 ? s->num : -1;
		break;
	case VERB_MS:
	case VERB_MG: {
		/* ms <key> <datalen> <flags>*: T<ttl> sets the exptime.
		 * mg <key> <flags>*: mutates with T (touch), N (vivify), E (cas). */
		int mutates = kind == VERB_MS;
		if (kind == VERB_MS) {
			p = sc_spaces(s, BUF_WIN, p, wlen);
			n = sc_num(s, BUF_WIN, p, wlen);
			if (n > 0 && s->num >= 0 && s->num < (1 << 30))
				skip = s->num + 2;
			p += n;
			known_exp = 1; /* no T flag: no exptime */
		}
		for (int i = 0; i < 16; i++) {
			p = sc_spaces(s, BUF_WIN, p, wlen);
			if (p >= wlen)
				break;
			__u8 f = AT(w, WIN_MASK, p);
			if (f == '\r' || f == '\n')
				break;
			if (f == 'T' || f == 'N') {
				mutates = 1;
				known_exp = 1;
				exptime = sc_num(s, BUF_WIN, p + 1, wlen) > 0 ? s->num : -1;
			} else if (f == 'E' || f == 'I') {
				mutates = 1;
			}
			int tl = sc_token(s, BUF_WIN, p, wlen);
			if (tl <= 0)
				break;
			p += tl;
		}
		if (!mutates)
			return 0;
		break;
	}
	default:
		break;
	}
	invalidate_key(s, c->cfg, kl, c->now, known_exp, exptime);
	return skip;
}

/* Offset of the first '\n' in s->win[0, wlen), or -1. */
__noinline int sc_find_lf(struct scratch *s, __u32 wlen)
{
	if (!s)
		return -1;
	for (__u32 i = 0; i < WIN_SIZE; i++) {
		if (i >= wlen)
			return -1;
		if (s->win[i] == '\n')
			return i;
	}
	return -1;
}

static long ascii_step(__u32 idx, void *data)
{
	struct scan_ctx *c = data;
	if (c->pos >= c->end)
		return 1;
	__u32 wlen = c->end - c->pos;
	int at_end = 1;
	if (wlen > WIN_SIZE) {
		wlen = WIN_SIZE;
		at_end = 0;
	}
	if (wlen == 0 || sc_load_win(c->ctx, c->s, c->base + c->pos, wlen) < 0)
		return 1;
	__u32 skip = 0;
	if (c->line_start)
		skip = sc_ascii_command(c->s, c->cfg, wlen, at_end, c->now);
	int lf = sc_find_lf(c->s, wlen);
	if (lf < 0) {
		c->pos += wlen;
		c->line_start = 0;
		return 0;
	}
	c->pos += lf + 1 + skip;
	c->line_start = 1;
	return 0;
}

/* Scans payload bytes [from, end) of the packet for ASCII mutations.
 * Global: checked once, not at every call site. s->q_now is the time. */
__noinline int sc_scan_ascii(struct xdp_md *ctx, struct scratch *s, struct config *cfg, __u32 base, __u32 range)
{
	if (!s || !cfg)
		return -1;
	struct scan_ctx c = {
		.ctx = ctx, .cfg = cfg, .s = s, .now = s->q_now, .base = base,
		.pos = range & 0xffff, .end = range >> 16, .line_start = 1,
	};
	bpf_loop(MAX_SCAN_STEPS, ascii_step, &c, 0);
	if (c.pos < c.end) /* more commands than we scan: be safe */
		flush_cache(cfg, c.now, 0, 1);
	return 0;
}

static __always_inline void scan_ascii(struct xdp_md *ctx, struct config *cfg, struct scratch *s, __u64 now,
				       __u32 base, __u32 from, __u32 end)
{
	s->q_now = now;
	if (end > 0xffff) /* the scan covers 64 KiB at most */
		end = 0xffff;
	sc_scan_ascii(ctx, s, cfg, base, from | (end << 16));
}

static __always_inline int bin_mutating(__u8 op)
{
	switch (op) {
	case BIN_SET: case BIN_ADD: case BIN_REPLACE: case BIN_DELETE: case BIN_INCR: case BIN_DECR:
	case BIN_APPEND: case BIN_PREPEND: case BIN_SETQ: case BIN_ADDQ: case BIN_REPLACEQ:
	case BIN_DELETEQ: case BIN_INCRQ: case BIN_DECRQ: case BIN_APPENDQ: case BIN_PREPENDQ:
	case BIN_TOUCH: case BIN_GAT: case BIN_GATQ: case BIN_GATK: case BIN_GATKQ:
		return 1;
	}
	return 0;
}

struct bin_ctx {
	struct scan_ctx sc;
	__u32 desync; /* lost track of header boundaries */
};

static long binary_step(__u32 idx, void *data)
{
	struct bin_ctx *b = data;
	struct scan_ctx *c = &b->sc;
	if (c->pos >= c->end)
		return 1;
	__u32 wlen = c->end - c->pos;
	if (wlen > WIN_SIZE)
		wlen = WIN_SIZE;
	if (wlen < MC_BIN_HDR_LEN) {
		/* header cut by the segment end: we cannot know where the
		 * next one starts */
		b->desync = 1;
		return 1;
	}
	__u8 *w = c->s->win;
	if (sc_load_win(c->ctx, c->s, c->base + c->pos, wlen) < 0) {
		b->desync = 1;
		return 1;
	}
	if (w[0] != 0x80) {
		b->desync = 1;
		return 1;
	}
	__u8 op = w[1];
	__u32 klen = ((__u32)w[2] << 8) | w[3];
	__u32 elen = w[4];
	__u32 body = ((__u32)w[8] << 24) | ((__u32)w[9] << 16) | ((__u32)w[10] << 8) | w[11];
	if (elen + klen > body) {
		b->desync = 1;
		return 1;
	}
	if (op == BIN_FLUSH || op == BIN_FLUSHQ) {
		__u64 delay = 0;
		if (elen >= 4 && wlen >= MC_BIN_HDR_LEN + 4) {
			__s64 e = ((__u32)w[24] << 24) | ((__u32)w[25] << 16) | ((__u32)w[26] << 8) | w[27];
			__u64 d = exptime_deadline(c->cfg, e, c->now);
			delay = d > c->now ? d - c->now + 2 * NSEC : 0;
		}
		flush_cache(c->cfg, c->now, delay, 0);
	} else if (bin_mutating(op)) {
		__u32 koff = MC_BIN_HDR_LEN + elen;
		if (klen == 0 || klen > KEY_MAX || koff + klen > wlen) {
			flush_cache(c->cfg, c->now, 0, 1);
		} else {
			sc_copy_key(c->s, BUF_WIN, koff, klen, KEY_SLOT);
			/* exptime: in extras after flags for SET/ADD/REPLACE(Q),
			 * first for TOUCH/GAT*, after delta+initial for INCR/DECR. */
			int known = 0;
			__u32 eoff = 0;
			switch (op) {
			case BIN_SET: case BIN_ADD: case BIN_REPLACE: case BIN_SETQ: case BIN_ADDQ: case BIN_REPLACEQ:
				known = elen >= 8; eoff = 4; break;
			case BIN_TOUCH: case BIN_GAT: case BIN_GATQ: case BIN_GATK: case BIN_GATKQ:
				known = elen >= 4; eoff = 0; break;
			case BIN_INCR: case BIN_DECR: case BIN_INCRQ: case BIN_DECRQ:
				known = elen >= 20; eoff = 16; break;
			}
			__s64 e = 0;
			if (known) {
				__u32 o = MC_BIN_HDR_LEN + eoff;
				e = (__s32)(((__u32)AT(w, WIN_MASK, o) << 24) | ((__u32)AT(w, WIN_MASK, o + 1) << 16) |
					    ((__u32)AT(w, WIN_MASK, o + 2) << 8) | AT(w, WIN_MASK, o + 3));
			}
			invalidate_key(c->s, c->cfg, klen, c->now, known, e);
		}
	}
	c->pos += MC_BIN_HDR_LEN + body;
	return 0;
}

/* Walks binary requests from payload offset from. Returns the offset of the
 * next header (>= end when the last request runs past the payload), or -1
 * after losing track. Over TCP the caller must then flush: what follows may
 * be a mutation we cannot see. A UDP datagram is complete: memcached drops
 * what it cannot parse there, so nothing unseen can follow. Global, as above. */
__noinline long sc_scan_binary(struct xdp_md *ctx, struct scratch *s, struct config *cfg, __u32 base, __u32 range)
{
	if (!s || !cfg)
		return -1;
	__u32 end = range >> 16;
	struct bin_ctx b = {
		.sc = { .ctx = ctx, .cfg = cfg, .s = s, .now = s->q_now, .base = base, .end = end,
			.pos = range & 0xffff },
	};
	bpf_loop(MAX_SCAN_STEPS, binary_step, &b, 0);
	if (b.desync || b.sc.pos < end)
		return -1;
	return b.sc.pos;
}

static __always_inline long scan_binary(struct xdp_md *ctx, struct config *cfg, struct scratch *s, __u64 now,
					__u32 base, __u32 from, __u32 end, int tcp)
{
	s->q_now = now;
	long next = -1;
	if (end <= 0xffff && from <= 0xffff)
		next = sc_scan_binary(ctx, s, cfg, base, from | (end << 16));
	if (next < 0 && tcp)
		flush_cache(cfg, now, 0, 1);
	return next;
}

#endif
