// SPDX-License-Identifier: GPL-2.0
/* XDP on a load generator's interface (mcload, `make bench`): memcached's
 * UDP replies to the load generator's sockets are summarised into one small
 * record each, put on the socket's ring buffer and dropped, so the client
 * spends nothing on the receive stack (skb, IP, UDP, socket queue, recvmmsg)
 * and the machine's CPU goes to the server under test. Everything else
 * passes. Not part of the cache. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "include/common/structs.h"
#include "include/common/parse.h"
#include "include/common/counters.h"

char _license[] SEC("license") = "GPL";

/* What a reply said. */
enum tap_kind {
	TAP_OTHER = 0,   /* neither a hit nor a miss (an error line, garbage) */
	TAP_HIT,         /* ASCII "VALUE ..." or binary status 0 */
	TAP_MISS,        /* ASCII "END\r\n" or binary status 1 (not found) */
};

/* One reply, as the load generator needs it: the memcached UDP frame header
 * (request id, sequence number, datagram count) and what it said. */
struct tap_record {
	__u16 req_id; /* host order */
	__u16 seq;
	__u16 total;
	__u8 kind;    /* enum tap_kind */
	__u8 _pad;
};

struct tap_cfg {
	__u16 server_port; /* memcached's port, network order */
	__u16 _pad;
};

/* Counters (per-CPU): records handed over, records lost to a full ring;
 * for ports registered to be counted only (TAP_COUNT_ONLY): replies (their
 * last datagram), hits and neither-hit-nor-miss replies (their first). */
enum tap_stat {
	TAP_RECORDS = 0,
	TAP_RING_FULL,
	TAP_COUNTED_REPLIES,
	TAP_COUNTED_HITS,
	TAP_COUNTED_OTHER,
	TAP_STAT_MAX,
};

/* tap_ports value of a port whose replies are counted and dropped, with no
 * record: an open-loop source (the XDP request generator) needs totals
 * only, and a ring record costs the receiving CPU a wake-up (irq_work, an
 * inter-processor interrupt: under a hypervisor an MSR write that exits)
 * whenever its reader has caught up, which a fast reader always has. */
#define TAP_COUNT_ONLY 0xffffffffu

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tap_cfg);
	__uint(max_entries, 1);
} tap_cfg_map SEC(".maps");

/* Local UDP port (network order) -> slot in tap_rings. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, __u32);
	__uint(max_entries, 256);
} tap_ports SEC(".maps");

/* One ring buffer per socket, so each socket's goroutine reads its own. */
struct tap_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, 256);
	__array(values, struct tap_ring);
} tap_rings SEC(".maps");

PERCPU_COUNTERS(tap_stats, TAP_STAT_MAX, tap_count)

/* The reply's kind from the first len payload bytes after the frame header
 * (len from the IP header: short frames may be padded). */
static __always_inline __u8 reply_kind(__u8 *b, void *data_end, __u32 len)
{
	if (len >= 8 && (void *)(b + 8) <= data_end && b[0] == 0x81) {
		/* binary response: status at bytes 6..7 */
		__u16 status = (b[6] << 8) | b[7];
		return status == 0 ? TAP_HIT : status == 1 ? TAP_MISS : TAP_OTHER;
	}
	if (len >= 6 && (void *)(b + 6) <= data_end && b[0] == 'V' && b[1] == 'A' && b[2] == 'L' && b[3] == 'U' &&
	    b[4] == 'E' && b[5] == ' ')
		return TAP_HIT;
	if (len >= 5 && (void *)(b + 5) <= data_end && b[0] == 'E' && b[1] == 'N' && b[2] == 'D' && b[3] == '\r' &&
	    b[4] == '\n')
		return TAP_MISS;
	return TAP_OTHER;
}

SEC("xdp")
int reply_tap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct pkt p = {};
	__u32 zero = 0;

	struct tap_cfg *cfg = bpf_map_lookup_elem(&tap_cfg_map, &zero);
	if (!cfg || parse_pkt(data, data_end, data_end - data, &p) || p.proto != IPPROTO_UDP ||
	    p.sport != cfg->server_port || p.first_frag)
		return XDP_PASS;
	__u32 *slot = bpf_map_lookup_elem(&tap_ports, &p.dport);
	if (!slot)
		return XDP_PASS;

	/* memcached's UDP frame header: id, seq, total, reserved (8 bytes) */
	__u8 *fh = data + (p.pl_off & 0xff); /* pl_off < 256 (parse.h bounds) */
	if ((void *)(fh + 8) > data_end || p.pl_len < 8)
		return XDP_PASS;
	struct tap_record rec = {
		.req_id = (fh[0] << 8) | fh[1],
		.seq = (fh[2] << 8) | fh[3],
		.total = (fh[4] << 8) | fh[5],
	};
	/* Only the first datagram of a reply starts with VALUE/END/a header. */
	if (rec.seq == 0)
		rec.kind = reply_kind(fh + 8, data_end, p.pl_len - 8);
	if (*slot == TAP_COUNT_ONLY) {
		if (rec.seq == 0 && rec.kind == TAP_HIT)
			tap_count(TAP_COUNTED_HITS);
		if (rec.seq == 0 && rec.kind == TAP_OTHER)
			tap_count(TAP_COUNTED_OTHER);
		/* a reply split over datagrams counts once, at its last */
		if (rec.total == 0 || rec.seq + 1 >= rec.total)
			tap_count(TAP_COUNTED_REPLIES);
		return XDP_DROP;
	}
	void *ring = bpf_map_lookup_elem(&tap_rings, slot);
	if (!ring)
		return XDP_PASS;
	if (bpf_ringbuf_output(ring, &rec, sizeof(rec), 0)) {
		tap_count(TAP_RING_FULL);
		return XDP_DROP; /* the load generator counts it as lost */
	}
	tap_count(TAP_RECORDS);
	return XDP_DROP;
}
