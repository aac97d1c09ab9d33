/* SPDX-License-Identifier: GPL-2.0 */
/* Bucket operations: invalidate, flush, serve (copy out) and fill (copy in).
 * The consistency protocol is described in docs/consistency.md; each step
 * here names the rule it implements. */
#ifndef XDPCACHE_CACHE_H
#define XDPCACHE_CACHE_H

#include <bpf/bpf_endian.h>
#include "maps.h"
#include "scan.h"

static __always_inline struct config *get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&config_map, &zero);
}

static __always_inline struct global_state *get_global(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&global_map, &zero);
}

static __always_inline struct scratch *get_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch_map, &zero);
}

/* Is port (network order) one of memcached's? */
static __always_inline int port_match(struct config *cfg, __u16 port_be)
{
	return port_in(cfg->ports, port_be);
}

/* The instance's key hash seed: keys of different memcached instances hash
 * apart, so a write to one never touches another's bucket. */
#define INST_SEED(seed, inst) ((seed) ^ ((__u64)(inst) * 0x9E3779B97F4A7C15ULL))

/* Names the memcached instance of a packet by its memcached-side address
 * and port (the destination of a request, egress: the source of a reply)
 * into s->inst and s->seed. A port is one instance unless
 * CFG_INST_BY_ADDR: then inst_map names the socket, exact address first,
 * then the wildcard sockets (an IPv6 one takes IPv4 too); an address no
 * socket holds counts as its port's. Global: keeps the key off the
 * callers' frames (the stack is bounded). */
__noinline int sc_instance(struct pkt *p, __u32 egress)
{
	struct scratch *s = get_scratch();
	struct config *cfg = get_config();
	if (!s || !cfg || !p)
		return 0;
	__u32 port = bpf_ntohs(egress ? p->sport : p->dport);
	__u32 inst = port;
	if (cfg->flags & CFG_INST_BY_ADDR) {
		struct inst_key *k = &s->ikey;
		__builtin_memcpy(k->addr, egress ? p->saddr : p->daddr, 16);
		k->port = port;
		k->_pad = 0;
		__u32 *v = bpf_map_lookup_elem(&inst_map, k);
		if (!v && !p->ipv6) {
			/* the IPv4 wildcard, ::ffff:0.0.0.0 */
			*(__u32 *)(k->addr + 12) = 0;
			v = bpf_map_lookup_elem(&inst_map, k);
		}
		if (!v) {
			/* the IPv6 wildcard */
			__builtin_memset(k->addr, 0, 16);
			v = bpf_map_lookup_elem(&inst_map, k);
		}
		if (v)
			inst = *v;
	}
	s->inst = inst;
	s->seed = INST_SEED(cfg->seed, inst);
	return 0;
}

/* sc_instance without the call where a port is an instance (the usual case:
 * the hit path pays an xor and a multiply). */
static __always_inline void packet_instance(struct scratch *s, struct config *cfg, struct pkt *p, __u32 egress)
{
	if (cfg->flags & CFG_INST_BY_ADDR) {
		sc_instance(p, egress);
		return;
	}
	__u32 port = bpf_ntohs(egress ? p->sport : p->dport);
	s->inst = port;
	s->seed = INST_SEED(cfg->seed, port);
}

/* The cache is 2-way set-associative: a key may live in either entry of its
 * set, entries 2i (way 0) and 2i+1 (way 1), i = (hash & entries_mask) >> 1
 * (entries is a power of two >= 2). Way 0's header holds the SET's
 * generation and write hold (gen, hold_until_ns); way 1's are unused. See
 * docs/consistency.md, "Sets". */
#define CACHE_WAYS 2

static __always_inline struct item *set_way(struct config *cfg, __u64 hash, __u32 way)
{
	__u32 idx = ((__u32)hash & cfg->entries_mask & ~1u) | (way & 1);
	return bpf_map_lookup_elem(&cache_map, &idx);
}

