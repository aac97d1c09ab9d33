/* SPDX-License-Identifier: GPL-2.0 */
/* Rule A (acknowledgement): a mutation over TCP is invalidated twice, when XDP
 * sees it arrive (rule I) and again when memcached's next reply on the same
 * connection leaves through TC. memcached answers a connection's requests in
 * order and acknowledges a mutation only after applying it, so whatever a GET
 * answered before the mutation was applied (race (b)) is dropped before the
 * client can see the acknowledgement, however long memcached took: fills from
 * older tickets fail the generation check. See docs/consistency.md. */
#ifndef XDPCACHE_ACK_H
#define XDPCACHE_ACK_H

#include "cache.h"

/* The flow_map-style key (client to server) of a packet XDP received. */
static __always_inline void flow_key_in(struct flow_key *fk, struct pkt *p)
{
	__builtin_memcpy(fk->saddr, p->saddr, 16);
	__builtin_memcpy(fk->daddr, p->daddr, 16);
	fk->sport = p->sport;
	fk->dport = p->dport;
}

/* The same key for a packet TC sends (server to client). */
static __always_inline void flow_key_out(struct flow_key *fk, struct pkt *p)
{
	__builtin_memcpy(fk->saddr, p->daddr, 16);
	__builtin_memcpy(fk->daddr, p->saddr, 16);
	fk->sport = p->dport;
	fk->dport = p->sport;
}

static __always_inline struct ack_log *ack_log_of(struct scratch *s, struct flow_key *fk)
{
	struct ack_log *l = bpf_map_lookup_elem(&ack_map, fk);
	if (l)
		return l;
	bpf_map_update_elem(&ack_map, fk, &s->ack_zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&ack_map, fk);
}

/* XDP, after scanning a TCP segment: records the keys it invalidated
 * (s->inv_log) and whether it flushed. Reusing a slot no reply has repeated
 * yet, or more keys than slots in one segment, turn into a flush at the next
 * reply. Without a log (map update failed) only the write hold protects
 * these mutations. */
static __always_inline void ack_log_record(struct scratch *s, struct flow_key *fk, int flushed, __u64 now)
{
	__u32 logged = s->inv_logged;
	if (!logged && !flushed)
		return;
	struct ack_log *l = ack_log_of(s, fk);
	if (!l)
		return;
	int flush = flushed || logged > ACK_SLOTS;
	for (__u32 i = 0; i < ACK_SLOTS; i++) {
		if (i >= logged)
			break;
		__u32 slot = __sync_fetch_and_add(&l->next, 1) & (ACK_SLOTS - 1);
		if (l->seen_ns[slot])
			flush = 1;
		l->hash[slot] = s->inv_log[i & (ACK_SLOTS - 1)];
		l->seen_ns[slot] = now;
	}
	if (flush)
		l->flush_ns = now;
}

/* What one reply repeats, taken from the log. */
struct ack_work {
	__u64 hash[ACK_SLOTS];
	__u32 live; /* bit i: hash[i] is to be invalidated */
	__u32 flush;
};

/* Takes (and empties) the log. The first reply that leaves after XDP saw a
 * mutation is its acknowledgement unless the client pipelined it behind
 * other requests; then the write hold is what covers it. A slot XDP rewrites
 * meanwhile stays live (the compare-and-swap fails) for the next reply. */
static __always_inline void ack_log_take(struct ack_log *l, struct ack_work *w)
{
	__u64 f = l->flush_ns;
	if (f) {
		w->flush = 1;
		__sync_val_compare_and_swap(&l->flush_ns, f, 0);
	}
	for (__u32 i = 0; i < ACK_SLOTS; i++) {
		__u64 seen = l->seen_ns[i];
		if (!seen)
			continue;
		w->hash[i] = l->hash[i];
		w->live |= 1U << i;
		__sync_val_compare_and_swap(&l->seen_ns[i], seen, 0);
	}
}

/* TC, for every TCP segment with payload memcached sends: invalidates again
 * what the flow mutated (no new hold: a GET that arrives from now on is
 * answered after the mutation), and repeats a flush as an epoch bump. */
static __always_inline void ack_invalidate(struct config *cfg, struct pkt *p, __u64 now)
{
	struct flow_key fk = {};
	flow_key_out(&fk, p);
	struct ack_log *l = bpf_map_lookup_elem(&ack_map, &fk);
	if (!l)
		return;
	struct ack_work w = {};
	ack_log_take(l, &w);
	if (w.flush) {
		struct global_state *g = get_global();
		if (g)
			__sync_fetch_and_add(&g->epoch, 1);
		stat_inc(STAT_ACK_FLUSHES);
	}
	for (__u32 i = 0; i < ACK_SLOTS; i++) {
		if (!(w.live & (1U << i)))
			continue;
		invalidate_bucket(cfg, w.hash[i], 0, now);
		stat_inc(STAT_ACK_INVALIDATIONS);
	}
}

#endif
