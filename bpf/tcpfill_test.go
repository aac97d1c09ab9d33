package bpf

import (
	"testing"
)

func TestTCPReplyFills(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	const ack = 777000
	reply := append(append(asciiItem("a", 1, []byte("AA"), nil), asciiItem("b", 2, []byte("B\r\nB"), nil)...), "END\r\n"...)

	// A reply segment that does not start where the GET's reply starts does not fill.
	h.conn(f, 10)
	h.xdp(f.tcpToServerAck(t, 10, ack, getLine("get", "a", "b")))
	if n := h.statDelta(StatFills, func() { h.tc(f.tcpToClient(t, ack+5, reply)) }); n != 0 {
		t.Fatalf("a segment at another sequence number filled %d entries", n)
	}
	// The reply at the right place fills both keys; UDP GETs then hit.
	h.xdp(f.tcpToServerAck(t, 10+uint32(len(getLine("get", "a", "b"))), ack, getLine("get", "a", "b")))
	if n := h.statDelta(StatFills, func() { h.tc(f.tcpToClient(t, ack, reply)) }); n != 2 {
		t.Fatalf("TCP reply filled %d entries, want 2", n)
	}
	if got, want := string(h.getHit(f, "get", "a", "b")), string(reply); got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	// A GET followed by another command in the same segment leaves no ticket.
	h2 := newHarness(t, nil)
	h2.conn(f, 10)
	h2.xdp(f.tcpToServerAck(t, 10, ack, []byte("get a\r\ndelete zz\r\n")))
	if n := h2.statDelta(StatFills, func() { h2.tc(f.tcpToClient(t, ack, reply)) }); n != 0 {
		t.Fatalf("filled from a segment whose GET was pipelined with other commands")
	}
}
