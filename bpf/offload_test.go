package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/gopacket/gopacket/layers"
)

// offHarness runs a host build of the offload flavor through
// BPF_PROG_TEST_RUN, with the relay's store writing its maps.
type offHarness struct {
	t     testing.TB
	c     *OffloadCache
	store *OffloadStore
	ring  *ringbuf.Reader
	reqID uint16
}

func newOffHarness(t testing.TB, mod func(*Settings)) *offHarness {
	t.Helper()
	requireRoot(t)
	s := DefaultSettings()
	s.Entries = 1024
	s.Seed = 0x5eed
	s.RequireLocal = false
	if mod != nil {
		mod(&s)
	}
	c, err := LoadOffload(s, OffloadOptions{})
	if err != nil {
		t.Fatalf("load offload flavor: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.AllowPrefixes([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, 0); err != nil {
		t.Fatal(err)
	}
	st, err := NewOffloadStore(&c.Maps, c.Seed, c.Buckets)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := ringbuf.NewReader(c.Ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return &offHarness{t: t, c: c, store: st, ring: rd, reqID: 300}
}

func (h *offHarness) nextID() uint16 { h.reqID++; return h.reqID }

func (h *offHarness) xdp(pkt []byte) (uint32, []byte) {
	h.t.Helper()
	ret, out, err := runProg(h.c.XDP, pkt)
	if err != nil {
		h.t.Fatalf("offload XDP test run: %v", err)
	}
	if ret == xdpPass && !bytes.Equal(out, pkt) {
		h.t.Fatalf("XDP_PASS but the packet changed:\n in %x\nout %x", pkt, out)
	}
	return ret, out
}

func (h *offHarness) stat(id Stat) uint64 {
	h.t.Helper()
	var v uint64
	if err := h.c.Maps.OstatsMap.Lookup(uint32(id), &v); err != nil {
		h.t.Fatalf("read counter %d: %v", id, err)
	}
	return v
}

// relay runs memcached's reply through the relay TC program and hands
// what it queued to the store, as `xdpcache run` does. It returns the
// store's verdict, or -1 when TC queued nothing.
func (h *offHarness) relay(pkt []byte) FillResult {
	h.t.Helper()
	ret, out, err := runProg(h.c.TC, pkt)
	if err != nil {
		h.t.Fatalf("relay TC test run: %v", err)
	}
	if ret != tcOK || !bytes.Equal(out, pkt) {
		h.t.Fatalf("relay TC must pass packets unchanged: ret %d", ret)
	}
	h.ring.SetDeadline(time.Now().Add(50 * time.Millisecond))
	rec, err := h.ring.Read()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return -1
	}
	if err != nil {
		h.t.Fatalf("read ring: %v", err)
	}
	fr, err := ParseFillRecord(rec.RawSample)
	if err != nil {
		h.t.Fatal(err)
	}
	res, _, err := h.store.Fill(fr)
	if err != nil {
		h.t.Fatalf("fill: %v", err)
	}
	return res
}

func (h *offHarness) getMiss(f flow, id uint16, key string) {
	h.t.Helper()
	if ret, _ := h.xdp(f.udpToServer(h.t, frame(id, getLine("get", key)))); ret != xdpPass {
		h.t.Fatalf("get %s: want XDP_PASS (miss), got %d", key, ret)
	}
}

// fill runs the miss path for key and expects the item to be written.
func (h *offHarness) fill(f flow, key string, flags uint32, value []byte) {
	h.t.Helper()
	if res := h.tryFill(f, key, flags, value); res != Filled {
		h.t.Fatalf("fill of %q: %v", key, res)
	}
}

func (h *offHarness) tryFill(f flow, key string, flags uint32, value []byte) FillResult {
	h.t.Helper()
	id := h.nextID()
	h.getMiss(f, id, key)
	return h.relay(f.udpToClient(h.t, frame(id, itemReply(key, flags, value))))
}

func itemReply(key string, flags uint32, value []byte) []byte {
	return append(asciiItem(key, flags, value, nil), "END\r\n"...)
}

func (h *offHarness) getHit(f flow, key string) (payload, frameOut []byte) {
	h.t.Helper()
	id := h.nextID()
	ret, out := h.xdp(f.udpToServer(h.t, frame(id, getLine("get", key))))
	if ret != xdpTX {
		h.t.Fatalf("get %s: want XDP_TX (hit), got %d", key, ret)
	}
	r := decodeReply(h.t, f, out)
	if !bytes.Equal(r.payload[:8], frame(id, nil)) {
		h.t.Errorf("frame header %x, want %x", r.payload[:8], frame(id, nil))
	}
	return r.payload[8:], out
}

func (h *offHarness) expectMiss(f flow, key string) {
	h.t.Helper()
	h.getMiss(f, h.nextID(), key)
}

func TestOffloadGetHitMiss(t *testing.T) {
	values := []struct {
		name string
		key  string
		val  []byte
	}{
		{"bmc-workload", "key-0123456789ab", bytes.Repeat([]byte("v"), 32)},
		{"one-byte", "k", []byte("x")},
		{"empty", "empty", nil},
		{"odd-length", "odd", []byte("abcde")},
		{"longest-key", string(bytes.Repeat([]byte("K"), OffloadKeyMax)), []byte("long key")},
		{"chunk-boundary", "b", bytes.Repeat([]byte("c"), OffloadChunk*2-len("VALUE b 7 99\r\n")-len("\r\nEND\r\n"))},
		{"largest", "big", bytes.Repeat([]byte("z"), OffloadItemMax-len("VALUE big 0 425\r\n")-len("\r\nEND\r\n"))},
	}
	for _, fl := range []struct {
		name string
		f    flow
	}{{"v4", v4flow()}, {"v6", v6flow()}, {"vlan", func() flow { f := v4flow(); f.vlans = []uint16{7}; return f }()}} {
		for _, v := range values {
			t.Run(fl.name+"/"+v.name, func(t *testing.T) {
				h := newOffHarness(t, nil)
				h.expectMiss(fl.f, v.key)
				h.fill(fl.f, v.key, 7, v.val)
				got, _ := h.getHit(fl.f, v.key)
				if want := itemReply(v.key, 7, v.val); !bytes.Equal(got, want) {
					t.Fatalf("reply\n got %q\nwant %q", got, want)
				}
				if h.stat(StatHits) != 1 {
					t.Errorf("hits counter %d, want 1", h.stat(StatHits))
				}
			})
		}
	}
}

func TestOffloadRefusesWhatItCannotHold(t *testing.T) {
	h := newOffHarness(t, nil)
	f := v4flow()
	tooLong := string(bytes.Repeat([]byte("L"), OffloadKeyMax+1))
	if res := h.tryFill(f, tooLong, 0, []byte("v")); res != FillTooBig {
		t.Errorf("key of %d bytes: %v, want %v", len(tooLong), res, FillTooBig)
	}
	big := bytes.Repeat([]byte("z"), OffloadItemMax)
	if res := h.tryFill(f, "big", 0, big); res != -1 {
		t.Errorf("item larger than %d bytes reached the relay: %v", OffloadItemMax, res)
	}
	h.expectMiss(f, "big")
}

// The two flavors must answer the same GET with the same bytes: the host
// flavor's reply is the reference.
func TestOffloadRepliesLikeHostFlavor(t *testing.T) {
	for _, fl := range []struct {
		name string
		f    flow
	}{{"v4", v4flow()}, {"v6", v6flow()}, {"v4-options", func() flow {
		f := v4flow()
		f.ipOptions = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}}
		return f
	}()}} {
		t.Run(fl.name, func(t *testing.T) {
			host := newHarness(t, nil)
			off := newOffHarness(t, nil)
			val := []byte("the same value for both")
			host.fillASCII(fl.f, "shared", 3, val, nil)
			off.fill(fl.f, "shared", 3, val)
			req := fl.f.udpToServer(t, frame(4242, getLine("get", "shared")))
			hret, hout := host.xdp(req)
			oret, oout := off.xdp(req)
			if hret != xdpTX || oret != xdpTX {
				t.Fatalf("verdicts host %d offload %d, want both XDP_TX", hret, oret)
			}
			if !bytes.Equal(hout, oout) {
				t.Fatalf("replies differ:\n host    %x\n offload %x", hout, oout)
			}
		})
	}
}

