// SPDX-License-Identifier: GPL-2.0
/* TC egress, hardware-offload flavor: the host cannot write the device's
 * maps, so this program hands memcached's single-item UDP replies
 * ("VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n", one datagram) to the
 * relay through a ring buffer; the relay (offload/relay.go) checks them
 * against the device's tickets and writes the items. Never drops or changes
 * a packet. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "include/common/structs.h"
#include "include/common/parse.h"
#include "include/common/text.h"
#include "include/offload/offload.h"
#include "include/common/counters.h"

char _license[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct relay_cfg);
	__uint(max_entries, 1);
} relay_cfg_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} relay_ring SEC(".maps");

/* Counters: replies handed over, and replies dropped for a full ring. */
enum relay_stat {
	RELAY_SEEN = 0, /* UDP packets from a memcached port */
	RELAY_SENT,     /* single-item replies handed to the relay */
	RELAY_RING_FULL,
	RELAY_TOO_BIG,  /* items larger than the device holds */
	RELAY_STAT_MAX,
};

PERCPU_COUNTERS(relay_stats, RELAY_STAT_MAX, rstat_inc)

SEC("tc")
int xdpcache_tc_relay(struct __sk_buff *skb)
{
	struct pkt p;
	__u32 zero = 0;
	struct relay_cfg *cfg = bpf_map_lookup_elem(&relay_cfg_map, &zero);
	if (!cfg)
		return TC_ACT_OK;
	void *data, *data_end;
	TC_PULL_HEADERS(skb, data, data_end);
	if (parse_pkt(data, data_end, skb->len, &p) || p.first_frag || p.proto != IPPROTO_UDP)
		return TC_ACT_OK;
	if (!port_in(cfg->ports, p.sport) || parse_addrs(data, data_end, &p))
		return TC_ACT_OK;
	rstat_inc(RELAY_SEEN);
	/* frame header (8) + at least "VALUE k 0 0\r\n\r\nEND\r\n" */
	if (p.pl_len < MC_FRAME_LEN + 20)
		return TC_ACT_OK;
	__u32 len = p.pl_len - MC_FRAME_LEN;
	if (len > cfg->max_len || len > OFF_ITEM_MAX) {
		rstat_inc(RELAY_TOO_BIG);
		return TC_ACT_OK;
	}
	__u8 hdr[16];
	if (bpf_skb_load_bytes(skb, p.pl_off, hdr, 16) < 0)
		return TC_ACT_OK;
	/* one datagram (sequence 0 of 1) that starts with an item */
	if (*(__u16 *)(hdr + 2) != 0 || *(__u16 *)(hdr + 4) != bpf_htons(1) ||
	    *(__u32 *)(hdr + 8) != W4('V', 'A', 'L', 'U') || hdr[12] != 'E' || hdr[13] != ' ')
		return TC_ACT_OK;
	struct fill_record *rec = bpf_ringbuf_reserve(&relay_ring, sizeof(*rec), 0);
	if (!rec) {
		rstat_inc(RELAY_RING_FULL);
		return TC_ACT_OK;
	}
	__builtin_memcpy(rec->addr, p.daddr, 16);
	rec->port = p.dport;
	rec->req_id = *(__u16 *)hdr;
	rec->len = len;
	rec->mc_port = p.sport;
	rec->_pad = 0;
	/* len is in [20, OFF_ITEM_MAX]: the copy size is len, bounded for the verifier */
	if (bpf_skb_load_bytes(skb, p.pl_off + MC_FRAME_LEN, rec->payload, SIZE_1_TO(len, OFF_RECORD_PAYLOAD)) < 0) {
		bpf_ringbuf_discard(rec, 0);
		return TC_ACT_OK;
	}
	bpf_ringbuf_submit(rec, 0);
	rstat_inc(RELAY_SENT);
	return TC_ACT_OK;
}
