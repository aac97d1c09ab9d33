/* SPDX-License-Identifier: GPL-2.0 */
/* Per-CPU u64 counters for the small programs (the cache's own counters,
 * keyed by enum stat_id for the Go side, are in maps.h). */
#ifndef XDPCACHE_COUNTERS_H
#define XDPCACHE_COUNTERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Declares map NAME with N counters and INC(id), which adds one to counter
 * id (per-CPU: no atomics needed). */
#define PERCPU_COUNTERS(NAME, N, INC)                                     \
	struct {                                                          \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                  \
		__type(key, __u32);                                       \
		__type(value, __u64);                                     \
		__uint(max_entries, N);                                   \
	} NAME SEC(".maps");                                              \
	static __always_inline void INC(__u32 id)                         \
	{                                                                 \
		__u64 *v = bpf_map_lookup_elem(&NAME, &id);               \
		if (v)                                                    \
			*v += 1;                                          \
	}

#endif