/* Raises *slot to at least v (racing raisers: the larger value wins). */
static __always_inline void raise_to(__u64 *slot, __u64 v)
{
	for (int i = 0; i < 4; i++) {
		__u64 cur = *(volatile __u64 *)slot;
		if (cur >= v)
			return;
		if (__sync_val_compare_and_swap(slot, cur, v) == cur)
			return;
	}
}

/* Rule I (invalidate): a mutation seen on ingress bumps its set's
 * generation (every fill of the set in flight fails), drops the item of each
 * way if it may be the key's (an item of another key, another hash, is not
 * changed by the mutation and stays) and holds fills of the set for hold_ns
 * (hold_ns == 0: no hold; rule A repeats the invalidation later). Two lock
 * sections: way 0's (gen, hold, its item), THEN way 1's (its item). The order
 * is what makes a fill into way 1 safe without way 0's lock: a fill
 * publishes into way 1 only under way 1's lock after reading way 0's gen
 * there. Either that section comes before this one's way-1 section, which
 * then drops the item, or after it, and then after the way-0 section too
 * (program order here, release/acquire of way 1's lock), so it sees the
 * bumped gen and refuses. Returns the set's gen after the bump (0: no set). */
static __always_inline __u64 invalidate_set(struct config *cfg, __u64 hash, __u64 hold_ns, __u64 now)
{
	struct item *it = set_way(cfg, hash, 0);
	__u64 gen;
	if (!it)
		return 0;
	bpf_spin_lock(&it->lock);
	gen = ++it->gen;
	it->version++;
	if (it->hash == hash)
		it->valid = 0;
	if (hold_ns && it->hold_until_ns < now + hold_ns)
		it->hold_until_ns = now + hold_ns;
	bpf_spin_unlock(&it->lock);
	it = set_way(cfg, hash, 1);
	if (!it)
		return gen;
	bpf_spin_lock(&it->lock);
	it->version++;
	if (it->hash == hash)
		it->valid = 0;
	bpf_spin_unlock(&it->lock);
	return gen;
}

static __always_inline void invalidate_hash(struct config *cfg, __u64 hash, __u64 now)
{
	invalidate_set(cfg, hash, cfg->hold_ns, now);
	stat_inc(STAT_INVALIDATIONS);
}

/* memcached exptime → monotonic deadline. 0: none. A negative exptime
 * expires at once. A relative one is taken a second early because
 * memcached's clock ticks once a second. */
static __always_inline __u64 exptime_deadline(struct config *cfg, __s64 exptime, __u64 now)
{
	if (exptime == 0)
		return 0;
	if (exptime < 0)
		return now;
	if (exptime <= REL_EXPTIME_MAX) {
		__u64 d = now + (__u64)exptime * NSEC;
		return d - NSEC > now ? d - NSEC : now;
	}
	__s64 mono = exptime * (__s64)NSEC - cfg->mono_to_unix_ns - (__s64)NSEC;
	return mono > (__s64)now ? (__u64)mono : now;
}

/* How a command bears on the key's exptime (note_expiry). */
#define EXP_NONE 0  /* keeps the item's exptime (incr, append, delete, ...) */
#define EXP_SET 1   /* the item memcached holds afterwards, if any, has this exptime */
#define EXP_MAYBE 2 /* this exptime, or the one it had: only if the command applies
		     * (add, replace, cas, vivify on a miss, ...) */

/* Records what memcached will hold for this key after the mutation: the
 * deadline of its item (0: none). With EXP_MAYBE the earlier of the two
 * deadlines is kept, an unknown one counting as max_age from now: a failed
 * add must not lengthen the life of the item it left alone. */
static __always_inline void note_deadline(struct config *cfg, __u64 hash, int kind, __u64 deadline, __u64 now)
{
	if (kind == EXP_NONE)
		return;
	struct global_state *g = get_global();
	if (!g)
		return;
	struct expiry e = { .deadline_ns = deadline, .expiry_epoch = g->expiry_epoch };
	if (kind == EXP_MAYBE) {
		struct expiry *old = bpf_map_lookup_elem(&expiry_map, &hash);
		__u64 cur = old && old->expiry_epoch == e.expiry_epoch ? old->deadline_ns : now + cfg->max_age_ns;
		/* 0 is "never": the other one is earlier */
		if (cur && (!e.deadline_ns || cur < e.deadline_ns))
			e.deadline_ns = cur;
	}
	bpf_map_update_elem(&expiry_map, &hash, &e, BPF_ANY);
}

