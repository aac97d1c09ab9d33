/* SPDX-License-Identifier: GPL-2.0 */
/* Reply states of ASCII GETs over UDP (struct reply_slot): XDP writes one
 * per miss, TC reads it to parse memcached's reply, which may span several
 * datagrams. A direct-mapped array instead of an LRU hash: a miss costs one
 * array slot under its lock, not an LRU update (free-list pop and push, a
 * jhash of the 32-byte key for the lookup and again for the update).
 *
 * Who holds what (docs/consistency.md, "Reply states"):
 * - XDP (reply_slot_claim) changes a slot only whole, under its lock: key,
 *   state, used, busy = IDLE, t_ns, seq++. It leaves a slot that holds a
 *   reply TC is parsing or that stands inside a value (the rest of that
 *   value must never be read as items): always if it is the same (client,
 *   port, request id), while REPLY_SLOT_KEEP_NS since TC last took it
 *   otherwise.
 * - TC (reply_slot_take) copies the state out under the lock if the key is
 *   its reply's and marks the slot TAKEN; it parses from the copy without
 *   the lock (bpf_loop cannot run under one) and writes the result back
 *   (reply_slot_put) only if seq did not move: a moved seq means XDP gave
 *   the slot to a newer request, whose state stays. A second TC program
 *   that finds the slot TAKEN leaves its datagram unread and marks it
 *   MISSED: the write-back then gives the reply up (skip = ~0U).
 * A reply whose slot holds another key (overwritten, or never written) is
 * read as one with no state: continuation datagrams and first datagrams
 * alike fill nothing. */
#ifndef XDPCACHE_REPLY_SLOTS_H
#define XDPCACHE_REPLY_SLOTS_H

#include "maps.h"

/* How long a mid-value slot of another client or request id is kept from a
 * colliding request: memcached writes the datagrams of one response in one
 * pass of its worker thread (transmit_udp, one sendmsg each), so TC sees
 * the first within the request's service time and each next one within a
 * send of the previous, microseconds to milliseconds even under load; a
 * second is far beyond that. A reply slower than this whose slot a
 * colliding request took is read as one without state: it fills nothing.
 * The only use of the bound is to let a reply that never ends (datagrams
 * lost) stop blocking its slot. */
#define REPLY_SLOT_KEEP_NS 1000000000ULL

/* reply_slot_claim's result */
#define SLOT_CLAIMED 0  /* the state was written */
#define SLOT_OWN_MID 1  /* the same client's reply with this request id is mid-value: left */
#define SLOT_BUSY 2     /* another reply is mid-value there: left */

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

/* XDP: gives the slot to the miss tk with state rs unless it must stay
 * (see the top of this file). Everything under the lock is plain loads and
 * stores: the verifier allows no call while a spin lock is held. */
static __always_inline int reply_slot_claim(struct reply_slot *sl, struct ticket_key *tk, struct reply_state *rs,
					    __u64 now)
{
	int rc = SLOT_CLAIMED;
	bpf_spin_lock(&sl->lock);
	int same = reply_key_eq(&sl->key, tk);
	__u32 skip = sl->rs.skip;
	if (sl->used && (sl->busy != REPLY_SLOT_IDLE || (skip && skip != ~0U))) {
		if (same)
			rc = SLOT_OWN_MID;
		else if ((__s64)(now - sl->t_ns) < (__s64)REPLY_SLOT_KEEP_NS)
			rc = SLOT_BUSY;
	}
	if (rc == SLOT_CLAIMED) {
		sl->key = *tk;
		sl->rs = *rs;
		sl->used = 1;
		sl->busy = REPLY_SLOT_IDLE;
		sl->t_ns = now;
		sl->seq++;
	}
	bpf_spin_unlock(&sl->lock);
	return rc;
}

/* TC: copies the state of tk's reply into s->rs_cur (its seq in s->rs_seq)
 * and marks the slot taken. 0: no state for this reply (another key's
 * slot, or freed), or another TC program is parsing it (this datagram is
 * missed, and the reply given up when that one writes back). */
static __always_inline int reply_slot_take(struct scratch *s, struct reply_slot *sl, struct ticket_key *tk, __u64 now)
{
	int ok = 0;
	bpf_spin_lock(&sl->lock);
	if (sl->used && reply_key_eq(&sl->key, tk)) {
		if (sl->busy != REPLY_SLOT_IDLE) {
			sl->busy = REPLY_SLOT_MISSED;
		} else {
			sl->busy = REPLY_SLOT_TAKEN;
			sl->t_ns = now;
			s->rs_cur = sl->rs;
			s->rs_seq = sl->seq;
			ok = 1;
		}
	}
	bpf_spin_unlock(&sl->lock);
	return ok;
}

/* TC: writes the parsed state back (done: the reply ended, the slot is
 * free) if the slot is still the one taken: same seq. Otherwise XDP gave it
 * to a newer request since, and its state stays as XDP wrote it. */
static __always_inline void reply_slot_put(struct scratch *s, struct reply_slot *sl, int done)
{
	bpf_spin_lock(&sl->lock);
	if (sl->used && sl->seq == s->rs_seq) {
		if (done) {
			sl->used = 0;
		} else {
			sl->rs = s->rs_cur;
			if (sl->busy == REPLY_SLOT_MISSED)
				sl->rs.skip = ~0U; /* a datagram went unread: the rest cannot be followed */
		}
		sl->busy = REPLY_SLOT_IDLE;
	}
	bpf_spin_unlock(&sl->lock);
}

#endif
