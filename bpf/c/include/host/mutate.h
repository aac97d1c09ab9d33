/* SPDX-License-Identifier: GPL-2.0 */
/* Reading memcached's command stream as memcached reads it, and invalidating
 * what each command changes.
 *
 * memcached (1.6, proto_text.c / proto_bin.c) picks a TCP connection's
 * protocol once, from its first byte, then reads it as a byte stream: an
 * ASCII command is a line up to '\n' (one '\r' before it dropped, cut at
 * its first NUL), split into tokens on ' ' only, numbers parsed with
 * strtol's rules; a storage command that parses is followed by exactly
 * <bytes> + 2 bytes of data, whatever happens to it; a line that does not
 * parse is followed by none. A binary request is a 24-byte header and its
 * body. Where the next command starts therefore depends on every earlier
 * byte of the connection, so each connection is followed from its SYN
 * (flow_map): its protocol, the sequence number of the next byte, the data
 * still to pass, and a command line cut by a segment end (kept until the
 * rest arrives).
 *
 * Where this cannot be exact, the cache is flushed (counted), never guessed:
 * a connection whose start was never seen (opened before the deployment, or
 * its state evicted) or that skipped bytes (a segment beyond the next
 * expected byte) is read conservatively from then on (FLOW_UNSYNCED): every
 * segment of a binary (or unknown-protocol) connection flushes; an ASCII
 * one has every line read for mutations without trusting data lengths, and
 * flushes where a line could not be seen whole. A UDP datagram is a stream
 * of its own that starts and ends with it. */
#ifndef XDPCACHE_MUTATE_H
#define XDPCACHE_MUTATE_H

#include "cache.h"
#include "ack.h"

/* ------------------------------------------------------------------ */
/* memcached's tokenizer and number parsing over the line in s->win.   */

/* Offset of the first non-space byte at or after off in win[0, len), or len.
 * Global: see scan.h. */
__noinline int sc_skip_sp(struct scratch *s, __u32 off, __u32 len)
{
	if (!s)
		return 0;
	for (__u32 i = 0; i < WIN_SIZE; i++) {
		__u32 o = off + i;
		if (o >= len || AT(s->win, WIN_MASK, o) != ' ')
			return o;
	}
	return len;
}

/* End of the token at off in win[0, len): the next space, or len. */
__noinline int sc_tok_end(struct scratch *s, __u32 off, __u32 len)
{
	if (!s)
		return 0;
	for (__u32 i = 0; i < WIN_SIZE; i++) {
		__u32 o = off + i;
		if (o >= len || AT(s->win, WIN_MASK, o) == ' ')
			return o;
	}
	return len;
}

/* tokenize_command(): up to MAX_TOKENS - 1 tokens of win[0, len), split on
 * ' ' only (runs of spaces are one separator). more_tok: something follows
 * the last one, which memcached leaves for later. */
__noinline int sc_tokenize(struct scratch *s, __u32 len)
{
	if (!s)
		return 0;
	__u32 off = 0, n = 0;
	s->more_tok = 0;
	for (int t = 0; t < MAX_TOKENS - 1; t++) {
		off = sc_skip_sp(s, off, len);
		if (off >= len || off >= WIN_SIZE)
			break;
		__u32 e = sc_tok_end(s, off, len);
		s->tok_off[t] = off;
		s->tok_len[t] = e - off;
		n++;
		off = e;
	}
	if (n == MAX_TOKENS - 1 && sc_skip_sp(s, off, len) < len)
		s->more_tok = 1;
	s->ntok = n;
	return n;
}

#define NUM_BAD 0    /* memcached refuses it */
#define NUM_OK 1     /* memcached accepts it: s->num (strtol) / s->num_u (strtoul) */
#define NUM_UNSURE 2 /* beyond what is followed here (very long digit runs) */

static __always_inline int is_cspace(__u8 c)
{
	return c >= '\t' && c <= '\r'; /* isspace() but ' ', which ends tokens */
}

/* The start of a number at win[off, off+len) as strtol() finds it: white
 * space skipped, then a sign. Returns the offset of the first digit, | 0x100
 * when negative, | 0x200 when beyond what is followed here. Global, so that
 * the digit loop after it starts from one state, not one per prefix. */
__noinline int sc_num_prefix(struct scratch *s, __u32 off, __u32 len)
{
	if (!s)
		return 0x200;
	__u32 i = 0;
	for (int k = 0; k < 16; k++) {
		if (i >= len || !is_cspace(AT(s->win, WIN_MASK, off + i)))
			break;
		i++;
	}
	if (i < len && is_cspace(AT(s->win, WIN_MASK, off + i)))
		return 0x200;
	__u8 c = i < len ? AT(s->win, WIN_MASK, off + i) : 0;
	if (c == '-')
		return (i + 1) | 0x100;
	if (c == '+')
		return i + 1;
	return i;
}

/* safe_strtol / safe_strtoul / safe_strtoull (util.c) over win[off, off+len):
 * leading white space, a sign, digits, then the end or white space;
 * strtol's 64-bit range (ERANGE refused). The callers truncate to 32 bits
 * where memcached stores into an int32_t / uint32_t. Global: see scan.h. */
__noinline int sc_strto(struct scratch *s, __u32 off, __u32 len, __u32 is_signed)
{
	if (!s || len > WIN_SIZE)
		return NUM_BAD;
	int pre = sc_num_prefix(s, off, len);
	if (pre & 0x200)
		return NUM_UNSURE;
	int neg = (pre >> 8) & 1;
	__u32 i = pre & 0xff;
	/* 20 digits at most (leading zeros included): a longer run is
	 * followed no further. Without overflow below 10^20 > 2^64, so the
	 * range checks come after. */
	__u64 v = 0;
	__u32 digits = 0;
	for (int k = 0; k < 20; k++) {
		__u8 c = i < len ? AT(s->win, WIN_MASK, off + i) : 0;
		if (c < '0' || c > '9')
			break;
		if (v > 1844674407370955161ULL || (v == 1844674407370955161ULL && c > '5'))
			return NUM_BAD; /* ERANGE */
		v = v * 10 + (c - '0');
		digits++;
		i++;
	}
	__u8 next = i < len ? AT(s->win, WIN_MASK, off + i) : 0;
	if (next >= '0' && next <= '9')
		return NUM_UNSURE;
	if (!digits)
		return NUM_BAD; /* no digits: str == endptr */
	if (i < len && !is_cspace(next))
		return NUM_BAD; /* endptr neither white space nor the end */
	if (is_signed) {
		if ((!neg && v > 0x7fffffffffffffffULL) || (neg && v > 0x8000000000000000ULL))
			return NUM_BAD;
		s->num = neg ? (__s64)(0 - v) : (__s64)v;
		return NUM_OK;
	}
	__u64 u = neg ? 0 - v : v;
	/* "negative" only refused when it reads as one: a '-' before a
	 * magnitude above 2^63 wraps to a small number (and is accepted) */
	if ((__s64)u < 0) {
		if (neg)
			return NUM_BAD;
		if (i < len)
			return NUM_UNSURE; /* strchr(str, '-') would look at the rest */
	}
	s->num_u = u;
	return NUM_OK;
}

