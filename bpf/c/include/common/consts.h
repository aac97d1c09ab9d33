/* SPDX-License-Identifier: GPL-2.0 */
/* Sizes, limits and counter indices shared by the XDP and TC programs.
 * The Go side mirrors the exported enums through bpf2go (-type). */
#ifndef XDPCACHE_CONSTS_H
#define XDPCACHE_CONSTS_H

/* memcached keys are at most 250 bytes; stored zero-padded in 256. */
#define KEY_MAX 250
#define KEY_BUF 256
#define KEY_WORDS (KEY_BUF / 8)

/* Largest value the cache can hold. The configured limit (config.max_value)
 * must not exceed it; 1400 bytes fits one reply in a 1500-byte MTU. */
#define VAL_MAX 1408
#define VAL_WORDS (VAL_MAX / 8)

/* Text kept per item so a hit needs no number formatting:
 * " <flags> <bytes>" and " <cas>". */
#define NUM_TXT 24
#define CAS_TXT 24

/* Scratch buffers. Offsets into them are masked with *_MASK so the verifier
 * can bound every variable index; each buffer has 8+ bytes of slack past the
 * mask so 8-byte word copies at any masked offset stay inside. */
#define BUF_SIZE 2048
#define BUF_MASK (BUF_SIZE - 1)
#define WIN_SIZE 512 /* window for scanning long payloads */
#define WIN_MASK (WIN_SIZE - 1)

/* A helper's size argument n, known to be in [1, pow2], in a form every
 * verifier bounds: kernels before 6.x do not learn "n != 0" from a compare
 * (so n's minimum stays 0), but they do follow the arithmetic. */
#define SIZE_1_TO(n, pow2) ({ __u64 __n = (n); asm volatile("" : "+r"(__n)); /* hide n's range from clang */ \
				   ((__n - 1) & ((pow2) - 1)) + 1; })

/* Longest headers (Ethernet to UDP) of a request XDP answers: IPv6 with
 * extension headers and VLAN tags can pass 128 bytes (power of two). */
#define HDR_MAX 256

/* Payloads up to this many bytes are checksummed inline (a multiple of 4),
 * longer ones with bpf_csum_diff; and copied between the frame and scratch
 * with plain loads and stores (a power of two), longer ones with
 * bpf_xdp_load_bytes / bpf_xdp_store_bytes. */
#define SHORT_SUM 256
#define SHORT_COPY 256

/* Request limits for serving from XDP. */
#define MAX_GET_KEYS 16
#define MAX_PORTS 4
#define INST_SLOTS 64 /* per-instance flush epochs and holds (global_state; power of two):
		       * instances sharing a slot flush each other, which is safe */
#define ACK_SLOTS 8 /* mutations per TCP flow awaiting their acknowledgement (power of two) */
#define UDP_ACK_SLOTS 8192 /* UDP mutations awaiting their acknowledgement (power of two) */
#define UDP_FILL_SLOTS 1024 /* values of UDP stores awaiting their acknowledgement (power of two) */

/* Replies memcached sends a command (scratch.cmd_units). A reply unit is
 * what TC counts on a followed TCP stream (reply_stream.h): one line, or the
 * VALUE items of a get and their END, or a meta VA line and its value. */
#define UNITS_NONE 0   /* noreply: nothing */
#define UNITS_ONE 1    /* exactly one reply unit */
#define UNITS_UNSURE 2 /* none or one (quiet), several (stats), or unknown */

/* What an acknowledgement of a UDP mutation looks like (udp_ack.family):
 * its reply datagram is exactly one of these lines, or (binary) a response
 * with the request's opcode and opaque. 0: not followed (held). */
#define ACK_FAM_STORE 1  /* STORED, NOT_STORED, EXISTS, NOT_FOUND */
#define ACK_FAM_DELETE 2 /* DELETED, NOT_FOUND */
#define ACK_FAM_ARITH 3  /* a number, NOT_FOUND */
#define ACK_FAM_TOUCH 4  /* TOUCHED, NOT_FOUND */
#define ACK_FAM_BINARY 5
#define MAX_SCAN_STEPS 256 /* windows/commands scanned per packet */
#define MAX_TOKENS 24 /* memcached's tokenizer: 23 tokens and the rest of the line (proto_text.c) */
#define MFLAG_MAX_OPT_LENGTH 20 /* meta commands: more tokens are an error */

