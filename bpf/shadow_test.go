package bpf

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// shadowHarness is a harness in shadow mode.
func shadowHarness(t *testing.T) *harness {
	return newHarness(t, func(s *Settings) { s.Shadow = true })
}

// shadowGet sends a GET the cache would answer: it must pass to memcached
// unchanged and count as a would-be hit.
func (h *harness) shadowGet(f flow, id uint16, cmd string, keys ...string) {
	h.t.Helper()
	before := h.stats()
	h.getMiss(f, id, cmd, keys...)
	after := h.stats()
	if d := after.Get(StatShadowHits) - before.Get(StatShadowHits); d != 1 {
		h.t.Fatalf("%s %v: shadow_hits grew by %d, want 1; stats %v", cmd, keys, d, after.Named())
	}
	if d := after.Get(StatShadowHitKeys) - before.Get(StatShadowHitKeys); d != uint64(len(keys)) {
		h.t.Fatalf("%s %v: shadow_hit_keys grew by %d, want %d", cmd, keys, d, len(keys))
	}
	if d := after.Get(StatHits) - before.Get(StatHits); d != 0 {
		h.t.Fatalf("shadow mode answered %d requests", d)
	}
}

func (h *harness) shadowMismatches() []ShadowMismatch {
	h.t.Helper()
	m, err := h.c.ShadowMismatches()
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

func TestShadowASCII(t *testing.T) {
	cas := uint64(77)
	otherCAS := uint64(78)
	for _, tc := range []struct {
		name   string
		cmd    string
		reply  []byte // memcached's reply to "cmd foo"
		reason ShadowReason
	}{
		{"same", "get", asciiItem("foo", 5, []byte("value"), nil), 0},
		{"same-gets", "gets", asciiItem("foo", 5, []byte("value"), &cas), 0},
		{"value", "get", asciiItem("foo", 5, []byte("valuE"), nil), ShadowValue},
		{"length", "get", asciiItem("foo", 5, []byte("value!"), nil), ShadowValue},
		{"flags", "get", asciiItem("foo", 6, []byte("value"), nil), ShadowFlags},
		{"cas", "gets", asciiItem("foo", 5, []byte("value"), &otherCAS), ShadowCAS},
		{"absent", "get", nil, ShadowAbsent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := shadowHarness(t)
			f := v4flow()
			h.fillASCII(f, "foo", 5, []byte("value"), &cas) // the fill path works in shadow mode
			id := h.nextID()
			h.shadowGet(f, id, tc.cmd, "foo")
			before := h.stats()
			h.tc(f.udpToClient(t, frame(id, append(tc.reply, "END\r\n"...))))
			after := h.stats()
			matched := after.Get(StatShadowMatched) - before.Get(StatShadowMatched)
			mism := after.Shadow().Mismatches - before.Shadow().Mismatches
			log := h.shadowMismatches()
			if tc.reason == 0 {
				if matched != 1 || mism != 0 || len(log) != 0 {
					t.Fatalf("matched %d, mismatches %d (log %v), want 1 and 0", matched, mism, log)
				}
				return
			}
			if matched != 0 || mism != 1 {
				t.Fatalf("matched %d, mismatches %d, want 0 and 1; stats %v", matched, mism, after.Named())
			}
			if len(log) != 1 || log[0].Reason != tc.reason || log[0].KeyHash != shadowHash("foo") {
				t.Fatalf("mismatch log %+v, want one %q for foo's hash %#x", log, tc.reason, shadowHash("foo"))
			}
			// the same reply again is no new comparison: the digest was used
			h.tc(f.udpToClient(t, frame(id, append(tc.reply, "END\r\n"...))))
			if again := h.stats().Shadow().Mismatches - after.Shadow().Mismatches; again != 0 {
				t.Errorf("a repeated reply counted %d more mismatches", again)
			}
		})
	}
}

