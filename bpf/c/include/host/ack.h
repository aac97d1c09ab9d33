/* SPDX-License-Identifier: GPL-2.0 */
/* Rule A (acknowledgement): a mutation is invalidated twice, when XDP sees
 * it arrive (rule I) and again when memcached's acknowledgement of it leaves
 * through TC. memcached acknowledges a mutation only after applying it, so
 * whatever a GET answered before the mutation was applied (race (b)) is
 * dropped before the client can see the acknowledgement, however long
 * memcached took: fills from older tickets fail the generation check. Such a
 * mutation needs no write hold. See docs/consistency.md.
 *
 * TCP: memcached answers a connection's commands in order. XDP counts the
 * reply units each command is owed (mutate.h: one per command, none after
 * noreply; a command it cannot count ends the counting for the connection)
 * and logs each mutation with the unit that acknowledges it; TC counts the
 * reply units memcached sends (reply_stream.h), invalidates every logged
 * key again at each reply segment and retires a key once its unit has left.
 *
 * UDP: a datagram holding one mutation is logged under (client, port,
 * request id); every reply datagram to that triple invalidates the key again,
 * and one that is exactly an acknowledgement of that kind of command (or,
 * binary, a response with its opcode and opaque) retires it.
 *
 * Everything else is held (the write hold, cfg->hold_ns): mutations nothing
 * acknowledges (noreply, quiet binary, a reply count that cannot be told),
 * and those the log cannot take (a full map, a slot still waiting). */
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

/* Invalidates the hashes taken out of a log (s->ack_copy) after its lock,
 * with hold (XDP: keys that lost their log entry) or without (TC: a reply). */
static __always_inline void ack_copies_invalidate(struct scratch *s, struct config *cfg, __u64 hold, __u64 now,
						  __u32 stat)
{
	__u32 n = s->ack_ncopy;
	for (__u32 i = 0; i < ACK_SLOTS; i++) {
		if (i >= n)
			break;
		invalidate_set(cfg, s->ack_copy[i & (ACK_SLOTS - 1)], hold, now);
		stat_inc(stat);
	}
	s->ack_ncopy = 0;
}

/* ------------------------------------------------------------------ */
/* TCP                                                                */

/* XDP, after reading a TCP segment whose flow is s->ack_fk: logs the keys
 * it invalidated (s->inv_log, each with the reply unit that acknowledges it,
 * 0: none) and whether it flushed; gives the write hold to every key that
 * has no unit, to a key a new one pushes out of a slot it still waits in,
 * and (as a flush) to more keys than slots. Returns -1 when no log could be
 * made: then every key was held. Global: see scan.h. */
__noinline int sc_ack_record(struct scratch *s, struct config *cfg, __u32 flushed, __u64 now)
{
	if (!s || !cfg)
		return 0;
	s = get_scratch(); /* map-value pointer for the map key (see sc_issue_tickets) */
	if (!s)
		return 0;
	__u32 logged = s->inv_logged;
	if (!logged && !flushed)
		return 0;
	struct ack_log *l = bpf_map_lookup_elem(&ack_map, &s->ack_fk);
	if (!l) {
		bpf_map_update_elem(&ack_map, &s->ack_fk, s->ack_zero, BPF_NOEXIST);
		l = bpf_map_lookup_elem(&ack_map, &s->ack_fk);
	}
	__u32 n = logged < ACK_SLOTS ? logged : ACK_SLOTS;
	s->ack_ncopy = 0;
	if (l) {
		__u32 nc = 0;
		bpf_spin_lock(&l->lock);
		for (__u32 i = 0; i < ACK_SLOTS; i++) {
			if (i >= n)
				break;
			__u32 slot = l->next & (ACK_SLOTS - 1);
			l->next++;
			if (l->live & (1U << slot))
				s->ack_copy[nc++ & (ACK_SLOTS - 1)] = l->hash[slot];
			l->hash[slot] = s->inv_log[i & (ACK_SLOTS - 1)];
			l->unit[slot] = s->inv_unit[i & (ACK_SLOTS - 1)];
			l->live |= 1U << slot;
		}
		if (flushed || logged > ACK_SLOTS)
			l->flush_ns = now;
		bpf_spin_unlock(&l->lock);
		s->ack_ncopy = nc;
	}
	for (__u32 i = 0; i < ACK_SLOTS; i++) {
		if (i >= n)
			break;
		if (l && s->inv_unit[i & (ACK_SLOTS - 1)]) {
			stat_inc(STAT_ACK_EXACT);
			continue;
		}
		invalidate_set(cfg, s->inv_log[i & (ACK_SLOTS - 1)], cfg->hold_ns, now);
		stat_inc(STAT_ACK_HELD);
	}
	/* pushed out before their acknowledgement: held from now */
	ack_copies_invalidate(s, cfg, cfg->hold_ns, now, STAT_ACK_HELD);
	if (logged > ACK_SLOTS)
		flush_cache(cfg, now, 0, 0); /* keys not noted: the whole cache is held */
	return l ? 0 : -1;
}

