package bpf

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// binReq builds a binary-protocol request.
func binReq(op byte, key string, extras, value []byte, opaque uint32) []byte {
	h := make([]byte, 24)
	h[0] = 0x80
	h[1] = op
	binary.BigEndian.PutUint16(h[2:], uint16(len(key)))
	h[4] = byte(len(extras))
	binary.BigEndian.PutUint32(h[8:], uint32(len(extras)+len(key)+len(value)))
	binary.BigEndian.PutUint32(h[12:], opaque)
	b := append(h, extras...)
	b = append(b, key...)
	return append(b, value...)
}

// binResp builds memcached's response to a GET-family request.
func binResp(op byte, key string, flags uint32, value []byte, opaque uint32, cas uint64) []byte {
	h := make([]byte, 24)
	h[0] = 0x81
	h[1] = op
	binary.BigEndian.PutUint16(h[2:], uint16(len(key)))
	h[4] = 4
	binary.BigEndian.PutUint32(h[8:], uint32(4+len(key)+len(value)))
	binary.BigEndian.PutUint32(h[12:], opaque)
	binary.BigEndian.PutUint64(h[16:], cas)
	var fl [4]byte
	binary.BigEndian.PutUint32(fl[:], flags)
	b := append(h, fl[:]...)
	b = append(b, key...)
	return append(b, value...)
}

func TestBinaryGetFamily(t *testing.T) {
	const (
		get   = 0x00
		getq  = 0x09
		getk  = 0x0c
		getkq = 0x0d
	)
	for _, fillOp := range []byte{get, getk} {
		for _, op := range []byte{get, getq, getk, getkq} {
			h := newHarness(t, nil)
			f := v6flow()
			key, value, flags, cas := "bin:key", []byte("binary\r\nvalue\x00"), uint32(0xdeadbeef), uint64(987654321)

			// Miss: the request goes to memcached; its response fills the cache.
			id, opaque := h.nextID(), uint32(0x01020304)
			if ret, _ := h.xdp(f.udpToServer(t, frame(id, binReq(fillOp, key, nil, nil, opaque)))); ret != xdpPass {
				t.Fatalf("miss: got %d", ret)
			}
			respKey := ""
			if fillOp == getk {
				respKey = key
			}
			if n := h.statDelta(StatFills, func() { h.tc(f.udpToClient(t, frame(id, binResp(fillOp, respKey, flags, value, opaque, cas)))) }); n != 1 {
				t.Fatalf("fill via op %#x: %d fills", fillOp, n)
			}

			// Hit: the reply matches the request's opcode and opaque.
			id, opaque = h.nextID(), 0xa0b0c0d0
			ret, out := h.xdp(f.udpToServer(t, frame(id, binReq(op, key, nil, nil, opaque))))
			if ret != xdpTX {
				t.Fatalf("op %#x after fill by %#x: want TX, got %d", op, fillOp, ret)
			}
			r := decodeReply(t, f, out)
			wantKey := ""
			if op == getk || op == getkq {
				wantKey = key
			}
			want := binResp(op, wantKey, flags, value, opaque, cas)
			if got := r.payload[8:]; !bytes.Equal(got, want) {
				t.Errorf("op %#x reply\n got %x\nwant %x", op, got, want)
			}
		}
	}
}

func TestBinaryFillNeedsMatchingTicket(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	id := h.nextID()
	h.xdp(f.udpToServer(t, frame(id, binReq(0x00, "k", nil, nil, 1))))
	// Wrong opaque: not the request we passed.
	if n := h.statDelta(StatFillNoTicket, func() { h.tc(f.udpToClient(t, frame(id, binResp(0x00, "", 0, []byte("v"), 2, 1)))) }); n != 1 {
		t.Errorf("reply with a foreign opaque: fill_no_ticket +%d", n)
	}
	// GETK reply naming another key than asked: refused.
	if n := h.statDelta(StatFills, func() { h.tc(f.udpToClient(t, frame(id, binResp(0x0c, "other", 0, []byte("v"), 1, 1)))) }); n != 0 {
		t.Errorf("GETK reply for another key filled")
	}
	h.expectMiss(f, "k")
}