static __always_inline void note_expiry(struct config *cfg, __u64 hash, int kind, __s64 exptime, __u64 now)
{
	note_deadline(cfg, hash, kind, exptime_deadline(cfg, exptime, now), now);
}

static __always_inline __u32 inst_slot(__u32 inst)
{
	return (inst ^ (inst >> 16)) & (INST_SLOTS - 1);
}

/* The epoch items and tickets of instance inst are taken under. */
static __always_inline __u64 inst_epoch_of(struct global_state *g, __u32 inst)
{
	return g->epoch + g->inst_epoch[inst_slot(inst)];
}

/* Rule F (flush): the epoch bump makes every item of the packet's memcached
 * instance (s->inst, set by packet_instance) unusable in O(1); fills of
 * requests that arrived before now + hold (+ flush_all's delay) are refused.
 * A flush of one instance leaves the others' entries alone. */
static __always_inline void flush_cache(struct config *cfg, __u64 now, __u64 delay_ns, int unreadable)
{
	struct global_state *g = get_global();
	struct scratch *s = get_scratch();
	if (!g || !s)
		return;
	if (unreadable) /* it may have changed exptimes too */
		__sync_fetch_and_add(&g->expiry_epoch, 1);
	__u32 slot = inst_slot(s->inst);
	__sync_fetch_and_add(&g->inst_epoch[slot], 1);
	raise_to(&g->inst_hold_ns[slot], now + cfg->hold_ns + delay_ns);
	stat_inc(STAT_FLUSHES);
	if (unreadable)
		stat_inc(STAT_FLUSH_UNREADABLE);
}

/* Rule F for a packet whose instance is unknown (a fragment without its
 * ports): every instance. */
static __always_inline void flush_every_instance(struct config *cfg, __u64 now)
{
	struct global_state *g = get_global();
	if (!g)
		return;
	__sync_fetch_and_add(&g->expiry_epoch, 1);
	__sync_fetch_and_add(&g->epoch, 1);
	raise_to(&g->hold_until_ns, now + cfg->hold_ns);
	stat_inc(STAT_FLUSHES);
	stat_inc(STAT_FLUSH_UNREADABLE);
}

/* Rule I for the key hash h. While a TCP segment or UDP datagram is read
 * (inv_logging) the key is noted for rule A with the reply unit that will
 * acknowledge it, and invalidated without the write hold: once the packet is
 * read, ack.h logs it for that acknowledgement or gives it the hold. A repeat
 * (a store's data block is in) is not noted again: it is held if its command
 * line was. Global: see scan.h. */
__noinline int sc_invalidate_hash(struct scratch *s, struct config *cfg, __u64 h, __u64 now, __u32 repeat)
{
	if (!s || !cfg)
		return -1;
	__u64 hold = cfg->hold_ns;
	if (s->inv_logging) {
		hold = repeat && s->repeat_held ? cfg->hold_ns : 0;
		if (!repeat) {
			__u32 i = s->inv_logged;
			if (i < ACK_SLOTS) {
				s->inv_log[i & (ACK_SLOTS - 1)] = h;
				s->inv_unit[i & (ACK_SLOTS - 1)] = s->cmd_units == UNITS_ONE ? s->cmd_base : 0;
				if (i == 0) {
					s->udp_family = s->cmd_units == UNITS_ONE ? s->cmd_family : 0;
					s->udp_opaque = s->cmd_opaque;
					s->udp_opcode = s->cmd_opcode;
				}
			}
			s->inv_logged++;
		}
	}
	invalidate_set(cfg, h, hold, now);
	if (!repeat)
		stat_inc(STAT_INVALIDATIONS);
	return 0;
}

