/* SPDX-License-Identifier: GPL-2.0 */
/* Data structures kept in maps. All fields are host byte order unless named
 * *_be. bpf2go exports them to Go (-type). */
#ifndef XDPCACHE_STRUCTS_H
#define XDPCACHE_STRUCTS_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"

/* Settings written by the loader before attaching (one element, key 0). */
struct config {
	__u16 ports[MAX_PORTS]; /* memcached UDP/TCP ports; 0 = unused slot */
	__u32 entries_mask;     /* number of cache buckets - 1 (power of two) */
	__u32 max_value;        /* largest value cached, <= VAL_MAX */
	__u32 mtu;              /* largest IP packet a reply may be */
	__u32 unlisted_amp;     /* sources not in the allow-list: serve replies up to this
	                         * factor of the request size; 0 = never serve them */
	__u32 flags;            /* CFG_* */
	__u32 _pad;             /* stays 0: tc_fill.c uses it as a zero the verifier cannot see */
	__u64 seed;             /* key hash seed, random per deployment */
	__u64 max_age_ns;       /* upper bound on an entry's age */
	__u64 hold_ns;          /* fills refused this long after a mutation (see docs/consistency.md) */
	__s64 mono_to_unix_ns;  /* unix time = monotonic time + this; for absolute exptimes */
	__u64 access_gen;       /* a new value whenever the allow-list or the local addresses
				 * change: per-CPU memos of their answers (access_memo) older
				 * than it are not used */
};

/* Whole-cache state: bumping epoch invalidates every entry in O(1). */
struct global_state {
	__u64 epoch;         /* bumped by a flush of every instance (xdpcache's own Flush) */
	__u64 hold_until_ns; /* no fill of a request that arrived before this */
	__u64 expiry_epoch;  /* bumped when a mutation could not be read: every
			      * expiry record written before is unknown from then on */
	__u64 udp_pending;   /* a UDP datagram ended inside a data block: memcached
			      * completes it with the next datagram it reads */
	/* A flush seen in one memcached instance's traffic (flush_all, a
	 * mutation that could not be read) concerns that instance only: it
	 * bumps the instance's slot. An entry's epoch is epoch + its slot's
	 * (inst_epoch_of): both only grow, so the sum changes when either does. */
	__u64 inst_epoch[INST_SLOTS];
	__u64 inst_hold_ns[INST_SLOTS];
};

/* One cache entry: a way of a 2-way set (entries 2i and 2i+1, i from the
 * seeded key hash; cache.h set_way). Writers change it under its lock; the
 * bytes (key, text, value) are copied outside it, guarded by version: a
 * writer sets busy and clears valid, copies, then publishes; a reader takes
 * no lock, reads version, the metadata and the bytes, and keeps its copy
 * only if version is unchanged (a seqlock whose writers serialize on the
 * spin lock; cache.h check_item and item_version). Way 0's gen and
 * hold_until_ns are the SET's (way 1's are unused): they belong to the set,
 * not to an item in it, and survive replacement. See docs/consistency.md. */
struct item {
	struct bpf_spin_lock lock;
	__u32 valid;
	__u32 busy;           /* a fill is copying bytes in */
	__u32 version;        /* bumped by every change of the bytes or of valid */
	__u64 gen;            /* bumped by every invalidation of this bucket */
	__u64 hold_until_ns;  /* no fill of a request that arrived before this */
	__u64 hash;
	__u64 epoch;          /* global epoch the item was filled under */
	__u64 expires_ns;     /* monotonic; unusable from then on */
	__u64 cas;
	__u32 flags;          /* memcached client flags */
	__u16 key_len;
	__u16 val_len;
	__u8 has_cas;
	__u8 num_len;         /* length of num_txt */
	__u8 cas_len;         /* length of cas_txt */
	__u8 _pad;
	__u32 inst;           /* the memcached instance the item is of (inst_map) */
	/* A separate struct so the copy functions can be handed a pointer
	 * that does not cover the lock (the verifier requires that). */
	struct item_bytes {
		__u8 key[KEY_BUF];    /* zero-padded */
		__u8 num_txt[NUM_TXT];/* " <flags> <bytes>" */
		__u8 cas_txt[CAS_TXT];/* " <cas>" */
		__u8 val[VAL_MAX];
	} __attribute__((aligned(8))) b; /* else clang copies it a byte at a time */
};

