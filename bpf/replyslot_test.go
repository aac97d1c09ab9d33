package bpf

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// replySlotKeep is REPLY_SLOT_KEEP_NS (c/include/host/reply_slots.h).
const replySlotKeep = time.Second

// slot reads the reply slot a UDP GET from f with request id id uses.
func (h *harness) slot(f flow, id uint16) xdpReplySlot {
	h.t.Helper()
	var sl xdpReplySlot
	if err := h.c.Maps.ReplySlots.Lookup(ReplySlotOf(f.client, f.cport, id, 0x5eed), &sl); err != nil {
		h.t.Fatalf("reply slot: %v", err)
	}
	return sl
}

// collision finds a request (flow, id) other than (f, id) whose reply slot
// is (f, id)'s: another port of the same client (otherClient) or another
// request id of the same port.
func collision(t *testing.T, f flow, id uint16, otherClient bool) (flow, uint16) {
	t.Helper()
	want := ReplySlotOf(f.client, f.cport, id, 0x5eed)
	for i := 1; i < 1<<20; i++ {
		g, gid := f, id
		if otherClient {
			g.cport = f.cport + uint16(i)
		} else {
			gid = id + uint16(i)
		}
		if (g.cport != f.cport || gid != id) && ReplySlotOf(g.client, g.cport, gid, 0x5eed) == want {
			return g, gid
		}
	}
	t.Fatal("no colliding request found")
	return f, id
}

// TestReplySlotOfMirrorsXDP: ReplySlotOf finds the slot XDP wrote a miss's
// reply state to (the collision tests below rely on it).
func TestReplySlotOfMirrorsXDP(t *testing.T) {
	h := newHarness(t, nil)
	for _, f := range []flow{v4flow(), v6flow(), {client: v4flow().client, server: v4flow().server, cport: 1, sport: 11211}} {
		for _, id := range []uint16{0, 1, 0x1234, 0xffff} {
			h.getMiss(f, id, "get", "k")
			sl := h.slot(f, id)
			a := f.client.As16()
			if sl.Used != 1 || !bytes.Equal(sl.Key.Addr[:], a[:]) ||
				sl.Key.Port != binary.BigEndian.Uint16([]byte{byte(f.cport), byte(f.cport >> 8)}) ||
				sl.Key.ReqId != binary.BigEndian.Uint16([]byte{byte(id), byte(id >> 8)}) {
				t.Errorf("%v port %d id %d: slot %d holds %+v", f.client, f.cport, id, ReplySlotOf(f.client, f.cport, id, 0x5eed), sl)
			}
		}
	}
}

// Two requests whose reply states share a slot: the later request owns it
// unless the earlier reply stands inside a value; a reply whose slot another
// request owns fills nothing, whatever its bytes look like.
func TestReplySlotCollisions(t *testing.T) {
	fake := []byte("VALUE evil 0 4\r\nFAKE\r\n")
	bigValue := append(bytes.Repeat([]byte("x"), 100), fake...)
	bigItem := asciiItem("big", 0, bigValue, nil)
	cut := len(bigItem) - len(fake) - 2 // the first datagram ends inside big's value
	for _, tc := range []struct {
		name        string
		otherClient bool
		midValue    bool // the earlier reply's first datagram was read, ending inside a value
		stale       bool // ... longer than REPLY_SLOT_KEEP_NS ago
	}{
		{name: "other port, earlier reply not begun", otherClient: true},
		{name: "other request id, earlier reply not begun"},
		{name: "other port, earlier reply mid-value", otherClient: true, midValue: true},
		{name: "other request id, earlier reply mid-value", midValue: true},
		{name: "other port, earlier reply mid-value and stale", otherClient: true, midValue: true, stale: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			a, aid := v4flow(), uint16(30000)
			b, bid := collision(t, a, aid, tc.otherClient)
			h.getMiss(a, aid, "get", "big", "small")
			if tc.midValue {
				if n := h.statDelta(StatFills, func() { h.tc(a.udpToClient(t, frameSeq(aid, 0, 1, bigItem[:cut]))) }); n != 0 {
					t.Fatalf("a value's first part filled %d entries", n)
				}
			}
			if tc.stale {
				sleepPast(replySlotKeep)
			}
			kept := tc.midValue && !tc.stale
			busy := h.statDelta(StatFillSlotBusy, func() { h.getMiss(b, bid, "get", "evil") })
			if want := map[bool]uint64{true: 1, false: 0}[kept]; busy != want {
				t.Fatalf("fill_slot_busy +%d, want %d", busy, want)
			}
			// the earlier reply, while the later request's reply is still to
			// come: its rest (the fake item included, in a datagram numbered
			// 0 as a new response would be), then a real item
			rest := append(bigItem[cut:], asciiItem("small", 0, []byte("s"), nil)...)
			if !tc.midValue {
				rest = append(asciiItem("evil", 0, []byte("FAKE"), nil), asciiItem("small", 0, []byte("s"), nil)...)
			}
			fills := h.statDelta(StatFills, func() { h.tc(a.udpToClient(t, frameSeq(aid, 0, 1, append(rest, "END\r\n"...)))) })
			if kept {
				// its state was kept: the value's rest is skipped, small fills
				if fills != 1 {
					t.Fatalf("the earlier reply filled %d entries, want 1 (small)", fills)
				}
				h.getHit(a, "get", "small")
			} else {
				if fills != 0 {
					t.Fatalf("a reply whose slot a newer request took filled %d entries", fills)
				}
				h.expectMiss(a, "small")
			}
			// the later request's reply fills only if it got the slot
			fills = h.statDelta(StatFills, func() {
				h.tc(b.udpToClient(t, frame(bid, append(asciiItem("evil", 0, []byte("real"), nil), "END\r\n"...))))
			})
			if kept {
				if fills != 0 {
					t.Fatalf("a request left without a reply state filled %d entries", fills)
				}
				h.expectMiss(b, "evil")
			} else {
				if fills != 1 {
					t.Fatalf("the slot's owner's reply filled %d entries, want 1", fills)
				}
				if got, want := h.getHit(b, "get", "evil"), append(asciiItem("evil", 0, []byte("real"), nil), "END\r\n"...); !bytes.Equal(got, want) {
					t.Fatalf("hit %q, want %q", got, want)
				}
			}
		})
	}
}

