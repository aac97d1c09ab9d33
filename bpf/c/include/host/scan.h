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
#endif
