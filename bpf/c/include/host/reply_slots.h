/* SPDX-License-Identifier: GPL-2.0 */
/* Reply states of ASCII GETs over UDP (struct reply_slot): XDP writes one
 * per miss, TC reads it to parse memcached's reply, which may span several
 * datagrams. A direct-mapped array instead of an LRU hash: a miss costs one
 * array slot, not an LRU update (free-list pop and push, a jhash of the
 * 32-byte key for the lookup and again for the update).
 *
 * Who holds what (docs/consistency.md, "Reply states"): a slot changes only
 * under its lock, a word taken with a compare-and-swap and released with an
 * exchange (both fully ordered BPF atomics, so every store made under the
 * lock is seen by the next holder). Not bpf_spin_lock: its two helper calls
 * (with interrupts saved and restored) were a tenth of a miss, and TC
 * holds this one across bpf_loop, which no call may run under a
 * bpf_spin_lock. A program never waits for the lock: it is held for a few
 * stores (XDP) or one datagram's parse (TC), and a program that finds it
 * held does without the slot:
 * - XDP (reply_slot_claim) writes key, state, used, t_ns whole. It leaves a
 *   slot that is held, or whose reply stands inside a value (the rest of
 *   that value must never be read as items): always if it is the same
 *   (client, port, request id), while REPLY_SLOT_KEEP_NS since XDP or TC
 *   last touched it otherwise. A request that gets no slot cannot fill.
 * - TC (reply_slot_take) holds the slot while it parses a datagram of the
 *   slot's reply in place, and frees it (used = 0) at the reply's END. A TC
 *   program that finds the slot of its reply held leaves its datagram
 *   unread and sets missed; the next datagram of that reply sees missed and
 *   gives the reply up (skip = ~0U). memcached's worker thread sends the
 *   datagrams of one response in order, each sendmsg running TC egress to
 *   its end before the next, so this is a safeguard, not a path.
 * A reply whose slot holds another key (taken over, or never written) reads
 * as one XDP never passed: continuation and first datagrams alike fill
 * nothing. */
#ifndef XDPCACHE_REPLY_SLOTS_H
#define XDPCACHE_REPLY_SLOTS_H

#include "maps.h"

/* How long a mid-value slot of another client or request id is kept from a
 * colliding request: memcached writes the datagrams of one response in one
 * pass of its worker thread (one sendmsg each), so TC sees the first within
 * the request's service time and each next one within a send of the
 * previous, microseconds to milliseconds even under load; a second is far
 * beyond that. The bound only lets a reply that never ends (datagrams lost)
 * stop blocking its slot. */
#define REPLY_SLOT_KEEP_NS 1000000000ULL

/* reply_slot_claim's result */
#define SLOT_CLAIMED 0  /* the state was written */
#define SLOT_OWN_MID 1  /* the same client's reply with this request id is mid-value: left */
#define SLOT_BUSY 2     /* held, or another reply is mid-value there: left */

/* Slot of (client address, port, request id), all as the ticket key tk holds
 * them. Seeded (config.seed, secret per deployment) so clients cannot aim
 * their requests at one another's slots; a collision only ever costs a
 * fill. Mirrored by ReplySlotOf in bpf/replyslot.go. */
static __always_inline __u32 reply_slot_index(struct config *cfg, struct ticket_key *tk)
{
	__u64 h = cfg->seed ^ 0x2545f4914f6cdd1dULL;
	h ^= ((__u64 *)tk->addr)[0];
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 32;
	h ^= ((__u64 *)tk->addr)[1];
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 29;
	h ^= *(__u32 *)&tk->port; /* port and request id, as on the wire */
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 32;
	return (__u32)h & (REPLY_SLOTS - 1);
}

/* The slot of tk; the index goes through scratch (a map key off the stack). */
static __always_inline struct reply_slot *reply_slot_of(struct scratch *s, struct config *cfg, struct ticket_key *tk)
{
	s->rs_idx = reply_slot_index(cfg, tk);
	return bpf_map_lookup_elem(&reply_slots, &s->rs_idx);
}

static __always_inline int reply_key_eq(struct ticket_key *a, struct ticket_key *b)
{
	__u64 *x = (__u64 *)a, *y = (__u64 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* 1 if the lock was free and is now ours. */
static __always_inline int reply_slot_trylock(struct reply_slot *sl)
{
	return __sync_val_compare_and_swap(&sl->lock, 0, 1) == 0;
}

static __always_inline void reply_slot_unlock(struct reply_slot *sl)
{
	__atomic_exchange_n(&sl->lock, 0, __ATOMIC_SEQ_CST);
}

/* XDP: gives the slot to the miss tk with state rs unless it must stay
 * (see the top of this file). */
static __always_inline int reply_slot_claim(struct reply_slot *sl, struct ticket_key *tk, struct reply_state *rs,
					    __u64 now)
{
	if (!reply_slot_trylock(sl))
		return SLOT_BUSY;
	int rc = SLOT_CLAIMED;
	__u32 skip = sl->rs.skip;
	if (sl->used && skip && skip != ~0U) {
		if (reply_key_eq(&sl->key, tk))
			rc = SLOT_OWN_MID;
		else if ((__s64)(now - sl->t_ns) < (__s64)REPLY_SLOT_KEEP_NS)
			rc = SLOT_BUSY;
	}
	if (rc == SLOT_CLAIMED) {
		sl->key = *tk;
		sl->rs = *rs;
		sl->used = 1;
		sl->missed = 0; /* a missed datagram of the previous owner's reply */
		sl->t_ns = now;
	}
	reply_slot_unlock(sl);
	return rc;
}

/* TC: the slot of tk's reply, locked, or 0: no state for this reply
 * (another key's slot, or freed), or held (then its reply is marked as
 * having missed a datagram). The first look is without the lock: a slot
 * that does not hold tk's state cannot come to hold it while its reply is
 * on the way (XDP wrote it before memcached had the request), and a torn
 * read of a key XDP is replacing only says "not ours" early. */
static __always_inline struct reply_slot *reply_slot_take(struct reply_slot *sl, struct ticket_key *tk, __u64 now)
{
	if (!sl->used || !reply_key_eq(&sl->key, tk))
		return 0;
	if (!reply_slot_trylock(sl)) {
		__sync_fetch_and_or(&sl->missed, 1);
		return 0;
	}
	if (!sl->used || !reply_key_eq(&sl->key, tk)) {
		reply_slot_unlock(sl);
		return 0;
	}
	if (sl->missed) {
		sl->missed = 0;
		sl->rs.skip = ~0U; /* a datagram went unread: the rest cannot be followed */
	}
	sl->t_ns = now;
	return sl;
}

#endif