// Verdicts for packets either flavor must leave alone or must invalidate on.
func TestOffloadVerdictsLikeHostFlavor(t *testing.T) {
	f := v4flow()
	other := f
	other.sport = 11311
	cases := []struct {
		name string
		pkt  func(t *testing.T) []byte
	}{
		{"arp", func(t *testing.T) []byte { return arpFrame() }},
		{"tcp-80", func(t *testing.T) []byte {
			o := f
			o.sport = 80
			return o.tcpToServer(t, 1, []byte("GET / HTTP/1.1\r\n\r\n"))
		}},
		{"udp-other-port", func(t *testing.T) []byte { return other.udpToServer(t, frame(1, getLine("get", "k"))) }},
		{"udp-set", func(t *testing.T) []byte { return f.udpToServer(t, frame(2, []byte("set k 0 0 1\r\nx\r\n"))) }},
		{"tcp-set", func(t *testing.T) []byte { return f.tcpToServer(t, 7, []byte("set k 0 0 1\r\nx\r\n")) }},
		{"tcp-get", func(t *testing.T) []byte { return f.tcpToServer(t, 7, []byte("get k\r\n")) }},
		{"multi-frame", func(t *testing.T) []byte { return f.udpToServer(t, frameSeq(3, 0, 2, getLine("get", "k"))) }},
		{"garbage", func(t *testing.T) []byte { return f.udpToServer(t, frame(4, []byte("\x00\x01\x02"))) }},
		{"short-frame", func(t *testing.T) []byte { return f.udpToServer(t, []byte{0, 1, 0}) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := newHarness(t, nil)
			off := newOffHarness(t, nil)
			pkt := c.pkt(t)
			hret, _ := host.xdp(pkt)
			oret, _ := off.xdp(pkt)
			if hret != oret {
				t.Fatalf("host flavor %d, offload flavor %d", hret, oret)
			}
		})
	}
}

