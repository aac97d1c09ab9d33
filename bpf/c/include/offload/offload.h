/* SPDX-License-Identifier: GPL-2.0 */
/* The hardware-offload flavor: sizes, structures and maps of the XDP program
 * a SmartNIC runs (xdp_offload.c), and of the host TC program that hands
 * memcached's replies to the relay (tc_relay.c).
 *
 * What offloaded XDP may use (NFP; netdevsim emulates the same API):
 * HASH and ARRAY maps only, created without flags or BTF, each element (key
 * and value, rounded up to 8 bytes each) at most 64 bytes; helpers
 * map_lookup/update/delete_elem, xdp_adjust_head/tail, get_prandom_u32,
 * perf_event_output; no tail calls, no spin locks, no per-CPU or LRU maps, no
 * global data; no plain stores into map values (the only atomic is an add),
 * so every change of device state here is an atomic add or a map update.
 * bpf/offload_compat_test.go checks the built object against this list.
 *
 * The device cannot be written by the host's TC program, so fills go through
 * the relay (`xdpcache run`): TC copies the reply into a ring buffer, the
 * relay writes the device maps. Item bytes are split into chunks. */
#ifndef XDPCACHE_OFFLOAD_H
#define XDPCACHE_OFFLOAD_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "../common/consts.h"

/* Largest map element (key and value, each rounded up to 8 bytes). */
#define OFF_ELEM_MAX 64
/* Item bytes per chunk: 64 - an 8-byte chunk key. */
#define OFF_CHUNK 56
#define OFF_CHUNK_WORDS (OFF_CHUNK / 8)
/* Chunks per item: the reply payload ("VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n")
 * is at most OFF_ITEM_MAX bytes. */
#define OFF_MAX_CHUNKS 8
#define OFF_ITEM_MAX (OFF_CHUNK * OFF_MAX_CHUNKS)
/* Keys the offload variant serves: the key must lie in chunk 0 after "VALUE ". */
#define OFF_KEY_MAX 48
/* A request is read up to this far: "get " + key + "\r\n" fits, and so does
 * the first line of a mutation (command, key, four numbers, noreply). */
#define OFF_LINE_MAX 96
/* Token scan limit (longest command or number). */
#define OFF_TOKEN_MAX 16
/* GET requests summed for the checksum check: frame header + "get " + key + "\r\n" */
#define OFF_REQ_MAX (MC_FRAME_LEN + 4 + OFF_KEY_MAX + 2)
/* Room for item bytes in a fill record: a power of two, so the copy size
 * can be bounded by a mask (SIZE_1_TO); items larger than OFF_ITEM_MAX are
 * not handed over. */
#define OFF_RECORD_PAYLOAD 512
/* Fill ids: chunk keys carry fill_id << OFF_FILL_SHIFT | chunk index. */
#define OFF_FILL_SHIFT 4

/* ocfg.flags: CFG_REQUIRE_LOCAL, CFG_VERIFY_UDP_CSUM (consts.h) */

struct ocfg {
	__u16 ports[MAX_PORTS]; /* memcached ports; 0 = unused */
	__u32 buckets_mask;     /* buckets - 1 (a power of two) */
	__u32 seed;             /* key hash seed */
	__u32 flags;            /* CFG_* */
	__u32 mtu;              /* largest IP packet a reply may be */
	__u32 unlisted_amp;     /* sources not in the allow-list: reply <= this x request; 0 = never */
	__u8 prefix4[2];        /* allow-list prefix lengths looked up (IPv4), plus one; 0 = unused */
	__u8 prefix6[2];        /* ... (IPv6) */
};

/* Whole-cache epoch (one element): bumped by flushes. */
struct ostate {
	__u64 epoch;
};

/* Per-bucket generation, owned by the XDP program (atomic adds only): every
 * invalidation of the bucket bumps it. The relay never writes it. */
struct ogen {
	__u64 gen;
};

/* The item a bucket holds, written by the relay in one map update after its
 * chunks. Served only while gen and epoch are current. check is a mix of the
 * other fields: a reader that raced a relay update and saw a mix of two
 * entries' fields rejects it. */
