package bpf

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// oneSet makes the cache a single 2-way set: every key shares it.
func oneSet(s *Settings) { s.Entries = CacheWays }

// waysOf are the ways of its set holding key servable (harness instance).
func (h *harness) waysOf(key string) []int {
	h.t.Helper()
	p, err := h.c.FindKey([]byte(key), uint32(v4flow().sport))
	if err != nil {
		h.t.Fatal(err)
	}
	return p.Ways
}

func (h *harness) wantWays(key string, want ...int) {
	h.t.Helper()
	if got := h.waysOf(key); !slices.Equal(got, want) {
		h.t.Errorf("%q is in ways %v, want %v", key, got, want)
	}
}

func TestSettingsValidateEntries(t *testing.T) {
	for _, tc := range []struct {
		entries uint32
		ok      bool
	}{
		{0, false}, {1, false}, {3, false}, {6, false}, {1<<24 + 1, false}, {1 << 25, false},
		{2, true}, {4, true}, {1024, true}, {1 << 24, true},
	} {
		s := DefaultSettings()
		s.Entries = tc.entries
		err := s.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("entries %d: Validate() = %v, want ok %v", tc.entries, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "power of two") {
			t.Errorf("entries %d: error %q does not say what is wanted", tc.entries, err)
		}
	}
}

// TestSetServesBothWays: two keys of one set are both cached, one per way,
// and every kind of GET finds the one in way 1 as well as the one in way 0.
func TestSetServesBothWays(t *testing.T) {
	cas1, cas2 := uint64(11), uint64(22)
	for _, tc := range []struct {
		name string
		req  func(f flow, id uint16) []byte
		want []byte // the reply after the frame header
		way1 uint64 // keys found in way 1 (hit_way1)
	}{
		{"get way 0", func(f flow, id uint16) []byte { return frame(id, getLine("get", "a")) },
			append(asciiItem("a", 1, []byte("va"), nil), "END\r\n"...), 0},
		{"get way 1", func(f flow, id uint16) []byte { return frame(id, getLine("get", "b")) },
			append(asciiItem("b", 2, []byte("vb"), nil), "END\r\n"...), 1},
		{"gets way 1", func(f flow, id uint16) []byte { return frame(id, getLine("gets", "b")) },
			append(asciiItem("b", 2, []byte("vb"), &cas2), "END\r\n"...), 1},
		{"get both ways", func(f flow, id uint16) []byte { return frame(id, getLine("get", "b", "a")) },
			append(append(asciiItem("b", 2, []byte("vb"), nil), asciiItem("a", 1, []byte("va"), nil)...), "END\r\n"...), 1},
		{"binary getk way 1", func(f flow, id uint16) []byte { return frame(id, binReq(0x0c, "b", nil, nil, 5)) },
			binResp(0x0c, "b", 2, []byte("vb"), 5, cas2), 1},
		{"binary get way 0", func(f flow, id uint16) []byte { return frame(id, binReq(0x00, "a", nil, nil, 6)) },
			binResp(0x00, "", 1, []byte("va"), 6, cas1), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, oneSet)
			f := v4flow()
			h.fillASCII(f, "a", 1, []byte("va"), &cas1)
			h.fillASCII(f, "b", 2, []byte("vb"), &cas2)
			h.wantWays("a", 0)
			h.wantWays("b", 1)
			before := h.stats().Get(StatHitWay1)
			ret, out := h.xdp(f.udpToServer(t, tc.req(f, h.nextID())))
			if ret != xdpTX {
				t.Fatalf("want a hit (XDP_TX), got %d; stats %v", ret, h.stats().Named())
			}
			if got := decodeReply(t, f, out).payload[8:]; !bytes.Equal(got, tc.want) {
				t.Errorf("reply\n got %q\nwant %q", got, tc.want)
			}
			if got := h.stats().Get(StatHitWay1) - before; got != tc.way1 {
				t.Errorf("hit_way1 +%d, want +%d", got, tc.way1)
			}
		})
	}
}