/* memcached UDP frame header. */
#define MC_FRAME_LEN 8
#define MC_BIN_HDR_LEN 24

/* Binary protocol opcodes. */
#define BIN_GET 0x00
#define BIN_SET 0x01
#define BIN_ADD 0x02
#define BIN_REPLACE 0x03
#define BIN_DELETE 0x04
#define BIN_INCR 0x05
#define BIN_DECR 0x06
#define BIN_QUIT 0x07
#define BIN_FLUSH 0x08
#define BIN_GETQ 0x09
#define BIN_NOOP 0x0a
#define BIN_VERSION 0x0b
#define BIN_GETK 0x0c
#define BIN_GETKQ 0x0d
#define BIN_APPEND 0x0e
#define BIN_PREPEND 0x0f
#define BIN_STAT 0x10
#define BIN_SETQ 0x11
#define BIN_ADDQ 0x12
#define BIN_REPLACEQ 0x13
#define BIN_DELETEQ 0x14
#define BIN_INCRQ 0x15
#define BIN_DECRQ 0x16
#define BIN_QUITQ 0x17
#define BIN_FLUSHQ 0x18
#define BIN_APPENDQ 0x19
#define BIN_PREPENDQ 0x1a
#define BIN_TOUCH 0x1c
#define BIN_SASL_LIST 0x20
#define BIN_SASL_AUTH 0x21
#define BIN_SASL_STEP 0x22
#define BIN_GAT 0x1d
#define BIN_GATQ 0x1e
#define BIN_GATK 0x23
#define BIN_GATKQ 0x24

/* ticket_key.opaque of ASCII GETs over TCP */
#define TICKET_TCP 0x54435000

/* config.flags */
#define CFG_REQUIRE_LOCAL 1 /* serve only requests addressed to local_addrs */
#define CFG_VERIFY_UDP_CSUM 2 /* verify a request's UDP checksum before answering it; off
			       * where local senders leave it partial (veth: checksum offload) */
#define CFG_PROTO_ASCII 4  /* memcached -B ascii: every TCP connection speaks ASCII */
#define CFG_PROTO_BINARY 8 /* memcached -B binary (neither: -B auto, by the first byte) */
#define CFG_SHADOW 16 /* shadow mode: GETs XDP would answer go to memcached too (host/shadow.h) */

/* Shadow mode: why memcached's reply differed from the would-be one
 * (shadow_miss.reason; STAT_SHADOW_MISMATCH_* in the same order). */
#define SHADOW_VALUE 1  /* value bytes or length */
#define SHADOW_FLAGS 2  /* client flags */
#define SHADOW_CAS 3    /* CAS (gets, binary) */
#define SHADOW_ABSENT 4 /* memcached did not have the key */
#define SHADOW_LOG 64   /* mismatches kept (power of two) */

#define CFG_INST_BY_ADDR 32 /* a port is held by several memcached instances at different
			     * addresses: inst_map names each request's instance */

/* memcached treats exptime above 30 days as an absolute unix time. */
#define REL_EXPTIME_MAX (60 * 60 * 24 * 30)
#define NSEC 1000000000ULL