/* A request XDP passed to memcached, keyed by who asked and what. The TC
 * program fills the cache only from replies to such requests, and only if
 * the bucket is unchanged since the request arrived. */
struct ticket_key {
	__u8 addr[16];  /* client address (IPv4 as ::ffff:a.b.c.d) */
	__u16 port;     /* client port, network order */
	__u16 req_id;   /* UDP frame request id, network order */
	__u32 opaque;   /* binary: the request's opaque; ASCII: 0 (UDP), TICKET_TCP (TCP) */
	__u64 hash;     /* key hash; binary GET/GETQ: 0 (the reply has no key) */
};

struct ticket {
	__u64 gen;        /* bucket generation when the request arrived */
	__u64 epoch;      /* global epoch when the request arrived */
	__u64 t_req_ns;   /* arrival time */
	__u64 hash;
	__u16 key_len;
	__u8 binary;      /* 1: binary protocol request */
	__u8 opcode;
	__u32 tcp_seq;    /* TCP: sequence number the reply must start at */
	__u8 key[KEY_BUF];/* binary only: the reply to GET/GETQ carries no key */
	__u32 pending;    /* binary GET/GETQ: requests counted here and not answered yet */
	__u32 _pad2;
};

/* ticket.binary */
#define TICKET_BINARY 1
#define TICKET_BINARY_AMBIGUOUS 2 /* GET/GETQ for different keys under one (client, id, opaque) */

/* Parse state of one ASCII reply over UDP, which may span several
 * datagrams, for (client, port, request id): held in a reply_slot. A
 * one-key GET's ticket is kept here (one write per miss instead of two);
 * other GETs' tickets are in ticket_map. */
struct reply_state {
	__u32 skip;       /* bytes of value data still to come before the next item */
	__u32 has_ticket; /* 1: the ticket below is live */
	__u64 t_hash;     /* its key hash, gen, epoch and arrival time (struct ticket) */
	__u64 t_gen;
	__u64 t_epoch;
	__u64 t_req_ns;
};

/* reply_slots[reply_slot_index(client, port, request id)]: the reply state
 * of the last UDP GET miss that hashed there (host/reply_slots.h). Whoever
 * changes it holds lock, taken with one compare-and-swap and never waited
 * for (a BPF program cannot spin): XDP to write a new owner whole, TC for
 * as long as it parses a datagram of the owner's reply. key is a ticket key
 * with opaque = 0 and hash = 0. */
struct reply_slot {
	__u32 lock;       /* 1: held (reply_slot_trylock) */
	__u32 missed;     /* 1: a TC program found it held and left a datagram of its reply unread */
	__u32 used;       /* 1: holds a reply's state; 0: free (its END was read) */
	__u32 _pad;
	__u64 t_ns;       /* when XDP wrote it or TC last parsed a datagram of it (monotonic) */
	struct ticket_key key;
	struct reply_state rs;
};

/* reply_slots' entries (a power of two; ReplySlots in bpf/replyslot.go) */
#define REPLY_SLOTS 16384

/* A TCP connection to memcached, client to server. */
struct flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 _pad;
};

/* flow_state.proto: memcached picks a connection's protocol once, from its
 * first byte (0x80: binary, anything else: ASCII). */
#define FLOW_PROTO_UNKNOWN 0 /* the connection's first byte was never seen */
#define FLOW_PROTO_ASCII 1
#define FLOW_PROTO_BINARY 2

/* flow_state.sync */
#define FLOW_SYNCED 0   /* next_seq is where memcached's parser stands */
#define FLOW_UNSYNCED 1 /* bytes were missed: read conservatively (docs/consistency.md) */

/* flow_state.mode */
#define FLOW_AT_COMMAND 0 /* the next byte starts (or carry[] begins) a command */
#define FLOW_LONG_LINE 1  /* inside a line longer than the window: skip to its '\n' */

/* Where memcached's command parser stands on one TCP connection, followed
 * from its SYN byte by byte (segments in sequence order), so that every
 * command line and data block is read as memcached reads it. A command line
 * cut by a segment end is kept in carry[] until the rest arrives. */
