package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
	tcOK    = 0
)

// harness runs the real programs through BPF_PROG_TEST_RUN.
type harness struct {
	t     testing.TB
	c     *Cache
	reqID uint16
}

func newHarness(t testing.TB, mod func(*Settings)) *harness {
	t.Helper()
	requireRoot(t)
	s := DefaultSettings()
	s.Entries = 1024
	s.WriteHold = 0
	s.Seed = 0x5eed
	s.RequireLocal = false
	if mod != nil {
		mod(&s)
	}
	c, err := Load(s)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	for _, p := range []string{"0.0.0.0/0", "::/0"} {
		if err := c.Allow(netip.MustParsePrefix(p), 0); err != nil {
			t.Fatal(err)
		}
	}
	return &harness{t: t, c: c, reqID: 100}
}

func (h *harness) nextID() uint16 { h.reqID++; return h.reqID }

// conn opens a TCP connection as XDP sees it (a SYN): its first byte will
// have sequence number seq. XDP reads a connection's commands only from its
// start (mutate.h).
func (h *harness) conn(f flow, seq uint32) {
	h.t.Helper()
	h.xdp(f.tcpSyn(h.t, seq-1, nil))
}

// tcp opens a connection and sends its first segment.
func (h *harness) tcp(f flow, seq uint32, payload []byte) (uint32, []byte) {
	h.t.Helper()
	h.conn(f, seq)
	return h.xdp(f.tcpToServer(h.t, seq, payload))
}

func (h *harness) xdp(pkt []byte) (uint32, []byte) {
	h.t.Helper()
	ret, out, err := runProg(h.c.XDP, pkt)
	if err != nil {
		h.t.Fatalf("XDP test run: %v", err)
	}
	if ret == xdpPass && !bytes.Equal(out, pkt) {
		h.t.Fatalf("XDP_PASS but the packet changed:\n in %x\nout %x", pkt, out)
	}
	return ret, out
}

func (h *harness) tc(pkt []byte) {
	h.t.Helper()
	ret, out, err := runProg(h.c.TC, pkt)
	if err != nil {
		h.t.Fatalf("TC test run: %v", err)
	}
	if ret != tcOK {
		h.t.Fatalf("TC returned %d, want TC_ACT_OK", ret)
	}
	if !bytes.Equal(out, pkt) {
		h.t.Fatalf("TC changed the packet")
	}
}

func runProg(p *ebpf.Program, pkt []byte) (uint32, []byte, error) {
	opts := &ebpf.RunOptions{Data: pkt, DataOut: make([]byte, 4096)}
	ret, err := p.Run(opts)
	if err != nil {
		return 0, nil, err
	}
	return ret, opts.DataOut, nil // cilium/ebpf shortens opts.DataOut to the output
}

func (h *harness) stats() Stats {
	h.t.Helper()
	s, err := h.c.Stats()
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) statDelta(id Stat, fn func()) uint64 {
	before := h.stats().Get(id)
	fn()
	return h.stats().Get(id) - before
}

// asciiItem is memcached's reply text for one item.
func asciiItem(key string, flags uint32, value []byte, cas *uint64) []byte {
	s := fmt.Sprintf("VALUE %s %d %d", key, flags, len(value))
	if cas != nil {
		s += fmt.Sprintf(" %d", *cas)
	}
	b := append([]byte(s+"\r\n"), value...)
	return append(b, "\r\n"...)
}

// getMiss sends "get keys..." and expects memcached to be asked.
func (h *harness) getMiss(f flow, id uint16, cmd string, keys ...string) {
	h.t.Helper()
	pkt := f.udpToServer(h.t, frame(id, getLine(cmd, keys...)))
	if ret, _ := h.xdp(pkt); ret != xdpPass {
		h.t.Fatalf("%s %v: want XDP_PASS (miss), got %d", cmd, keys, ret)
	}
}

func getLine(cmd string, keys ...string) []byte {
	b := []byte(cmd)
	for _, k := range keys {
		b = append(append(b, ' '), k...)
	}
	return append(b, "\r\n"...)
}

// fillASCII runs the whole miss path: the GET passes, memcached's reply
// (built here) goes out through TC and fills the cache.
func (h *harness) fillASCII(f flow, key string, flags uint32, value []byte, cas *uint64) {
	h.t.Helper()
	id := h.nextID()
	cmd := "get"
	if cas != nil {
		cmd = "gets"
	}
	h.getMiss(f, id, cmd, key)
	body := append(asciiItem(key, flags, value, cas), "END\r\n"...)
	fills := h.statDelta(StatFills, func() { h.tc(f.udpToClient(h.t, frame(id, body))) })
	if fills != 1 {
		h.t.Fatalf("fill of %q: %d fills, stats %v", key, fills, h.stats().Named())
	}
}

// getHit sends a GET and returns the reply payload after the frame header.
func (h *harness) getHit(f flow, cmd string, keys ...string) []byte {
	h.t.Helper()
	id := h.nextID()
	pkt := f.udpToServer(h.t, frame(id, getLine(cmd, keys...)))
	ret, out := h.xdp(pkt)
	if ret != xdpTX {
		h.t.Fatalf("%s %v: want XDP_TX (hit), got %d; stats %v", cmd, keys, ret, h.stats().Named())
	}
	r := decodeReply(h.t, f, out)
	if len(r.payload) < 8 {
		h.t.Fatalf("reply too short: %x", r.payload)
	}
	if got := binary.BigEndian.Uint16(r.payload); got != id {
		h.t.Errorf("request id %d echoed as %d", id, got)
	}
	if seq, total := binary.BigEndian.Uint16(r.payload[2:]), binary.BigEndian.Uint16(r.payload[4:]); seq != 0 || total != 1 {
		h.t.Errorf("frame says %d of %d, want 0 of 1", seq, total)
	}
	return r.payload[8:]
}

// expectMiss asserts that a GET for key passes to memcached.
func (h *harness) expectMiss(f flow, key string) {
	h.t.Helper()
	h.getMiss(f, h.nextID(), "get", key)
}

func sleepPast(d time.Duration) { time.Sleep(d + 5*time.Millisecond) }

// sscanItem parses "VALUE <key> <flags> <bytes>" (no CAS).
func sscanItem(line string, key *string, flags, n *int) (int, error) {
	return fmt.Sscanf(line, "VALUE %s %d %d", key, flags, n)
}