/* Invalidates the key in s->key[0, len) (zero-padded); s->inv_known and
 * s->inv_exp carry the command's exptime (EXP_*). Global: see scan.h. */
__noinline int sc_invalidate(struct scratch *s, struct config *cfg, __u32 len, __u64 now)
{
	if (!s || !cfg)
		return -1;
	/* Over UDP nothing is certain to be applied: a datagram ending inside
	 * a data block makes memcached take the next datagram it reads, from
	 * anyone, as the rest of the block (conn_nread reads the socket).
	 * (Changed in scratch, not in a local: this call chain's stack is at
	 * 6.1's 512-byte limit, every frame rounded up to 32 bytes.) */
	if (s->in_udp && s->inv_known == EXP_SET)
		s->inv_known = EXP_MAYBE;
	__u64 h = key_hash(s->key, len, s->seed);
	s->last_hash = h;
	sc_invalidate_hash(s, cfg, h, now, 0);
	note_expiry(cfg, h, s->inv_known, s->inv_exp, now);
	return 0;
}

static __always_inline void invalidate_key(struct scratch *s, struct config *cfg, __u32 len, __u64 now,
					   int exp_kind, __s64 exptime)
{
	s->inv_known = exp_kind;
	s->inv_exp = exptime;
	sc_invalidate(s, cfg, len, now);
}

/* Packs the lengths captured under the lock for the copy functions. */
#define PACK_LENS(k, n, cs, v) ((__u32)(k) | ((__u32)(n) << 8) | ((__u32)(cs) << 13) | ((__u32)(v) << 18))
#define LEN_KEY(x) ((x) & 0xff)
#define LEN_NUM(x) (((x) >> 8) & 0x1f)
#define LEN_CAS(x) (((x) >> 13) & 0x1f)
#define LEN_VAL(x) (((x) >> 18) & 0x7ff)

/* Copies n bytes (rounded up to words) from src to dst[off...] (masked). */
#define COPY_WORDS(dst, off, src, n, words)                                         \
	do {                                                                        \
		for (int _i = 0; _i < (words); _i++) {                              \
			if (_i * 8 >= (n))                                          \
				break;                                              \
			*(__u64 *)((dst) + (((off) + _i * 8) & BUF_MASK)) =         \
				((const __u64 *)(src))[_i];                         \
		}                                                                   \
	} while (0)

/* Writes "VALUE <key><num_txt>[<cas_txt>]\r\n<val>\r\n" at s->out[off...]
 * from the item, without its lock (the caller validates the version after).
 * Returns the new offset. Global: checked once by the verifier. */
__noinline __u32 sc_emit_ascii(struct scratch *s, struct item_bytes *it, __u32 off, __u32 lens)
{
	if (!s || !it)
		return off;
	__u32 klen = LEN_KEY(lens), num_len = LEN_NUM(lens), cas_len = LEN_CAS(lens), vlen = LEN_VAL(lens);
	*(__u64 *)(s->out + (off & BUF_MASK)) = W6('V', 'A', 'L', 'U', 'E', ' ');
	off += 6;
	COPY_WORDS(s->out, off, it->key, klen, KEY_WORDS);
	off += klen;
	COPY_WORDS(s->out, off, it->num_txt, num_len, NUM_TXT / 8);
	off += num_len;
	COPY_WORDS(s->out, off, it->cas_txt, cas_len, CAS_TXT / 8);
	off += cas_len;
	*(__u16 *)(s->out + (off & BUF_MASK)) = W2('\r', '\n');
	off += 2;
	COPY_WORDS(s->out, off, it->val, vlen, VAL_WORDS);
	off += vlen;
	*(__u16 *)(s->out + (off & BUF_MASK)) = W2('\r', '\n');
	return off + 2;
}

