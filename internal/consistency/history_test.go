package consistency

import (
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := func(v string, s, e int) Op {
		return Op{Kind: Write, Key: "k", Value: v, Start: at(s), End: at(e), Client: "w"}
	}
	rd := func(v string, s int) Op {
		return Op{Kind: Read, Key: "k", Value: v, Found: v != "", Start: at(s), End: at(s + 1)}
	}
	for _, tc := range []struct {
		name                     string
		ops                      []Op
		stale, invented, expired int
	}{
		{"fresh", []Op{w("a", 0, 1), w("b", 2, 3), rd("b", 5)}, 0, 0, 0},
		{"stale", []Op{w("a", 0, 1), w("b", 2, 3), rd("a", 5)}, 1, 0, 0},
		{"concurrent write may be either", []Op{w("a", 0, 1), w("b", 2, 10), rd("a", 5)}, 0, 0, 0},
		{"overlapping writes: either order", []Op{w("a", 0, 5), w("b", 2, 6), rd("a", 8)}, 0, 0, 0},
		{"invented", []Op{w("a", 0, 1), rd("zzz", 5)}, 0, 1, 0},
		{"value of another key", []Op{w("a", 0, 1), {Kind: Write, Key: "x", Value: "q", Start: at(0), End: at(1)}, rd("q", 5)}, 0, 1, 0},
		{"after delete", []Op{w("a", 0, 1), {Kind: Delete, Key: "k", Start: at(2), End: at(3)}, rd("a", 5)}, 1, 0, 0},
		{"after flush", []Op{w("a", 0, 1), {Kind: Flush, Start: at(2), End: at(3)}, rd("a", 5)}, 1, 0, 0},
		{"flush overlapping the write", []Op{w("a", 0, 2), {Kind: Flush, Start: at(1), End: at(3)}, rd("a", 5)}, 0, 0, 0},
		{"superseded, though a slower overlapping write was acknowledged last",
			[]Op{w("a", 0, 1), w("b", 2, 3), w("c", 0, 4), rd("a", 5)}, 1, 0, 0},
		{"read sent before the superseding write's ack", []Op{w("a", 0, 1), w("b", 2, 6), rd("a", 5)}, 0, 0, 0},
		{"noreply value is never stale", []Op{{Kind: Write, Key: "k", Value: "a", Start: at(0)}, w("b", 2, 3), rd("a", 5)}, 0, 0, 0},
		{"miss is fine", []Op{w("a", 0, 1), rd("", 5)}, 0, 0, 0},
		{"noreply write is never 'last'", []Op{w("a", 0, 1), {Kind: Write, Key: "k", Value: "b", Start: at(2)}, rd("a", 5)}, 0, 0, 0},
		{"expired", []Op{{Kind: Write, Key: "k", Value: "e", Exptime: time.Second, Start: at(0), End: at(1)}, rd("e", 3000)}, 0, 0, 1},
		{"not yet expired", []Op{{Kind: Write, Key: "k", Value: "e", Exptime: time.Second, Start: at(0), End: at(1)}, rd("e", 2000)}, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h History
			for _, op := range tc.ops {
				h.Add(op)
			}
			r := h.Check()
			for _, v := range r.Violations {
				if v.Reason == "stale value" && (v.Wrote == nil || v.Later == nil || len(v.Around) == 0) {
					t.Errorf("stale read reported without its writes: %v", v)
				}
			}
			if r.Stale != tc.stale || r.Invented != tc.invented || r.Expired != tc.expired {
				t.Errorf("got stale %d invented %d expired %d; want %d %d %d\n%v", r.Stale, r.Invented, r.Expired,
					tc.stale, tc.invented, tc.expired, r.Violations)
			}
		})
	}
}