func TestShadowMultiGetPerKey(t *testing.T) {
	h := shadowHarness(t)
	f := v4flow()
	for _, k := range []string{"a", "b", "c"} {
		h.fillASCII(f, k, 1, []byte("v-"+k), nil)
	}
	id := h.nextID()
	h.shadowGet(f, id, "get", "a", "b", "c")
	// memcached: a as cached, b changed, c gone; split over two datagrams
	// as memcached 1.6 may send it
	before := h.stats()
	h.tc(f.udpToClient(t, frame(id, asciiItem("a", 1, []byte("v-a"), nil))))
	h.tc(f.udpToClient(t, frame(id, append(asciiItem("b", 1, []byte("v-B"), nil), "END\r\n"...))))
	after := h.stats()
	if d := after.Get(StatShadowMatched) - before.Get(StatShadowMatched); d != 1 {
		t.Errorf("matched %d keys, want 1 (a)", d)
	}
	for _, r := range []struct {
		id   Stat
		want uint64
	}{{StatShadowMismatchVal, 1}, {StatShadowMismatchAbs, 1}, {StatShadowMismatchFlg, 0}, {StatShadowMismatchCAS, 0}} {
		if d := after.Get(r.id) - before.Get(r.id); d != r.want {
			t.Errorf("%s grew by %d, want %d", StatName(r.id), d, r.want)
		}
	}
	got := map[uint64]ShadowReason{}
	for _, m := range h.shadowMismatches() {
		got[m.KeyHash] = m.Reason
	}
	want := map[uint64]ShadowReason{shadowHash("b"): ShadowValue, shadowHash("c"): ShadowAbsent}
	if len(got) != len(want) || got[shadowHash("b")] != ShadowValue || got[shadowHash("c")] != ShadowAbsent {
		t.Errorf("mismatch log %v, want %v", got, want)
	}
	// memcached's reply filled b anew: the next shadow GET of b matches
	id = h.nextID()
	h.shadowGet(f, id, "get", "b")
	if d := h.statDelta(StatShadowMatched, func() {
		h.tc(f.udpToClient(t, frame(id, append(asciiItem("b", 1, []byte("v-B"), nil), "END\r\n"...))))
	}); d != 1 {
		t.Errorf("after memcached's reply refilled b: matched %d, want 1", d)
	}
}

// binMiss is memcached's "not found" response to a binary GET-family
// request (proto_bin.c write_bin_miss_response): GETK's echoes the key,
// GET's carries the error text.
func binMiss(op byte, key string, opaque uint32) []byte {
	b := make([]byte, 24)
	b[0], b[1] = 0x81, op
	binary.BigEndian.PutUint16(b[2:], uint16(len(key)))
	binary.BigEndian.PutUint16(b[6:], 1) // KEY_ENOENT
	body := key
	if key == "" {
		body = "Not found"
	}
	binary.BigEndian.PutUint32(b[8:], uint32(len(body)))
	binary.BigEndian.PutUint32(b[12:], opaque)
	return append(b, body...)
}