/* Binary hit body: flags (4, big endian), [key], value. */
__noinline __u32 sc_emit_binary(struct scratch *s, struct item_bytes *it, __u32 off, __u32 lens, __u32 flags_be)
{
	if (!s || !it)
		return off;
	__u32 klen = LEN_KEY(lens), vlen = LEN_VAL(lens);
	*(__u32 *)(s->out + (off & BUF_MASK)) = flags_be;
	off += 4;
	COPY_WORDS(s->out, off, it->key, klen, KEY_WORDS);
	off += klen;
	COPY_WORDS(s->out, off, it->val, vlen, VAL_WORDS);
	return off + vlen;
}

/* Fill: key from s->key, text from s->win, value from s->in[voff...]. */
__noinline int sc_fill_bytes(struct scratch *s, struct item_bytes *it, __u32 voff, __u32 vlen)
{
	if (!s || !it)
		return -1;
	for (int i = 0; i < KEY_WORDS; i++)
		((__u64 *)it->key)[i] = ((__u64 *)s->key)[i];
	for (int i = 0; i < NUM_TXT / 8; i++) {
		((__u64 *)it->num_txt)[i] = ((__u64 *)s->win)[i];
		((__u64 *)it->cas_txt)[i] = ((__u64 *)(s->win + 32))[i];
	}
	for (int i = 0; i < VAL_WORDS; i++) {
		if (i * 8 >= vlen)
			break;
		((__u64 *)it->val)[i] = load8(s->in, BUF_MASK, voff + i * 8);
	}
	return 0;
}

/* Key bytes equal? Global (no lock held by its callers). */
__noinline int sc_key_equal(struct scratch *s, struct item_bytes *it, __u32 slot, __u32 len)
{
	if (!s || !it)
		return 0;
	const __u64 *a = (const __u64 *)it->key;
	const __u64 *b = (const __u64 *)(slot < MAX_GET_KEYS ? s->keys[slot & (MAX_GET_KEYS - 1)] : s->key);
	for (int i = 0; i < KEY_WORDS; i++) {
		if (i * 8 >= len)
			break;
		if (a[i] != b[i])
			return 0;
	}
	return 1;
}

/* Set by the loader where the CPU never reorders a load with a later load
 * (x86-64, TSO): there a seqlock reader's plain loads are ordered as
 * written, and the version reads below need no locked instruction. A locked
 * read-modify-write on every hit would also pull the hottest items' cache
 * lines from CPU to CPU. Elsewhere (arm64: loads may pass loads) each is a
 * fetching atomic, fully ordered. A constant: the other branch is dead. */
const volatile __u32 loads_ordered = 0;

/* The item's version, read before the fields (check_item) or after the copy
 * (item_version) with every other load of the reader on its side of it. */
static __always_inline __u32 read_version(struct item *it)
{
	if (loads_ordered) {
		/* compiler barriers: clang must not move loads across the read;
		 * the JIT emits instructions in order and the CPU keeps loads
		 * in order */
		asm volatile("" ::: "memory");
		__u32 v = *(volatile __u32 *)&it->version;
		asm volatile("" ::: "memory");
		return v;
	}
	return __sync_fetch_and_add(&it->version, 0);
}

/* Metadata check of one way, without the lock: version is read first
 * (read_version: ordered before the loads after it), then the fields;
 * item_version reads it again after the copy, and the caller keeps nothing
 * unless it is unchanged. Every writer bumps version while the fields it
 * changes are in flux: a fill's claim (busy = 1) bumps it before its bytes,
 * its publish after its fields and before busy = 0, an invalidation with
 * valid = 0 (a reader that saw the item still valid then answered before
 * it). So an unchanged version means the fields read here were one item's,
 * whole. Returns 0 and the version and lengths if the way holds a usable
 * item for (hash, klen) in this epoch. (The set's gen, for the ticket, is
 * way 0's: the caller reads it before checking either way.) */