struct flow_state {
	__u32 next_seq;  /* sequence number of the next byte not yet read */
	__u32 skip;      /* data block (ASCII) or request body (binary) bytes still to pass */
	__u16 carry_len; /* bytes of a cut command line / binary header in carry */
	__u8 proto;      /* FLOW_PROTO_* */
	__u8 sync;       /* FLOW_SYNCED / FLOW_UNSYNCED */
	__u8 mode;       /* FLOW_AT_COMMAND / FLOW_LONG_LINE */
	__u8 pend;       /* a store waits for the end of its data block (s->pend) */
	__u8 pend_kind;  /* EXP_* of its exptime */
	__u8 unsure;     /* a command whose replies cannot be counted was read: from
			  * then on no mutation is logged for its own reply (rule A) */
	__u32 units;     /* reply units memcached owes for the commands read so far */
	__u8 pend_held;  /* the waiting store got the write hold */
	__u8 _pad[3];
	__u64 pend_hash;
	__u64 pend_deadline;
	__u64 pend_xepoch; /* global_state.expiry_epoch at the command line */
	__u8 carry[WIN_SIZE];
};

/* Mutations XDP saw on one TCP flow (keyed like flow_map, client to server)
 * whose acknowledgement may still be ahead (rule A in docs/consistency.md).
 * A live slot names the reply unit that acknowledges its mutation: the TC
 * program invalidates every live slot again at each reply segment on the
 * flow and retires a slot once it has counted that many reply units (unit 0:
 * a held mutation, retired by the first reply). A plain hash map, not LRU:
 * an entry is never dropped silently (a full map makes new mutations held);
 * TC removes it when memcached closes the connection. */
struct ack_log {
	struct bpf_spin_lock lock;
	__u32 next;       /* slot the next mutation goes to (modulo ACK_SLOTS) */
	__u32 live;       /* bit i: slot i awaits its acknowledgement */
	__u32 _pad;
	__u64 flush_ns;   /* a flush seen on the flow, not yet repeated by a reply; 0: none */
	__u64 hash[ACK_SLOTS];
	__u32 unit[ACK_SLOTS];
};

/* A UDP mutation awaiting its acknowledgement: memcached's reply datagram
 * to (client, port, request id). Direct-mapped by those three; see ack.h. */
struct udp_ack {
	struct bpf_spin_lock lock;
	__u32 live;
	__u8 addr[16];    /* client address (IPv4 as ::ffff:a.b.c.d) */
	__u16 port;       /* client port, network order */
	__u16 req_id;     /* frame request id, network order */
	__u8 family;      /* ACK_FAM_* */
	__u8 opcode;      /* binary: the request's opcode ... */
	__u16 _pad;
	__u32 opaque;     /* ... and opaque */
	__u64 hash;       /* the key it mutated */
	__u64 seen_ns;    /* when XDP saw it */
};

/* The value of a logged UDP store (set, add, replace or cas), kept for its
 * acknowledgement: a STORED reply means memcached now holds exactly this
 * value, so TC fills the cache with it (ack.h). A seqlock (version odd while
 * XDP writes) guards the copy. */
struct udp_fill {
	__u32 version;
	__u32 slot;      /* the udp_ack_map index it belongs to ... */
	__u64 seen_ns;   /* ... and that entry's seen_ns */
	__u64 gen;       /* the bucket's gen after the store's invalidations */
	__u64 epoch;     /* the global epoch when the store arrived */
	__u32 flags;
	__u16 key_len;
	__u16 val_len;
	__u32 num_len;   /* of num_txt: " <flags> <bytes>" */
	__u32 _pad;
	__u8 key[KEY_BUF];
	__u8 num_txt[32];
	__u8 val[VAL_MAX];
};

/* Mutation-time expiry knowledge per key hash: deadline of the item memcached
 * holds now (0: no exptime). Absent, or from an older expiry epoch: unknown,
 * config.max_age_ns bounds it. */
struct expiry {
	__u64 deadline_ns;
	__u64 expiry_epoch; /* global_state.expiry_epoch when written */
};

/* Source allow-list (LPM trie). */
struct allow_key4 {
	__u32 prefixlen;
	__u8 addr[4];
};
struct allow_key6 {
	__u32 prefixlen;
	__u8 addr[16];
};
struct allow_rule {
	__u32 max_amp; /* 0: no amplification limit for this prefix */
};

struct local_addr {
	__u8 addr[16];
};

/* A memcached listening socket's local address and port (inst_map's key):
 * addr is all zeros but ::ffff for an IPv4 wildcard socket, all zeros for
 * an IPv6 one. */
struct inst_key {
	__u8 addr[16];
	__u16 port; /* host order */
	__u16 _pad;
};