static __always_inline int tok_is(struct scratch *s, __u32 t, __u64 word, __u32 n)
{
	t &= MAX_TOKENS - 1;
	return s->tok_len[t] == n && (load8(s->win, WIN_MASK, s->tok_off[t]) & MASKN(n)) == word;
}

/* ------------------------------------------------------------------ */
/* What a command changes.                                            */

/* Invalidates the key that is token t (at most KEY_MAX bytes). */
static __always_inline void inval_token(struct scratch *s, struct config *cfg, __u32 t, __u64 now, int exp_kind,
					__s64 exptime)
{
	t &= MAX_TOKENS - 1;
	__u32 kl = s->tok_len[t];
	if (kl == 0 || kl > KEY_MAX)
		return;
	sc_copy_key(s, BUF_WIN, s->tok_off[t], kl, KEY_SLOT);
	invalidate_key(s, cfg, kl, now, exp_kind, exptime);
}

/* An exptime token: NUM_OK, or "unreadable" (-1: the record says expired,
 * so the key is not filled until its next readable write). */
static __always_inline __s64 exptime_of(struct scratch *s, __u32 off, __u32 len)
{
	int r = sc_strto(s, off, len, 1);
	return r == NUM_OK ? (__s64)(__s32)s->num : -1;
}

/* First characters of meta flags tokens[from, ntok): a bit per flag, bit 63
 * for a repeated or non-ASCII one (memcached refuses the command). */
static __always_inline __u64 meta_flag_bit(__u8 c)
{
	if (c >= 'A' && c <= 'Z')
		return 1ULL << (c - 'A');
	if (c >= 'a' && c <= 'z')
		return 1ULL << (26 + c - 'a');
	return 1ULL << 62; /* any other byte: an unknown flag */
}
#define MF(c) (((c) >= 'a') ? (1ULL << (26 + (c) - 'a')) : (1ULL << ((c) - 'A')))
#define MF_BAD (1ULL << 63)

struct flags_ctx {
	struct scratch *s;
	__u32 from;
};

static long meta_flag_step(__u32 i, void *data)
{
	struct flags_ctx *fc = data;
	struct scratch *s = fc->s;
	__u32 t = i + fc->from;
	if (t >= s->ntok || t >= MAX_TOKENS - 1)
		return 1;
	struct meta_flags *mf = &s->mf;
	__u32 off = s->tok_off[t & (MAX_TOKENS - 1)];
	__u8 c = AT(s->win, WIN_MASK, off);
	__u64 b = c >= 127 ? MF_BAD : meta_flag_bit(c);
	if (mf->bits & b)
		b = MF_BAD;
	mf->bits |= b;
	if (c == 'T')
		mf->t_tok = t;
	else if (c == 'N')
		mf->n_tok = t;
	else if (c == 'M') /* a mode token of another length is refused */
		mf->mode = s->tok_len[t & (MAX_TOKENS - 1)] == 2 ? AT(s->win, WIN_MASK, off + 1) : 0xff;
	return 0;
}

/* Reads the meta flags tokens[from, ntok) into s->mf (a loop callback:
 * checked once, not once per token). Global: see scan.h. */
/* s->mf.ttl becomes e if e's deadline comes first (0 is never, not the
 * earliest). Global: a small frame of its own (see sc_invalidate). */
__noinline int sc_meta_earlier(struct scratch *s, __s64 e)
{
	struct config *cfg = get_config();
	if (!s || !cfg)
		return 0;
	__u64 now = s->q_now;
	__u64 dt = exptime_deadline(cfg, s->mf.ttl, now), dn = exptime_deadline(cfg, e, now);
	if (dn && (!dt || dn < dt))
		s->mf.ttl = e;
	return 0;
}

__noinline int sc_meta_flags(struct scratch *s, __u32 from)
{
	if (!s)
		return 0;
	struct meta_flags *mf = &s->mf;
	mf->bits = 0;
	mf->t_tok = 0;
	mf->n_tok = 0;
	mf->mode = 0;
	struct flags_ctx fc = { .s = s, .from = from };
	bpf_loop(MAX_TOKENS, meta_flag_step, &fc, 0);
	__u32 tt = mf->t_tok & (MAX_TOKENS - 1), nt = mf->n_tok & (MAX_TOKENS - 1);
	mf->has_ttl = tt || nt;
	mf->ttl_bad = 0;
	mf->ttl = 0;
	if (tt) {
		if (sc_strto(s, s->tok_off[tt] + 1, s->tok_len[tt] - 1, 1) != NUM_OK)
			mf->ttl_bad = 1;
		mf->ttl = exptime_of(s, s->tok_off[tt] + 1, s->tok_len[tt] - 1);
	}
	if (nt) {
		if (sc_strto(s, s->tok_off[nt] + 1, s->tok_len[nt] - 1, 1) != NUM_OK)
			mf->ttl_bad = 1;
		__s64 e = exptime_of(s, s->tok_off[nt] + 1, s->tok_len[nt] - 1);
		if (tt)
			sc_meta_earlier(s, e); /* the one expiring first */
		else
			mf->ttl = e;
	}
	return 0;
}

/* Flags memcached 1.6 knows (_meta_flag_preparse); any other is an error. */
#define MF_KNOWN (MF('b') | MF('N') | MF('T') | MF('R') | MF('l') | MF('O') | MF('P') | MF('L') | MF('k') | \
		  MF('s') | MF('t') | MF('c') | MF('f') | MF('v') | MF('h') | MF('u') | MF('q') | MF('F') | MF('C') | \
		  MF('M') | MF('J') | MF('D') | MF('I'))