func TestOffloadMutationsInvalidate(t *testing.T) {
	cmds := []struct {
		name  string
		line  string // %s is the key
		flush bool   // the offload flavor flushes everything (it cannot read this precisely)
	}{
		{"set", "set %s 0 0 3\r\nnew\r\n", false},
		{"set-noreply", "set %s 0 0 3 noreply\r\nnew\r\n", false},
		{"add", "add %s 0 0 1\r\nx\r\n", false},
		{"replace", "replace %s 0 0 1\r\nx\r\n", false},
		{"append", "append %s 0 0 1\r\nx\r\n", false},
		{"prepend", "prepend %s 0 0 1\r\nx\r\n", false},
		{"cas", "cas %s 0 0 1 99\r\nx\r\n", false},
		{"delete", "delete %s\r\n", false},
		{"delete-noreply", "delete %s noreply\r\n", false},
		{"incr", "incr %s 1\r\n", false},
		{"decr", "decr %s 1\r\n", false},
		{"touch", "touch %s 100\r\n", false},
		{"gat-one-key", "gat 100 %s\r\n", false},
		{"gat-two-keys", "gat 100 other %s\r\n", true},
		{"meta-set", "ms %s 2 T0\r\nhi\r\n", false},
		{"meta-delete", "md %s q\r\n", false},
		{"meta-arith", "ma %s\r\n", false},
		{"meta-get-touch", "mg %s v T30\r\n", false},
		{"lf-only", "delete %s\n", false},
		{"pipelined", "get a b\r\nset yy 0 0 2\r\nyy\r\ndelete %s\r\n", false},
		{"value-continues", "set %s 0 0 5000\r\nonly the start of the value", false},
		{"five-commands", "delete a\r\ndelete b\r\ndelete c\r\ndelete d\r\ndelete %s\r\n", true},
		{"unknown-command", "frobnicate %s\r\n", true},
		{"flush_all", "flush_all\r\n", true},
		// memcached answers ERROR and reads no data: the next line is a command
		// (the delete line is 15 bytes: read as data it would be skipped)
		{"extra-tokens-then-delete", "set other 0 0 13 x y\r\ndelete %s\r\nget b\r\n", true},
		{"cas-extra-tokens-then-delete", "cas other 0 0 13 5 noreply z\r\ndelete %s\r\nget b\r\n", true},
	}
	for _, proto := range []string{"tcp", "udp"} {
		for _, c := range cmds {
			t.Run(proto+"/"+c.name, func(t *testing.T) {
				h := newOffHarness(t, nil)
				f := v4flow()
				h.fill(f, "victim", 0, []byte("old"))
				h.fill(f, "bystander", 0, []byte("keep"))
				payload := []byte(fmt.Sprintf(c.line, "victim"))
				var pkt []byte
				if proto == "tcp" {
					pkt = f.tcpToServer(t, 1000, payload)
				} else {
					pkt = f.udpToServer(t, frame(h.nextID(), payload))
				}
				if ret, _ := h.xdp(pkt); ret != xdpPass {
					t.Fatalf("mutation not passed to memcached: %d", ret)
				}
				h.expectMiss(f, "victim")
				if c.flush {
					h.expectMiss(f, "bystander")
				} else {
					h.getHit(f, "bystander") // precise: other keys stay
				}
			})
		}
	}
}

