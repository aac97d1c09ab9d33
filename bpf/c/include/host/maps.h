/* SPDX-License-Identifier: GPL-2.0 */
/* Maps shared by the XDP and TC programs. Both objects declare them; the
 * loader creates them once (from the XDP object) and hands them to the TC
 * object, so both programs see the same maps. */
#ifndef XDPCACHE_MAPS_H
#define XDPCACHE_MAPS_H

#include "../common/structs.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct config);
	__uint(max_entries, 1);
} config_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct global_state);
	__uint(max_entries, 1);
} global_map SEC(".maps");

/* max_entries is replaced by the loader (--entries, a power of two). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct item);
	__uint(max_entries, 65536);
} cache_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ticket_key);
	__type(value, struct ticket);
	__uint(max_entries, 65536);
} ticket_map SEC(".maps");

/* Direct-mapped by a seeded hash of (client, port, request id): writing a
 * miss's reply state costs an array slot under its lock instead of an LRU
 * hash update (host/reply_slots.h). REPLY_SLOTS entries, a power of two. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct reply_slot);
	__uint(max_entries, REPLY_SLOTS);
} reply_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow_key);
	__type(value, struct flow_state);
	__uint(max_entries, 65536);
} flow_map SEC(".maps");

/* Not LRU: an evicted log would lose acknowledgements silently (ack.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flow_key);
	__type(value, struct ack_log);
	__uint(max_entries, 65536);
} ack_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct udp_ack);
	__uint(max_entries, UDP_ACK_SLOTS);
} udp_ack_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct udp_fill);
	__uint(max_entries, UDP_FILL_SLOTS);
} udp_fill_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, struct expiry);
	__uint(max_entries, 131072);
} expiry_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct allow_key4);
	__type(value, struct allow_rule);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} allow4_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct allow_key6);
	__type(value, struct allow_rule);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} allow6_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct local_addr);
	__type(value, __u8);
	__uint(max_entries, 256);
} local_map SEC(".maps");

/* Which memcached instance holds a listening socket (only consulted with
 * CFG_INST_BY_ADDR; otherwise a port is one instance). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct inst_key);
	__type(value, __u32);
	__uint(max_entries, 64);
} inst_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, enum stat_id); /* names the counters in BTF for the Go side */
	__type(value, __u64);
	__uint(max_entries, STAT_MAX);
} stats_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct scratch);
	__uint(max_entries, 1);
} scratch_map SEC(".maps");

static __always_inline void stat_inc(__u32 id)
{
	__u64 *v = bpf_map_lookup_elem(&stats_map, &id);
	if (v)
		*v += 1; /* per-CPU: no atomics needed */
}

static __always_inline void stat_add(__u32 id, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&stats_map, &id);
	if (v)
		*v += n;
}

#endif