/* Flags of an ms that is a plain set for sure (others may fail it) */
#define MF_PLAIN_SET (MF('T') | MF('q') | MF('k') | MF('O') | MF('c') | MF('s') | MF('t') | MF('f') | MF('v') | \
		      MF('h') | MF('l') | MF('u') | MF('P') | MF('L') | MF('M'))

/* Flags that only read: mg with nothing else changes nothing. */
#define MF_READ_ONLY (MF('b') | MF('k') | MF('s') | MF('t') | MF('c') | MF('f') | MF('v') | MF('h') | MF('l') | \
		      MF('O') | MF('q') | MF('u') | MF('P') | MF('L'))

/* A meta command's key (token 1): with the b flag it is base64, decoded by
 * memcached; not followed here, so the whole cache goes. */
static __always_inline void meta_inval(struct scratch *s, struct config *cfg, __u64 now, int exp_kind, __s64 exptime)
{
	if (s->mf.bits & MF('b')) {
		flush_cache(cfg, now, 0, 1);
		return;
	}
	inval_token(s, cfg, 1, now, exp_kind, exptime);
}

/* A store with a data block: invalidated now, and again once the data block
 * has been read -- memcached applies the store then, so a GET answered from
 * the old item meanwhile must not fill (rule I at the moment it applies).
 * Its exptime is recorded now only as EXP_MAYBE (the data may never come)
 * and exactly once the block is in (s->pend). */
static __always_inline void store_inval(struct scratch *s, struct config *cfg, __u32 klen, __u64 now, int kind,
					__s64 exptime)
{
	invalidate_key(s, cfg, klen, now, kind == EXP_SET ? EXP_MAYBE : kind, exptime);
	s->pend = 1;
	s->pend_kind = kind;
	s->pend_hash = s->last_hash;
	s->pend_deadline = exptime_deadline(cfg, exptime, now);
}

static __always_inline void store_token(struct scratch *s, struct config *cfg, __u32 t, __u64 now, int kind,
					__s64 exptime)
{
	t &= MAX_TOKENS - 1;
	__u32 kl = s->tok_len[t];
	if (kl == 0 || kl > KEY_MAX)
		return;
	sc_copy_key(s, BUF_WIN, s->tok_off[t], kl, KEY_SLOT);
	store_inval(s, cfg, kl, now, kind, exptime);
}

#define LINE_UNSURE (-1) /* what follows the line cannot be told: stop trusting positions */

/* Is the last of n tokens "noreply"? (set_noreply_maybe: memcached then
 * sends nothing, errors included, for the classic commands.) */
static __always_inline int noreply_last(struct scratch *s, __u32 n)
{
	return n >= 2 && tok_is(s, n - 1, W7('n', 'o', 'r', 'e', 'p', 'l', 'y'), 7);
}

/* The command's replies (s->cmd_units) and, over UDP, what its reply looks
 * like (s->cmd_family): one reply of that family, or none after noreply. */
static __always_inline void units_classic(struct scratch *s, __u32 n, __u32 family)
{
	if (noreply_last(s, n)) {
		s->cmd_units = UNITS_NONE;
		return;
	}
	s->cmd_units = UNITS_ONE;
	s->cmd_family = family;
}

/* One ASCII command line, s->win[0, lf) ('\n' excluded), as
 * process_command_ascii() reads it. Invalidates what it may change and
 * returns the data bytes memcached reads after it (0: none), or LINE_UNSURE.
 * Global: see scan.h. */
