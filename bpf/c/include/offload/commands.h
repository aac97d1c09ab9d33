/* SPDX-License-Identifier: GPL-2.0 */
/* The offload flavor's command reader (xdp_offload.c): reads the commands of
 * a request in the packet and invalidates what they mutate, flushing where it
 * cannot read them (the host flavor's counterpart is host/mutate.h).
 *
 * Verifier shape: the scanners below are global (non-static, __noinline)
 * functions. The verifier checks a global function once, on its own, and the
 * caller sees only a scalar result; inlined, every token length would be a
 * distinct precise state and the unrolled scans (no bpf_loop offloaded)
 * would multiply. */
#ifndef XDPCACHE_OFFLOAD_COMMANDS_H
#define XDPCACHE_OFFLOAD_COMMANDS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "../common/structs.h"
#include "../common/parse.h"
#include "../common/text.h"
#include "offload.h"

#define OFF_MAX_CMDS 4
/* Payload offsets are bounded by this (headers are at most 14 + 8 + 60 + 20
 * bytes, a TCP header up to 60, then OFF_MAX_CMDS commands read). */
#define OFF_POS_MAX 0x7ff

/* Bounds a packet offset in the very register the access uses. A plain
 * "if (pos > OFF_POS_MAX)" is not enough for kernels before 6.x (the check
 * may land on another copy of the value, whose bound the verifier does not
 * carry over), and clang drops a mask it can prove redundant. */
#define POS_BOUND(pos) ({ __u64 __p = (pos); asm volatile("%0 &= 0x7ff" : "+r"(__p)); __p; })

/* oc_command results besides the next command's offset. */
#define OC_END 0        /* the command reaches the end of the packet */
#define OC_UNREADABLE -1 /* could not read it: flush */
#define OC_FLUSH -2     /* flush_all */

/* What the first command was, when it is a GET the program may serve. */
struct oreq {
	__u32 key_off;
	__u32 key_len;
	__u32 get; /* ASCII "get <key>\r\n", nothing else on the line */
};

/* The key hash seed of the memcached instance on port (network order): on
 * the card an instance is a port (bpf.OffloadInstanceSeed). */
#define OINST_SEED(seed, port_be) ((seed) ^ ((__u32)bpf_ntohs(port_be) * 0x9E3779B1U))

static __always_inline struct ocfg *ocfg_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&ocfg_map, &zero);
}

/* Length of the token at pos: bytes before ' ', '\r', '\n' or end; -1 when
 * it is longer than OFF_KEY_MAX or empty. */
__noinline int oc_token(struct xdp_md *ctx, __u32 pos, __u32 end)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (pos > OFF_POS_MAX)
		return -1;
	__u8 *c = data + POS_BOUND(pos);
#pragma unroll
	for (int i = 0; i <= OFF_KEY_MAX; i++) {
		if (pos + i >= end || (void *)(c + i + 1) > data_end)
			return i ? i : -1;
		if (is_delim(c[i]))
			return i ? i : -1;
	}
	return -1;
}

/* Offset just past the '\n' ending the line that starts at pos; -1 when it
 * does not end within OFF_LINE_MAX bytes and the packet. */
__noinline int oc_line_end(struct xdp_md *ctx, __u32 pos, __u32 end)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (pos > OFF_POS_MAX)
		return -1;
	__u8 *c = data + POS_BOUND(pos);
#pragma unroll
	for (int i = 0; i < OFF_LINE_MAX; i++) {
		if (pos + i >= end || (void *)(c + i + 1) > data_end)
			return -1;
		if (c[i] == '\n')
			return pos + i + 1;
	}
	return -1;
}

/* The decimal number at pos: value | digits << 40; -1 when it is not one
 * (or has more than 12 digits). */
__noinline __s64 oc_number(struct xdp_md *ctx, __u32 pos, __u32 end)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (pos > OFF_POS_MAX)
		return -1;
	__u8 *c = data + POS_BOUND(pos);
	__u64 v = 0;
