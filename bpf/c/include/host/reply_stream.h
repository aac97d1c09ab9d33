/* SPDX-License-Identifier: GPL-2.0 */
/* Following memcached's TCP replies (docs/consistency.md, rule T over TCP).
 * A fill may come only from bytes memcached certainly sent as the header of
 * a reply: the TC program follows each server-to-client stream from its
 * SYN-ACK, reply by reply, across segments (and GSO super-segments):
 *   ASCII  a line ending in '\n' ("STORED", "END", "STAT ...", "HD ...", ...),
 *          except "VALUE <key> <flags> <n>[ <cas>]\r\n" and "VA <n> ...\r\n",
 *          which are followed by n data bytes and "\r\n" (proto_text.c);
 *   binary a 24-byte header and its body (proto_bin.c): the connection is
 *          binary from then on; its responses are counted (rule A), and
 *          binary TCP replies never fill.
 * What it cannot follow (a connection whose SYN-ACK it did not see, a gap in
 * the sequence numbers, an item header cut by the end of a segment, more
 * replies in one segment than it walks) stops fills for the flow, counted:
 * it never guesses. XDP issues TCP tickets only on followed flows and never
 * for a retransmitted request, and a reply fills from a ticket only if the
 * server had acknowledged the whole request when it sent the reply. */
#ifndef XDPCACHE_REPLY_STREAM_H
#define XDPCACHE_REPLY_STREAM_H

#include "cache.h"
#include "ack.h"

#define RS_TRACK 0  /* at a reply boundary, or inside a value being skipped */
#define RS_LINE 1   /* inside a reply line: its end is the next boundary */
#define RS_BINARY 2 /* a binary-protocol connection: responses followed (counted), never filled */
#define RS_LOST 3   /* lost track: no more fills on this flow */

/* Per TCP flow (keyed like flow_map, client to server). Written by TC, but
 * req_end, which XDP writes. */
struct stream_state {
	__u32 next_seq; /* sequence number of the next byte memcached sends */
	__u32 skip;     /* data bytes (a value and its "\r\n") before the next boundary */
	__u32 req_end;  /* XDP: end of the last request given tickets, in the client's stream */
	__u32 mode;     /* RS_* */
	__u32 replies;  /* reply units memcached has sent (rule A, ack.h): a line, or a get's
			 * items and END, or a meta VA line and its value */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow_key);
	__type(value, struct stream_state);
	__uint(max_entries, 65536);
} stream_map SEC(".maps");

/* XDP, before leaving tickets for a TCP segment that is one GET: returns 1
 * if the reply can be followed and the segment is new data (not a
 * retransmission, whose ticket would be younger than the request memcached
 * read), and sets *end to where the request ends in the client's stream. */
static __always_inline int stream_ticket_ok(struct pkt *p, __u32 *end)
{
	struct flow_key fk = {};
	flow_key_in(&fk, p);
	struct stream_state *st = bpf_map_lookup_elem(&stream_map, &fk);
	if (!st || (st->mode != RS_TRACK && st->mode != RS_LINE))
		return 0;
	if ((__s32)(p->tcp_seq - st->req_end) < 0)
		return 0;
	*end = p->tcp_seq + p->pl_len;
	st->req_end = *end;
	return 1;
}

/* XDP: does TC count the reply units of this flow (rule A, ack.h)? While
 * it follows the stream. */
static __always_inline int stream_counted(struct flow_key *fk)
{
	struct stream_state *st = bpf_map_lookup_elem(&stream_map, fk);
	return st && st->mode != RS_LOST;
}

#endif