func TestOffloadBinaryMutationsInvalidate(t *testing.T) {
	ops := []struct {
		name  string
		op    byte
		extra []byte
	}{
		{"set", 0x01, make([]byte, 8)},
		{"delete", 0x04, nil},
		{"incr", 0x05, make([]byte, 20)},
		{"touch", 0x1c, []byte{0, 0, 0, 9}},
		{"appendq", 0x19, nil},
	}
	for _, proto := range []string{"tcp", "udp"} {
		for _, o := range ops {
			t.Run(proto+"/"+o.name, func(t *testing.T) {
				h := newOffHarness(t, nil)
				f := v4flow()
				h.fill(f, "victim", 0, []byte("old"))
				h.fill(f, "bystander", 0, []byte("keep"))
				// pipelined after a GETQ of another key, as the host flavor's test does
				req := append(binReq(0x09, "other", nil, nil, 1), binReq(o.op, "victim", o.extra, []byte("v"), 2)...)
				var pkt []byte
				if proto == "tcp" {
					pkt = f.tcpToServer(t, 50, req)
				} else {
					pkt = f.udpToServer(t, frame(h.nextID(), req))
				}
				if ret, _ := h.xdp(pkt); ret != xdpPass {
					t.Fatalf("binary %s not passed: %d", o.name, ret)
				}
				h.expectMiss(f, "victim")
				h.getHit(f, "bystander")
			})
		}
	}
}

// A fill whose GET came before a mutation of the key, or before a flush,
// must never be served.
func TestOffloadStaleFillRefused(t *testing.T) {
	mutations := []struct {
		name string
		pkt  func(t *testing.T, f flow) []byte
		want FillResult
	}{
		{"delete", func(t *testing.T, f flow) []byte { return f.tcpToServer(t, 9, []byte("delete k\r\n")) }, FillStale},
		{"flush_all", func(t *testing.T, f flow) []byte { return f.tcpToServer(t, 9, []byte("flush_all\r\n")) }, FillStale},
		{"set-with-exptime", func(t *testing.T, f flow) []byte { return f.tcpToServer(t, 9, []byte("set k 0 30 1\r\nx\r\n")) }, FillStale},
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			h := newOffHarness(t, nil)
			f := v4flow()
			id := h.nextID()
			h.getMiss(f, id, "k")
			h.xdp(m.pkt(t, f))
			if res := h.relay(f.udpToClient(t, frame(id, itemReply("k", 0, []byte("old"))))); res != m.want {
				t.Fatalf("late fill: %v, want %v", res, m.want)
			}
			h.expectMiss(f, "k")
		})
	}
}

