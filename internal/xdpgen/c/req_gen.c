// SPDX-License-Identifier: GPL-2.0
/* A request generator for the end-to-end benchmark, not part of the cache.
 * Run with BPF_PROG_TEST_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES)
 * on the load generator's interface, it turns the kernel's copy of a template
 * frame (Ethernet / IPv4 / UDP to memcached, the memcached UDP frame header,
 * "get <key>\r\n", UDP checksum 0) into a GET of the key a precomputed
 * sequence names next, with a fresh request id, and returns XDP_TX: the
 * kernel transmits it out of that interface. The template's layout is fixed
 * (no VLAN, no IP options), so every offset below is a constant; Go builds
 * the template to match (xdpgen.go).
 *
 * The kernel copies the template into a page once, when its page pool makes
 * the page, not each time the page comes back: a frame the receiver changed
 * (xdpcache turns a request into its reply in place and sends that back)
 * returns with the reply's bytes. So every frame is rewritten whole: the
 * headers and "get " from gen_cfg.head, then the key and "\r\n". */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char _license[] SEC("license") = "GPL";

#define GEN_SPORT_OFF 34 /* UDP source port: Ethernet 14 + IPv4 20 */
#define GEN_ID_OFF 42    /* frame header's request id: + UDP 8 */
#define GEN_KEY_OFF 54   /* key: + frame header 8 + "get " 4 */
#define GEN_KEY_MAX 64   /* longest key, a multiple of 8 */
#define GEN_HEAD 56      /* headers, frame header, "get " and 2 key bytes: 7 words */

struct gen_cfg {
	__u32 seq_len;   /* entries of gen_seq */
	__u32 key_words; /* key length / 8 */
	__u16 sport;     /* first UDP source port, host order */
	__u16 ports;     /* requests cycle through sport .. sport+ports-1 */
	__u8 head[GEN_HEAD]; /* the template's first bytes */
};

struct gen_key {
	__u8 b[GEN_KEY_MAX];
};

/* Where a CPU's generator is: position in the sequence, next request id,
 * frames it has rewritten and returned for transmission. */
struct gen_state {
	__u32 pos;
	__u16 id;
	__u16 port;
	__u64 sent;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct gen_cfg);
	__uint(max_entries, 1);
} gen_cfg_map SEC(".maps");

/* The keys, by index; max_entries set at load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct gen_key);
	__uint(max_entries, 1);
} gen_keys SEC(".maps");

/* The sequence of key indexes requests follow (Zipf draws, from Go); long,
 * so 4 bytes an entry; max_entries set at load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} gen_seq SEC(".maps");

/* Per CPU: a live-frames run stays on its caller's CPU, so no atomics. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct gen_state);
	__uint(max_entries, 1);
} gen_state_map SEC(".maps");

SEC("xdp")
int req_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;

	struct gen_cfg *cfg = bpf_map_lookup_elem(&gen_cfg_map, &zero);
	struct gen_state *st = bpf_map_lookup_elem(&gen_state_map, &zero);
	if (!cfg || !st)
		return XDP_ABORTED;
	__u32 pos = st->pos;
	if (pos >= cfg->seq_len)
		pos = 0;
	__u32 *idx = bpf_map_lookup_elem(&gen_seq, &pos);
	if (!idx)
		return XDP_ABORTED;
	struct gen_key *k = bpf_map_lookup_elem(&gen_keys, idx);
	if (!k)
		return XDP_ABORTED;
	st->pos = pos + 1;

	if (data + GEN_HEAD > data_end)
		return XDP_ABORTED;
#pragma unroll
	for (int i = 0; i < GEN_HEAD / 8; i++)
		*(__u64 *)(data + i * 8) = *(__u64 *)(cfg->head + i * 8);

	__u8 *key = data + GEN_KEY_OFF;
	__u32 words = cfg->key_words;
#pragma unroll
	for (int i = 0; i < GEN_KEY_MAX / 8; i++) {
		if (i >= words)
			break;
		/* checked per word: the frame ends right after the key's "\r\n" */
		if ((void *)(key + i * 8 + 8) > data_end)
			return XDP_ABORTED;
		*(__u64 *)(key + i * 8) = *(__u64 *)(k->b + i * 8);
	}
	/* words <= GEN_KEY_MAX / 8: the bound keeps the offset provable */
	__u8 *crlf = key + (words & (GEN_KEY_MAX / 8 * 2 - 1)) * 8;
	if ((void *)(crlf + 2) > data_end)
		return XDP_ABORTED;
	crlf[0] = '\r';
	crlf[1] = '\n';
	__u16 port = st->port;
	if (port >= cfg->ports)
		port = 0;
	st->port = port + 1;
	/* UDP checksum stays 0 (none, allowed over IPv4): no fix-up needed */
	*(__u16 *)(data + GEN_SPORT_OFF) = bpf_htons(cfg->sport + port);
	*(__u16 *)(data + GEN_ID_OFF) = bpf_htons(st->id);
	st->id++;
	st->sent++;
	return XDP_TX;
}