/* Counters, one per-CPU u64 each. Keep in sync with docs/status. */
enum stat_id {
	STAT_XDP_PACKETS = 0,   /* every packet the XDP program saw */
	STAT_MC_PACKETS,        /* packets to a memcached port */
	STAT_GET_REQS,          /* GET requests seen (ASCII or binary, UDP) */
	STAT_HITS,              /* requests answered from the cache */
	STAT_HIT_KEYS,          /* keys answered from the cache */
	STAT_MISS_ABSENT,       /* a key had no (current) entry */
	STAT_MISS_EXPIRED,      /* a key's entry was past its expiry */
	STAT_MISS_NO_CAS,       /* gets/binary GET but the entry has no CAS */
	STAT_MISS_TOO_BIG,      /* the reply would not fit one datagram */
	STAT_PASS_NOT_ALLOWED,  /* source not in the allow-list */
	STAT_PASS_NOT_LOCAL,    /* destination not a local address */
	STAT_PASS_AMPLIFICATION,/* reply larger than the source's amplification limit */
	STAT_PASS_MULTI_FRAME,  /* UDP request spread over several datagrams */
	STAT_PASS_MALFORMED,    /* could not be parsed: left to memcached */
	STAT_PASS_TOO_MANY_KEYS,/* more keys than MAX_GET_KEYS */
	STAT_PASS_OTHER,        /* any other memcached command */
	STAT_INVALIDATIONS,     /* keys invalidated by a mutating command */
	STAT_FLUSHES,           /* whole-cache flushes (flush_all or unreadable mutation) */
	STAT_FLUSH_UNREADABLE,  /* of which: a mutation whose key could not be read */
	STAT_TCP_SEGMENTS,      /* TCP segments to memcached scanned for mutations */
	STAT_FILLS,             /* entries written by the TC egress program */
	STAT_FILL_STALE,        /* fills refused: a mutation or flush came after the request */
	STAT_FILL_NO_TICKET,    /* replies to requests XDP did not pass (or already filled) */
	STAT_FILL_TOO_BIG,      /* values larger than the configured maximum */
	STAT_FILL_MALFORMED,    /* replies that did not parse */
	STAT_TC_PACKETS,        /* packets from a memcached port seen on egress */
	STAT_MISS_NO_ROOM,      /* the frame could not grow to the reply's size (driver room) */
	STAT_FILL_HELD,         /* fills refused: the key (or cache) was written less than write-hold ago */
	STAT_FILL_EXPIRED,      /* fills refused: memcached's exptime for the key has passed */
	STAT_FILL_BUSY,         /* fills refused: another fill of the bucket was in progress */
	STAT_PASS_BAD_CSUM,     /* a request whose IP or UDP checksum is wrong (the kernel drops it) */
	STAT_ACK_INVALIDATIONS, /* keys invalidated again as memcached's reply on the writer's flow left */
	STAT_ACK_FLUSHES,       /* flushes repeated as memcached's reply on the flushing flow left */
	STAT_FLOWS_NEW,         /* TCP connections followed from their SYN */
	STAT_FLOWS_UNSYNCED,    /* connections read conservatively: start never seen, or bytes missed */
	STAT_FLUSH_UNSYNCED,    /* flushes because a segment of such a connection could not be read exactly */
	STAT_FILL_AMBIGUOUS,    /* binary GET/GETQ replies refused: requests for different keys shared
				 * the client, request id and opaque, so the reply names no one key */
	STAT_STREAM_UNTRACKED,  /* TCP reply segments on connections whose start TC never saw: no fills */
	STAT_STREAM_LOST,       /* TCP connections whose replies TC lost track of: no more fills */
	STAT_SHADOW_HITS,       /* shadow mode: requests XDP would have answered (memcached did) */
	STAT_SHADOW_HIT_KEYS,   /* ... their keys */
	STAT_SHADOW_MATCHED,    /* keys whose reply from memcached was the would-be one */
	STAT_SHADOW_MISMATCH_VALUE,  /* keys whose reply differed: value bytes or length, */
	STAT_SHADOW_MISMATCH_FLAGS,  /* client flags, */
	STAT_SHADOW_MISMATCH_CAS,    /* CAS, */
	STAT_SHADOW_MISMATCH_ABSENT, /* memcached did not have the key */
	STAT_ACK_EXACT,         /* mutated keys logged for their own acknowledgement (rule A): no write hold */
	STAT_ACK_HELD,          /* mutated keys given the write hold: nothing acknowledges them exactly */
	STAT_FILL_SLOT_BUSY,    /* UDP GET misses left without a reply state (so no fill): their reply
				 * slot was held, or held another reply mid-value (host/reply_slots.h) */
	STAT_EVICTIONS,         /* fills that replaced another key's live entry (both ways of its set
				 * held one): keys a larger cache would have kept */
	STAT_HIT_WAY1,          /* keys found in their set's second way (the first held another key):
				 * conflicts the 2-way sets absorbed */
	STAT_MAX,
};

#endif