/* XDP, a new connection (SYN) or a reset one (RST) on the flow s->ack_fk:
 * an old log there can no longer be acknowledged; its keys are held and the
 * log goes. Global: see scan.h. */
__noinline int sc_ack_drop(struct scratch *s, struct config *cfg, __u64 now)
{
	if (!s || !cfg)
		return 0;
	s = get_scratch();
	if (!s)
		return 0;
	struct ack_log *l = bpf_map_lookup_elem(&ack_map, &s->ack_fk);
	if (!l)
		return 0;
	__u32 nc = 0;
	bpf_spin_lock(&l->lock);
	for (__u32 i = 0; i < ACK_SLOTS; i++) {
		if (l->live & (1U << i))
			s->ack_copy[nc++ & (ACK_SLOTS - 1)] = l->hash[i];
	}
	l->live = 0;
	bpf_spin_unlock(&l->lock);
	s->ack_ncopy = nc;
	ack_copies_invalidate(s, cfg, cfg->hold_ns, now, STAT_ACK_HELD);
	bpf_map_delete_elem(&ack_map, &s->ack_fk);
	return 0;
}

/* TC, for every TCP segment with payload memcached sends, after the stream
 * walk: invalidates again every key the flow's log waits with (no new hold:
 * a GET that arrives from now on is answered after the mutation), repeats a
 * flush as an epoch bump, and retires what this segment acknowledged:
 * counted says the walk counted the stream's reply units (replies: how many
 * have left, this segment's included). memcached's FIN or RST ends the log.
 * Global: keeps its locals off the main program's frame. */
__noinline int sc_ack_invalidate(struct pkt *p, __u64 now, __u32 counted, __u32 replies)
{
	struct config *cfg = get_config();
	struct scratch *s = get_scratch();
	if (!p || !cfg || !s)
		return 0;
	__builtin_memset(&s->ack_fk, 0, sizeof(s->ack_fk));
	flow_key_out(&s->ack_fk, p);
	struct ack_log *l = bpf_map_lookup_elem(&ack_map, &s->ack_fk);
	if (!l)
		return 0;
	__u32 nc = 0, flush = 0;
	bpf_spin_lock(&l->lock);
	if (l->flush_ns) {
		flush = 1;
		l->flush_ns = 0;
	}
	for (__u32 i = 0; i < ACK_SLOTS; i++) {
		if (!(l->live & (1U << i)))
			continue;
		s->ack_copy[nc++ & (ACK_SLOTS - 1)] = l->hash[i];
		__u32 u = l->unit[i];
		if (!u || (counted && (__s32)(replies - u) >= 0))
			l->live &= ~(1U << i);
	}
	bpf_spin_unlock(&l->lock);
	s->ack_ncopy = nc;
	if (flush) {
		struct global_state *g = get_global();
		if (g) /* the flow's instance (packet_instance) */
			__sync_fetch_and_add(&g->inst_epoch[inst_slot(s->inst)], 1);
		stat_inc(STAT_ACK_FLUSHES);
	}
	ack_copies_invalidate(s, cfg, 0, now, STAT_ACK_INVALIDATIONS);
	if (p->tcp_flags & (TCPF_FIN | TCPF_RST))
		bpf_map_delete_elem(&ack_map, &s->ack_fk);
	return 0;
}

/* ------------------------------------------------------------------ */
/* UDP                                                                */

static __always_inline __u32 udp_ack_index(const __u8 *addr, __u16 port, __u16 req_id)
{
	const __u32 *a = (const __u32 *)addr;
	__u32 x = a[0] ^ a[1] ^ a[2] ^ a[3] ^ (((__u32)port << 16) | req_id);
	x *= 0x9e3779b1;
	x ^= x >> 16;
	return x & (UDP_ACK_SLOTS - 1);
}

static __always_inline struct udp_ack *udp_ack_slot(const __u8 *addr, __u16 port, __u16 req_id)
{
	__u32 idx = udp_ack_index(addr, port, req_id);
	return bpf_map_lookup_elem(&udp_ack_map, &idx);
}