// An item written with an expiry time is not cached: the device has no clock.
func TestOffloadExptimeNotCached(t *testing.T) {
	h := newOffHarness(t, nil)
	f := v4flow()
	h.xdp(f.tcpToServer(t, 9, []byte("set k 0 30 1\r\nx\r\n")))
	if res := h.tryFill(f, "k", 0, []byte("x")); res != FillTTL {
		t.Fatalf("fill after a set with exptime: %v, want %v", res, FillTTL)
	}
	h.xdp(f.tcpToServer(t, 9, []byte("set k 0 0 1\r\ny\r\n")))
	h.fill(f, "k", 0, []byte("y")) // a later write without exptime: cached again
	h.getHit(f, "k")

	// Writes that keep the item's exptime (memcached ignores append's,
	// incr keeps it, an add that fails leaves the item alone) keep it
	// uncached.
	for _, keep := range []string{"append k 0 0 1\r\nz\r\n", "incr k 1\r\n", "add k 0 0 1\r\nz\r\n", "delete k\r\n"} {
		h.xdp(f.tcpToServer(t, 9, []byte("set k 0 30 1\r\nx\r\n")))
		h.xdp(f.tcpToServer(t, 9, []byte(keep)))
		if res := h.tryFill(f, "k", 0, []byte("x")); res != FillTTL {
			t.Fatalf("fill after a set with exptime and then %q: %v, want %v", keep, res, FillTTL)
		}
	}
	h.xdp(f.tcpToServer(t, 9, append(binReq(0x01, "k", []byte{0, 0, 0, 0, 0, 0, 0, 30}, []byte("x"), 1), binReq(0x0e, "k", nil, []byte("y"), 2)...)))
	if res := h.tryFill(f, "k", 0, []byte("xy")); res != FillTTL {
		t.Fatalf("fill after a binary set with exptime and an append: %v, want %v", res, FillTTL)
	}
}

func TestOffloadNoTicketNoFill(t *testing.T) {
	h := newOffHarness(t, nil)
	f := v4flow()
	if res := h.relay(f.udpToClient(t, frame(77, itemReply("k", 0, []byte("v"))))); res != FillNoTicket {
		t.Fatalf("unsolicited reply: %v, want %v", res, FillNoTicket)
	}
	id := h.nextID()
	h.getMiss(f, id, "k")
	// the reply to another request id, or for another key, does not use the ticket
	if res := h.relay(f.udpToClient(t, frame(id+1, itemReply("k", 0, []byte("v"))))); res != FillNoTicket {
		t.Fatalf("reply to another request: %v", res)
	}
	if res := h.relay(f.udpToClient(t, frame(id, itemReply("other", 0, []byte("v"))))); res != FillNoTicket {
		t.Fatalf("reply for another key: %v", res)
	}
	for _, bad := range [][]byte{
		[]byte("VALUE k 0 1\r\nv\r\nVALUE j 0 1\r\nw\r\nEND\r\n"),
		[]byte("VALUE k 0 5\r\nv\r\nEND\r\n"),
		[]byte("VALUE k 0 1 99\r\nv\r\nEND\r\n"),
	} {
		if res := h.relay(f.udpToClient(t, frame(id, bad))); res != FillMalformed && res != -1 {
			t.Errorf("%q: %v, want malformed", bad, res)
		}
	}
}

// The relay replaces items in place; a reader that saw a half-written entry
// (fields of two fills) must not serve it.
func TestOffloadTornEntryNotServed(t *testing.T) {
	h := newOffHarness(t, nil)
	f := v4flow()
	h.fill(f, "k", 0, []byte("value"))
	b := OffloadKeyHash([]byte("k"), OffloadInstanceSeed(h.c.Seed, f.sport)) & (h.c.Buckets - 1)
	var e OffloadEntry
	if err := h.c.Maps.OentryMap.Lookup(&b, &e); err != nil {
		t.Fatal(err)
	}
	e.Len++ // as if len came from another fill
	if err := h.c.Maps.OentryMap.Update(&b, &e, 0); err != nil {
		t.Fatal(err)
	}
	h.expectMiss(f, "k")
}