static __always_inline __u32 check_item(struct item *it, __u64 h, __u32 klen, __u32 inst, __u64 epoch, __u64 now,
					int want_cas, __u32 *version, __u32 *lens, __u64 *cas, __u32 *flags)
{
	__u32 miss = 0;
	*version = read_version(it);
	if (!it->valid || it->busy || it->hash != h || it->key_len != klen || it->inst != inst || it->epoch != epoch)
		miss = STAT_MISS_ABSENT;
	else if (now >= it->expires_ns)
		miss = STAT_MISS_EXPIRED;
	else if (want_cas && !it->has_cas)
		miss = STAT_MISS_NO_CAS;
	*lens = PACK_LENS(it->key_len, it->num_len & 31, want_cas ? it->cas_len & 31 : 0, it->val_len & 0x7ff);
	*cas = it->cas;
	*flags = it->flags;
	return miss;
}

/* The bucket's version after a copy, read without the lock. Every change of
 * the bytes or of valid bumps version first (a fill's claim with a fully
 * ordered atomic, so its byte stores are never seen before the bump), and
 * read_version orders the copy's loads before this read: an unchanged
 * version means nothing touched the item since check_item. */
static __always_inline __u32 item_version(struct item *it)
{
	return read_version(it);
}

/* The set's generation, read without the lock (a ticket's: an earlier read
 * is only more conservative). */
static __always_inline __u64 set_gen_unlocked(struct item *head)
{
	return *(volatile __u64 *)&head->gen;
}

/* Of two ways' miss reasons (both nonzero), the one that says more (a way
 * holding the key expired, without CAS) wins over "another key is here". */
#define MISS_OF(a, b) ((b) != STAT_MISS_ABSENT ? (b) : (a))

/* Looks up key slot k in way 0, then way 1, of its set and, on a hit,
 * appends its ASCII item to s->out at s->q_out (bounded by s->q_limit).
 * Returns 0 on a hit, else the STAT_MISS_* reason. Global, so the verifier
 * checks it once rather than per key. */
__noinline int sc_serve_ascii(struct scratch *s, struct config *cfg, __u32 k)
{
	if (!s || !cfg)
		return STAT_MISS_ABSENT;
	k &= MAX_GET_KEYS - 1;
	__u64 h = s->hashes[k];
	__u32 klen = s->key_lens[k];
	struct item *it = set_way(cfg, h, 0);
	if (!it)
		return STAT_MISS_ABSENT;
	s->q_gen[k] = set_gen_unlocked(it);
	s->q_ngen = k + 1;
	int miss = STAT_MISS_ABSENT;
	for (__u32 w = 0; w < CACHE_WAYS; w++) {
		if (w) {
			it = set_way(cfg, h, 1);
			if (!it)
				break;
		}
		__u32 version, lens, flags;
		__u64 cas;
		int m = check_item(it, h, klen, s->inst, s->q_epoch, s->q_now, s->q_want_cas, &version, &lens, &cas,
				   &flags);
		if (m) {
			miss = MISS_OF(miss, m);
			continue;
		}
		if (s->q_out + 6 + klen + LEN_NUM(lens) + LEN_CAS(lens) + 4 + LEN_VAL(lens) > s->q_limit)
			return STAT_MISS_TOO_BIG;
		if (!sc_key_equal(s, &it->b, k, klen))
			continue;
		__u32 end = sc_emit_ascii(s, &it->b, s->q_out, lens);
		if (item_version(it) != version)
			continue; /* changed while we copied */
		s->q_out = end;
		if (w)
			stat_inc(STAT_HIT_WAY1);
		if (cfg->flags & CFG_SHADOW) /* shadow mode: what it would answer (shadow.h) */
			s->sh_note[k] =
				(struct shadow_note){ .end = end, .val_len = LEN_VAL(lens), .flags = flags, .cas = cas };
		return 0;
	}
	return miss;
}

/* Binary protocol hit for key slot 0 (way 0, then way 1): appends "flags
 * [key] value" to s->out at s->q_out; s->q_cas and s->q_vlen tell the
 * header. */