#pragma unroll
	for (int i = 0; i <= 12; i++) {
		if (pos + i >= end || (void *)(c + i + 1) > data_end || is_delim(c[i])) {
			if (!i)
				return -1;
			return v | (__u64)i << 40;
		}
		if (c[i] < '0' || c[i] > '9')
			return -1;
		v = (v << 3) + (v << 1) + (c[i] - '0'); /* v * 10 without a multiply */
	}
	return -1;
}

/* Up to 8 bytes at pos as a little-endian word, bytes past n zero. */
__noinline __u64 oc_word(struct xdp_md *ctx, __u32 pos, __u32 n)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (pos > OFF_POS_MAX)
		return 0;
	__u8 *c = data + POS_BOUND(pos);
	__u64 w = 0;
#pragma unroll
	for (int i = 0; i < 8; i++) {
		if (i >= n || (void *)(c + i + 1) > data_end)
			break;
		w |= (__u64)c[i] << (i * 8);
	}
	return w;
}

/* Seeded hash of the key at [pos, pos + len), len <= OFF_KEY_MAX. */
__noinline __u32 oc_hash(struct xdp_md *ctx, __u32 pos, __u32 len, __u32 seed)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 h = seed ^ len;
	if (pos > OFF_POS_MAX)
		return 0;
	__u8 *c = data + POS_BOUND(pos);
#pragma unroll
	for (int i = 0; i < OFF_KEY_MAX; i++) {
		/* guarded, not break: clang unrolls only single-exit loops here */
		if (i < len && (void *)(c + i + 1) <= data_end)
			h = ohash_step(h, c[i]);
	}
	return ohash_final(h);
}

/* How a mutation bears on the item's expiry time (oc_invalidate). */
#define OTTL_CLEAR 0 /* the item memcached holds afterwards has none */
#define OTTL_SET 1   /* it may have one */
#define OTTL_KEEP 2  /* it keeps the one it had (append, incr, a failed add, ...) */

/* Invalidates the key at [pos, pos + len): bumps its bucket's generation
 * (atomic add: the program never stores into map values) and, for a
 * mutation that set an expiry time -- or kept one an earlier mutation
 * set -- records the generation it produced. */
__noinline int oc_invalidate(struct xdp_md *ctx, __u32 pos, __u32 len, __u32 ttl, __u32 seed)
{
	struct ocfg *cfg = ocfg_get();
	if (!cfg)
		return -1;
	__u32 b = oc_hash(ctx, pos, len, seed) & cfg->buckets_mask;
	struct ogen *g = bpf_map_lookup_elem(&ogen_map, &b);
	if (!g)
		return -1;
	__u64 before = g->gen;
	__sync_fetch_and_add(&g->gen, 1);
	if (ttl == OTTL_KEEP) {
		struct ottl *t = bpf_map_lookup_elem(&ottl_map, &b);
		ttl = t && t->gen == before ? OTTL_SET : OTTL_CLEAR;
	}
	if (ttl == OTTL_SET) {
		struct ottl t = { .gen = before + 1 };
		bpf_map_update_elem(&ottl_map, &b, &t, BPF_ANY);
	}
	ostat_inc(STAT_INVALIDATIONS);
	return 0;
}

static __always_inline void oflush(int unreadable)
{
	__u32 zero = 0;
	struct ostate *st = bpf_map_lookup_elem(&ostate_map, &zero);
	if (st)
		__sync_fetch_and_add(&st->epoch, 1);
	ostat_inc(STAT_FLUSHES);
	if (unreadable)
		ostat_inc(STAT_FLUSH_UNREADABLE);
}

