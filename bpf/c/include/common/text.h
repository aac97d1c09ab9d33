/* SPDX-License-Identifier: GPL-2.0 */
/* Byte-level helpers over scratch buffers. Every index is masked with the
 * buffer's mask (a power of two minus one): the verifier cannot follow the
 * arithmetic of a parser, but it can bound "x & MASK". Callers guarantee the
 * logical bounds (limit) themselves. */
#ifndef XDPCACHE_TEXT_H
#define XDPCACHE_TEXT_H

#include "structs.h"

#define AT(buf, mask, i) ((buf)[(i) & (mask)])

static __always_inline int is_delim(__u8 c)
{
	return c == ' ' || c == '\r' || c == '\n';
}

/* Copies the token starting at off (up to ' ', '\r' or '\n') into dst, which
 * is zeroed first so keys compare and hash as whole words. Returns its length;
 * -1 when no delimiter appears before limit (the token may continue in data we
 * cannot see) or the token is longer than KEY_MAX. */
static __always_inline int copy_token(const __u8 *src, __u32 mask, __u32 off, __u32 limit, __u8 *dst)
{
	__u64 *d64 = (__u64 *)dst;
#pragma unroll
	for (int w = 0; w < KEY_WORDS; w++)
		d64[w] = 0;
	for (__u32 i = 0; i <= KEY_MAX; i++) {
		if (off + i >= limit)
			return -1;
		__u8 c = AT(src, mask, off + i);
		if (is_delim(c))
			return i;
		dst[i & (KEY_BUF - 1)] = c;
	}
	return -1;
}

/* Length of the token at off without copying it (same rules as copy_token). */
static __always_inline int token_len(const __u8 *src, __u32 mask, __u32 off, __u32 limit)
{
	for (__u32 i = 0; i <= KEY_MAX; i++) {
		if (off + i >= limit)
			return -1;
		if (is_delim(AT(src, mask, off + i)))
			return i;
	}
	return -1;
}

/* Skips spaces; returns the new offset. */
static __always_inline __u32 skip_spaces(const __u8 *src, __u32 mask, __u32 off, __u32 limit)
{
	for (int i = 0; i < 16; i++) {
		if (off >= limit || AT(src, mask, off) != ' ')
			break;
		off++;
	}
	return off;
}

/* Parses an optionally negative decimal at off. Returns digits consumed
 * (sign included), 0 if there is no number. */
static __always_inline int parse_num(const __u8 *src, __u32 mask, __u32 off, __u32 limit, __s64 *out)
{
	__u64 v = 0;
	int neg = 0, i = 0, n = 0;
	if (off < limit && AT(src, mask, off) == '-') {
		neg = 1;
		i = 1;
	}
	for (; i < 21; i++) {
		if (off + i >= limit)
			break;
		__u8 c = AT(src, mask, off + i);
		if (c < '0' || c > '9')
			break;
		v = v * 10 + (c - '0');
		n++;
	}
	if (!n)
		return 0;
	*out = neg ? -(__s64)v : (__s64)v;
	return i;
}

/* Seeded word-at-a-time hash over a zero-padded key. The Go side has the
 * same function (bpf/hash.go) for tests and tools. */
static __always_inline __u64 key_hash(const __u8 *key, __u32 len, __u64 seed)
{
	const __u64 *w = (const __u64 *)key;
	__u64 h = seed ^ ((__u64)len * 0x9E3779B97F4A7C15ULL);
	for (int i = 0; i < KEY_WORDS; i++) {
		if (i * 8 >= len)
			break;
		h ^= w[i];
		h *= 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* Reads 8 bytes at off as a little-endian word (unaligned map-value loads are
 * fine on the architectures XDP runs on; the verifier allows them there). */
static __always_inline __u64 load8(const __u8 *src, __u32 mask, __u32 off)
{
	return *(const __u64 *)(src + (off & mask));
}

/* Compile-time packing of up to 8 characters into a little-endian word, for
 * matching verbs with one compare. */
#define W1(a) ((__u64)(a))
#define W2(a, b) (W1(a) | ((__u64)(b) << 8))
#define W3(a, b, c) (W2(a, b) | ((__u64)(c) << 16))
#define W4(a, b, c, d) (W3(a, b, c) | ((__u64)(d) << 24))
#define W5(a, b, c, d, e) (W4(a, b, c, d) | ((__u64)(e) << 32))
#define W6(a, b, c, d, e, f) (W5(a, b, c, d, e) | ((__u64)(f) << 40))
#define W7(a, b, c, d, e, f, g) (W6(a, b, c, d, e, f) | ((__u64)(g) << 48))
#define W8(a, b, c, d, e, f, g, h) (W7(a, b, c, d, e, f, g) | ((__u64)(h) << 56))
#define MASKN(n) ((n) >= 8 ? ~0ULL : ((1ULL << ((n) * 8)) - 1))

/* Writes v as decimal into dst[1..] after a leading space; returns the
 * length written (space included). dst has at least 32 bytes. */
static __always_inline __u32 fmt_space_u64(__u8 *dst, __u64 v)
{
	__u8 tmp[32];
	int n = 0;
	for (int i = 0; i < 20; i++) {
		tmp[i] = '0' + (v % 10);
		v /= 10;
		n++;
		if (!v)
			break;
	}
	dst[0] = ' ';
	for (int i = 0; i < 20; i++) {
		if (i >= n)
			break;
		dst[(i + 1) & 31] = tmp[(n - 1 - i) & 31];
	}
	return n + 1;
}

#endif
