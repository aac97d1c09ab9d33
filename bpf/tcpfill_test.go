package bpf

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// tcpConn is one client connection to memcached, followed from its
// handshake: the sequence numbers of both directions.
type tcpConn struct {
	f          flow
	cseq, sseq uint32 // next byte the client / the server sends
}

func (f flow) tcpSeg(t testing.TB, toServer bool, seq, ack uint32, syn bool, payload []byte) []byte {
	tcp := &layers.TCP{Seq: seq, Ack: ack, ACK: true, PSH: len(payload) > 0, SYN: syn, Window: 512}
	if toServer {
		tcp.SrcPort, tcp.DstPort = layers.TCPPort(f.cport), layers.TCPPort(f.sport)
	} else {
		tcp.SrcPort, tcp.DstPort = layers.TCPPort(f.sport), layers.TCPPort(f.cport)
	}
	return f.build(t, toServer, tcp, payload)
}

// connect runs memcached's SYN-ACK through TC (the client's SYN and ACK
// change nothing here).
func (h *harness) connect(f flow, ciss, siss uint32) *tcpConn {
	h.t.Helper()
	h.xdp(f.tcpSyn(h.t, ciss, nil)) // XDP follows the client's stream from here
	h.tc(f.tcpSeg(h.t, false, siss, ciss+1, true, nil))
	return &tcpConn{f: f, cseq: ciss + 1, sseq: siss + 1}
}

// send is the client's segment through XDP.
func (c *tcpConn) send(h *harness, payload []byte) {
	h.t.Helper()
	h.xdp(c.f.tcpSeg(h.t, true, c.cseq, c.sseq, false, payload))
	c.cseq += uint32(len(payload))
}

// reply is memcached's next segment through TC; it returns the fills.
func (c *tcpConn) reply(h *harness, payload []byte) uint64 {
	h.t.Helper()
	n := h.statDelta(StatFills, func() { h.tc(c.f.tcpSeg(h.t, false, c.sseq, c.cseq, false, payload)) })
	c.sseq += uint32(len(payload))
	return n
}

func TestTCPReplyFills(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	reply := append(append(asciiItem("a", 1, []byte("AA"), nil), asciiItem("b", 2, []byte("B\r\nB"), nil)...), "END\r\n"...)
	c := h.connect(f, 1000, 777000)
	c.send(h, getLine("get", "a", "b"))
	if n := c.reply(h, reply); n != 2 {
		t.Fatalf("TCP reply filled %d entries, want 2; stats %v", n, h.stats().Named())
	}
	if got, want := string(h.getHit(f, "get", "a", "b")), string(reply); got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	// A GET followed by another command in the same segment leaves no ticket.
	h2 := newHarness(t, nil)
	c = h2.connect(f, 1000, 777000)
	c.send(h2, []byte("get a\r\ndelete zz\r\n"))
	if n := c.reply(h2, append(reply, "DELETED\r\n"...)); n != 0 {
		t.Fatalf("filled from a segment whose GET was pipelined with other commands")
	}
}

// TestTCPFillOnlyAtReplyBoundaries: a client with a small receive window can
// make a server segment start inside a value; bytes there that read like an
// item must not fill (issue 13, defect 4).
func TestTCPFillOnlyAtReplyBoundaries(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	c := h.connect(f, 5000, 9000)
	evil := []byte("VALUE k 0 4\r\nEVIL\r\nEND\r\n")
	value := append([]byte("xx"), evil...)
	c.send(h, getLine("get", "carrier"))
	item := asciiItem("carrier", 0, value, nil)
	cut := bytes.Index(item, evil)
	// The client asks for k while the first part of the reply is out,
	// acknowledging exactly up to where the item text starts.
	if n := c.reply(h, item[:cut]); n != 0 {
		t.Fatalf("first part filled %d", n)
	}
	c.send(h, getLine("get", "k"))
	if n := c.reply(h, append(item[cut:], "END\r\n"...)); n != 0 {
		t.Fatalf("a segment starting inside a value filled %d entries", n)
	}
	h.expectMiss(f, "k")
	// The stream is still followed: memcached's own reply to "get k" fills.
	if n := c.reply(h, append(asciiItem("k", 0, []byte("real"), nil), "END\r\n"...)); n != 1 {
		t.Fatalf("memcached's reply for k: %d fills; stats %v", n, h.stats().Named())
	}
	if got := string(h.getHit(f, "get", "k")); got != "VALUE k 0 4\r\nreal\r\nEND\r\n" {
		t.Fatalf("k served %q", got)
	}
}

