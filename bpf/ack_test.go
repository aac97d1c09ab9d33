package bpf

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// ackSlots is ACK_SLOTS (c/include/common/consts.h): mutations logged per flow.
const ackSlots = 8

// binStatus is memcached's binary response header (no body) to op.
func binStatus(op byte, opaque uint32) []byte {
	r := binReq(op, "", nil, nil, opaque)
	r[0] = 0x81
	return r
}

// TestAckInvalidates covers race (b) without the write hold (rule A): a GET
// that arrives after a mutation but is answered by memcached before it
// applies the mutation fills the old value; the mutation's acknowledgement
// (or, after a noreply mutation, the flow's next reply) must drop it before
// the client can see that acknowledgement.
func TestAckInvalidates(t *testing.T) {
	set := []byte("set k 0 0 3\r\nnew\r\n")
	for _, tc := range []struct {
		name     string
		mutation []byte // the writer's segment, seen by XDP before memcached applies it
		reply    []byte // memcached's next segment on the writer's connection
		counter  Stat
	}{
		{"set", set, []byte("STORED\r\n"), StatAckInvalidations},
		{"pipelined sets", append(append([]byte("set a 0 0 1\r\nx\r\n"), set...), "delete b\r\n"...),
			[]byte("STORED\r\nSTORED\r\nDELETED\r\n"), StatAckInvalidations},
		{"delete", []byte("delete k\r\n"), []byte("DELETED\r\n"), StatAckInvalidations},
		{"noreply set, then a get", []byte("set k 0 0 3 noreply\r\nnew\r\nget other\r\n"),
			[]byte("END\r\n"), StatAckInvalidations},
		{"binary set", binReq(0x01, "k", make([]byte, 8), []byte("new"), 7), binStatus(0x01, 7), StatAckInvalidations},
		{"binary quiet set, then a noop", append(binReq(0x11, "k", make([]byte, 8), []byte("new"), 7), binReq(0x0a, "", nil, nil, 8)...),
			binStatus(0x0a, 8), StatAckInvalidations},
		{"flush_all", []byte("flush_all\r\n"), []byte("OK\r\n"), StatAckFlushes},
		{"more keys than slots", []byte(manyDeletes(ackSlots + 1)), bytes.Repeat([]byte("NOT_FOUND\r\n"), ackSlots+1), StatAckFlushes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil) // WriteHold 0: only rule A protects
			reader, writer := v4flow(), v4flow()
			writer.cport++
			h.tcp(writer, 1, tc.mutation)
			h.fillASCII(reader, "k", 0, []byte("old"), nil) // memcached answered before applying
			h.getHit(reader, "get", "k")

			if n := h.statDelta(tc.counter, func() { h.tc(writer.tcpToClient(t, 1, tc.reply)) }); n == 0 {
				t.Fatalf("reply on the writer's connection: %s +0; stats %v", StatName(tc.counter), h.stats().Named())
			}
			h.expectMiss(reader, "k")
		})
	}
}

func manyDeletes(n int) string {
	var b bytes.Buffer
	for i := range n {
		b.WriteString("delete k")
		b.WriteByte(byte('a' + i))
		b.WriteString("\r\n")
	}
	return b.String() + "delete k\r\n"
}

// TestAckInvalidatesOnlyTheWritersFlow: replies on other connections, and
// replies after the acknowledgement, leave filled entries alone.
func TestAckInvalidatesOnlyTheWritersFlow(t *testing.T) {
	h := newHarness(t, nil)
	reader, writer, other := v4flow(), v4flow(), v4flow()
	writer.cport++
	other.cport += 2
	h.tcp(writer, 1, []byte("set k 0 0 3\r\nnew\r\n"))
	h.tc(other.tcpToClient(t, 1, []byte("STORED\r\n")))
	h.tc(writer.tcpToClient(t, 1, []byte("STORED\r\n"))) // the acknowledgement
	h.fillASCII(reader, "k", 0, []byte("new"), nil)
	if n := h.statDelta(StatAckInvalidations, func() { h.tc(writer.tcpToClient(t, 9, []byte("END\r\n"))) }); n != 0 {
		t.Errorf("a later reply invalidated %d keys again (the acknowledgement emptied the log)", n)
	}
	h.getHit(reader, "get", "k")
}