// TestSetReplacesOlderFill: a third key of a full set replaces the way
// filled longer ago; a refill of a cached key (a gets of an entry filled
// without CAS misses) replaces its own way.
func TestSetReplacesOlderFill(t *testing.T) {
	h := newHarness(t, oneSet)
	f := v4flow()
	for i, step := range []struct {
		fill   string
		gets   bool           // filled from a gets (with a CAS)
		cached map[string]int // key -> its way; keys not named are not cached
		evicts uint64         // another key's live entry replaced (evictions)
	}{
		{"a", false, map[string]int{"a": 0}, 0},
		{"b", false, map[string]int{"a": 0, "b": 1}, 0},
		{"c", false, map[string]int{"c": 0, "b": 1}, 1}, // a was the older fill
		{"d", false, map[string]int{"c": 0, "d": 1}, 1}, // now b was
		{"c", true, map[string]int{"c": 0, "d": 1}, 0},  // c's own way, not d's
		{"e", false, map[string]int{"e": 1, "c": 0}, 1}, // d was filled before c's refill
	} {
		var cas *uint64
		if step.gets {
			cas = new(uint64)
			*cas = 77
		}
		before := h.stats().Get(StatEvictions)
		h.fillASCII(f, step.fill, 0, []byte("v-"+step.fill), cas)
		t.Logf("step %d: filled %s", i, step.fill)
		if got := h.stats().Get(StatEvictions) - before; got != step.evicts {
			t.Errorf("filling %s: evictions +%d, want +%d", step.fill, got, step.evicts)
		}
		for _, k := range []string{"a", "b", "c", "d", "e"} {
			if w, ok := step.cached[k]; ok {
				h.wantWays(k, w)
				if got := h.getHit(f, "get", k); !bytes.HasPrefix(got, asciiItem(k, 0, []byte("v-"+k), nil)) {
					t.Errorf("after filling %s: get %s = %q", step.fill, k, got)
				}
			} else {
				h.wantWays(k)
				h.expectMiss(f, k)
			}
		}
	}
}

// setMutation is one way a write of key reaches XDP.
type setMutation struct {
	name   string
	mutate func(h *harness, writer flow, key string)
}

func setMutations() []setMutation {
	seq := uint32(1000)
	tcp := func(h *harness, w flow, payload []byte) {
		seq += 1000
		h.tcp(w, seq, payload)
	}
	udp := func(h *harness, w flow, payload []byte) { h.xdp(w.udpToServer(h.t, frame(h.nextID(), payload))) }
	setExtras := make([]byte, 8)
	return []setMutation{
		{"ascii set over tcp", func(h *harness, w flow, k string) { tcp(h, w, []byte("set "+k+" 0 0 1\r\nx\r\n")) }},
		{"ascii set over udp", func(h *harness, w flow, k string) { udp(h, w, []byte("set "+k+" 0 0 1\r\nx\r\n")) }},
		{"delete over udp", func(h *harness, w flow, k string) { udp(h, w, []byte("delete "+k+"\r\n")) }},
		{"delete over tcp", func(h *harness, w flow, k string) { tcp(h, w, []byte("delete "+k+"\r\n")) }},
		{"binary set over udp", func(h *harness, w flow, k string) { udp(h, w, binReq(0x01, k, setExtras, []byte("x"), 3)) }},
		{"binary delete over tcp", func(h *harness, w flow, k string) { tcp(h, w, binReq(0x04, k, nil, nil, 4)) }},
	}
}

// TestSetInvalidation: a write of a key drops it from whichever way holds
// it and refuses a fill of it in flight into either way, and leaves the
// other key of the set cached.
func TestSetInvalidation(t *testing.T) {
	for _, m := range setMutations() {
		t.Run(m.name, func(t *testing.T) {
			reader, writer := v4flow(), v4flow()
			writer.cport += 7
			t.Run("drops way 1, keeps way 0", func(t *testing.T) {
				h := newHarness(t, oneSet)
				h.fillASCII(reader, "a", 0, []byte("va"), nil)
				h.fillASCII(reader, "b", 0, []byte("vb"), nil)
				m.mutate(h, writer, "b")
				h.wantWays("b")
				h.expectMiss(reader, "b")
				h.getHit(reader, "get", "a")
				// and the other way round: b refilled (into the way it left)
				h.fillASCII(reader, "b", 0, []byte("vb2"), nil)
				h.wantWays("b", 1)
				writer.cport++
				m.mutate(h, writer, "a")
				h.wantWays("a")
				h.expectMiss(reader, "a")
				h.getHit(reader, "get", "b")
			})
			for _, tc := range []struct {
				name  string
				first string // a key filled before (into way 0), "": none
				way   int    // the way b's fill would take
			}{
				{"refuses a fill in flight into way 0", "", 0},
				{"refuses a fill in flight into way 1", "a", 1},
			} {
				t.Run(tc.name, func(t *testing.T) {
					h := newHarness(t, oneSet)
					if tc.first != "" {
						h.fillASCII(reader, tc.first, 0, []byte("v"), nil)
					}
					id := h.nextID()
					h.getMiss(reader, id, "get", "b")
					m.mutate(h, writer, "b")
					body := append(asciiItem("b", 0, []byte("old"), nil), "END\r\n"...)
					if n := h.statDelta(StatFillStale, func() { h.tc(reader.udpToClient(t, frame(id, body))) }); n != 1 {
						t.Fatalf("fill_stale +%d, want 1; stats %v", n, h.stats().Named())
					}
					h.wantWays("b")
					h.expectMiss(reader, "b")
					if tc.first != "" {
						h.getHit(reader, "get", tc.first)
					}
					// a fill after the write takes the way it would have
					h.fillASCII(reader, "b", 0, []byte("new"), nil)
					h.wantWays("b", tc.way)
				})
			}
		})
	}
}