func TestOffloadEvictAndClear(t *testing.T) {
	h := newOffHarness(t, nil)
	f := v4flow()
	h.fill(f, "a", 0, []byte("1"))
	h.fill(f, "b", 0, bytes.Repeat([]byte("2"), 100))
	b := OffloadKeyHash([]byte("a"), OffloadInstanceSeed(h.c.Seed, f.sport)) & (h.c.Buckets - 1)
	if err := h.store.Evict(b); err != nil {
		t.Fatal(err)
	}
	h.expectMiss(f, "a")
	h.getHit(f, "b")
	if err := h.store.Clear(); err != nil {
		t.Fatal(err)
	}
	h.expectMiss(f, "b")
	var ck OffloadChunkKey
	var c OffloadChunkData
	if it := h.c.Maps.OchunkMap.Iterate(); it.Next(&ck, &c) {
		t.Errorf("chunk %+v left after Clear", ck)
	}
}

func TestOffloadAmplificationAndAllowList(t *testing.T) {
	h := newOffHarness(t, func(s *Settings) { s.UnlistedAmp = 0 })
	f := v4flow()
	h.fill(f, "k", 0, bytes.Repeat([]byte("v"), 300))
	if err := h.c.Maps.OallowMap.Delete(&xdpoffOallowKey{Prefixlen: 96, Addr: netip.IPv4Unspecified().As16()}); err != nil {
		t.Fatal(err)
	}
	before := h.stat(StatPassNotAllowed)
	h.expectMiss(f, "k")
	if h.stat(StatPassNotAllowed) != before+1 {
		t.Errorf("unlisted source not counted")
	}
	if err := h.c.AllowPrefixes([]netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}, 2); err != nil {
		t.Fatal(err)
	}
	before = h.stat(StatPassAmplification)
	h.expectMiss(f, "k") // a ~350-byte reply to a ~50-byte request is above 2x
	if h.stat(StatPassAmplification) != before+1 {
		t.Errorf("amplification limit not applied")
	}
}

func TestOffloadBadChecksumNotAnswered(t *testing.T) {
	h := newOffHarness(t, nil)
	f := v4flow()
	h.fill(f, "k", 0, []byte("v"))
	pkt := f.udpToServer(t, frame(h.nextID(), getLine("get", "k")))
	at := bytes.Index(pkt, []byte("get k\r\n"))
	pkt[at+4] = 'K' // without fixing the UDP checksum
	if ret, _ := h.xdp(pkt); ret != xdpPass {
		t.Fatalf("request with a wrong UDP checksum answered: %d", ret)
	}
	if h.stat(StatPassBadCsum) != 1 {
		t.Errorf("bad checksum not counted")
	}
}

func TestOffloadKeyHashMatchesProgram(t *testing.T) {
	h := newOffHarness(t, nil)
	f := v4flow()
	for _, k := range []string{"a", "key-0123456789ab", string(bytes.Repeat([]byte{0xfe}, OffloadKeyMax))} {
		id := h.nextID()
		h.getMiss(f, id, k)
		tk := OffloadTicketKey{Addr: f.client.As16(), Port: htons(f.cport), ReqId: htons(id), Hash: OffloadKeyHash([]byte(k), OffloadInstanceSeed(h.c.Seed, f.sport))}
		var tt OffloadTicket
		if err := h.c.Maps.OticketMap.Lookup(&tk, &tt); err != nil {
			t.Errorf("key %q: no ticket under the Go hash: %v", k, err)
		}
	}
}

// htons is v in network byte order as the (little-endian) BPF target stores it.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestOffloadIPv6ExtensionHeaderReply: the offload flavor shares reply.h; a
// GET behind a destination-options header gets a well-formed reply.
func TestOffloadIPv6ExtensionHeaderReply(t *testing.T) {
	h := newOffHarness(t, nil)
	f := v6flow()
	h.fill(f, "k", 3, []byte("value"))
	ret, out := h.xdp(withIPv6DestOpts(t, f.udpToServer(t, frame(h.nextID(), getLine("get", "k")))))
	if ret != xdpTX {
		t.Fatalf("GET behind a destination-options header: want XDP_TX, got %d", ret)
	}
	r := decodeReply(t, f, out)
	if got, want := string(r.payload[8:]), "VALUE k 3 5\r\nvalue\r\nEND\r\n"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}