/* XDP: keeps the value of the datagram's store (s->store_*, the key in
 * s->key, the datagram in s->in) for the acknowledgement of the UDP entry
 * (slot, seen). Global: see scan.h. */
__noinline int sc_udp_fill_stash(struct scratch *s, struct config *cfg, __u32 slot, __u64 seen)
{
	if (!s || !cfg)
		return 0;
	s = get_scratch();
	if (!s)
		return 0;
	__u32 vlen = s->store_len, klen = s->store_klen, off = s->store_off;
	if (vlen > cfg->max_value || vlen > VAL_MAX || klen == 0 || klen > KEY_MAX || off + vlen > BUF_SIZE)
		return 0;
	__u32 idx = slot & (UDP_FILL_SLOTS - 1);
	struct udp_fill *f = bpf_map_lookup_elem(&udp_fill_map, &idx);
	if (!f)
		return 0;
	__sync_fetch_and_add(&f->version, 1); /* odd: being written */
	f->slot = slot;
	f->seen_ns = seen;
	f->gen = bucket_gen(cfg, s->inv_log[0]);
	f->epoch = s->store_epoch;
	f->flags = s->store_flags;
	f->key_len = klen;
	f->val_len = vlen;
	__u32 n1 = fmt_space_u64(f->num_txt, s->store_flags) & 15;
	__u32 n2 = fmt_space_u64(s->win + 96, vlen) & 15;
	for (__u32 i = 0; i < 16; i++) {
		if (i >= n2)
			break;
		f->num_txt[(n1 + i) & 31] = s->win[96 + i];
	}
	f->num_len = n1 + n2;
	for (int i = 0; i < KEY_WORDS; i++)
		((__u64 *)f->key)[i] = ((__u64 *)s->key)[i];
	for (int i = 0; i < VAL_WORDS; i++) {
		if (i * 8 >= vlen)
			break;
		((__u64 *)f->val)[i] = load8(s->in, BUF_MASK, off + i * 8);
	}
	__sync_fetch_and_add(&f->version, 1);
	return 0;
}

static __always_inline int udp_ack_is(struct udp_ack *u, const __u8 *addr, __u16 port, __u16 req_id)
{
	const __u32 *a = (const __u32 *)addr, *b = (const __u32 *)u->addr;
	return u->live && u->port == port && u->req_id == req_id && a[0] == b[0] && a[1] == b[1] && a[2] == b[2] &&
	       a[3] == b[3];
}

/* XDP, after reading a UDP datagram to memcached (request id req_id, network
 * order) that mutated: a datagram of one command with one reply that can be
 * told is logged for it; every other mutation is held. A live entry of the
 * same (client, port, request id) loses its place and is held too (either
 * reply could then be taken for the other's). An entry of another triple
 * gives its place up only once it has waited the write hold (memcached
 * dropped the datagram, or the reply was of another kind); it is held from
 * then. Global: see scan.h. */
__noinline int sc_udp_ack_record(struct scratch *s, struct config *cfg, struct pkt *p, __u32 req_id, __u64 now)
{
	if (!s || !cfg || !p)
		return 0;
	s = get_scratch();
	if (!s)
		return 0;
	__u32 logged = s->inv_logged;
	if (!logged)
		return 0;
	__u16 id = req_id;
	int exact = logged == 1 && s->ncmds == 1 && s->inv_unit[0] && s->udp_family;
	s->ack_ncopy = 0;
	struct udp_ack *u = udp_ack_slot(p->saddr, p->sport, id);
	if (u) {
		bpf_spin_lock(&u->lock);
		if (udp_ack_is(u, p->saddr, p->sport, id)) {
			s->ack_copy[0] = u->hash;
			s->ack_ncopy = 1;
			u->live = 0;
			exact = 0;
		} else if (exact && u->live && now - u->seen_ns < cfg->hold_ns) {
			exact = 0; /* the place is taken */
		} else if (exact) {
			if (u->live) {
				s->ack_copy[0] = u->hash;
				s->ack_ncopy = 1;
			}
			__builtin_memcpy(u->addr, p->saddr, 16);
			u->port = p->sport;
			u->req_id = id;
			u->family = s->udp_family;
			u->opcode = s->udp_opcode;
			u->opaque = s->udp_opaque;
			u->hash = s->inv_log[0];
			u->seen_ns = now;
			u->live = 1;
		}
		bpf_spin_unlock(&u->lock);
	} else {
		exact = 0;
	}
	ack_copies_invalidate(s, cfg, cfg->hold_ns, now, STAT_ACK_HELD);
	if (exact) {
		stat_inc(STAT_ACK_EXACT);
		if (s->store_fill)
			sc_udp_fill_stash(s, cfg, udp_ack_index(p->saddr, p->sport, id), now);
		return 0;
	}
	__u32 n = logged < ACK_SLOTS ? logged : ACK_SLOTS;
	for (__u32 i = 0; i < ACK_SLOTS; i++) {
		if (i >= n)
			break;
		invalidate_set(cfg, s->inv_log[i & (ACK_SLOTS - 1)], cfg->hold_ns, now);
		stat_inc(STAT_ACK_HELD);
	}
	if (logged > ACK_SLOTS)
		flush_cache(cfg, now, 0, 0); /* keys not noted: the whole cache is held */
	return 0;
}