__noinline int sc_serve_binary(struct scratch *s, struct config *cfg, int with_key)
{
	if (!s || !cfg)
		return STAT_MISS_ABSENT;
	__u64 h = s->hashes[0];
	__u32 klen = s->key_lens[0];
	struct item *it = set_way(cfg, h, 0);
	if (!it)
		return STAT_MISS_ABSENT;
	s->q_gen[0] = set_gen_unlocked(it);
	s->q_ngen = 1;
	int miss = STAT_MISS_ABSENT;
	for (__u32 w = 0; w < CACHE_WAYS; w++) {
		if (w) {
			it = set_way(cfg, h, 1);
			if (!it)
				break;
		}
		__u32 version, lens, flags;
		__u64 cas;
		int m = check_item(it, h, klen, s->inst, s->q_epoch, s->q_now, 1, &version, &lens, &cas, &flags);
		if (m) {
			miss = MISS_OF(miss, m);
			continue;
		}
		__u32 kl = with_key ? klen : 0;
		if (s->q_out + 4 + kl + LEN_VAL(lens) > s->q_limit)
			return STAT_MISS_TOO_BIG;
		if (!sc_key_equal(s, &it->b, 0, klen))
			continue;
		__u32 end = sc_emit_binary(s, &it->b, s->q_out, PACK_LENS(kl, 0, 0, LEN_VAL(lens)), bpf_htonl(flags));
		if (item_version(it) != version)
			continue;
		s->q_vlen = LEN_VAL(lens);
		s->q_cas = cas;
		s->q_out = end;
		if (w)
			stat_inc(STAT_HIT_WAY1);
		return 0;
	}
	return miss;
}

/* The set generation (way 0's) for a ticket. */
static __always_inline __u64 bucket_gen(struct config *cfg, __u64 hash)
{
	struct item *it = set_way(cfg, hash, 0);
	__u64 g = 0;
	if (!it)
		return 0;
	bpf_spin_lock(&it->lock);
	g = it->gen;
	bpf_spin_unlock(&it->lock);
	return g;
}

/* The set generation for a ticket of key slot k: the one the serve read
 * for this request if it got that far (earlier, so at least as strict; one
 * lock section fewer per miss), else the set's now. */
static __always_inline __u64 ticket_gen(struct scratch *s, struct config *cfg, __u32 k, __u64 hash)
{
	if (k < s->q_ngen)
		return s->q_gen[k & (MAX_GET_KEYS - 1)];
	return bucket_gen(cfg, hash);
}

/* Everything a fill writes, prepared in scratch before the lock is taken. */
struct fill {
	__u64 hash;
	__u64 cas;
	__u32 flags;
	__u32 key_len;
	__u32 val_off; /* value bytes at s->in[val_off...] */
	__u32 val_len;
	__u32 num_len; /* num_txt in s->win[0..24) */
	__u32 cas_len; /* cas_txt in s->win[32..56) */
	__u32 has_cas;
};

/* Is way it free for a fill: no item, or one no reader may serve (expired,
 * of an older epoch of its instance)? Unlocked: only picks the target. */
static __always_inline int way_free(struct global_state *g, struct item *it, __u64 now)
{
	return !it->busy && (!it->valid || it->expires_ns <= now || it->epoch != inst_epoch_of(g, it->inst));
}

/* The way of set (w0, w1) a fill of hash h goes to, chosen without locks
 * (the claim rechecks under the target's lock): the way already holding h,
 * else a free one, else the one that expires first — which, for keys
 * without an exptime (expires = fill time + max_age), is the one filled
 * longer ago (FIFO; nothing is written on the hit path: a per-hit recency
 * write would bounce the set's cache lines between CPUs). A busy way is
 * taken only if both are. */
static __always_inline struct item *fill_target(struct global_state *g, struct item *w0, struct item *w1, __u64 h,
						__u64 now)
{
	if (w0->valid && w0->hash == h)
		return w0;
	if (w1->valid && w1->hash == h)
		return w1;
	if (way_free(g, w0, now))
		return w0;
	if (way_free(g, w1, now))
		return w1;
	if (w0->busy)
		return w1;
	if (w1->busy)
		return w0;
	return w1->expires_ns < w0->expires_ns ? w1 : w0;
}