// tryFill runs the miss path for key and returns the fills memcached's
// reply made (0 when refused).
func (h *harness) tryFill(f flow, key string, value []byte) uint64 {
	h.t.Helper()
	id := h.nextID()
	h.getMiss(f, id, "get", key)
	body := append(asciiItem(key, 0, value, nil), "END\r\n"...)
	return h.statDelta(StatFills, func() { h.tc(f.udpToClient(h.t, frame(id, body))) })
}

// longHold: a write hold no test outlives, so any fill it refuses is
// refused for the hold, not for its end.
func longHold(s *Settings) { s.WriteHold = time.Hour }

// TestAckUDP: a UDP mutation is logged under (client, port, request id) and
// invalidated again when memcached's acknowledgement of it leaves; it gets
// no write hold, so a GET after the acknowledgement fills at once.
func TestAckUDP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mutation []byte
		reply    []byte
	}{
		{"set", []byte("set k 0 0 3\r\nnew\r\n"), []byte("STORED\r\n")},
		{"replace", []byte("replace k 0 0 3\r\nnew\r\n"), []byte("STORED\r\n")},
		{"append", []byte("append k 0 0 3\r\nnew\r\n"), []byte("STORED\r\n")},
		{"add refused", []byte("add k 0 0 3\r\nnew\r\n"), []byte("NOT_STORED\r\n")},
		{"cas exists", []byte("cas k 0 0 3 77\r\nnew\r\n"), []byte("EXISTS\r\n")},
		{"delete", []byte("delete k\r\n"), []byte("DELETED\r\n")},
		{"delete missing", []byte("delete k\r\n"), []byte("NOT_FOUND\r\n")},
		{"incr", []byte("incr k 5\r\n"), []byte("5\r\n")},
		{"touch", []byte("touch k 10\r\n"), []byte("TOUCHED\r\n")},
		{"binary set", binReq(0x01, "k", make([]byte, 8), []byte("new"), 7), binStatus(0x01, 7)},
		{"binary delete", binReq(0x04, "k", nil, nil, 9), binStatus(0x04, 9)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, longHold)
			reader, writer := v4flow(), v4flow()
			writer.cport++
			id := h.nextID()
			if n := h.statDelta(StatAckExact, func() { h.xdp(writer.udpToServer(t, frame(id, tc.mutation))) }); n != 1 {
				t.Fatalf("ack_exact +%d, want 1; stats %v", n, h.stats().Named())
			}
			// memcached answered a GET before it applied the mutation
			h.fillASCII(reader, "k", 0, []byte("old"), nil)
			h.getHit(reader, "get", "k")
			if n := h.statDelta(StatAckInvalidations, func() { h.tc(writer.udpToClient(t, frame(id, tc.reply))) }); n != 1 {
				t.Fatalf("acknowledgement: ack_invalidations +%d, want 1", n)
			}
			if tc.mutation[0] == 's' || tc.mutation[0] == 'r' { // set, replace: STORED fills with the value
				if got, want := string(h.getHit(reader, "get", "k")), "VALUE k 0 3\r\nnew\r\nEND\r\n"; got != want {
					t.Fatalf("after STORED: %q, want %q", got, want)
				}
				h.getMiss(reader, h.nextID(), "gets", "k") // its CAS is not known
				return
			}
			h.expectMiss(reader, "k")
			// no hold: a GET from now on is answered after the mutation
			if n := h.tryFill(reader, "k", []byte("new")); n != 1 {
				t.Fatalf("fill after the acknowledgement: %d fills; stats %v", n, h.stats().Named())
			}
			// the acknowledgement retired the entry: later replies to the id leave the key alone
			if n := h.statDelta(StatAckInvalidations, func() { h.tc(writer.udpToClient(t, frame(id, tc.reply))) }); n != 0 {
				t.Errorf("a second reply under the id invalidated %d keys", n)
			}
			h.getHit(reader, "get", "k")
		})
	}
}

