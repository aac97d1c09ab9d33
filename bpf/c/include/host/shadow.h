/* SPDX-License-Identifier: GPL-2.0 */
/* Shadow mode (config flag CFG_SHADOW, docs/shadow.md): XDP works out
 * the reply it would send but passes every GET to memcached; TC compares
 * memcached's reply with it, key by key.
 *
 * XDP, on a request it would answer: per key, a digest of the would-be item
 * (value bytes, length, flags, CAS) in shadow_map, keyed like the key's
 * ticket (client, request id, opaque, key hash; binary GET/GETQ: hash 0, as
 * their tickets), and for an ASCII request the list of its key hashes in
 * shadow_req_map (keyed like its reply state). The miss path then runs as
 * usual: the tickets fill the cache from memcached's reply.
 * TC, on memcached's reply: each item is compared with its digest (match or
 * mismatch by reason) and the digest is dropped; at END, a digest still there
 * is a key memcached did not return (absent). Mismatches are counted per
 * reason and the last SHADOW_LOG of them kept in shadow_log_map. */
#ifndef XDPCACHE_SHADOW_H
#define XDPCACHE_SHADOW_H

#include "cache.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ticket_key);
	__type(value, struct shadow_want);
	__uint(max_entries, 16384);
} shadow_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ticket_key);
	__type(value, struct shadow_req);
	__uint(max_entries, 4096);
} shadow_req_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct shadow_log);
	__uint(max_entries, 1);
} shadow_log_map SEC(".maps");

#define BUF_OUT 2 /* sc_digest: s->out (BUF_IN: s->in) */