/* Meta command flags (mutate.h): a bit per flag letter (bit 63: a repeated
 * or unknown byte), the T and N tokens, the M mode. */
struct meta_flags {
	__u64 bits;
	__s64 ttl;     /* the smaller exptime a T or N flag gives */
	__u32 has_ttl;
	__u32 t_tok;
	__u32 n_tok;
	__u8 mode;
	__u8 ttl_bad; /* a T or N number memcached refuses */
	__u8 _pad[2];
};

/* Shadow mode (host/shadow.h): the item XDP would have answered for one key
 * of one request. */
struct shadow_want {
	__u64 hash;     /* key hash */
	__u64 digest;   /* of the value bytes */
	__u64 cas;
	__u32 flags;
	__u32 val_len;
	__u32 want_cas; /* the request showed the CAS (gets, binary) */
	__u32 _pad;
};

/* The keys of an ASCII request XDP would have answered. */
struct shadow_req {
	__u32 nkeys;
	__u32 _pad;
	__u64 hash[MAX_GET_KEYS];
};

/* A key whose reply from memcached differed from the would-be one. */
struct shadow_miss {
	__u64 hash;   /* key hash (bpf.KeyHash with the deployment's seed) */
	__u64 at_ns;  /* monotonic time TC saw the reply */
	__u32 reason; /* SHADOW_* */
	__u32 _pad;
};

/* The last SHADOW_LOG mismatches: e[(next - 1) % SHADOW_LOG] is the newest.
 * Racing CPUs may tear a record (it is a diagnostic). */
struct shadow_log {
	__u64 next;
	struct shadow_miss e[SHADOW_LOG];
};

/* sc_serve_ascii's note of a would-be item: its text ends at end in s->out. */
struct shadow_note {
	__u32 end;
	__u32 val_len;
	__u32 flags;
	__u32 _pad;
	__u64 cas;
};

/* memcached's item as TC read it: value at s->in[val_off, +val_len). */
struct shadow_got {
	__u32 val_off;
	__u32 val_len;
	__u32 flags;
	__u32 _pad;
	__u64 cas;
};

/* Per-CPU scratch: requests are copied here so parsing works on a map value
 * with masked offsets instead of packet pointers, and replies are assembled
 * here before one bpf_xdp_store_bytes. */
/* What the allow-list and the local-address table answered for one pair of
 * addresses (reply_budget), kept per CPU in scratch while config's
 * access_gen is unchanged: the lookups (an LPM trie walk, a hash) cost more
 * than the rest of a small GET's checks. */
struct access_memo {
	__u8 saddr[16];
	__u8 daddr[16];
	__u64 gen;     /* config.access_gen read before the lookups */
	__u32 listed;  /* the source has an allow-list rule ... */
	__u32 max_amp; /* ... with this limit */
	__u32 local;   /* the destination is one of the host's addresses */
	__u32 valid;
};

#define ACCESS_MEMOS 16 /* per CPU, direct-mapped by source address (power of two) */