// TestAckUDPHeld: UDP mutations whose acknowledgement cannot be told get
// the write hold; a reply under the id that is not the acknowledgement
// invalidates the key again but does not retire it.
func TestAckUDPHeld(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mutation []byte
	}{
		{"noreply", []byte("set k 0 0 3 noreply\r\nnew\r\n")},
		{"two commands", []byte("set k 0 0 3\r\nnew\r\nget x\r\n")},
		{"two mutations", []byte("delete x\r\ndelete k\r\n")},
		{"meta set", []byte("ms k 3\r\nnew\r\n")},
		{"gat", []byte("gat 10 k\r\n")},
		{"binary quiet set", binReq(0x11, "k", make([]byte, 8), []byte("new"), 7)},
		{"data block cut by the datagram's end", []byte("set k 0 0 30\r\nnew")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, longHold)
			reader, writer := v4flow(), v4flow()
			writer.cport++
			if n := h.statDelta(StatAckHeld, func() { h.xdp(writer.udpToServer(t, frame(h.nextID(), tc.mutation))) }); n == 0 {
				t.Fatalf("ack_held +0; stats %v", h.stats().Named())
			}
			if n := h.tryFill(reader, "k", []byte("old")); n != 0 {
				t.Fatalf("a held key was filled")
			}
		})
	}
	t.Run("other reply under the id", func(t *testing.T) {
		h := newHarness(t, nil)
		reader, writer := v4flow(), v4flow()
		writer.cport++
		id := h.nextID()
		h.xdp(writer.udpToServer(t, frame(id, []byte("set k 0 0 3\r\nnew\r\n"))))
		for _, r := range []string{"SERVER_ERROR out of memory storing object\r\n", "END\r\n", "DELETED\r\n"} {
			h.fillASCII(reader, "k", 0, []byte("old"), nil)
			if n := h.statDelta(StatAckInvalidations, func() { h.tc(writer.udpToClient(t, frame(id, []byte(r)))) }); n != 1 {
				t.Fatalf("reply %q under the id: ack_invalidations +%d, want 1", r, n)
			}
			h.expectMiss(reader, "k")
		}
		// a reply from another client port is not the writer's
		h.fillASCII(reader, "k", 0, []byte("old"), nil)
		other := writer
		other.cport++
		if n := h.statDelta(StatAckInvalidations, func() { h.tc(other.udpToClient(t, frame(id, []byte("STORED\r\n")))) }); n != 0 {
			t.Fatalf("a reply to another client invalidated %d keys", n)
		}
		h.getHit(reader, "get", "k")
	})
	t.Run("request id reused while waiting", func(t *testing.T) {
		h := newHarness(t, longHold)
		reader, writer := v4flow(), v4flow()
		writer.cport++
		id := h.nextID()
		h.xdp(writer.udpToServer(t, frame(id, []byte("set k 0 0 3\r\nnew\r\n"))))
		// a second mutation under the same id: either reply could be taken
		// for the other's, so both keys are held
		if n := h.statDelta(StatAckHeld, func() { h.xdp(writer.udpToServer(t, frame(id, []byte("set j 0 0 3\r\nnew\r\n")))) }); n != 2 {
			t.Fatalf("ack_held +%d, want 2 (both keys)", n)
		}
		for _, k := range []string{"k", "j"} {
			if n := h.tryFill(reader, k, []byte("old")); n != 0 {
				t.Errorf("%s filled while held", k)
			}
		}
	})
}