// A request id reused while the reply to its earlier request is mid-value:
// the earlier state stays (its value's rest is never read as items), as
// TestReusedRequestIDMidReply checks for the datagram numbering; here the
// reply whose request got no state of its own, and a colliding request.
func TestReplySlotReusedIDMidValue(t *testing.T) {
	fake := []byte("VALUE evil 0 4\r\nFAKE\r\n")
	bigItem := asciiItem("big", 0, append(bytes.Repeat([]byte("x"), 100), fake...), nil)
	cut := len(bigItem) - len(fake) - 2
	for _, keys := range [][]string{{"evil"}, {"evil", "other"}} {
		h := newHarness(t, nil)
		f, id := v4flow(), uint16(30000)
		h.getMiss(f, id, "get", "big")
		h.tc(f.udpToClient(t, frameSeq(id, 0, 1, bigItem[:cut])))
		before := h.slot(f, id)
		if n := h.statDelta(StatFillSlotBusy, func() { h.getMiss(f, id, "get", keys...) }); n != 0 {
			t.Fatalf("%v: the same request id counted fill_slot_busy +%d", keys, n)
		}
		if after := h.slot(f, id); after.T_ns != before.T_ns || after.Rs != before.Rs {
			t.Fatalf("%v: the mid-value state was replaced: %+v, was %+v", keys, after, before)
		}
		// a colliding request of another port cannot take the slot either
		g, gid := collision(t, f, id, true)
		if n := h.statDelta(StatFillSlotBusy, func() { h.getMiss(g, gid, "get", "evil") }); n != 1 {
			t.Fatalf("%v: a colliding request: fill_slot_busy +%d, want 1", keys, n)
		}
		if n := h.statDelta(StatFills, func() {
			h.tc(f.udpToClient(t, frameSeq(id, 0, 1, append(bigItem[cut:], "END\r\n"...))))
		}); n != 0 {
			t.Fatalf("%v: the rest of a value filled %d entries", keys, n)
		}
		h.expectMiss(f, "evil")
		if sl := h.slot(f, id); sl.Used != 0 {
			t.Fatalf("%v: the reply ended but its slot is still used: %+v", keys, sl)
		}
	}
}

// setSlotLock sets the lock word of the slot of (f, id) as another program
// holding it would (the programs never wait for it).
func (h *harness) setSlotLock(f flow, id uint16, v uint32) {
	h.t.Helper()
	sl := h.slot(f, id)
	sl.Lock = v
	if err := h.c.Maps.ReplySlots.Update(ReplySlotOf(f.client, f.cport, id, 0x5eed), &sl, ebpf.UpdateExist); err != nil {
		h.t.Fatalf("reply slot: %v", err)
	}
}

// A slot found held: XDP leaves it (the request gets no state), TC leaves
// its datagram unread and the rest of that reply is given up, since it
// cannot know where in a value the next datagram starts.
func TestReplySlotHeld(t *testing.T) {
	small := asciiItem("small", 0, []byte("s"), nil)
	for _, tc := range []struct {
		name string
		next []byte // the reply's datagram after the one TC could not read
	}{
		{"an item", append(small, "END\r\n"...)},
		{"value bytes that look like an item", append(asciiItem("small", 0, []byte("FAKE"), nil), "END\r\n"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			f, id := v4flow(), uint16(30000)
			h.getMiss(f, id, "get", "big", "small")
			before := h.slot(f, id)
			h.setSlotLock(f, id, 1)
			g, gid := collision(t, f, id, true)
			if n := h.statDelta(StatFillSlotBusy, func() { h.getMiss(g, gid, "get", "other") }); n != 1 {
				t.Fatalf("a request whose slot is held: fill_slot_busy +%d, want 1", n)
			}
			if after := h.slot(f, id); after.Key != before.Key || after.Rs != before.Rs {
				t.Fatalf("a held slot was written: %+v, was %+v", after, before)
			}
			if n := h.statDelta(StatFills, func() {
				h.tc(f.udpToClient(t, frameSeq(id, 0, 1, asciiItem("big", 0, bytes.Repeat([]byte("b"), 2000), nil)[:1000])))
			}); n != 0 {
				t.Fatalf("a datagram of a held slot's reply filled %d entries", n)
			}
			if sl := h.slot(f, id); sl.Missed != 1 {
				t.Fatalf("missed datagram not noted: %+v", sl)
			}
			h.setSlotLock(f, id, 0)
			if n := h.statDelta(StatFills, func() { h.tc(f.udpToClient(t, frameSeq(id, 0, 1, tc.next))) }); n != 0 {
				t.Fatalf("the reply after a missed datagram filled %d entries", n)
			}
			h.expectMiss(f, "small")
			if sl := h.slot(f, id); sl.Lock != 0 || sl.Missed != 0 {
				t.Fatalf("slot left %+v", sl)
			}
		})
	}
}
