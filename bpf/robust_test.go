package bpf

import (
	"bytes"
	"net/netip"
	"testing"
)

func TestUnrelatedTrafficPasses(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	other := f
	other.sport = 53
	arp := arpFrame()
	web := f
	web.sport = 80
	for name, pkt := range map[string][]byte{
		"udp-53": other.udpToServer(t, frame(1, []byte("get k\r\n"))),
		"tcp-80": web.tcpToServer(t, 1, []byte("GET / HTTP/1.1\r\n\r\n")),
		"arp":    arp,
		"runt":   {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00},
		"reply":  f.udpToClient(t, frame(1, []byte("END\r\n"))), // from the server port, not to it
	} {
		before := h.stats().Get(StatMCPackets)
		if ret, _ := h.xdp(pkt); ret != xdpPass {
			t.Errorf("%s: got %d, want XDP_PASS", name, ret)
		}
		if name != "reply" && h.stats().Get(StatMCPackets) != before {
			t.Errorf("%s counted as memcached traffic", name)
		}
	}
}

func TestMalformedAndTruncatedPass(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	h.fillASCII(f, "k", 0, []byte("value"), nil)
	bodies := [][]byte{
		[]byte("get"), []byte("get "), []byte("get \r\n"), []byte("get k"), []byte("get k\r"), []byte("get k\r\nx"),
		[]byte("GET k\r\n"), []byte("gets\r\n"), []byte("get " + string(bytes.Repeat([]byte("x"), 251)) + "\r\n"),
		append([]byte("get"), bytes.Repeat([]byte(" k"), 17)...),
		{0x80}, {0x80, 0x00, 0x00, 0x01}, binReq(0x00, "k", nil, nil, 1)[:30], binReq(0x00, "k", []byte{1}, nil, 1),
	}
	for _, b := range bodies {
		h.xdp(f.udpToServer(t, frame(1, b))) // the harness checks PASS leaves the packet as it was
	}
	// Multi-datagram requests (sequence/total other than 0 of 1) are memcached's.
	if n := h.statDelta(StatPassMultiFrame, func() { h.xdp(f.udpToServer(t, frameSeq(2, 0, 2, []byte("get k\r\n")))) }); n != 1 {
		t.Errorf("multi-frame request: +%d", n)
	}
	// Every truncation of a valid request passes untouched or is answered
	// correctly, never anything else.
	full := f.udpToServer(t, frame(3, []byte("get k\r\n")))
	real := 14 + 20 + 8 + 8 + 7  // without Ethernet padding
	for n := 14; n < real; n++ { // BPF_PROG_TEST_RUN needs an Ethernet header
		ret, _ := h.xdp(full[:n])
		if ret != xdpPass {
			t.Fatalf("truncated to %d bytes: got %d", n, ret)
		}
	}
	h.getHit(f, "get", "k")
}

func TestAccessRules(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.RequireLocal = true })
	f := v4flow()
	// Rebuild the allow-list: only 198.18.0.0/24, and the server's address is local.
	c := h.c
	if err := c.Maps.Allow4Map.Delete(xdpAllowKey4{Prefixlen: 0}); err != nil {
		t.Fatal(err)
	}
	if err := c.Allow(netip.MustParsePrefix("198.18.0.0/24"), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.AddLocal(f.server); err != nil {
		t.Fatal(err)
	}
	h.fillASCII(f, "k", 0, bytes.Repeat([]byte("v"), 1000), nil)
	h.getHit(f, "get", "k")

	outsider := f
	outsider.client = netip.MustParseAddr("198.19.9.9")
	if n := h.statDelta(StatPassNotAllowed, func() { h.expectMiss(outsider, "k") }); n != 1 {
		t.Errorf("outsider served? pass_not_allowed +%d", n)
	}
	notLocal := f
	notLocal.server = netip.MustParseAddr("198.18.0.77")
	if n := h.statDelta(StatPassNotLocal, func() { h.expectMiss(notLocal, "k") }); n != 1 {
		t.Errorf("request to a foreign address served? pass_not_local +%d", n)
	}
	// A prefix with an amplification limit: a 1000-byte value for a tiny request is refused.
	if err := c.Allow(netip.MustParsePrefix("198.18.0.2/32"), 2); err != nil {
		t.Fatal(err)
	}
	if n := h.statDelta(StatPassAmplification, func() { h.expectMiss(f, "k") }); n != 1 {
		t.Errorf("amplified reply sent? pass_amplification +%d", n)
	}
	// Unlisted sources may get small replies only when configured so.
	s, _, err := c.Config()
	if err != nil {
		t.Fatal(err)
	}
	s.UnlistedAmp = 40
	if err := c.Configure(s); err != nil {
		t.Fatal(err)
	}
	h.getHit(outsider, "get", "k")

	// The answers are memoized per CPU: a change of either table is seen
	// by the next request from the same addresses.
	notLocal.client = netip.MustParseAddr("198.18.0.9") // listed, no amplification limit
	if n := h.statDelta(StatPassNotLocal, func() { h.expectMiss(notLocal, "k") }); n != 1 {
		t.Errorf("request to a foreign address served? pass_not_local +%d", n)
	}
	if err := c.AddLocal(notLocal.server); err != nil {
		t.Fatal(err)
	}
	h.getHit(notLocal, "get", "k")
	s.UnlistedAmp = 0
	if err := c.Configure(s); err != nil {
		t.Fatal(err)
	}
	if n := h.statDelta(StatPassNotAllowed, func() { h.expectMiss(outsider, "k") }); n != 1 {
		t.Errorf("outsider served once unlisted sources may not be? pass_not_allowed +%d", n)
	}
	if err := c.Allow(netip.MustParsePrefix("198.19.9.0/24"), 0); err != nil {
		t.Fatal(err)
	}
	h.getHit(outsider, "get", "k")
}