func TestShadowBinary(t *testing.T) {
	const (
		get  = 0x00
		getk = 0x0c
	)
	key, value, flags, cas := "bin:key", []byte("binary value"), uint32(0xbeef), uint64(4242)
	for _, op := range []byte{get, getk} {
		respKey := ""
		if op == getk {
			respKey = key
		}
		for _, tc := range []struct {
			name   string
			resp   func(opaque uint32) []byte
			reason ShadowReason
		}{
			{"same", func(o uint32) []byte { return binResp(op, respKey, flags, value, o, cas) }, 0},
			{"value", func(o uint32) []byte { return binResp(op, respKey, flags, []byte("binary valuE"), o, cas) }, ShadowValue},
			{"flags", func(o uint32) []byte { return binResp(op, respKey, flags+1, value, o, cas) }, ShadowFlags},
			{"cas", func(o uint32) []byte { return binResp(op, respKey, flags, value, o, cas+1) }, ShadowCAS},
			{"absent", func(o uint32) []byte { return binMiss(op, respKey, o) }, ShadowAbsent},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := shadowHarness(t)
				f := v6flow()
				id, opaque := h.nextID(), uint32(0x0a0b0c0d)
				h.xdp(f.udpToServer(t, frame(id, binReq(op, key, nil, nil, opaque))))
				if n := h.statDelta(StatFills, func() { h.tc(f.udpToClient(t, frame(id, binResp(op, respKey, flags, value, opaque, cas)))) }); n != 1 {
					t.Fatalf("fill: %d fills", n)
				}
				id, opaque = h.nextID(), 0x11223344
				pkt := f.udpToServer(t, frame(id, binReq(op, key, nil, nil, opaque)))
				var ret uint32
				if d := h.statDelta(StatShadowHits, func() { ret, _ = h.xdp(pkt) }); d != 1 || ret != xdpPass {
					t.Fatalf("shadow hit: XDP returned %d, shadow_hits grew by %d; want XDP_PASS and 1", ret, d)
				}
				before := h.stats()
				h.tc(f.udpToClient(t, frame(id, tc.resp(opaque))))
				after := h.stats()
				matched := after.Get(StatShadowMatched) - before.Get(StatShadowMatched)
				mism := after.Shadow().Mismatches - before.Shadow().Mismatches
				wantMatched, wantMism := uint64(1), uint64(0)
				if tc.reason != 0 {
					wantMatched, wantMism = 0, 1
				}
				if matched != wantMatched || mism != wantMism {
					t.Fatalf("matched %d, mismatches %d; want %d, %d; stats %v", matched, mism, wantMatched, wantMism, after.Named())
				}
				if log := h.shadowMismatches(); tc.reason != 0 && (len(log) != 1 || log[0].Reason != tc.reason || log[0].KeyHash != shadowHash(key)) {
					t.Fatalf("mismatch log %+v, want one %q", log, tc.reason)
				}
			})
		}
	}
}

// Going live is a config change: the cache filled in shadow mode answers at
// once, and back in shadow mode it is still there.
func TestShadowGoLiveKeepsCache(t *testing.T) {
	h := shadowHarness(t)
	f := v4flow()
	h.fillASCII(f, "foo", 3, []byte("kept"), nil)
	h.shadowGet(f, h.nextID(), "get", "foo")
	set, _, err := h.c.Config()
	if err != nil {
		t.Fatal(err)
	}
	if !set.Shadow {
		t.Fatal("config does not read back shadow mode")
	}
	for _, shadow := range []bool{false, true, false} {
		set.Shadow = shadow
		if err := h.c.Configure(set); err != nil {
			t.Fatal(err)
		}
		if shadow {
			h.shadowGet(f, h.nextID(), "get", "foo")
			continue
		}
		want := append(asciiItem("foo", 3, []byte("kept"), nil), "END\r\n"...)
		if got := h.getHit(f, "get", "foo"); !bytes.Equal(got, want) {
			t.Fatalf("live after shadow: reply %q, want %q", got, want)
		}
	}
}

// Only requests the cache would have answered are compared: a miss, or a
// multi-get with one key missing, records nothing, and memcached's reply to
// it is neither a match nor a mismatch.
func TestShadowOnlyWouldBeAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		keys  []string
		reply []byte
	}{
		{"miss", []string{"absent"}, asciiItem("absent", 0, []byte("x"), nil)},
		{"partial-multi-get", []string{"cached", "absent"}, append(asciiItem("cached", 0, []byte("other"), nil), asciiItem("absent", 0, []byte("x"), nil)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := shadowHarness(t)
			f := v4flow()
			h.fillASCII(f, "cached", 0, []byte("v"), nil)
			id := h.nextID()
			before := h.stats()
			h.getMiss(f, id, "get", tc.keys...)
			h.tc(f.udpToClient(t, frame(id, append(tc.reply, "END\r\n"...))))
			after := h.stats()
			for _, s := range []Stat{StatShadowHits, StatShadowHitKeys, StatShadowMatched} {
				if d := after.Get(s) - before.Get(s); d != 0 {
					t.Errorf("%s grew by %d", StatName(s), d)
				}
			}
			if d := after.Shadow().Mismatches - before.Shadow().Mismatches; d != 0 {
				t.Errorf("%d mismatches for a request the cache would not have answered", d)
			}
		})
	}
}

// shadowHash is key's hash in the harness's memcached instance (its
// server port), as mismatch records keep it.
func shadowHash(key string) uint64 {
	return KeyHash([]byte(key), InstanceSeed(0x5eed, uint32(v4flow().sport)))
}