/* A binary-protocol command at pos. */
__noinline int oc_binary(struct xdp_md *ctx, __u32 pos, __u32 end, __u32 seed)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (pos > OFF_POS_MAX || pos + MC_BIN_HDR_LEN > end)
		return OC_UNREADABLE;
	__u8 *h = data + POS_BOUND(pos);
	if ((void *)(h + MC_BIN_HDR_LEN) > data_end)
		return OC_UNREADABLE;
	__u8 op = h[1];
	__u32 klen = (__u32)h[2] << 8 | h[3];
	__u32 extlen = h[4];
	__u32 body = (__u32)h[8] << 24 | (__u32)h[9] << 16 | (__u32)h[10] << 8 | h[11];
	if (body > (1U << 30) || klen + extlen > body)
		return OC_UNREADABLE;
	__u64 next = (__u64)pos + MC_BIN_HDR_LEN + body;
	int ret = next < end ? (int)next : OC_END;

	switch (op) {
	case BIN_GET: case BIN_GETQ: case BIN_GETK: case BIN_GETKQ:
	case 0x07: case 0x17:        /* QUIT, QUITQ */
	case 0x0a: case 0x0b:        /* NOOP, VERSION */
	case 0x10:                   /* STAT */
		return ret;
	case BIN_FLUSH: case BIN_FLUSHQ:
		return OC_FLUSH;
	case BIN_SET: case BIN_ADD: case BIN_REPLACE: case BIN_DELETE:
	case BIN_INCR: case BIN_DECR: case BIN_APPEND: case BIN_PREPEND:
	case BIN_SETQ: case BIN_ADDQ: case BIN_REPLACEQ: case BIN_DELETEQ:
	case BIN_INCRQ: case BIN_DECRQ: case BIN_APPENDQ: case BIN_PREPENDQ:
	case BIN_TOUCH: case BIN_GAT: case BIN_GATQ: case BIN_GATK: case BIN_GATKQ:
		break;
	default:
		return OC_UNREADABLE;
	}
	if (klen == 0 || klen > OFF_KEY_MAX || pos + MC_BIN_HDR_LEN + extlen + klen > end)
		return OC_UNREADABLE;
	/* The expiry time is the last 4 bytes of the extras for every command
	 * that has one (set/add/replace: 8, incr/decr: 20, touch/gat: 4). */
	__u32 exp = 0;
	if (extlen >= 4) {
		__u8 *x = h + MC_BIN_HDR_LEN + (extlen & 0x1f) - 4;
		if ((void *)(x + 4) > data_end)
			return OC_UNREADABLE;
		exp = x[0] | x[1] | x[2] | x[3];
	}
	/* set and touch give the item their expiry time; conditional ones
	 * (add, replace, incr creating the key) may, else it keeps its own */
	__u32 ttl = OTTL_KEEP;
	switch (op) {
	case BIN_SET: case BIN_SETQ: case BIN_TOUCH: case BIN_GAT: case BIN_GATQ: case BIN_GATK: case BIN_GATKQ:
		ttl = exp ? OTTL_SET : OTTL_CLEAR;
		break;
	case BIN_ADD: case BIN_ADDQ: case BIN_REPLACE: case BIN_REPLACEQ:
	case BIN_INCR: case BIN_INCRQ: case BIN_DECR: case BIN_DECRQ:
		ttl = exp ? OTTL_SET : OTTL_KEEP;
		break;
	}
	if (oc_invalidate(ctx, pos + MC_BIN_HDR_LEN + extlen, klen, ttl, seed) < 0)
		return OC_UNREADABLE;
	return ret;
}

/* ASCII and meta commands by their first word (at most 8 bytes) and length. */
enum ocmd {
	C_UNKNOWN, C_GET, C_GETS, C_STORE, C_STORE_COND, C_STORE_KEEP, C_CAS, C_KEYLINE, C_TOUCH, C_GAT,
	C_META_SET, C_META_KEY, C_FLUSH, C_HARMLESS,
};

