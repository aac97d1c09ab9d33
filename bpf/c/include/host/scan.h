/* SPDX-License-Identifier: GPL-2.0 */
/* The host flavor's scanners over its scratch buffers (struct scratch), as
 * global functions; the byte-level helpers they wrap are in common/text.h. */
#ifndef XDPCACHE_SCAN_H
#define XDPCACHE_SCAN_H

#include "../common/structs.h"
#include "../common/text.h"

/* Global (non-static, noinline) wrappers. The verifier checks a global
 * function once, on its own, and sees only "some scalar" come back. Parsing
 * a command is a chain of loops whose exits leave exact, different offsets;
 * inlined, each chain multiplies the states to explore past the verifier's
 * limit. Through these calls the offsets become unknown (but bounded by the
 * caller's checks) and the states merge. Buffers: which == BUF_IN selects
 * s->in, BUF_WIN s->win. Slots: 0..MAX_GET_KEYS-1 are s->keys[], KEY_SLOT is
 * s->key. */
#define BUF_IN 0
#define BUF_WIN 1
#define KEY_SLOT MAX_GET_KEYS

__noinline int sc_token(struct scratch *s, __u32 which, __u32 off, __u32 limit)
{
	if (!s)
		return -1;
	if (which == BUF_WIN)
		return token_len(s->win, WIN_MASK, off, limit);
	return token_len(s->in, BUF_MASK, off, limit);
}

__noinline int sc_spaces(struct scratch *s, __u32 which, __u32 off, __u32 limit)
{
	if (!s)
		return off;
	if (which == BUF_WIN)
		return skip_spaces(s->win, WIN_MASK, off, limit);
	return skip_spaces(s->in, BUF_MASK, off, limit);
}

/* Parses a decimal into s->num; returns the characters consumed. */
__noinline int sc_num(struct scratch *s, __u32 which, __u32 off, __u32 limit)
{
	if (!s)
		return 0;
	if (which == BUF_WIN)
		return parse_num(s->win, WIN_MASK, off, limit, &s->num);
	return parse_num(s->in, BUF_MASK, off, limit, &s->num);
}

/* key_hash of a key slot. */
__noinline __u64 sc_hash(struct scratch *s, __u32 slot, __u32 len, __u64 seed)
{
	if (!s)
		return 0;
	const __u8 *k = slot < MAX_GET_KEYS ? s->keys[slot & (MAX_GET_KEYS - 1)] : s->key;
	return key_hash(k, len, seed);
}

/* Copies len bytes at off into a key slot (zero-padded). */
__noinline int sc_copy_key(struct scratch *s, __u32 which, __u32 off, __u32 len, __u32 slot)
{
	if (!s)
		return -1;
	__u8 *dst = slot < MAX_GET_KEYS ? s->keys[slot & (MAX_GET_KEYS - 1)] : s->key;
	for (int w = 0; w < KEY_WORDS; w++)
		((__u64 *)dst)[w] = 0;
	for (__u32 i = 0; i < KEY_MAX; i++) {
		if (i >= len)
			break;
		if (which == BUF_WIN)
			dst[i] = s->win[(off + i) & WIN_MASK];
		else
			dst[i] = s->in[(off + i) & BUF_MASK];
	}
	return 0;
}

/* copy_token into a key slot. */
__noinline int sc_key(struct scratch *s, __u32 which, __u32 off, __u32 limit, __u32 slot)
{
	if (!s)
		return -1;
	__u8 *dst = slot < MAX_GET_KEYS ? s->keys[slot & (MAX_GET_KEYS - 1)] : s->key;
	if (which == BUF_WIN)
		return copy_token(s->win, WIN_MASK, off, limit, dst);
	return copy_token(s->in, BUF_MASK, off, limit, dst);
}

/* Bytes of w equal to c: the top bit of each such byte is set in the
 * result, and of the bytes above the first such byte, some may be too (the
 * borrow of the subtraction), so only the lowest set bit is exact. */
#define BYTES_EQ(w, c) ((((w) ^ ((c) * 0x0101010101010101ULL)) - 0x0101010101010101ULL) & \
			~((w) ^ ((c) * 0x0101010101010101ULL)) & 0x8080808080808080ULL)

/* A GET's key at s->in[off, limit) into key slot k, a word at a time, and
 * its hash (seed s->seed) into s->hashes[k]: the rules of copy_token (the
 * key ends at the first ' ', '\r' or '\n', which must come before limit;
 * at most KEY_MAX bytes). The slot's words past the key are left as they
 * were: only the key's own words (the last one zero-padded) are ever read
 * (key_hash, sc_key_equal). Returns the key's length or -1. */
__noinline int sc_get_key(struct scratch *s, __u32 off, __u32 limit, __u32 k)
{
	if (!s)
		return -1;
	k &= MAX_GET_KEYS - 1;
	__u64 *dst = (__u64 *)s->keys[k];
	for (int i = 0; i < KEY_WORDS; i++) {
		__u64 w = load8(s->in, BUF_MASK, off + i * 8);
		__u64 t = BYTES_EQ(w, ' ') | BYTES_EQ(w, '\r') | BYTES_EQ(w, '\n');
		if (t) {
			/* the first delimiter is byte j: m = 1 << 8j, and
			 * m * 0x0001020304050607 has j in its top byte */
			__u64 m = (t & -t) >> 7;
			__u32 n = i * 8 + (__u32)((m * 0x0001020304050607ULL) >> 56);
			if (off + n >= limit || n > KEY_MAX || n == 0)
				return -1;
			dst[i] = w & (m - 1);
			s->hashes[k] = key_hash((const __u8 *)dst, n, s->seed);
			return n;
		}
		if (off + i * 8 + 8 >= limit)
			return -1; /* no delimiter before limit */
		dst[i] = w;
	}
	return -1;
}
#endif