/* Is the reply datagram s->in[0, len) (frame header first) an
 * acknowledgement of a command of this family: exactly one of its reply
 * lines, or a binary response with its opcode and opaque? */
static __always_inline int udp_ack_matches(struct scratch *s, __u32 len, __u32 family, __u32 opcode, __u32 opaque)
{
	__u32 body = len - MC_FRAME_LEN;
	__u64 w = load8(s->in, BUF_MASK, MC_FRAME_LEN);
	__u64 w2 = load8(s->in, BUF_MASK, MC_FRAME_LEN + 8);
	if (family == ACK_FAM_BINARY)
		return body >= MC_BIN_HDR_LEN && s->in[MC_FRAME_LEN] == 0x81 && s->in[MC_FRAME_LEN + 1] == opcode &&
		       *(__u32 *)(s->in + MC_FRAME_LEN + 12) == opaque;
	/* "NOT_FOUND\r\n" answers all four */
	if (body == 11 && w == W8('N', 'O', 'T', '_', 'F', 'O', 'U', 'N') && (w2 & MASKN(3)) == W3('D', '\r', '\n'))
		return 1;
	switch (family) {
	case ACK_FAM_STORE:
		if (body == 8 && w == W8('S', 'T', 'O', 'R', 'E', 'D', '\r', '\n'))
			return 1;
		if (body == 12 && w == W8('N', 'O', 'T', '_', 'S', 'T', 'O', 'R') &&
		    (w2 & MASKN(4)) == W4('E', 'D', '\r', '\n'))
			return 1;
		return body == 8 && w == W8('E', 'X', 'I', 'S', 'T', 'S', '\r', '\n');
	case ACK_FAM_DELETE:
		return body == 9 && w == W8('D', 'E', 'L', 'E', 'T', 'E', 'D', '\r') && (w2 & 0xff) == '\n';
	case ACK_FAM_TOUCH:
		return body == 9 && w == W8('T', 'O', 'U', 'C', 'H', 'E', 'D', '\r') && (w2 & 0xff) == '\n';
	case ACK_FAM_ARITH:
		/* incr/decr: the new value, 1 to 20 digits */
		if (body < 3 || body > 22)
			return 0;
		for (__u32 i = 0; i < 22; i++) {
			if (i + 2 >= body)
				break;
			__u8 c = AT(s->in, BUF_MASK, MC_FRAME_LEN + i);
			if (c < '0' || c > '9')
				return 0;
		}
		return AT(s->in, BUF_MASK, len - 2) == '\r' && AT(s->in, BUF_MASK, len - 1) == '\n';
	}
	return 0;
}

/* TC: a STORED that acknowledges a logged UDP store (set, add, replace,
 * cas): memcached now holds exactly the store's data, which XDP kept
 * (sc_udp_fill_stash). Invalidates the bucket again and fills it with that
 * value, as rule T would from a GET's reply, with the store for the ticket:
 * its arrival time (t_req) and epoch, and the bucket's gen after the store's
 * own invalidations, so any other mutation of the bucket since (another gen
 * bump), a flush (epoch) or a hold refuses the fill. No CAS is known: gets
 * and binary GETs of the entry miss. s->in is used for the value. Global:
 * checked once. */
