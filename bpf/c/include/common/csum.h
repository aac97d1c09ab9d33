/* SPDX-License-Identifier: GPL-2.0 */
/* Host-only Internet checksum helpers built on bpf_csum_diff (sizes must be multiples
 * of 4 and at most 512 bytes per call). */
#ifndef XDPCACHE_CSUM_H
#define XDPCACHE_CSUM_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "reply.h" /* csum_fold */

/* Adds buf[0, len) to sum; buf must be zero-padded to a multiple of 4 past
 * len and at least BUF_SIZE bytes long. Four unrolled 512-byte chunks keep
 * every call's pointer and size constant-bounded for the verifier. */
static __always_inline __u64 csum_buf(__u8 *buf, __u32 len, __u64 sum)
{
	len = (len + 3) & ~3U;
#pragma unroll
	for (int i = 0; i < BUF_SIZE / 512; i++) {
		if (len <= i * 512)
			break;
		__u32 n = len - i * 512;
		if (n > 512)
			n = 512;
		__s64 r = bpf_csum_diff(0, 0, (void *)(buf + i * 512), n & 0x3fc, 0);
		if (r < 0)
			return sum;
		sum += (__u32)r;
	}
	return sum;
}

/* csum_buf, summed inline for buffers up to SHORT_SUM bytes (every small
 * GET and its reply): cheaper than a bpf_csum_diff call for so few words.
 * Same padding rule as csum_buf. */
static __always_inline __u64 csum_buf_short(__u8 *buf, __u32 len, __u64 sum)
{
	if (len > SHORT_SUM)
		return csum_buf(buf, len, sum);
	for (int i = 0; i < SHORT_SUM / 4; i++) {
		if (i * 4 >= len)
			break;
		sum += *(__u32 *)(buf + i * 4);
	}
	return sum;
}

#endif
