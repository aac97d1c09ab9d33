package bpf

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

func TestASCIIGetHitMiss(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    flow
	}{
		{"ipv4", v4flow()},
		{"ipv6", v6flow()},
		{"vlan", func() flow { f := v4flow(); f.vlans = []uint16{7}; return f }()},
		{"qinq-ipv6", func() flow { f := v6flow(); f.vlans = []uint16{7, 300}; return f }()},
		{"ipv4-options", func() flow {
			f := v4flow()
			f.ipOptions = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}}
			return f
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.expectMiss(tc.f, "foo")
			value := []byte("bar\r\nEND\r\nVALUE x 0 1\r\n\x00\xff") // any bytes, lengths from the bytes field
			h.fillASCII(tc.f, "foo", 42, value, nil)
			got := h.getHit(tc.f, "get", "foo")
			want := append(asciiItem("foo", 42, value, nil), "END\r\n"...)
			if !bytes.Equal(got, want) {
				t.Fatalf("reply\n got %q\nwant %q", got, want)
			}
			h.expectMiss(tc.f, "fo")
			h.expectMiss(tc.f, "fooo")
		})
	}
}

func TestMultiGetAllOrNothing(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	keys := make([]string, 10)
	var want []byte
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%02d", i)
		v := bytes.Repeat([]byte{byte('a' + i)}, 32)
		h.fillASCII(f, keys[i], uint32(i), v, nil)
		want = append(want, asciiItem(keys[i], uint32(i), v, nil)...)
	}
	want = append(want, "END\r\n"...)
	if got := h.getHit(f, "get", keys...); !bytes.Equal(got, want) {
		t.Fatalf("multi-get reply\n got %q\nwant %q", got, want)
	}
	// One key missing: the whole request goes to memcached (never a partial answer).
	miss := h.statDelta(StatMissAbsent, func() { h.getMiss(f, h.nextID(), "get", append(keys[:5:5], "absent")...) })
	if miss != 1 {
		t.Errorf("miss_absent grew by %d, want 1", miss)
	}
	// Repeated keys are answered repeatedly, as memcached does.
	got := h.getHit(f, "get", keys[1], keys[1])
	item := asciiItem(keys[1], 1, bytes.Repeat([]byte{'b'}, 32), nil)
	if !bytes.Equal(got, append(append(item, item...), "END\r\n"...)) {
		t.Errorf("repeated key reply %q", got)
	}
}