__noinline int sc_udp_fill_ack(struct config *cfg, __u32 slot, __u64 seen, __u64 hash, __u64 now)
{
	struct scratch *s = get_scratch();
	if (!cfg || !s)
		return 0;
	__u32 idx = slot & (UDP_FILL_SLOTS - 1);
	struct udp_fill *e = bpf_map_lookup_elem(&udp_fill_map, &idx);
	if (!e)
		return 0;
	__u32 v1 = __sync_fetch_and_add(&e->version, 0);
	__u32 klen = e->key_len, vlen = e->val_len, nlen = e->num_len;
	__u64 gen = e->gen;
	s->tk.epoch = e->epoch;
	s->tk.t_req_ns = seen;
	__u32 flags = e->flags;
	if ((v1 & 1) || e->slot != slot || e->seen_ns != seen || klen == 0 || klen > KEY_MAX || vlen > VAL_MAX ||
	    nlen > NUM_TXT)
		return 0;
	for (int i = 0; i < KEY_WORDS; i++)
		((__u64 *)s->key)[i] = ((__u64 *)e->key)[i];
	for (int i = 0; i < NUM_TXT / 8; i++)
		((__u64 *)s->win)[i] = ((__u64 *)e->num_txt)[i];
	for (int i = 0; i < VAL_WORDS; i++) {
		if (i * 8 >= vlen)
			break;
		*(__u64 *)(s->in + ((64 + i * 8) & BUF_MASK)) = ((__u64 *)e->val)[i];
	}
	if (__sync_fetch_and_add(&e->version, 0) != v1)
		return 0; /* XDP rewrote it meanwhile */
	/* rule A's invalidation (both ways), and the set's gen the fill must
	 * find: the bump made it exactly one past the store's unless another
	 * mutation of the set came in between */
	__u64 now_gen = invalidate_set(cfg, hash, 0, now);
	s->tk.gen = now_gen;
	stat_inc(STAT_ACK_INVALIDATIONS);
	if (!now_gen || now_gen - 1 != gen)
		return 1; /* the set changed since the store: no fill */
	struct fill f = {
		.hash = hash, .flags = flags, .key_len = klen, .val_off = 64, .val_len = vlen, .num_len = nlen,
	};
	fill_commit(cfg, s, &f, &s->tk, now);
	return 1;
}

/* TC, every UDP datagram memcached sends whose payload is s->in[0, len): a
 * reply to a logged mutation invalidates its key again; the acknowledgement
 * itself (the whole reply, one datagram) retires it, and a STORED fills the
 * cache with the store's value (sc_udp_fill_ack). Returns 1 when s->in no
 * longer holds the reply. Global: keeps its locals off the main program's
 * frame. */
__noinline int sc_udp_ack(struct pkt *p, __u32 len, __u64 now)
{
	struct config *cfg = get_config();
	struct scratch *s = get_scratch();
	if (!p || !cfg || !s || len < MC_FRAME_LEN + 3 || len > BUF_SIZE)
		return 0;
	__u16 id = *(__u16 *)s->in;
	struct udp_ack *u = udp_ack_slot(p->daddr, p->dport, id);
	if (!u)
		return 0;
	__u64 hash = 0, seen = 0;
	__u32 family = 0, opcode = 0, opaque = 0, found = 0;
	bpf_spin_lock(&u->lock);
	if (udp_ack_is(u, p->daddr, p->dport, id)) {
		found = 1;
		hash = u->hash;
		seen = u->seen_ns;
		family = u->family;
		opcode = u->opcode;
		opaque = u->opaque;
	}
	bpf_spin_unlock(&u->lock);
	if (!found)
		return 0;
	/* one datagram, sequence 0 of 1 */
	int ack = *(__u16 *)(s->in + 2) == 0 && *(__u16 *)(s->in + 4) == bpf_htons(1) &&
		  udp_ack_matches(s, len, family, opcode, opaque);
	int stored = ack && family == ACK_FAM_STORE && len == MC_FRAME_LEN + 8 &&
		     load8(s->in, BUF_MASK, MC_FRAME_LEN) == W8('S', 'T', 'O', 'R', 'E', 'D', '\r', '\n');
	if (!stored) {
		invalidate_set(cfg, hash, 0, now);
		stat_inc(STAT_ACK_INVALIDATIONS);
	}
	if (!ack)
		return 0;
	bpf_spin_lock(&u->lock);
	if (udp_ack_is(u, p->daddr, p->dport, id) && u->seen_ns == seen)
		u->live = 0;
	bpf_spin_unlock(&u->lock);
	if (!stored)
		return 0;
	/* rule A's invalidation, then the fill from the store's value */
	if (!sc_udp_fill_ack(cfg, udp_ack_index(p->daddr, p->dport, id), seen, hash, now)) {
		invalidate_set(cfg, hash, 0, now);
		stat_inc(STAT_ACK_INVALIDATIONS);
	}
	return 1; /* a STORED: nothing to fill from it */
}

#endif