/* A digest of len value bytes at off in s->in or s->out. Global: checked once. */
__noinline __u64 sc_digest(struct scratch *s, __u32 which, __u32 off, __u32 len)
{
	if (!s)
		return 0;
	const __u8 *b = which == BUF_OUT ? s->out : s->in;
	__u64 h = 0x6a09e667f3bcc909ULL ^ len;
	__u32 words = len / 8, tail = len & 7;
	/* whole words in the loop, the tail once after it: a branch per word
	 * on the tail would double the states the verifier walks each step */
	for (int i = 0; i < VAL_WORDS; i++) {
		if (i >= words)
			break;
		h = (h ^ load8(b, BUF_MASK, off + i * 8)) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	if (tail) {
		__u64 w = load8(b, BUF_MASK, off + words * 8) & ((1ULL << (tail * 8)) - 1);
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	return h;
}

static __always_inline void shadow_key(struct ticket_key *k, __u8 *addr, __u16 port, __u16 req_id, __u32 opaque,
				       __u64 hash)
{
	__builtin_memcpy(k->addr, addr, 16);
	k->port = port;
	k->req_id = req_id;
	k->opaque = opaque;
	k->hash = hash;
}

/* XDP: an ASCII UDP request whose every key would be answered (key slots,
 * s->sh_note). Records what it would have answered; returns STAT_SHADOW_HITS
 * for the caller to count as its "miss" reason: memcached answers it. */
__noinline int sc_shadow_ascii(struct scratch *s, struct pkt *p, __u32 nkeys)
{
	if (!s || !p)
		return STAT_SHADOW_HITS;
	s = get_scratch(); /* a map-value pointer for map keys (see sc_issue_tickets) */
	if (!s)
		return STAT_SHADOW_HITS;
	struct shadow_want *w = &s->sh_want;
	struct shadow_req *rq = &s->sh_req;
	__u16 req_id = *(__u16 *)s->in;
	rq->nkeys = 0;
	for (int k = 0; k < MAX_GET_KEYS; k++) {
		if (k >= nkeys)
			break;
		struct shadow_note *n = &s->sh_note[k];
		__u32 vlen = n->val_len & 0x7ff;
		w->hash = s->hashes[k];
		w->digest = sc_digest(s, BUF_OUT, n->end - 2 - vlen, vlen);
		w->cas = n->cas;
		w->flags = n->flags;
		w->val_len = vlen;
		w->want_cas = s->q_want_cas;
		shadow_key(&s->tkey, p->saddr, p->sport, req_id, 0, w->hash);
		bpf_map_update_elem(&shadow_map, &s->tkey, w, BPF_ANY);
		rq->hash[k] = w->hash;
		rq->nkeys++;
	}
	shadow_key(&s->tkey, p->saddr, p->sport, req_id, 0, 0);
	bpf_map_update_elem(&shadow_req_map, &s->tkey, rq, BPF_ANY);
	stat_add(STAT_SHADOW_HIT_KEYS, nkeys);
	return STAT_SHADOW_HITS;
}

/* XDP: a binary GET-family request that would be answered (s->out holds the
 * would-be body: flags, [key], value; s->q_vlen, s->q_cas). As sc_shadow_ascii. */
__noinline int sc_shadow_binary(struct scratch *s, struct pkt *p, __u32 opaque, __u32 with_key)
{
	if (!s || !p)
		return STAT_SHADOW_HITS;
	s = get_scratch();
	if (!s)
		return STAT_SHADOW_HITS;
	struct shadow_want *w = &s->sh_want;
	__u32 body = MC_FRAME_LEN + MC_BIN_HDR_LEN;
	__u32 vlen = s->q_vlen & 0x7ff;
	__u32 voff = body + 4 + (with_key ? s->key_lens[0] : 0);
	w->hash = s->hashes[0];
	w->digest = sc_digest(s, BUF_OUT, voff, vlen);
	w->cas = s->q_cas;
	w->flags = bpf_ntohl(*(__u32 *)(s->out + body));
	w->val_len = vlen;
	w->want_cas = 1;
	shadow_key(&s->tkey, p->saddr, p->sport, *(__u16 *)s->in, opaque, with_key ? w->hash : 0);
	bpf_map_update_elem(&shadow_map, &s->tkey, w, BPF_ANY);
	stat_inc(STAT_SHADOW_HIT_KEYS);
	return STAT_SHADOW_HITS;
}

/* TC: counts a mismatch and logs it. */
static __always_inline void shadow_mismatch(__u64 hash, __u32 reason, __u64 now)
{
	stat_inc(STAT_SHADOW_MISMATCH_VALUE + reason - SHADOW_VALUE);
	__u32 zero = 0;
	struct shadow_log *l = bpf_map_lookup_elem(&shadow_log_map, &zero);
	if (!l)
		return;
	__u64 n = __sync_fetch_and_add(&l->next, 1);
	struct shadow_miss *e = &l->e[n & (SHADOW_LOG - 1)];
	e->hash = hash;
	e->at_ns = now;
	e->reason = reason;
}

/* TC: memcached's item for the digest keyed by s->tkey: s->sh_got holds its
 * value's place in s->in, flags and CAS. Compares and drops the digest.
 * Global: checked once. */
__noinline int sc_shadow_check(struct scratch *s)
{
	if (!s)
		return 0;
	s = get_scratch();
	if (!s)
		return 0;
	struct shadow_want *w = bpf_map_lookup_elem(&shadow_map, &s->tkey);
	if (!w)
		return 0; /* not a request XDP would have answered */
	struct shadow_got *g = &s->sh_got;
	__u32 reason = 0;
	if (g->val_len != w->val_len || sc_digest(s, BUF_IN, g->val_off, g->val_len) != w->digest)
		reason = SHADOW_VALUE;
	else if (g->flags != w->flags)
		reason = SHADOW_FLAGS;
	else if (w->want_cas && g->cas != w->cas)
		reason = SHADOW_CAS;
	if (reason)
		shadow_mismatch(w->hash, reason, bpf_ktime_get_ns());
	else
		stat_inc(STAT_SHADOW_MATCHED);
	bpf_map_delete_elem(&shadow_map, &s->tkey);
	return 0;
}

/* TC: memcached's ASCII reply to (client, req_id) ended (END): every key
 * whose digest is still there was not in it. Global: checked once. */
__noinline int sc_shadow_end(struct scratch *s, struct pkt *p, __u16 req_id)
{
	if (!s || !p)
		return 0;
	s = get_scratch();
	if (!s)
		return 0;
	shadow_key(&s->tkey, p->daddr, p->dport, req_id, 0, 0);
	struct shadow_req *rq = bpf_map_lookup_elem(&shadow_req_map, &s->tkey);
	if (!rq)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	for (int k = 0; k < MAX_GET_KEYS; k++) {
		if (k >= rq->nkeys)
			break;
		s->tkey.hash = rq->hash[k];
		if (bpf_map_lookup_elem(&shadow_map, &s->tkey)) {
			shadow_mismatch(s->tkey.hash, SHADOW_ABSENT, now);
			bpf_map_delete_elem(&shadow_map, &s->tkey);
		}
	}
	s->tkey.hash = 0;
	bpf_map_delete_elem(&shadow_req_map, &s->tkey);
	return 0;
}

/* TC: a binary GET-family response (s->in, one datagram) to a request XDP
 * would have answered. Global: checked once. */
__noinline int sc_shadow_binary_reply(struct scratch *s, struct pkt *p)
{
	if (!s || !p)
		return 0;
	s = get_scratch();
	struct config *cfg = get_config();
	if (!s || !cfg)
		return 0;
	__u8 *h = s->in + MC_FRAME_LEN;
	__u8 op = h[1];
	__u32 klen = ((__u32)h[2] << 8) | h[3];
	__u32 elen = h[4];
	__u16 status = ((__u16)h[6] << 8) | h[7];
	__u32 body = ((__u32)h[8] << 24) | ((__u32)h[9] << 16) | ((__u32)h[10] << 8) | h[11];
	__u32 koff = MC_FRAME_LEN + MC_BIN_HDR_LEN + elen;
	if (elen + klen > body || klen > KEY_MAX || koff + klen > BUF_SIZE)
		return 0;
	__u64 hash = 0;
	if (op == BIN_GETK || op == BIN_GETKQ) {
		if (klen == 0)
			return 0;
		sc_copy_key(s, BUF_IN, koff, klen, KEY_SLOT);
		hash = sc_hash(s, KEY_SLOT, klen, s->seed);
	}
	shadow_key(&s->tkey, p->daddr, p->dport, *(__u16 *)s->in, *(__u32 *)(h + 12), hash);
	if (status != 0) {
		struct shadow_want *w = bpf_map_lookup_elem(&shadow_map, &s->tkey);
		if (!w)
			return 0;
		shadow_mismatch(w->hash, SHADOW_ABSENT, bpf_ktime_get_ns());
		bpf_map_delete_elem(&shadow_map, &s->tkey);
		return 0;
	}
	if (elen != 4)
		return 0;
	struct shadow_got *g = &s->sh_got;
	g->val_off = koff + klen;
	g->val_len = body - elen - klen;
	g->flags = ((__u32)h[24] << 24) | ((__u32)h[25] << 16) | ((__u32)h[26] << 8) | h[27];
	g->cas = bpf_be64_to_cpu(*(__u64 *)(h + 16));
	return sc_shadow_check(s);
}

#endif