static __always_inline int ocmd_of(__u64 w, __u32 n)
{
	switch (n) {
	case 2:
		if (w == W2('m', 's')) return C_META_SET;
		if (w == W2('m', 'g') || w == W2('m', 'd') || w == W2('m', 'a') || w == W2('m', 'e'))
			return C_META_KEY;
		if (w == W2('m', 'n')) return C_HARMLESS;
		break;
	case 3:
		if (w == W3('g', 'e', 't')) return C_GET;
		if (w == W3('s', 'e', 't')) return C_STORE;
		if (w == W3('a', 'd', 'd')) return C_STORE_COND;
		if (w == W3('c', 'a', 's')) return C_CAS;
		if (w == W3('g', 'a', 't')) return C_GAT;
		break;
	case 4:
		if (w == W4('g', 'e', 't', 's')) return C_GETS;
		if (w == W4('g', 'a', 't', 's')) return C_GAT;
		if (w == W4('i', 'n', 'c', 'r') || w == W4('d', 'e', 'c', 'r')) return C_KEYLINE;
		if (w == W4('q', 'u', 'i', 't')) return C_HARMLESS;
		break;
	case 5:
		if (w == W5('t', 'o', 'u', 'c', 'h')) return C_TOUCH;
		if (w == W5('s', 't', 'a', 't', 's')) return C_HARMLESS;
		break;
	case 6:
		if (w == W6('d', 'e', 'l', 'e', 't', 'e')) return C_KEYLINE;
		if (w == W6('a', 'p', 'p', 'e', 'n', 'd')) return C_STORE_KEEP;
		break;
	case 7:
		if (w == W7('p', 'r', 'e', 'p', 'e', 'n', 'd')) return C_STORE_KEEP;
		if (w == W7('r', 'e', 'p', 'l', 'a', 'c', 'e')) return C_STORE_COND;
		if (w == W7('v', 'e', 'r', 's', 'i', 'o', 'n')) return C_HARMLESS;
		break;
	case 9:
		if (w == W8('f', 'l', 'u', 's', 'h', '_', 'a', 'l')) return C_FLUSH;
		if (w == W8('v', 'e', 'r', 'b', 'o', 's', 'i', 't')) return C_HARMLESS;
		break;
	}
	return C_UNKNOWN;
}

/* The line's end when nothing but "\r\n" follows at pos. */
static __always_inline int line_ends_at(struct xdp_md *ctx, __u32 pos, __u32 end)
{
	return oc_word(ctx, pos, 2) == W2('\r', '\n') ? (int)(pos + 2) : -1;
}

/* One ASCII or meta command at pos: invalidates what it mutates. Returns
 * the next command's offset, OC_END, OC_UNREADABLE or OC_FLUSH. When it is a
 * single-key "get" and r is not NULL, describes it in r. */