// TestAckTCPPipelined: on a connection TC follows, a mutation pipelined
// behind other requests is retired only by its own reply (the replies
// before it are counted), and it needs no write hold.
func TestAckTCPPipelined(t *testing.T) {
	set, stored := []byte("set k 0 0 3\r\nnew\r\n"), []byte("STORED\r\n")
	for _, tc := range []struct {
		name     string
		first    []byte   // requests before the mutation, answered first
		answers  [][]byte // memcached's segments answering them (the mutation not yet applied)
		mutation []byte   // set k (ASCII) unless given
		ack      []byte   // its acknowledgement
	}{
		{"get before", getLine("get", "a", "b"), [][]byte{append(asciiItem("a", 0, []byte("1"), nil), "END\r\n"...)}, nil, nil},
		{"sets before", []byte("set a 0 0 1\r\nx\r\nset b 0 0 1\r\ny\r\n"), [][]byte{[]byte("STORED\r\n"), []byte("STORED\r\n")}, nil, nil},
		{"meta before", []byte("mg a v\r\nmn\r\n"), [][]byte{[]byte("VA 1\r\nx\r\nMN\r\n")}, nil, nil},
		{"reply cut across segments", []byte("delete a\r\nversion\r\n"), [][]byte{[]byte("NOT_FO"), []byte("UND\r\nVERSION 1.6.18\r\n")}, nil, nil},
		{"noreply before", []byte("set a 0 0 1 noreply\r\nx\r\ndelete b\r\n"), [][]byte{[]byte("DELETED\r\n")}, nil, nil},
		{"binary", append(binReq(0x00, "a", nil, nil, 1), binReq(0x0a, "", nil, nil, 2)...),
			[][]byte{append(binResp(0x00, "", 0, []byte("va"), 1, 5), binStatus(0x0a, 2)...)},
			binReq(0x01, "k", make([]byte, 8), []byte("new"), 7), binStatus(0x01, 7)},
		{"binary response cut across segments", binReq(0x00, "a", nil, nil, 1),
			[][]byte{binResp(0x00, "", 0, []byte("va"), 1, 5)[:26], binResp(0x00, "", 0, []byte("va"), 1, 5)[26:]},
			binReq(0x04, "k", nil, nil, 7), binStatus(0x04, 7)},
	} {
		if tc.mutation == nil {
			tc.mutation, tc.ack = set, stored
		}
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, longHold)
			reader, writer := v4flow(), v4flow()
			writer.cport++
			c := h.connect(writer, 1000, 50000)
			c.send(h, tc.first)
			if n := h.statDelta(StatAckExact, func() { c.send(h, tc.mutation) }); n != 1 {
				t.Fatalf("ack_exact +%d, want 1; stats %v", n, h.stats().Named())
			}
			for _, a := range tc.answers {
				c.reply(h, a)
			}
			// answered before memcached applied the set: the old value fills ...
			h.fillASCII(reader, "k", 0, []byte("old"), nil)
			// ... and is dropped by the set's own acknowledgement
			if n := h.statDelta(StatAckInvalidations, func() { c.reply(h, tc.ack) }); n == 0 {
				t.Fatalf("the set's acknowledgement invalidated nothing")
			}
			h.expectMiss(reader, "k")
			if n := h.tryFill(reader, "k", []byte("new")); n != 1 {
				t.Fatalf("fill after the acknowledgement refused; stats %v", h.stats().Named())
			}
			if n := h.statDelta(StatAckInvalidations, func() { c.reply(h, tc.ack) }); n != 0 {
				t.Errorf("a reply after the acknowledgement invalidated %d keys again", n)
			}
		})
	}
}

// TestAckTCPHeld: TCP mutations nothing acknowledges exactly get the write
// hold: noreply, quiet binary, a connection whose replies cannot be counted
// (a stats before, a reply stream TC does not follow).
func TestAckTCPHeld(t *testing.T) {
	for _, tc := range []struct {
		name     string
		before   []byte
		mutation []byte
		tracked  bool
	}{
		{"noreply", nil, []byte("set k 0 0 3 noreply\r\nnew\r\n"), true},
		{"meta quiet", nil, []byte("ms k 3 q\r\nnew\r\n"), true},
		{"after stats", []byte("stats\r\n"), []byte("set k 0 0 3\r\nnew\r\n"), true},
		{"binary quiet", nil, binReq(0x11, "k", make([]byte, 8), []byte("new"), 7), true},
		{"binary after a quiet get", binReq(0x0d, "a", nil, nil, 1), binReq(0x01, "k", make([]byte, 8), []byte("new"), 7), true},
		{"replies not followed", nil, []byte("set k 0 0 3\r\nnew\r\n"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, longHold)
			reader, writer := v4flow(), v4flow()
			writer.cport++
			var send func([]byte)
			if tc.tracked {
				c := h.connect(writer, 1000, 50000)
				send = func(b []byte) { c.send(h, b) }
			} else {
				seq := uint32(1000)
				h.conn(writer, seq)
				send = func(b []byte) { h.xdp(writer.tcpToServer(t, seq, b)); seq += uint32(len(b)) }
			}
			if tc.before != nil {
				send(tc.before)
			}
			if n := h.statDelta(StatAckHeld, func() { send(tc.mutation) }); n != 1 {
				t.Fatalf("ack_held +%d, want 1; stats %v", n, h.stats().Named())
			}
			if n := h.tryFill(reader, "k", []byte("old")); n != 0 {
				t.Fatalf("a held key was filled")
			}
		})
	}
}

// TestAckLogOverflow: a mutation pushed out of the flow's log before its
// acknowledgement gets the write hold then.
func TestAckLogOverflow(t *testing.T) {
	h := newHarness(t, longHold)
	reader, writer := v4flow(), v4flow()
	writer.cport++
	c := h.connect(writer, 1000, 50000)
	c.send(h, []byte("delete k\r\n"))
	if n := h.tryFill(reader, "k", []byte("old")); n != 1 {
		t.Fatalf("exact mutation held")
	}
	for i := range ackSlots {
		c.send(h, []byte("delete k"+string(rune('a'+i))+"\r\n"))
	}
	// "k" left the log unacknowledged: held from now
	if n := h.tryFill(reader, "k", []byte("old")); n != 0 {
		t.Fatalf("a key pushed out of the log was filled")
	}
}