__noinline __s64 sc_ascii_line(struct scratch *s, struct config *cfg, __u32 lf, __u64 now)
{
	if (!s || !cfg || lf > WIN_SIZE)
		return LINE_UNSURE;
	s->pend = 0;
	/* Replies: counted only for the commands memcached answers with exactly
	 * one reply unit (or, after noreply, none); any other (stats, watch,
	 * lru_crawler, verbosity, unknown verbs, ...) stays UNITS_UNSURE. */
	s->cmd_units = UNITS_UNSURE;
	s->cmd_family = 0;
	__u32 len = lf;
	if (len > 1 && AT(s->win, WIN_MASK, len - 1) == '\r')
		len--;
	/* strlen(): the line ends at its first NUL */
	for (__u32 i = 0; i < WIN_SIZE; i++) {
		if (i >= len)
			break;
		if (AT(s->win, WIN_MASK, i) == 0) {
			len = i;
			break;
		}
	}
	__u32 n = sc_tokenize(s, len);
	if (n < 1 || s->tok_len[0] < 2) {
		s->cmd_units = UNITS_ONE;
		return 0; /* ERROR */
	}
	__u32 vl = s->tok_len[0];
	__u64 w = load8(s->win, WIN_MASK, s->tok_off[0]);
	__u8 c0 = w & 0xff;

	if (vl == 2 && c0 == 'm') {
		__u8 c1 = (w >> 8) & 0xff;
		s->cmd_units = UNITS_ONE; /* one line (or VA and its value), unless q */
		if (c1 != 'g' && c1 != 's' && c1 != 'd' && c1 != 'a')
			return 0; /* mn, me, or ERROR */
		/* WANT_TOKENS_MIN(3), key length, MFLAG_MAX_OPT_LENGTH */
		if (n < 2 || s->tok_len[1] > KEY_MAX || n + 1 > MFLAG_MAX_OPT_LENGTH)
			return 0;
		struct meta_flags *mf = &s->mf;
		if (c1 == 's') {
			if (n == 2)
				return 0; /* no datalen */
			int r = sc_strto(s, s->tok_off[2], s->tok_len[2], 1);
			if (r == NUM_UNSURE)
				return LINE_UNSURE;
			__s32 vlen = (__s32)s->num;
			if (r == NUM_BAD || vlen < 0 || vlen > 0x7fffffff - 2)
				return 0;
			/* From here memcached reads vlen + 2 bytes, stored or
			 * swallowed after an error in the flags. */
			sc_meta_flags(s, 3);
			if (mf->bits & MF('q'))
				s->cmd_units = UNITS_UNSURE;
			int kind = EXP_NONE;
			__s64 e = mf->has_ttl ? mf->ttl : 0; /* no T: stored without exptime */
			__u8 mode = mf->mode;
			if (mf->bits & ~MF_KNOWN)
				kind = EXP_NONE; /* refused (the data is swallowed) */
			else if (mode == 'A' || mode == 'P')
				kind = EXP_NONE; /* append/prepend keep the item's */
			else if ((mode == 0 || mode == 'S') && !(mf->bits & ~MF_PLAIN_SET) && !mf->ttl_bad)
				kind = EXP_SET;
			else
				kind = EXP_MAYBE; /* add, replace, cas, bad numbers: only if it applies */
			if (mf->bits & MF('b'))
				flush_cache(cfg, now, 0, 1);
			else
				store_token(s, cfg, 1, now, kind, e);
			return (__s64)vlen + 2;
		}
		sc_meta_flags(s, 2);
		if (mf->bits & MF('q'))
			s->cmd_units = UNITS_UNSURE;
		if (c1 == 'g' && !(mf->bits & ~MF_READ_ONLY))
			return 0;
		/* mg with N/T/E/...; md; ma: the TTL a T or N flag gives
		 * applies only in some cases */
		meta_inval(s, cfg, now, mf->has_ttl ? EXP_MAYBE : EXP_NONE, mf->ttl);
		return 0;
	}

	int store = 0, cas = 0, exp_kind = EXP_NONE;
	switch (vl) {
	case 3:
		if ((w & MASKN(3)) == W3('s', 'e', 't')) {
			store = 1;
			exp_kind = EXP_SET;
		} else if ((w & MASKN(3)) == W3('a', 'd', 'd')) {
			store = 1;
			exp_kind = EXP_MAYBE;
		} else if ((w & MASKN(3)) == W3('c', 'a', 's')) {
			store = 1;
			cas = 1;
			exp_kind = EXP_MAYBE;
		} else if ((w & MASKN(3)) == W3('g', 'a', 't')) {
			goto gat;
		} else if ((w & MASKN(3)) == W3('g', 'e', 't')) {
			s->cmd_units = UNITS_ONE; /* its items and END */
		}
		break;
	case 4:
		if ((w & MASKN(4)) == W4('i', 'n', 'c', 'r') || (w & MASKN(4)) == W4('d', 'e', 'c', 'r')) {
			s->cmd_units = UNITS_ONE;
			if (n == 3 || n == 4) { /* WANT_TOKENS_OR(4, 5) */
				units_classic(s, n, ACK_FAM_ARITH);
				inval_token(s, cfg, 1, now, EXP_NONE, 0);
			}
			return 0;
		}
		if ((w & MASKN(4)) == W4('g', 'a', 't', 's'))
			goto gat;
		if ((w & MASKN(4)) == W4('g', 'e', 't', 's') || (w & MASKN(4)) == W4('b', 'g', 'e', 't'))
			s->cmd_units = UNITS_ONE;
		break;
	case 5:
		if ((w & MASKN(5)) == W5('t', 'o', 'u', 'c', 'h')) {
			s->cmd_units = UNITS_ONE;
			if (n != 3 && n != 4)
				return 0;
			units_classic(s, n, ACK_FAM_TOUCH);
			int r = sc_strto(s, s->tok_off[2], s->tok_len[2], 1);
			if (r == NUM_BAD)
				return 0; /* CLIENT_ERROR invalid exptime argument */
			inval_token(s, cfg, 1, now, EXP_SET, r == NUM_OK ? (__s64)(__s32)s->num : -1);
		}
		return 0;
	case 6:
		if ((w & MASKN(6)) == W6('d', 'e', 'l', 'e', 't', 'e')) {
			s->cmd_units = UNITS_ONE;
			if (n >= 2 && n <= 4) { /* WANT_TOKENS(3, 5) */
				/* set_noreply_maybe only with more than the key */
				units_classic(s, n >= 3 ? n : 0, ACK_FAM_DELETE);
				inval_token(s, cfg, 1, now, EXP_NONE, 0);
			}
			return 0;
		}
		if ((w & MASKN(6)) == W6('a', 'p', 'p', 'e', 'n', 'd'))
			store = 1;
		break;
	case 7:
		if ((w & MASKN(7)) == W7('r', 'e', 'p', 'l', 'a', 'c', 'e')) {
			store = 1;
			exp_kind = EXP_MAYBE;
		} else if ((w & MASKN(7)) == W7('p', 'r', 'e', 'p', 'e', 'n', 'd')) {
			store = 1;
		} else if ((w & MASKN(7)) == W7('v', 'e', 'r', 's', 'i', 'o', 'n')) {
			s->cmd_units = UNITS_ONE;
		}
		break;
	case 8:
		if (w == W8('s', 'h', 'u', 't', 'd', 'o', 'w', 'n'))
			flush_cache(cfg, now, 0, 0);
		return 0;
	case 9:
		if (w == W8('f', 'l', 'u', 's', 'h', '_', 'a', 'l') && AT(s->win, WIN_MASK, s->tok_off[0] + 8) == 'l' &&
		    n <= 3) {
			units_classic(s, n, 0);
			/* flush_all [delay] [noreply]: memcached drops items at
			 * now + delay (absolute times as exptime). Flush now and
			 * refuse fills until then. */
			__u64 hold = 0;
			if (n >= 2 && sc_strto(s, s->tok_off[1], s->tok_len[1], 1) == NUM_OK && (__s32)s->num > 0) {
				__u64 d = exptime_deadline(cfg, (__s32)s->num, now);
				hold = d > now ? d - now + 2 * NSEC : 0;
			}
			flush_cache(cfg, now, hold, 0);
		}
		return 0;
	}
	if (!store)
		return 0;

	/* set/add/replace/append/prepend <key> <flags> <exptime> <bytes>
	 * [noreply]; cas ... <bytes> <cas unique> [noreply] */
	__u32 want = cas ? 6 : 5;
	s->cmd_units = UNITS_ONE;
	if (n != want && n != want + 1)
		return 0; /* ERROR: no data block read */
	units_classic(s, n, ACK_FAM_STORE);
	if (s->tok_len[1] > KEY_MAX)
		return 0;
	int r = sc_strto(s, s->tok_off[2], s->tok_len[2], 0);
	if (r != NUM_OK)
		return r == NUM_BAD ? 0 : LINE_UNSURE;
	/* set, add, replace, cas: once STORED, the item is the data block */
	s->store_flags = (__u32)s->num_u;
	s->store_fill = exp_kind != EXP_NONE;
	s->store_klen = s->tok_len[1];
	r = sc_strto(s, s->tok_off[3], s->tok_len[3], 1);
	if (r != NUM_OK)
		return r == NUM_BAD ? 0 : LINE_UNSURE;
	__s64 exptime = (__s32)s->num;
	r = sc_strto(s, s->tok_off[4], s->tok_len[4], 1);
	if (r != NUM_OK)
		return r == NUM_BAD ? 0 : LINE_UNSURE;
	__s32 vlen = (__s32)s->num;
	if (cas) {
		r = sc_strto(s, s->tok_off[5], s->tok_len[5], 0);
		if (r != NUM_OK)
			return r == NUM_BAD ? 0 : LINE_UNSURE;
	}
	if (vlen < 0 || vlen > 0x7fffffff - 2)
		return 0;
	/* memcached reads vlen + 2 bytes now: stored, refused (not stored,
	 * exists), or swallowed (too large: a set then deletes the key) */
	store_token(s, cfg, 1, now, exp_kind, exptime);
	return (__s64)vlen + 2;

gat:
	/* gat|gats <exptime> <key>*: every key listed is touched; the reply is a
	 * get's (items and END), which over UDP cannot be told from a get's */
	s->cmd_units = UNITS_ONE;
	if (n < 2)
		return 0;
	r = sc_strto(s, s->tok_off[1], s->tok_len[1], 1);
	if (r == NUM_BAD)
		return 0; /* CLIENT_ERROR invalid exptime argument */
	exptime = r == NUM_OK ? (__s64)(__s32)s->num : -1;
	for (int t = 2; t < MAX_TOKENS - 1; t++) {
		if (t >= (int)n)
			break;
		if (s->tok_len[t] > KEY_MAX)
			return 0; /* memcached stops at a key too long */
		inval_token(s, cfg, t, now, EXP_SET, exptime);
	}
	if (s->more_tok) /* memcached goes on with the rest of the line */
		flush_cache(cfg, now, 0, 1);
	return 0;
}