/* Rule T (ticket): fill only from a reply to a request XDP passed, and only
 * if neither the key's set nor the whole cache changed since that request
 * arrived (same generation and epoch, request after every hold). The set's
 * gen and hold are way 0's, read inside the target way's lock section at the
 * claim and again at the publish (a plain read of another entry when the
 * target is way 1: invalidate_set says why that suffices). */
static __always_inline int fill_commit(struct config *cfg, struct scratch *s, struct fill *f, struct ticket *t,
				       __u64 now)
{
	struct global_state *g = get_global();
	if (!g)
		return -1;
	if (t->epoch != inst_epoch_of(g, s->inst)) {
		stat_inc(STAT_FILL_STALE);
		return -1;
	}
	if (t->t_req_ns < g->hold_until_ns || t->t_req_ns < g->inst_hold_ns[inst_slot(s->inst)]) {
		stat_inc(STAT_FILL_HELD);
		return -1;
	}
	__u64 expires = now + cfg->max_age_ns;
	struct expiry *e = bpf_map_lookup_elem(&expiry_map, &f->hash);
	if (e && e->deadline_ns && e->expiry_epoch == g->expiry_epoch) {
		if (e->deadline_ns <= now) {
			stat_inc(STAT_FILL_EXPIRED);
			return -1;
		}
		if (e->deadline_ns < expires)
			expires = e->deadline_ns;
	}
	struct item *head = set_way(cfg, f->hash, 0), *w1 = set_way(cfg, f->hash, 1);
	if (!head || !w1)
		return -1;
	struct item *it = fill_target(g, head, w1, f->hash, now);
	__u32 vlen = f->val_len;
	if (vlen > VAL_MAX)
		return -1;

	/* 1. claim the way: no other fill may copy at the same time */
	bpf_spin_lock(&it->lock);
	__u32 refused = it->busy ? STAT_FILL_BUSY
		      : set_gen_unlocked(head) != t->gen ? STAT_FILL_STALE
		      : t->t_req_ns < *(volatile __u64 *)&head->hold_until_ns ? STAT_FILL_HELD : 0;
	if (refused) {
		bpf_spin_unlock(&it->lock);
		stat_inc(refused);
		return -1;
	}
	/* another key's entry that a reader could still serve is evicted */
	int evicts = it->valid && it->hash != f->hash && it->expires_ns > now && it->epoch == inst_epoch_of(g, it->inst);
	it->busy = 1;
	it->valid = 0;
	/* an exchange (always a fully ordered BPF atomic; an add whose
	 * result is unused compiles to an unordered one): the bytes copied
	 * below are never seen before this bump (readers check version
	 * without the lock, item_version) */
	__atomic_exchange_n(&it->version, it->version + 1, __ATOMIC_SEQ_CST);
	bpf_spin_unlock(&it->lock);
	if (evicts)
		stat_inc(STAT_EVICTIONS);

	/* 2. copy the bytes in, unlocked: readers see valid == 0 */
	sc_fill_bytes(s, &it->b, f->val_off, vlen);

	/* 3. publish, unless an invalidation came in meanwhile */
	int ok = 0;
	bpf_spin_lock(&it->lock);
	if (set_gen_unlocked(head) == t->gen) {
		it->valid = 1;
		it->hash = f->hash;
		it->inst = s->inst; /* the instance the reply came from */
		it->epoch = t->epoch;
		it->expires_ns = expires;
		it->cas = f->cas;
		it->has_cas = f->has_cas;
		it->flags = f->flags;
		it->key_len = f->key_len;
		it->val_len = vlen;
		it->num_len = f->num_len;
		it->cas_len = f->cas_len;
		ok = 1;
	}
	/* the fields first, then the bump (fully ordered), then busy = 0: a
	 * lockless reader that sees busy == 0 sees this bump too (check_item) */
	__atomic_exchange_n(&it->version, it->version + 1, __ATOMIC_SEQ_CST);
	it->busy = 0;
	bpf_spin_unlock(&it->lock);
	stat_inc(ok ? STAT_FILLS : STAT_FILL_STALE);
	return ok ? 0 : -1;
}

#endif