// TestInvalidateKeepsAnotherKeysEntry: a mutation of one key leaves the
// entry of another key that shares its set: that value did not change.
// Fills in flight for the set still fail.
func TestInvalidateKeepsAnotherKeysEntry(t *testing.T) {
	h := newHarness(t, longHold)
	seed := InstanceSeed(0x5eed, uint32(v4flow().sport)) // the harness's memcached instance
	want := SetOf([]byte("j"), seed, 1024)
	other := ""
	for i := range 100000 {
		if k := fmt.Sprintf("k%d", i); SetOf([]byte(k), seed, 1024) == want {
			other = k
			break
		}
	}
	if other == "" {
		t.Fatal("no key shares j's set")
	}
	reader, writer := v4flow(), v4flow()
	writer.cport++
	mutateOther := func() { h.xdp(writer.udpToServer(t, frame(h.nextID(), []byte("delete "+other+"\r\n")))) }
	// a fill of the bucket in flight when the other key is mutated fails
	id := h.nextID()
	h.getMiss(reader, id, "get", "j")
	mutateOther()
	body := append(asciiItem("j", 0, []byte("jj"), nil), "END\r\n"...)
	if n := h.statDelta(StatFills, func() { h.tc(reader.udpToClient(t, frame(id, body))) }); n != 0 {
		t.Errorf("a fill of the bucket that began before the mutation was taken")
	}
	// an entry of j stays
	h.fillASCII(reader, "j", 0, []byte("jj"), nil)
	mutateOther()
	h.getHit(reader, "get", "j")
}

// TestAckUDPStoredFills: a STORED fills the cache with the store's value
// only if nothing else changed the bucket since the store arrived, no hold
// covers the bucket and the value is what memcached stored.
func TestAckUDPStoredFills(t *testing.T) {
	for _, tc := range []struct {
		name    string
		store   string
		between func(h *harness, other flow)
		fills   bool
	}{
		{"set", "set k 5 0 3\r\nnew\r\n", nil, true},
		{"flags and a longer value", "set k 4294967295 0 12\r\nnew\r\nnew\r\nxy\r\n", nil, true},
		{"another client's delete between", "set k 0 0 3\r\nnew\r\n", func(h *harness, other flow) {
			h.xdp(other.udpToServer(h.t, frame(h.nextID(), []byte("delete k\r\n"))))
		}, false},
		{"a noreply write before", "set k 0 0 3\r\nnew\r\n", nil, false},
		{"a flush between", "set k 0 0 3\r\nnew\r\n", func(h *harness, other flow) {
			h.xdp(other.udpToServer(h.t, frame(h.nextID(), []byte("flush_all\r\n"))))
		}, false},
		{"append", "append k 0 0 3\r\nnew\r\n", nil, false},
		{"bad data block", "set k 0 0 3\r\nnewX\r\n", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, longHold)
			reader, writer, other := v4flow(), v4flow(), v4flow()
			writer.cport++
			other.cport += 2
			if tc.name == "a noreply write before" {
				h.xdp(other.udpToServer(t, frame(h.nextID(), []byte("set k 0 0 3 noreply\r\nold\r\n"))))
			}
			id := h.nextID()
			h.xdp(writer.udpToServer(t, frame(id, []byte(tc.store))))
			if tc.between != nil {
				tc.between(h, other)
			}
			fills := h.statDelta(StatFills, func() { h.tc(writer.udpToClient(t, frame(id, []byte("STORED\r\n")))) })
			if (fills == 1) != tc.fills {
				t.Fatalf("STORED made %d fills, want fill %v; stats %v", fills, tc.fills, h.stats().Named())
			}
			if !tc.fills {
				h.expectMiss(reader, "k")
				return
			}
			_, data, _ := strings.Cut(tc.store, "\r\n")
			var flags, n int
			fmt.Sscanf(tc.store, "set k %d 0 %d", &flags, &n)
			want := fmt.Sprintf("VALUE k %d %d\r\n%s\r\nEND\r\n", flags, n, data[:n])
			if got := string(h.getHit(reader, "get", "k")); got != want {
				t.Fatalf("hit %q, want %q", got, want)
			}
		})
	}
}
