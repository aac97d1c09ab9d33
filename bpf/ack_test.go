package bpf

import (
	"bytes"
	"testing"
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

// TestAckLogFull: more unacknowledged mutations on one connection (in
// separate segments) than the log holds: the reply flushes instead.
func TestAckLogFull(t *testing.T) {
	h := newHarness(t, nil)
	reader, writer := v4flow(), v4flow()
	writer.cport++
	seq := uint32(1)
	h.conn(writer, seq)
	for i := range ackSlots + 1 {
		cmd := []byte("delete k" + string(rune('a'+i)) + "\r\n")
		h.xdp(writer.tcpToServer(t, seq, cmd))
		seq += uint32(len(cmd))
	}
	h.fillASCII(reader, "k", 0, []byte("old"), nil) // "k" itself is not logged
	if n := h.statDelta(StatAckFlushes, func() { h.tc(writer.tcpToClient(t, 1, []byte("DELETED\r\n"))) }); n != 1 {
		t.Fatalf("ack_flushes +%d, want 1", n)
	}
	h.expectMiss(reader, "k")
}