func TestMultiGetFillFromSplitReply(t *testing.T) {
	// memcached 1.6 may send one multi-get reply as several datagrams that
	// all say "0 of 1"; every complete item must fill.
	h := newHarness(t, nil)
	f := v4flow()
	id := h.nextID()
	h.getMiss(f, id, "get", "a", "b", "c")
	h.tc(f.udpToClient(t, frame(id, asciiItem("a", 0, []byte("A"), nil))))
	h.tc(f.udpToClient(t, frame(id, asciiItem("b", 0, []byte("BB"), nil))))
	h.tc(f.udpToClient(t, frame(id, append(asciiItem("c", 0, []byte("CCC"), nil), "END\r\n"...))))
	got := h.getHit(f, "get", "a", "b", "c")
	want := string(asciiItem("a", 0, []byte("A"), nil)) + string(asciiItem("b", 0, []byte("BB"), nil)) +
		string(asciiItem("c", 0, []byte("CCC"), nil)) + "END\r\n"
	if string(got) != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestValueSpanningDatagramsIsNotMisread(t *testing.T) {
	// A value that continues in the next datagram must be skipped there,
	// even when its bytes look like another item.
	h := newHarness(t, nil)
	f := v4flow()
	id := h.nextID()
	h.getMiss(f, id, "get", "big", "evil")
	fake := []byte("VALUE evil 0 4\r\nFAKE\r\n")
	value := append(bytes.Repeat([]byte("x"), 100), fake...)
	first := asciiItem("big", 0, value, nil)
	h.tc(f.udpToClient(t, frame(id, first[:60])))
	h.tc(f.udpToClient(t, frame(id, append(first[60:], "END\r\n"...))))
	h.expectMiss(f, "evil")
}

func TestGetsNeedsCAS(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	h.fillASCII(f, "nocas", 1, []byte("v"), nil)
	if n := h.statDelta(StatMissNoCAS, func() { h.getMiss(f, h.nextID(), "gets", "nocas") }); n != 1 {
		t.Errorf("gets on an entry without CAS: miss_no_cas +%d", n)
	}
	cas := uint64(1234567890123)
	h.fillASCII(f, "withcas", 7, []byte("value"), &cas)
	if got, want := h.getHit(f, "gets", "withcas"), append(asciiItem("withcas", 7, []byte("value"), &cas), "END\r\n"...); !bytes.Equal(got, want) {
		t.Errorf("gets reply %q want %q", got, want)
	}
	if got, want := h.getHit(f, "get", "withcas"), append(asciiItem("withcas", 7, []byte("value"), nil), "END\r\n"...); !bytes.Equal(got, want) {
		t.Errorf("get reply %q want %q", got, want)
	}
}

// TestIPv6ExtensionHeaderReply: a GET behind a destination-options header is
// answered with the header kept and counted in the payload length (issue 13,
// defect 6); checkFrame verifies lengths and checksums.
func TestIPv6ExtensionHeaderReply(t *testing.T) {
	h := newHarness(t, nil)
	f := v6flow()
	h.fillASCII(f, "k", 3, []byte("value"), nil)
	ret, out := h.xdp(withIPv6DestOpts(t, f.udpToServer(t, frame(h.nextID(), getLine("get", "k")))))
	if ret != xdpTX {
		t.Fatalf("GET behind a destination-options header: want XDP_TX, got %d", ret)
	}
	r := decodeReply(t, f, out)
	if got, want := string(r.payload[8:]), "VALUE k 3 5\r\nvalue\r\nEND\r\n"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	if pl, want := int(out[14+4])<<8|int(out[14+5]), len(out)-14-40; pl != want || out[14+6] != 60 {
		t.Fatalf("payload length %d (next header %d), want %d behind a destination-options header", pl, out[14+6], want)
	}
	// binary protocol, same path
	h.xdp(f.udpToServer(t, frame(50, binReq(0x0c, "b", nil, nil, 5))))
	h.tc(f.udpToClient(t, frame(50, binResp(0x0c, "b", 0, []byte("bv"), 5, 9))))
	ret, out = h.xdp(withIPv6DestOpts(t, f.udpToServer(t, frame(51, binReq(0x00, "b", nil, nil, 6)))))
	if ret != xdpTX {
		t.Fatalf("binary GET behind a destination-options header: want XDP_TX, got %d", ret)
	}
	decodeReply(t, f, out)
}

// TestReusedRequestIDMidReply: a request that reuses the id of a reply
// still in flight must not make the rest of that reply parse as items
// (issue 13, defect 11). memcached numbers the datagrams of one response
// (0 of n, 1 of n, ...); later ones carry only the rest of the response.
func TestReusedRequestIDMidReply(t *testing.T) {
	fake := []byte("VALUE evil 0 4\r\nFAKE\r\n")
	for _, seq := range []uint16{1, 0} { // memcached's numbering, and "0 of 1" throughout
		h := newHarness(t, nil)
		f := v4flow()
		id := h.nextID()
		h.getMiss(f, id, "get", "big")
		value := append(bytes.Repeat([]byte("x"), 100), fake...)
		first := asciiItem("big", 0, value, nil)
		cut := len(first) - len(fake) - 2
		total := uint16(1)
		if seq > 0 {
			total = 2
		}
		h.tc(f.udpToClient(t, frameSeq(id, 0, total, first[:cut])))
		h.getMiss(f, id, "get", "evil") // same id, while the reply to "get big" is out
		if n := h.statDelta(StatFills, func() { h.tc(f.udpToClient(t, frameSeq(id, seq, total, first[cut:]))) }); n != 0 {
			t.Fatalf("seq %d: the rest of a value filled %d entries", seq, n)
		}
		h.expectMiss(f, "evil")
	}
}

// TestLongHeadersServed: headers of 128 bytes or more (IPv6 with extension
// headers) are kept whole (issue 13, defect 11).
func TestLongHeadersServed(t *testing.T) {
	h := newHarness(t, nil)
	f := v6flow()
	h.fillASCII(f, "k", 0, []byte("v"), nil)
	for _, n := range []int{64, 72, 80, 136, 192} {
		pkt := withIPv6DestOptsN(t, f.udpToServer(t, frame(h.nextID(), getLine("get", "k"))), n)
		ret, out := h.xdp(pkt)
		if ret != xdpTX {
			t.Fatalf("%d bytes of destination options: got %d, want XDP_TX", n, ret)
		}
		r := decodeReply(t, f, out)
		if got := string(r.payload[8:]); got != "VALUE k 0 1\r\nv\r\nEND\r\n" {
			t.Fatalf("%d bytes of destination options: reply %q", n, got)
		}
	}
}

// A one-key GET's ticket rides in its reply state (its reply slot) rather than
// ticket_map: it still fills only the key asked for, and only once.
func TestOneKeyTicketOnlyForItsKeyOnce(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	id := h.nextID()
	h.getMiss(f, id, "get", "a")
	if n := h.statDelta(StatFillNoTicket, func() {
		h.tc(f.udpToClient(t, frame(id, append(asciiItem("b", 0, []byte("x"), nil), "END\r\n"...))))
	}); n != 1 {
		t.Errorf("an item of another key: fill_no_ticket +%d, want 1", n)
	}
	h.expectMiss(f, "b")
	id = h.nextID()
	h.getMiss(f, id, "get", "a")
	twice := append(asciiItem("a", 0, []byte("x"), nil), asciiItem("a", 0, []byte("y"), nil)...)
	fills := h.statDelta(StatFills, func() {
		h.tc(f.udpToClient(t, frame(id, append(twice, "END\r\n"...))))
	})
	if fills != 1 {
		t.Fatalf("the key twice in one reply: %d fills, want 1", fills)
	}
	if got, want := h.getHit(f, "get", "a"), append(asciiItem("a", 0, []byte("x"), nil), "END\r\n"...); !bytes.Equal(got, want) {
		t.Errorf("hit %q, want %q", got, want)
	}
}

// Requests and replies around SHORT_COPY and SHORT_SUM (256 bytes of UDP
// payload): up to it they are copied between frame and scratch with plain
// loads and stores and summed inline, past it through the helpers. Every
// size must give memcached's reply with right lengths and checksums.
func TestInlineCopySizes(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxValue = MaxValueCap })
	// keys of two bytes and more: the first names the address family (a
	// key is filled once); a reply is 23 + key + len(" 0 <n>") + n bytes,
	// a request 14 + key
	cases := []struct {
		name       string
		klen, vlen int
		reply, req int // the sizes this case is about (0: any)
	}{
		{"smallest reply", 2, 0, 29, 0},
		{"odd lengths", 3, 13, 0, 0},
		{"reply 255 bytes", 2, 224, 255, 0},
		{"reply 256 bytes", 2, 225, 256, 0},
		{"reply 257 bytes", 2, 226, 257, 0},
		{"request 255 bytes", 241, 8, 0, 255},
		{"request 256 bytes", 242, 8, 0, 256},
		{"request 257 bytes", 243, 8, 0, 257},
	}
	for _, f := range []flow{v4flow(), v6flow()} {
		fam := "4"
		if f.client.Is6() {
			fam = "6"
		}
		for i, c := range cases {
			t.Run(fam+"/"+c.name, func(t *testing.T) {
				key := fam + strings.Repeat(string(rune('a'+i)), c.klen-1)
				v := bytes.Repeat([]byte{byte('A' + i)}, c.vlen)
				h.fillASCII(f, key, 0, v, nil)
				if req := len(frame(0, getLine("get", key))); c.req != 0 && req != c.req {
					t.Fatalf("request is %d bytes, want %d", req, c.req)
				}
				got := h.getHit(f, "get", key)
				if c.reply != 0 && len(got)+8 != c.reply {
					t.Fatalf("reply is %d bytes, want %d", len(got)+8, c.reply)
				}
				if want := append(asciiItem(key, 0, v, nil), "END\r\n"...); !bytes.Equal(got, want) {
					t.Fatalf("reply %q, want %q", got, want)
				}
			})
		}
	}
}