__noinline int oc_ascii(struct xdp_md *ctx, __u32 pos, __u32 end, struct oreq *r, __u32 seed)
{
	int clen = oc_token(ctx, pos, end);
	if (clen <= 0 || clen > 9)
		return OC_UNREADABLE;
	int cmd = ocmd_of(oc_word(ctx, pos, clen), clen);
	if (cmd == C_UNKNOWN)
		return OC_UNREADABLE;
	if (cmd == C_FLUSH)
		return OC_FLUSH;
	int eol = oc_line_end(ctx, pos, end);
	if (cmd == C_HARMLESS || cmd == C_GETS)
		return eol < 0 ? OC_UNREADABLE : (eol < end ? eol : OC_END);

	__u32 at = pos + clen, key_off = 0, ttl = 1;
	int klen;
	if (cmd == C_GAT) {
		/* gat <exptime> <key>: one key only, else the keys can't all be read */
		__s64 n = oc_number(ctx, at + 1, end);
		if (n < 0)
			return OC_UNREADABLE;
		at += 1 + (n >> 40);
	}
	key_off = at + 1;
	klen = oc_token(ctx, key_off, end);
	if (klen <= 0)
		return OC_UNREADABLE;
	at = key_off + klen;
	int next = eol;

	switch (cmd) {
	case C_GET:
		next = line_ends_at(ctx, at, end);
		if (next < 0)
			return eol < 0 ? OC_UNREADABLE : (eol < end ? eol : OC_END); /* several keys */
		if (r) {
			r->key_off = key_off;
			r->key_len = klen;
			r->get = 1;
		}
		return next < end ? next : OC_END;
	case C_GAT:
		if (line_ends_at(ctx, at, end) < 0)
			return OC_UNREADABLE;
		break;
	case C_STORE:
	case C_STORE_COND:
	case C_STORE_KEEP:
	case C_CAS:
	case C_META_SET: {
		/* <key> <flags> <exptime> <bytes> (cas: <cas unique>) / ms <key> <datalen> */
		__s64 flags = 0, exp = 0, bytes;
		if (cmd != C_META_SET) {
			flags = oc_number(ctx, at + 1, end);
			if (flags < 0)
				return OC_UNREADABLE;
			at += 1 + (flags >> 40);
			exp = oc_number(ctx, at + 1, end);
			if (exp < 0)
				return OC_UNREADABLE;
			at += 1 + (exp >> 40);
			int has_exp = (exp & 0xffffffffffULL) != 0;
			ttl = cmd == C_STORE ? (has_exp ? OTTL_SET : OTTL_CLEAR)
			    : cmd == C_STORE_KEEP ? OTTL_KEEP /* memcached ignores append's exptime */
			    : has_exp ? OTTL_SET : OTTL_KEEP; /* add, replace, cas: only if they apply */
		}
		bytes = oc_number(ctx, at + 1, end);
		if (bytes < 0 || eol < 0)
			return OC_UNREADABLE;
		if (cmd != C_META_SET) {
			/* memcached reads the data block only after a line of exactly
			 * these tokens and at most one more (noreply's place):
			 * anything else is answered ERROR with no data read */
			at += 1 + (bytes >> 40);
			if (cmd == C_CAS) {
				__s64 cas = oc_number(ctx, at + 1, end);
				if (cas < 0)
					return OC_UNREADABLE;
				at += 1 + (cas >> 40);
			}
			if (line_ends_at(ctx, at, end) < 0) {
				int tl = oc_token(ctx, at + 1, end);
				if (oc_word(ctx, at, 1) != ' ' || tl <= 0 || line_ends_at(ctx, at + 1 + tl, end) < 0)
					return OC_UNREADABLE;
			}
		}
		__u64 data_end = (__u64)eol + (bytes & 0xffffffffffULL) + 2;
		next = data_end < end ? (int)data_end : OC_END;
		break;
	}
	case C_KEYLINE:
		ttl = OTTL_KEEP; /* delete, incr, decr leave the exptime alone */
		break;
	default: /* touch, meta commands: may set an expiry time */
		break;
	}
	if (cmd != C_STORE && cmd != C_STORE_COND && cmd != C_STORE_KEEP && cmd != C_CAS && cmd != C_META_SET && eol < 0)
		return OC_UNREADABLE;
	if (oc_invalidate(ctx, key_off, klen, ttl, seed) < 0)
		return OC_UNREADABLE;
	return next < 0 ? OC_UNREADABLE : (next < end ? next : OC_END);
}

/* Reads up to OFF_MAX_CMDS commands from pos and invalidates what they
 * mutate, keys hashed with seed (the instance's, OINST_SEED); flushes when
 * one cannot be read or more follow. Fills r when the first command is a
 * single-key GET that is alone in the packet. */
static __always_inline void read_commands(struct xdp_md *ctx, __u32 pos, __u32 end, struct oreq *r, __u32 seed)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int next = pos;
#pragma unroll
	for (int i = 0; i < OFF_MAX_CMDS; i++) {
		__u32 at = next;
		__u8 *c = data + POS_BOUND(at);
		if (at > OFF_POS_MAX || (void *)(c + 1) > data_end) {
			oflush(1);
			return;
		}
		__u8 first = *c;
		next = first == 0x80 ? oc_binary(ctx, at, end, seed) : oc_ascii(ctx, at, end, i == 0 ? r : 0, seed);
		if (next == OC_END)
			return;
		if (i == 0)
			r->get = 0; /* more than one command: not served */
		if (next < 0) {
			oflush(next == OC_UNREADABLE);
			return;
		}
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
	}
	oflush(1); /* more commands than are read */
}

#endif