func TestReplyLargerThanMTUPasses(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxValue = MaxValueCap; s.MTU = 1000 })
	f := v4flow()
	h.fillASCII(f, "big", 0, bytes.Repeat([]byte("v"), 1200), nil)
	if n := h.statDelta(StatMissTooBig, func() { h.expectMiss(f, "big") }); n != 1 {
		t.Errorf("miss_too_big +%d", n)
	}
	// Values above max_value are never cached.
	h2 := newHarness(t, func(s *Settings) { s.MaxValue = 100 })
	id := h2.nextID()
	h2.getMiss(f, id, "get", "v")
	if n := h2.statDelta(StatFillTooBig, func() {
		h2.tc(f.udpToClient(t, frame(id, append(asciiItem("v", 0, bytes.Repeat([]byte("x"), 101), nil), "END\r\n"...))))
	}); n != 1 {
		t.Errorf("fill_too_big +%d", n)
	}
}

func TestLargestValueFitsOneDatagram(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxValue = MaxValueCap })
	f := v6flow()
	v := bytes.Repeat([]byte{0xab}, 1400)
	h.fillASCII(f, "k", 0, v, nil)
	got := h.getHit(f, "get", "k")
	if want := append(asciiItem("k", 0, v, nil), "END\r\n"...); !bytes.Equal(got, want) {
		t.Fatalf("1400-byte value reply differs")
	}
}

func TestBadChecksumsAreNotAnswered(t *testing.T) {
	for _, f := range []flow{v4flow(), v6flow()} {
		h := newHarness(t, nil)
		h.fillASCII(f, "k", 0, []byte("v"), nil)
		pkt := f.udpToServer(t, frame(1, getLine("get", "k")))
		l4 := 14 + 20
		if f.client.Is6() {
			l4 = 14 + 40
		}
		bad := append([]byte{}, pkt...)
		bad[l4+6] ^= 0x55 // UDP checksum
		if n := h.statDelta(StatPassBadCsum, func() { h.xdp(bad) }); n != 1 {
			t.Errorf("%s: bad UDP checksum answered? pass_bad_csum +%d", f.client, n)
		}
		if f.client.Is4() {
			bad = append([]byte{}, pkt...)
			bad[14+10] ^= 0x55 // IPv4 header checksum
			if n := h.statDelta(StatPassBadCsum, func() { h.xdp(bad) }); n != 1 {
				t.Errorf("bad IPv4 header checksum answered? +%d", n)
			}
			// UDP checksum 0 means "none" over IPv4: answered.
			none := append([]byte{}, pkt...)
			none[l4+6], none[l4+7] = 0, 0
			if ret, _ := h.xdp(none); ret != xdpTX {
				t.Errorf("IPv4 request without a UDP checksum not answered: %d", ret)
			}
		}
		h.getHit(f, "get", "k")
	}
}

func TestFlushFromUserSpace(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	h.fillASCII(f, "k", 0, []byte("v"), nil)
	if n := h.statDelta(StatFlushes, func() {
		if err := h.c.Flush(); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Fatalf("flushes +%d", n)
	}
	h.expectMiss(f, "k")
}