struct scratch {
	__u8 in[BUF_SIZE + 16];
	__u8 out[BUF_SIZE + 16];
	__u8 keys[MAX_GET_KEYS][KEY_BUF];
	__u64 hashes[MAX_GET_KEYS];
	__u16 key_lens[MAX_GET_KEYS];
	__u8 win[2 * WIN_SIZE + 16]; /* a command line: carry, then packet bytes */
	__u8 key[KEY_BUF + 8];
	__u8 hdr[HDR_MAX + 8]; /* the request's headers while the frame is resized */
	struct access_memo memo[ACCESS_MEMOS];
	struct allow_key4 akey4; /* reply_budget's lookup keys */
	struct allow_key6 akey6;
	struct local_addr alocal;
	struct ticket_key tkey;
	struct ticket tk;
	struct reply_state rs_new; /* a miss's new reply state (off the stack) */
	__u32 rs_idx;              /* a reply slot's index (a map key off the stack) */
	__u32 _pad6;
	/* the request being served (sc_serve_ascii / sc_serve_binary) */
	__u64 q_epoch;
	__u64 q_now;
	__u64 q_cas;
	__u32 q_want_cas;
	__u32 q_out;   /* bytes assembled in out */
	__u32 q_limit; /* largest out allowed */
	__u32 q_vlen;
	__u32 q_ngen;  /* key slots 0..q_ngen-1 have their bucket's generation in q_gen, */
	__u32 _pad5;   /* read by check_item: a miss's tickets take it from there */
	__u64 q_gen[MAX_GET_KEYS];
	__s64 num;     /* sc_num's result */
	__s64 inv_exp; /* sc_invalidate's exptime ... */
	__u32 inv_known; /* ... and whether the command carried one */
	__u32 inv_logged; /* keys sc_invalidate noted in inv_log (may exceed ACK_SLOTS) */
	__u64 inv_log[ACK_SLOTS]; /* their hashes, for the flow's ack_log */
	__u32 inv_unit[ACK_SLOTS]; /* the reply unit acknowledging each (0: none exactly) */
	__u32 inv_logging; /* sc_invalidate notes keys (a TCP segment or UDP datagram is scanned) */
	__u32 cmd_base;    /* the reply unit of the command being read if it gets one
			    * that can be followed (0: it cannot) */
	__u32 cmd_units;   /* UNITS_*: replies memcached sends the command being read */
	__u32 cmd_family;  /* ACK_FAM_*: what its reply looks like over UDP */
	__u32 cmd_opaque;  /* binary: its opaque ... */
	__u32 cmd_opcode;  /* ... and opcode */
	__u32 ncmds;       /* commands read in the segment or datagram */
	__u32 repeat_held; /* the store whose data block completes got the write hold */
	__u32 udp_family;  /* cmd_family of the datagram's (first) logged mutation */
	__u32 udp_opaque;
	__u32 udp_opcode;
	__u32 udp_req_id;  /* the datagram's request id (network order, low 16 bits) */
	__u32 store_fill;  /* the datagram's store leaves exactly its data (set, add, replace, cas) ... */
	__u32 store_off;   /* ... at s->in[store_off, + store_len) ... */
	__u32 store_len;
	__u32 store_flags; /* ... with these client flags ... */
	__u32 store_klen;  /* ... under the key in s->key */
	__u64 store_epoch; /* the global epoch when the datagram arrived */
	__u64 ack_copy[ACK_SLOTS]; /* hashes taken out of a log, invalidated after its lock */
	__u32 ack_ncopy;
	__u32 ack_ok;      /* XDP: TC counts the replies of the flow being read */
	__u32 tc_counted;  /* TC: the stream walk counted the segment's reply units ... */
	__u32 tc_replies;  /* ... and this many have left on the flow */
	struct flow_key ack_fk; /* the flow whose log is worked on (a map key off the stack) */
	struct flow_key tcp_fk; /* the segment's flow (handle_tcp: a map key off the stack) */
	__u32 frame_len; /* the packet's length (XDP; send_reply resizes it) */
	__u32 _pad_fl;
	__u16 tok_off[MAX_TOKENS]; /* tokens of the line in win (memcached's tokenizer) */
	__u16 tok_len[MAX_TOKENS];
	__u32 ntok;        /* tokens found, at most MAX_TOKENS - 1 (memcached's cap) */
	__u32 more_tok;    /* the line has more tokens than memcached tokenizes at once */
	__u64 num_u;       /* sc_strto's result, as memcached's strtoul/strtoull see it */
	struct meta_flags mf;
	__u32 in_udp;      /* a UDP datagram is being read (mutate.h, scan_udp) */
	__u32 _pad4;
	__u64 last_hash;   /* sc_invalidate's key hash */
	__u32 pend;        /* the command just read is a store with a data block ... */
	__u32 pend_kind;   /* ... whose exptime is EXP_* ... */
	__u64 pend_hash;   /* ... of this key ... */
	__u64 pend_deadline; /* ... to this deadline, once its data is read */
	struct flow_state udp_fs; /* a UDP datagram's stream (it starts and ends with the datagram) */
	struct flow_state flow_zero; /* never written: a new flow's state */
	__u8 ack_zero[sizeof(struct ack_log)]; /* never written: a new flow's ack_log (kept off
						 * the stack; bytes, as a per-CPU map holds no lock) */
	__u32 _pad2;
	struct shadow_note sh_note[MAX_GET_KEYS]; /* shadow mode (host/shadow.h) */
	struct shadow_want sh_want;
	struct shadow_req sh_req;
	struct shadow_got sh_got;
	/* the memcached instance the packet is for (XDP) or from (TC), and the
	 * key hash seed of that instance (sc_instance) */
	__u32 inst;
	__u64 seed;
	struct inst_key ikey;
};

#endif
