package difftest

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestGenIsSeeded(t *testing.T) {
	for seed := uint64(1); seed < 50; seed++ {
		a, b := NewGen(seed).Stream(), NewGen(seed).Stream()
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: two streams differ", seed)
		}
		if len(a.Events) == 0 || len(a.Keys) < 4 || len(a.Keys) > 8 {
			t.Fatalf("seed %d: %d events, %d keys", seed, len(a.Events), len(a.Keys))
		}
		for _, e := range a.Events {
			if len(e.Data) == 0 || len(e.Data) > MaxSegment {
				t.Fatalf("seed %d: event of %d bytes", seed, len(e.Data))
			}
			if e.Conn == UDP && len(e.Data) <= 8 {
				t.Fatalf("seed %d: datagram without a body", seed)
			}
			if e.Conn != UDP && (e.Conn < 0 || e.Conn >= len(a.Conns)) {
				t.Fatalf("seed %d: event on connection %d of %d", seed, e.Conn, len(a.Conns))
			}
		}
	}
	if reflect.DeepEqual(NewGen(1).Stream(), NewGen(2).Stream()) {
		t.Fatal("seeds 1 and 2 give the same stream")
	}
}

func TestShrinkKeepsTheFailure(t *testing.T) {
	s := NewGen(7).Stream()
	s.Events = append(s.Events, Event{Conn: 0, Data: []byte("xx delete k\r\n yy")}, Event{Conn: 0, Data: []byte("zz")})
	fails := func(c Stream) bool {
		for _, e := range c.Events {
			if e.Conn == 0 && bytes.Contains(e.Data, []byte("delete k\r\n")) {
				return true
			}
		}
		return false
	}
	small := Shrink(s, fails, 2000)
	if !fails(small) {
		t.Fatal("shrunk stream does not fail")
	}
	if len(small.Events) != 1 || string(small.Events[0].Data) != "delete k\r\n" {
		t.Fatalf("not minimal:\n%s", small)
	}
	if len(small.Keys) != 1 {
		t.Errorf("%d keys left", len(small.Keys))
	}
	if g := small.GoString(); !strings.Contains(g, `Data: []byte("delete k\r\n")`) {
		t.Errorf("Go form:\n%s", g)
	}
}