// TestBinaryTicketNamesTheKey: GET/GETQ replies carry no key. Two requests
// for different keys with one request id and opaque from one socket must not
// let the reply to one fill the other's bucket (issue 13, defect 2).
func TestBinaryTicketNamesTheKey(t *testing.T) {
	const (
		get  = 0x00
		getq = 0x09
		getk = 0x0c
	)
	for _, op := range []byte{get, getq} {
		h := newHarness(t, nil)
		f := v4flow()
		id, opaque := h.nextID(), uint32(7)
		h.xdp(f.udpToServer(t, frame(id, binReq(op, "k1", nil, nil, opaque))))
		h.xdp(f.udpToServer(t, frame(id, binReq(op, "k2", nil, nil, opaque))))
		// memcached answers k1 first: it could be the answer to either.
		fills := h.statDelta(StatFills, func() { h.tc(f.udpToClient(t, frame(id, binResp(op, "", 0, []byte("V1"), opaque, 1)))) })
		fills += h.statDelta(StatFills, func() { h.tc(f.udpToClient(t, frame(id, binResp(op, "", 0, []byte("V2"), opaque, 2)))) })
		if fills != 0 {
			t.Fatalf("op %#x: replies to two requests for different keys with one id and opaque filled %d entries", op, fills)
		}
		if h.stats().Get(StatFillAmbiguous) != 2 {
			t.Errorf("op %#x: fill_ambiguous %d, want 2", op, h.stats().Get(StatFillAmbiguous))
		}
		h.expectMiss(f, "k1")
		h.expectMiss(f, "k2")
		// Every request counted was answered: the same id and opaque fill again.
		h.xdp(f.udpToServer(t, frame(id, binReq(op, "k3", nil, nil, opaque))))
		if n := h.statDelta(StatFills, func() { h.tc(f.udpToClient(t, frame(id, binResp(op, "", 0, []byte("V3"), opaque, 3)))) }); n != 1 {
			t.Fatalf("op %#x: a fresh request after both replies: %d fills", op, n)
		}
		if got := string(h.getHit(f, "get", "k3")); got != "VALUE k3 0 2\r\nV3\r\nEND\r\n" {
			t.Fatalf("op %#x: k3 served %q", op, got)
		}
	}

	// A miss reply (status 1) answers a request too.
	h := newHarness(t, nil)
	f := v4flow()
	id := h.nextID()
	h.xdp(f.udpToServer(t, frame(id, binReq(get, "a", nil, nil, 1))))
	h.xdp(f.udpToServer(t, frame(id, binReq(get, "b", nil, nil, 1))))
	notFound := binResp(get, "", 0, []byte("Not found"), 1, 0)
	notFound[4] = 0 // no extras
	notFound[7] = 1 // KEY_ENOENT
	h.tc(f.udpToClient(t, frame(id, notFound)))
	if n := h.statDelta(StatFills, func() { h.tc(f.udpToClient(t, frame(id, binResp(get, "", 0, []byte("B"), 1, 1)))) }); n != 0 {
		t.Fatalf("the second reply filled %d entries: it may answer either request", n)
	}

	// GETK replies name their key: each fills its own bucket.
	h = newHarness(t, nil)
	id = h.nextID()
	h.xdp(f.udpToServer(t, frame(id, binReq(getk, "k1", nil, nil, 9))))
	h.xdp(f.udpToServer(t, frame(id, binReq(getk, "k2", nil, nil, 9))))
	for _, kv := range [][2]string{{"k1", "V1"}, {"k2", "V2"}} {
		if n := h.statDelta(StatFills, func() { h.tc(f.udpToClient(t, frame(id, binResp(getk, kv[0], 0, []byte(kv[1]), 9, 1)))) }); n != 1 {
			t.Fatalf("GETK reply for %s: %d fills", kv[0], n)
		}
		if got, want := string(h.getHit(f, "get", kv[0])), "VALUE "+kv[0]+" 0 2\r\n"+kv[1]+"\r\nEND\r\n"; got != want {
			t.Fatalf("%s served %q, want %q", kv[0], got, want)
		}
	}
}