// TestSetFlushDropsBothWays: flush_all empties both ways.
func TestSetFlushDropsBothWays(t *testing.T) {
	h := newHarness(t, oneSet)
	f := v4flow()
	h.fillASCII(f, "a", 0, []byte("va"), nil)
	h.fillASCII(f, "b", 0, []byte("vb"), nil)
	h.tcp(f, 5, []byte("flush_all\r\n"))
	for _, k := range []string{"a", "b"} {
		h.wantWays(k)
		h.expectMiss(f, k)
	}
	// a flushed way is free: two fills take both ways again, and replacing
	// a flushed entry evicts nothing
	h.fillASCII(f, "c", 0, []byte("vc"), nil)
	h.fillASCII(f, "d", 0, []byte("vd"), nil)
	h.wantWays("c", 0)
	h.wantWays("d", 1)
	if n := h.stats().Get(StatEvictions); n != 0 {
		t.Errorf("evictions %d after refilling a flushed set, want 0", n)
	}
}

// TestSetExpiryPerWay: an entry expires in its own way, the other key of
// the set stays, and the expired way is the one the next fill takes.
func TestSetExpiryPerWay(t *testing.T) {
	for _, tc := range []struct {
		name      string
		short     string // the key set with a 2 s exptime (expires 1 s early)
		shortWay  int
		longKey   string
		longWay   int
		freshFill string
	}{
		{"way 0 expires", "a", 0, "b", 1, "c"},
		{"way 1 expires", "b", 1, "a", 0, "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, oneSet)
			f, w := v4flow(), v4flow()
			w.cport += 3
			h.tcp(w, 1, []byte("set "+tc.short+" 0 2 1\r\nx\r\n"))
			h.fillASCII(f, "a", 0, []byte("x"), nil)
			h.fillASCII(f, "b", 0, []byte("x"), nil)
			h.wantWays(tc.short, tc.shortWay)
			h.wantWays(tc.longKey, tc.longWay)
			time.Sleep(1100 * time.Millisecond)
			if n := h.statDelta(StatMissExpired, func() { h.expectMiss(f, tc.short) }); n != 1 {
				t.Errorf("miss_expired +%d, want 1", n)
			}
			h.getHit(f, "get", tc.longKey)
			h.fillASCII(f, tc.freshFill, 0, []byte("x"), nil)
			h.wantWays(tc.freshFill, tc.shortWay)
			h.getHit(f, "get", tc.longKey)
		})
	}
}

// TestSetConcurrentFillAndInvalidateWay1: fills of k into way 1 (way 0
// holds a) race deletes of k on another CPU: a hit right after a fill
// serves that fill's value whole, after the last delete k is gone from both
// ways, and a is served throughout.
func TestSetConcurrentFillAndInvalidateWay1(t *testing.T) {
	h := newHarness(t, oneSet)
	f, w := v4flow(), v4flow()
	w.cport += 5
	h.fillASCII(f, "a", 0, []byte("va"), nil)
	deletes := make([][]byte, 300)
	for i := range deletes {
		deletes[i] = w.udpToServer(t, frame(uint16(30000+i), []byte("delete k\r\n")))
	}
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for _, pkt := range deletes {
			if _, _, err := runProg(h.c.XDP, pkt); err != nil {
				errc <- err
				return
			}
		}
	}()
	for i := range 300 {
		id := uint16(20000 + i)
		v := []byte(fmt.Sprintf("value-%04d", i))
		h.xdp(f.udpToServer(t, frame(h.nextID(), []byte(fmt.Sprintf("set k 0 0 10\r\n%s\r\n", v)))))
		h.xdp(f.udpToServer(t, frame(id, getLine("get", "k"))))
		h.tc(f.udpToClient(t, frame(id, append(asciiItem("k", 0, v, nil), "END\r\n"...))))
		ret, out := h.xdp(f.udpToServer(t, frame(id, getLine("get", "k"))))
		if ret == xdpTX {
			r := decodeReply(t, f, out)
			var n int
			if _, err := fmt.Sscanf(string(r.payload[8:]), "VALUE k 0 10\r\nvalue-%04d\r\nEND\r\n", &n); err != nil || n != i {
				t.Fatalf("served %q right after fill %d", r.payload[8:], i)
			}
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	h.xdp(w.udpToServer(t, frame(h.nextID(), []byte("delete k\r\n"))))
	h.wantWays("k")
	h.expectMiss(f, "k")
	h.wantWays("a", 0)
	h.getHit(f, "get", "a")
	if n := h.stats().Get(StatFills); n < 2 {
		t.Fatalf("%d fills: k never filled, the race was not exercised", n)
	}
}
