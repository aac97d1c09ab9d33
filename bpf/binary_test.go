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