struct oentry {
	__u64 gen;     /* bucket generation of the GET the item came from */
	__u64 epoch;
	__u64 tail;    /* the item's last 8 bytes */
	__u32 fill;    /* fill id: the item's chunks are keyed by it */
	__u32 hash;    /* key hash */
	__u32 sum;     /* unfolded one's complement sum of the item bytes (LE 16-bit words) */
	__u32 check;
	__u16 len;     /* item bytes; 0 = empty */
	__u16 key_len;
	__u32 _pad;
};

struct ochunk_key {
	__u32 bucket;
	__u32 fill; /* fill_id << OFF_FILL_SHIFT | chunk index */
};

struct ochunk {
	__u8 b[OFF_CHUNK];
};

/* A GET the XDP program passed to memcached: the relay fills only from
 * replies to such requests, with the generation the bucket had then. */
struct oticket_key {
	__u8 addr[16];  /* client address (IPv4 as ::ffff:a.b.c.d) */
	__u16 port;     /* client port, network order */
	__u16 req_id;   /* UDP frame request id, network order */
	__u32 hash;     /* key hash */
};

struct oticket {
	__u64 gen;
	__u64 epoch;
};

/* Buckets whose last mutation carried an expiry time: the generation that
 * mutation produced. The relay does not fill from a GET at that generation
 * (the device has no clock to expire the item). */
struct ottl {
	__u64 gen;
};

struct oallow_key {
	__u32 prefixlen;
	__u8 addr[16]; /* masked to prefixlen; IPv4 as ::ffff:a.b.c.d with prefixlen + 96 */
};

/* Host side: what TC hands to the relay (ring buffer record). */
struct fill_record {
	__u8 addr[16]; /* client */
	__u16 port;    /* network order */
	__u16 req_id;  /* network order */
	__u32 len;     /* item bytes in payload */
	__u16 mc_port; /* memcached's port (the reply's source), network order: its instance */
	__u16 _pad;
	__u8 payload[OFF_RECORD_PAYLOAD];
};

/* Host side: TC relay settings (one element). */
struct relay_cfg {
	__u16 ports[MAX_PORTS];
	__u32 max_len; /* largest item handed over */
	__u32 _pad;
};

#ifdef XDPCACHE_OFFLOAD_MAPS
/* Device maps. max_entries are placeholders: the loader sizes them from the
 * settings and the device's limits. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ocfg);
	__uint(max_entries, 1);
} ocfg_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ostate);
	__uint(max_entries, 1);
} ostate_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ogen);
	__uint(max_entries, 1024);
} ogen_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct oentry);
	__uint(max_entries, 1024);
} oentry_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ochunk_key);
	__type(value, struct ochunk);
	__uint(max_entries, 4096);
} ochunk_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct oticket_key);
	__type(value, struct oticket);
	__uint(max_entries, 1024);
} oticket_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct ottl);
	__uint(max_entries, 1024);
} ottl_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct oallow_key);
	__type(value, struct allow_rule);
	__uint(max_entries, 64);
} oallow_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct local_addr);
	__type(value, __u32);
	__uint(max_entries, 64);
} olocal_map SEC(".maps");

/* Counters (enum stat_id); the loader may size it below STAT_MAX on devices
 * with small maps, and the program then skips the ones past the end. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, STAT_MAX);
} ostats_map SEC(".maps");

static __always_inline void ostat_inc(__u32 id)
{
	__u64 *v = bpf_map_lookup_elem(&ostats_map, &id);
	if (v)
		__sync_fetch_and_add(v, 1);
}
#endif

/* Seeded one-at-a-time hash step over a key byte (adds and shifts only: the
 * offload target has no 64-bit multiply). The Go side mirrors it
 * (bpf.OffloadKeyHash). */
static __always_inline __u32 ohash_step(__u32 h, __u8 c)
{
	h += c;
	h += h << 10;
	h ^= h >> 6;
	return h;
}

static __always_inline __u32 ohash_final(__u32 h)
{
	h += h << 3;
	h ^= h >> 11;
	h += h << 15;
	return h;
}

/* The integrity mix of an entry's fields (see struct oentry). */
static __always_inline __u32 oentry_check(const struct oentry *e)
{
	return (__u32)e->gen ^ (__u32)(e->gen >> 32) ^ (__u32)e->epoch ^ (__u32)(e->epoch >> 32) ^
	       (__u32)e->tail ^ (__u32)(e->tail >> 32) ^ e->fill ^ e->hash ^ e->sum ^
	       ((__u32)e->len << 16 | e->key_len) ^ 0x9e3779b9;
}

#endif