func TestTCPStreamFollowing(t *testing.T) {
	f := v4flow()
	t.Run("no handshake seen", func(t *testing.T) {
		h := newHarness(t, nil)
		c := &tcpConn{f: f, cseq: 10, sseq: 20}
		c.send(h, getLine("get", "a"))
		if n := h.statDelta(StatStreamUntracked, func() { c.reply(h, append(asciiItem("a", 0, []byte("v"), nil), "END\r\n"...)) }); n != 1 {
			t.Fatalf("stream_untracked +%d", n)
		}
		h.expectMiss(f, "a")
	})
	t.Run("other replies, meta values and values across segments", func(t *testing.T) {
		h := newHarness(t, nil)
		c := h.connect(f, 10, 20)
		big := bytes.Repeat([]byte("VALUE a 0 1\r\nX\r\n"), 100) // 1600 bytes of item-like text
		c.send(h, []byte("stats\r\n"))                           // (the replies below are TC's business only)
		for _, seg := range [][]byte{
			[]byte("STORED\r\nSTAT pid 1\r\nSTAT uptime 2\r\nEND\r\nVERSION 1.6.18\r\nVA 5 t-1\r\nab\r\n"),
			[]byte("c\r\nHD\r\nEN\r\nVALUE x 0 1600\r\n"), big[:700], big[700:1500],
			append(append([]byte{}, big[1500:]...), "\r\nEND\r\nCLIENT_ERROR bad data"...),
			[]byte(" chunk\r\nERROR\r\n"),
		} {
			if n := c.reply(h, seg); n != 0 {
				t.Fatalf("segment %q filled %d", seg, n)
			}
		}
		c.send(h, getLine("get", "a"))
		if n := c.reply(h, append(asciiItem("a", 0, []byte("v"), nil), "END\r\n"...)); n != 1 {
			t.Fatalf("after many kinds of replies: %d fills; stats %v", n, h.stats().Named())
		}
		h.getHit(f, "get", "a")
	})
	t.Run("one GSO super-segment", func(t *testing.T) {
		// items that straddle the 2048 bytes the program reads at once
		h := newHarness(t, func(s *Settings) { s.MaxValue = MaxValueCap })
		c := h.connect(f, 10, 20)
		c.send(h, getLine("get", "big", "a", "b"))
		var reply []byte
		reply = append(reply, asciiItem("big", 0, bytes.Repeat([]byte("x"), MaxValueCap), nil)...)
		reply = append(reply, asciiItem("a", 0, bytes.Repeat([]byte("a"), 1000), nil)...)
		reply = append(reply, asciiItem("b", 0, bytes.Repeat([]byte("b"), 1000), nil)...)
		reply = append(reply, "END\r\n"...)
		if n := c.reply(h, reply); n != 3 {
			t.Fatalf("a %d-byte segment filled %d, want 3; stats %v", len(reply), n, h.stats().Named())
		}
	})
	t.Run("lost track", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			run  func(h *harness, c *tcpConn)
		}{
			{"item header cut at a segment end", func(h *harness, c *tcpConn) {
				c.reply(h, []byte("VALUE x 0 "))
				c.reply(h, []byte("3\r\nabc\r\nEND\r\n"))
			}},
			{"gap", func(h *harness, c *tcpConn) {
				c.sseq += 100
				c.reply(h, []byte("END\r\n"))
			}},
			{"binary protocol", func(h *harness, c *tcpConn) {
				c.reply(h, binResp(0x00, "", 0, []byte("VALUE a 0 1\r\nv\r\n"), 0, 1))
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := newHarness(t, nil)
				c := h.connect(f, 10, 20)
				tc.run(h, c)
				c.send(h, getLine("get", "a"))
				if n := c.reply(h, append(asciiItem("a", 0, []byte("v"), nil), "END\r\n"...)); n != 0 {
					t.Fatalf("filled %d after the stream was lost", n)
				}
			})
		}
		// A retransmission of bytes already followed changes nothing.
		h := newHarness(t, nil)
		c := h.connect(f, 10, 20)
		c.reply(h, []byte("STORED\r\n"))
		h.tc(f.tcpSeg(t, false, c.sseq-8, c.cseq, false, []byte("STORED\r\n")))
		c.send(h, getLine("get", "a"))
		if n := c.reply(h, append(asciiItem("a", 0, []byte("v"), nil), "END\r\n"...)); n != 1 {
			t.Fatalf("after a retransmission: %d fills", n)
		}
	})
}

// TestTCPTicketOnlyForAcceptedRequest: a ticket belongs to a request the
// server accepted; a retransmitted GET does not renew it, and a reply that
// left before the server acknowledged the GET does not use it.
func TestTCPTicketOnlyForAcceptedRequest(t *testing.T) {
	f := v4flow()
	other := f
	other.cport++
	h := newHarness(t, nil)
	c := h.connect(f, 10, 20)
	get := getLine("get", "a")
	c.send(h, get)
	h.xdp(other.tcpToServer(t, 1, []byte("delete a\r\n")))                // another client, meanwhile
	h.xdp(f.tcpSeg(t, true, c.cseq-uint32(len(get)), c.sseq, false, get)) // retransmitted
	if n := c.reply(h, append(asciiItem("a", 0, []byte("old"), nil), "END\r\n"...)); n != 0 {
		t.Fatalf("a retransmitted GET renewed the ticket: %d fills", n)
	}

	h = newHarness(t, nil)
	c = h.connect(f, 10, 20)
	c.send(h, get)
	reply := append(asciiItem("a", 0, []byte("v"), nil), "END\r\n"...)
	n := h.statDelta(StatFills, func() { h.tc(f.tcpSeg(t, false, c.sseq, c.cseq-1, false, reply)) })
	if n != 0 {
		t.Fatalf("a reply sent before the server had the whole GET filled %d", n)
	}
	_ = fmt.Sprint
}