/* A line longer than the window: the first WIN_SIZE bytes are in s->win.
 * Returns LINE_UNSURE when its data block cannot be told; flushes when it may
 * change keys beyond the window. Global: see scan.h. */
__noinline int sc_long_line(struct scratch *s, struct config *cfg, __u64 now)
{
	if (!s || !cfg)
		return LINE_UNSURE;
	__u32 n = sc_tokenize(s, WIN_SIZE);
	if (n < 1)
		return 0; /* 512 spaces: no command yet; say unsure-free ERROR */
	__u32 vl = s->tok_len[0];
	__u64 w = load8(s->win, WIN_MASK, s->tok_off[0]) & MASKN(vl > 8 ? 8 : vl);
	if (n == 1 && s->tok_off[0] + vl >= WIN_SIZE)
		return 0; /* a verb longer than any: ERROR */
	if ((vl == 3 && w == W3('g', 'e', 't')) || (vl == 4 && w == W4('g', 'e', 't', 's')) ||
	    (vl == 4 && w == W4('b', 'g', 'e', 't')))
		return 0;
	if ((vl == 3 && (w == W3('s', 'e', 't') || w == W3('a', 'd', 'd') || w == W3('c', 'a', 's'))) ||
	    (vl == 6 && w == W6('a', 'p', 'p', 'e', 'n', 'd')) ||
	    (vl == 7 && (w == W7('r', 'e', 'p', 'l', 'a', 'c', 'e') || w == W7('p', 'r', 'e', 'p', 'e', 'n', 'd'))) ||
	    (vl == 2 && w == W2('m', 's')))
		return LINE_UNSURE;
	/* anything else may change keys we cannot all read, but reads no data */
	flush_cache(cfg, now, 0, 1);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The stream engine: TCP segments (per connection) and UDP datagrams. */

/* Loads n payload bytes at packet offset off into s->win[at, at + n).
 * Global so that the size, which the verifier must know exactly at a helper
 * call, is exact only in here. */
__noinline int sc_load_win(struct xdp_md *ctx, struct scratch *s, __u32 off, __u32 at, __u32 len)
{
	__u64 n = len;
	if (!s)
		return -1;
	if (n > WIN_SIZE)
		n = WIN_SIZE;
	asm volatile("" : "+r"(n)); /* keep the 64-bit bounds checks */
	if (n < 1 || n > WIN_SIZE)
		return -1;
	return bpf_xdp_load_bytes(ctx, off, s->win + (at & WIN_MASK), SIZE_1_TO(n, WIN_SIZE));
}

/* Offset of the first '\n' in s->win[from, to), or -1. */
__noinline int sc_find_lf(struct scratch *s, __u32 from, __u32 to)
{
	if (!s)
		return -1;
	for (__u32 i = 0; i < 2 * WIN_SIZE; i++) {
		__u32 o = from + i;
		if (o >= to)
			return -1;
		if (s->win[o & (2 * WIN_SIZE - 1)] == '\n')
			return o;
	}
	return -1;
}

/* Copies a cut command line between the flow and s->win (save: win to flow). */
__noinline int sc_carry(struct scratch *s, struct flow_state *fs, __u32 n, __u32 save)
{
	if (!s || !fs)
		return -1;
	for (__u32 i = 0; i < WIN_SIZE / 8; i++) {
		if (i * 8 >= n)
			break;
		if (save)
			((__u64 *)fs->carry)[i] = ((__u64 *)s->win)[i];
		else
			((__u64 *)s->win)[i] = ((__u64 *)fs->carry)[i];
	}
	return 0;
}

struct stream_ctx {
	struct xdp_md *ctx;
	struct config *cfg;
	struct scratch *s;
	struct flow_state *fs;
	__u64 now;
	__u32 base;  /* packet offset of the payload */
	__u32 pos;   /* current offset into the payload */
	__u32 end;   /* payload length */
	__u32 udp;   /* a datagram: nothing continues after its end */
	__u32 lost;  /* positions could no longer be trusted */
};

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

static __always_inline int bin_quiet(__u8 op)
{
	switch (op) {
	case BIN_GETQ: case BIN_GETKQ: case BIN_SETQ: case BIN_ADDQ: case BIN_REPLACEQ: case BIN_DELETEQ:
	case BIN_INCRQ: case BIN_DECRQ: case BIN_QUITQ: case BIN_FLUSHQ: case BIN_APPENDQ: case BIN_PREPENDQ:
	case BIN_GATQ: case BIN_GATKQ:
		return 1;
	}
	return 0;
}

/* One binary request whose header (and as much of its body as the packet
 * holds) is in s->win[0, have). Invalidates what it changes; returns its
 * length (header + body), or -1 when it is no request memcached would take
 * (memcached closes such a connection). Global: see scan.h. */
__noinline long sc_binary_request(struct scratch *s, struct config *cfg, __u32 have, __u64 now)
{
	if (!s || !cfg || have < MC_BIN_HDR_LEN)
		return -1;
	s->pend = 0;
	__u8 *w = s->win;
	if (w[0] != 0x80)
		return -1;
	__u8 op = w[1];
	__u32 klen = ((__u32)w[2] << 8) | w[3];
	__u32 elen = w[4];
	__u32 body = ((__u32)w[8] << 24) | ((__u32)w[9] << 16) | ((__u32)w[10] << 8) | w[11];
	if (elen + klen > body || klen > KEY_MAX)
		return -1; /* memcached closes the connection */
	/* Replies: one response to each request, but none to a quiet one that
	 * succeeds (or misses) and several to STAT. Over UDP a response is
	 * known by the request's opcode and opaque. */
	s->cmd_units = bin_quiet(op) || op == BIN_STAT ? UNITS_UNSURE : UNITS_ONE;
	s->cmd_family = ACK_FAM_BINARY;
	s->cmd_opcode = op;
	s->cmd_opaque = *(__u32 *)(w + 12);
	/* dispatch_bin_command(): a known command with the wrong lengths
	 * closes the connection; an unknown one is answered and its body
	 * swallowed -- after the extras and key memcached already read */
	int valid = 1;
	switch (op) {
	case BIN_SET: case BIN_ADD: case BIN_REPLACE: case BIN_SETQ: case BIN_ADDQ: case BIN_REPLACEQ:
		valid = elen == 8 && klen != 0 && body >= klen + 8; break;
	case BIN_GET: case BIN_GETQ: case BIN_GETK: case BIN_GETKQ:
		valid = elen == 0 && body == klen && klen > 0; break;
	case BIN_DELETE: case BIN_DELETEQ:
		valid = klen > 0 && elen == 0 && body == klen; break;
	case BIN_INCR: case BIN_DECR: case BIN_INCRQ: case BIN_DECRQ:
		valid = klen > 0 && elen == 20 && body == klen + elen; break;
	case BIN_APPEND: case BIN_PREPEND: case BIN_APPENDQ: case BIN_PREPENDQ:
		valid = klen > 0 && elen == 0; break;
	case BIN_TOUCH: case BIN_GAT: case BIN_GATQ: case BIN_GATK: case BIN_GATKQ:
		valid = elen == 4 && klen != 0; break;
	case BIN_FLUSH: case BIN_FLUSHQ:
		valid = klen == 0 && body == elen && (elen == 0 || elen == 4); break;
	case BIN_VERSION: case BIN_NOOP: case BIN_QUIT: case BIN_QUITQ:
		valid = elen == 0 && klen == 0 && body == 0; break;
	case BIN_STAT:
		valid = elen == 0; break;
	case BIN_SASL_LIST: case BIN_SASL_AUTH: case BIN_SASL_STEP:
		return -1; /* no authenticated memcached is deployed on */
	default:
		return MC_BIN_HDR_LEN + (long)elen + klen + body;
	}
	if (!valid)
		return -1;
	if (op == BIN_FLUSH || op == BIN_FLUSHQ) {
		__u64 delay = 0;
		if (elen >= 4 && have >= MC_BIN_HDR_LEN + 4) {
			__s64 e = (__s32)(((__u32)w[24] << 24) | ((__u32)w[25] << 16) | ((__u32)w[26] << 8) | w[27]);
			__u64 d = exptime_deadline(cfg, e, now);
			delay = d > now ? d - now + 2 * NSEC : 0;
		}
		flush_cache(cfg, now, delay, 0);
	} else if (bin_mutating(op)) {
		__u32 koff = MC_BIN_HDR_LEN + elen;
		if (koff + klen > have || koff + klen > WIN_SIZE) {
			flush_cache(cfg, now, 0, 1);
		} else {
			sc_copy_key(s, BUF_WIN, koff, klen, KEY_SLOT);
			/* exptime: in extras after flags for SET/ADD/REPLACE(Q),
			 * first for TOUCH/GAT*, after delta+initial for INCR/DECR
			 * (used only when the key is created there). */
			int kind = EXP_NONE;
			__u32 eoff = 0;
			int has_cas = *(__u64 *)(w + 16) != 0;
			switch (op) {
			case BIN_SET: case BIN_SETQ:
				kind = elen >= 8 ? (has_cas ? EXP_MAYBE : EXP_SET) : EXP_NONE; eoff = 4; break;
			case BIN_ADD: case BIN_REPLACE: case BIN_ADDQ: case BIN_REPLACEQ:
				kind = elen >= 8 ? EXP_MAYBE : EXP_NONE; eoff = 4; break;
			case BIN_TOUCH: case BIN_GAT: case BIN_GATQ: case BIN_GATK: case BIN_GATKQ:
				kind = elen >= 4 ? EXP_SET : EXP_NONE; eoff = 0; break;
			case BIN_INCR: case BIN_DECR: case BIN_INCRQ: case BIN_DECRQ:
				kind = elen >= 20 ? EXP_MAYBE : EXP_NONE; eoff = 16; break;
			}
			__s64 e = 0;
			if (kind != EXP_NONE) {
				__u32 o = MC_BIN_HDR_LEN + eoff;
				e = (__s32)(((__u32)AT(w, WIN_MASK, o) << 24) | ((__u32)AT(w, WIN_MASK, o + 1) << 16) |
					    ((__u32)AT(w, WIN_MASK, o + 2) << 8) | AT(w, WIN_MASK, o + 3));
				if ((op == BIN_INCR || op == BIN_DECR || op == BIN_INCRQ || op == BIN_DECRQ) &&
				    (__u32)e == 0xffffffff)
					kind = EXP_NONE; /* "never create" */
			}
			store_inval(s, cfg, klen, now, kind, e);
		}
	}
	return MC_BIN_HDR_LEN + (long)body;
}

/* A store just read (s->pend) waits in the flow for the end of its data. */
static __always_inline void pend_start(struct scratch *s, struct flow_state *fs)
{
	fs->pend = s->pend && fs->skip;
	if (!fs->pend)
		return;
	/* its repeat is held if the line is (sc_ack_record may hold it too) */
	fs->pend_held = !(s->cmd_units == UNITS_ONE && s->cmd_base);
	struct global_state *g = get_global();
	fs->pend_kind = s->pend_kind;
	fs->pend_hash = s->pend_hash;
	fs->pend_deadline = s->pend_deadline;
	fs->pend_xepoch = g ? g->expiry_epoch : 0;
}

/* The data block of a store is in: memcached stores it now (if it is well
 * formed), with the exptime its line gave (unless a mutation nobody could
 * read came between: then only the earlier deadline is kept). A store that
 * may not apply (add, replace, cas: EXP_MAYBE) is noted again too: between
 * its line and its data another connection's write of the key may have
 * recorded its own exptime (a set: "never"), and if this store applies now,
 * memcached's item has this one's. */
static __always_inline void pend_done(struct scratch *s, struct config *cfg, struct flow_state *fs, __u64 now,
				      int stored)
{
	struct global_state *g = get_global();
	fs->pend = 0;
	if (!stored)
		s->store_fill = 0; /* memcached refuses the block */
	s->repeat_held = fs->pend_held;
	sc_invalidate_hash(s, cfg, fs->pend_hash, now, 1);
	if (!g || !stored || fs->pend_kind == EXP_NONE || s->in_udp)
		return; /* not stored, or cannot tell (UDP: see sc_invalidate): the EXP_MAYBE record stays */
	note_deadline(cfg, fs->pend_hash,
		      fs->pend_kind == EXP_SET && g->expiry_epoch == fs->pend_xepoch ? EXP_SET : EXP_MAYBE,
		      fs->pend_deadline, now);
}

/* Rule A's count. before: sets the reply unit the next command's reply
 * will be, if the replies on this stream can be counted (a TCP connection
 * followed from its SYN, whose replies TC follows and whose every command so
 * far had a known number of replies, or a UDP datagram), else 0.
 * after: the command just read owes its replies. Global: keeps stream_step's
 * frame (in the deepest call chain) small. */
__noinline int sc_units(struct scratch *s, struct flow_state *fs, __u32 udp, __u32 after)
{
	if (!s || !fs)
		return 0;
	if (!after) {
		s->cmd_base = fs->sync == FLOW_SYNCED && !fs->unsure &&
			(udp || s->ack_ok) ? fs->units + 1 : 0;
		return 0;
	}
	s->ncmds++;
	if (s->cmd_units == UNITS_ONE)
		fs->units++;
	else if (s->cmd_units != UNITS_NONE)
		fs->unsure = 1;
	return 0;
}
#define units_before(c) sc_units((c)->s, (c)->fs, (c)->udp, 0)
#define units_after(c) sc_units((c)->s, (c)->fs, (c)->udp, 1)

/* One step of the engine: passes data, reads one command, or stops (1). */
static long stream_step(__u32 idx, void *data)
{
	struct stream_ctx *c = data;
	struct flow_state *fs = c->fs;
	struct scratch *s = c->s;
	if (c->pos >= c->end)
		return 1;
	__u32 avail = c->end - c->pos;
	if (fs->skip) {
		__u32 n = fs->skip < avail ? fs->skip : avail;
		c->pos += n;
		fs->skip -= n;
		if (!fs->skip && fs->pend) {
			/* memcached stores the block only if it ends in "\r\n"
			 * (else CLIENT_ERROR bad data chunk) */
			__u16 tail = 0;
			int ok = fs->proto == FLOW_PROTO_BINARY ||
				 (n >= 2 && bpf_xdp_load_bytes(c->ctx, c->base + c->pos - 2, &tail, 2) == 0 &&
				  tail == W2('\r', '\n'));
			pend_done(s, c->cfg, fs, c->now, ok);
		}
		return 0;
	}
	__u32 carry = fs->carry_len;
	if (carry >= WIN_SIZE) {
		c->lost = 1;
		return 1;
	}
	__u32 n = WIN_SIZE - carry;
	if (n > avail)
		n = avail;
	if (carry)
		sc_carry(s, fs, carry, 0);
	if (sc_load_win(c->ctx, s, c->base + c->pos, carry, n) < 0) {
		c->lost = 1;
		return 1;
	}
	__u32 have = carry + n;

	if (fs->proto == FLOW_PROTO_BINARY) {
		if (have < MC_BIN_HDR_LEN) {
			if (c->udp)
				return 1; /* memcached drops a cut header */
			sc_carry(s, fs, have, 1);
			fs->carry_len = have;
			c->pos += n;
			return 1;
		}
		units_before(c);
		long len = sc_binary_request(s, c->cfg, have, c->now);
		fs->carry_len = 0;
		if (len < 0) {
			c->lost = 1;
			return 1;
		}
		units_after(c);
		/* the request began carry bytes before pos */
		fs->skip = (__u32)len - carry;
		pend_start(s, fs);
		return 0;
	}

	if (fs->mode == FLOW_LONG_LINE) {
		int lf = sc_find_lf(s, 0, have);
		if (lf < 0) {
			c->pos += n;
			return 0;
		}
		c->pos += lf + 1;
		fs->mode = FLOW_AT_COMMAND;
		return 0;
	}
	int lf = sc_find_lf(s, carry, have);
	if (lf < 0) {
		if (have >= WIN_SIZE) {
			/* a line longer than the window (its replies are not
			 * followed) */
			s->cmd_units = UNITS_UNSURE;
			units_after(c);
			if (sc_long_line(s, c->cfg, c->now) < 0)
				c->lost = 1;
			fs->mode = FLOW_LONG_LINE;
			fs->carry_len = 0;
			c->pos += n;
			return c->lost;
		}
		if (c->udp) {
			/* memcached drops a line the datagram ends inside
			 * (try_read_udp starts each datagram afresh) */
			c->pos += n;
			return 1;
		}
		/* the line goes on in the next segment */
		sc_carry(s, fs, have, 1);
		fs->carry_len = have;
		c->pos += n;
		return 1;
	}
	units_before(c);
	s->store_fill = 0;
	__s64 skip = sc_ascii_line(s, c->cfg, lf, c->now);
	units_after(c);
	fs->carry_len = 0;
	c->pos += lf - carry + 1;
	if (s->store_fill && skip >= 2) {
		s->store_off = c->pos; /* the data block (UDP: at this payload offset) */
		s->store_len = (__u32)skip - 2;
	} else {
		s->store_fill = 0;
	}
	if (skip < 0) {
		c->lost = 1;
		return 1;
	}
	if (fs->sync == FLOW_SYNCED) {
		fs->skip = skip > 0xffffffffLL ? 0xffffffff : (__u32)skip;
		pend_start(s, fs);
	}
	return 0;
}

#define STREAM_STEPS 1024 /* commands and data blocks read per packet */

/* Reads payload bytes [from, end) of the packet into the stream fs. Returns
 * 0, or -1 when positions can no longer be trusted (the caller flushes and
 * marks the flow unsynced). range: STREAM_RANGE (five arguments at most).
 * Global: checked once. s->q_now is the time. */
#define STREAM_RANGE(base, from, end, udp) \
	((__u64)(from) | ((__u64)(end) << 16) | ((__u64)(base) << 32) | ((__u64)(udp) << 48))

__noinline int sc_stream(struct xdp_md *ctx, struct scratch *s, struct config *cfg, struct flow_state *fs,
			 __u64 range)
{
	if (!s || !cfg || !fs)
		return -1;
	struct stream_ctx c = {
		.ctx = ctx, .cfg = cfg, .s = s, .fs = fs, .now = s->q_now, .base = (range >> 32) & 0xffff,
		.pos = range & 0xffff, .end = (range >> 16) & 0xffff, .udp = (range >> 48) & 1,
	};
	bpf_loop(STREAM_STEPS, stream_step, &c, 0);
	if (c.lost || c.pos < c.end)
		return -1;
	return 0;
}

struct find_ctx {
	struct xdp_md *ctx;
	struct scratch *s;
	__u32 base, pos, end;
	__u32 found;
};

static long find_magic_step(__u32 i, void *data)
{
	struct find_ctx *f = data;
	if (f->pos >= f->end)
		return 1;
	__u32 n = f->end - f->pos;
	if (n > WIN_SIZE)
		n = WIN_SIZE;
	if (sc_load_win(f->ctx, f->s, f->base + f->pos, 0, n) < 0) {
		f->found = 1; /* cannot tell: as if found */
		return 1;
	}
	/* zero the tail of the last word, then look for a 0x80 byte in each */
	*(__u64 *)(f->s->win + (n & WIN_MASK)) = 0;
	for (__u32 w = 0; w < WIN_SIZE / 8; w++) {
		if (w * 8 >= n)
			break;
		__u64 x = ((__u64 *)f->s->win)[w] ^ 0x8080808080808080ULL; /* 0x80 bytes become 0 */
		if ((x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL) {
			f->found = 1;
			return 1;
		}
	}
	f->pos += n;
	return 0;
}

/* Does payload [0, end) hold a byte 0x80 (every binary request starts with
 * one)? Global: see scan.h. */
__noinline int sc_has_magic(struct xdp_md *ctx, struct scratch *s, __u32 base, __u32 end)
{
	if (!s)
		return 1;
	struct find_ctx f = { .ctx = ctx, .s = s, .base = base, .end = end };
	bpf_loop(0x10000 / WIN_SIZE + 1, find_magic_step, &f, 0);
	return f.found || f.pos < f.end;
}

/* A UDP datagram's payload [from, end) (after the frame header): memcached
 * reads it as a stream of its own, protocol by its first byte. What it
 * mutates is logged for its acknowledgement or held (ack.h). */
static __always_inline void scan_udp(struct xdp_md *ctx, struct config *cfg, struct scratch *s, struct pkt *p,
				     __u64 now, __u32 base, __u32 from, __u32 end)
{
	if (end > 0xffff) {
		/* larger than we read */
		flush_cache(cfg, now, 0, 1);
		return;
	}
	if (from >= end)
		return;
	__u8 first = 0;
	if (bpf_xdp_load_bytes(ctx, base + from, &first, 1) < 0)
		return;
	struct flow_state *fs = &s->udp_fs;
	fs->skip = 0;
	fs->pend = 0;
	fs->carry_len = 0;
	fs->mode = FLOW_AT_COMMAND;
	fs->sync = FLOW_SYNCED;
	fs->proto = first == 0x80 ? FLOW_PROTO_BINARY : FLOW_PROTO_ASCII;
	fs->units = 0;
	fs->unsure = 0;
	s->q_now = now;
	s->in_udp = 1;
	s->inv_logged = 0;
	s->inv_logging = 1;
	s->ncmds = 0;
	s->store_fill = 0;
	struct global_state *gs = get_global();
	s->store_epoch = gs ? inst_epoch_of(gs, s->inst) : 0;
	if (sc_stream(ctx, s, cfg, fs, STREAM_RANGE(base, from, end, 1)) < 0 && fs->proto == FLOW_PROTO_ASCII)
		flush_cache(cfg, now, 0, 1); /* more commands than we read, or an unsure line */
	s->in_udp = 0;
	s->inv_logging = 0;
	if (fs->skip)
		s->ncmds = 0; /* completed by another datagram, answered under its id: held */
	if (end > BUF_SIZE)
		s->store_fill = 0; /* the datagram is not in s->in */
	s->udp_req_id = 0; /* (in scratch: this is the main program's frame) */
	if (bpf_xdp_load_bytes(ctx, base, &s->udp_req_id, 2) < 0)
		s->ncmds = 0;
	sc_udp_ack_record(s, cfg, p, s->udp_req_id, now);
	if (fs->skip) {
		/* the datagram ends inside a data block: memcached reads the
		 * next datagram on the socket, anyone's, as its rest and stores
		 * then (udp_pending_flush) */
		struct global_state *g = get_global();
		if (g)
			__sync_fetch_and_or(&g->udp_pending, 1);
	}
}

/* Every UDP datagram to memcached, first: a store left incomplete by an
 * earlier datagram may be completed by this one, changing a key we cannot
 * name, as memcached reads it. */
static __always_inline void udp_pending_flush(struct config *cfg)
{
	struct global_state *g = get_global();
	if (g && g->udp_pending && __sync_val_compare_and_swap(&g->udp_pending, 1, 0) == 1)
		flush_cache(cfg, bpf_ktime_get_ns(), 0, 1);
}

#endif
