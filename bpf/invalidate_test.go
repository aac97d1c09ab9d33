package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestASCIIMutationsInvalidate(t *testing.T) {
	cmds := []struct {
		name string
		line string // %s is the key
	}{
		{"set", "set %s 0 0 3\r\nnew\r\n"},
		{"set-noreply", "set %s 0 0 3 noreply\r\nnew\r\n"},
		{"add", "add %s 0 0 1\r\nx\r\n"},
		{"replace", "replace %s 0 0 1\r\nx\r\n"},
		{"append", "append %s 0 0 1\r\nx\r\n"},
		{"prepend", "prepend %s 0 0 1\r\nx\r\n"},
		{"cas", "cas %s 0 0 1 99\r\nx\r\n"},
		{"delete", "delete %s\r\n"},
		{"delete-noreply", "delete %s noreply\r\n"},
		{"incr", "incr %s 1\r\n"},
		{"decr", "decr %s 1\r\n"},
		{"touch", "touch %s 100\r\n"},
		{"gat", "gat 100 other %s\r\n"},
		{"gats", "gats 100 %s\r\n"},
		{"meta-set", "ms %s 2 T0\r\nhi\r\n"},
		{"meta-delete", "md %s q\r\n"},
		{"meta-arith", "ma %s\r\n"},
		{"meta-get-touch", "mg %s v T30\r\n"},
		{"lf-only", "delete %s\n"},
		{"extra-spaces", "delete   %s \r\n"},
		{"pipelined", "get a b\r\nset zz 0 0 2\r\nzz\r\ndelete %s\r\n"},
		{"after-value-with-lines", "set other 0 0 13\r\nset x 0 0 0\r\n\r\ndelete %s\r\n"},
	}
	for _, proto := range []string{"tcp", "udp"} {
		for _, c := range cmds {
			t.Run(proto+"/"+c.name, func(t *testing.T) {
				h := newHarness(t, nil)
				f := v4flow()
				h.fillASCII(f, "victim", 0, []byte("old"), nil)
				h.fillASCII(f, "bystander", 0, []byte("keep"), nil)
				payload := []byte(fmt.Sprintf(c.line, "victim"))
				var pkt []byte
				if proto == "tcp" {
					h.conn(f, 1000)
					pkt = f.tcpToServer(t, 1000, payload)
				} else {
					pkt = f.udpToServer(t, frame(h.nextID(), payload))
				}
				if ret, _ := h.xdp(pkt); ret != xdpPass {
					t.Fatalf("mutation not passed to memcached: %d", ret)
				}
				h.expectMiss(f, "victim")
				h.getHit(f, "get", "bystander") // precise: other keys stay
			})
		}
	}
}

func TestReadsDoNotInvalidate(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	h.fillASCII(f, "k", 0, []byte("v"), nil)
	for _, line := range []string{"get k\r\n", "gets k\r\n", "mg k v\r\n", "stats\r\n", "version\r\n"} {
		h.tcp(f, 1, []byte(line))
	}
	h.getHit(f, "get", "k")
}

func TestFlushAll(t *testing.T) {
	for _, line := range []string{"flush_all\r\n", "flush_all noreply\r\n", "flush_all 0\r\n", "flush_all 30\r\n"} {
		t.Run(line, func(t *testing.T) {
			h := newHarness(t, nil)
			f := v4flow()
			h.fillASCII(f, "a", 0, []byte("1"), nil)
			h.fillASCII(f, "b", 0, []byte("2"), nil)
			if n := h.statDelta(StatFlushes, func() { h.tcp(f, 5, []byte(line)) }); n != 1 {
				t.Fatalf("flushes +%d", n)
			}
			h.expectMiss(f, "a")
			h.expectMiss(f, "b")
		})
	}
	// A delayed flush also refuses fills until its time has passed.
	h := newHarness(t, nil)
	f := v4flow()
	h.tcp(f, 5, []byte("flush_all 30\r\n"))
	id := h.nextID()
	h.getMiss(f, id, "get", "late")
	if n := h.statDelta(StatFillHeld, func() {
		h.tc(f.udpToClient(t, frame(id, append(asciiItem("late", 0, []byte("x"), nil), "END\r\n"...))))
	}); n != 1 {
		t.Errorf("fill during a pending flush_all delay: fill_stale +%d", n)
	}
}

// TestCommandSplitAcrossSegments: a command line cut by a segment end is
// read whole once its rest arrives (memcached runs it only then), so the key
// is invalidated precisely, without a flush.
func TestCommandSplitAcrossSegments(t *testing.T) {
	for _, tc := range []struct{ head, tail string }{
		{"get x\r\ndelete vic", "tim\r\n"},
		{"get x\r\nset vic", "tim 0 0 1\r\nx\r\n"},
		{"se", "t victim 0 0 1\r\nx\r\n"},
		{"gat 10 a ", "victim\r\n"},
		{"incr", " victim 1\r\n"},
		{"mg victim v", " T30\r\n"},
		{"set victim 0 0 1\r", "\nx\r\n"},
	} {
		t.Run(tc.head, func(t *testing.T) {
			h := newHarness(t, nil)
			f := v4flow()
			h.fillASCII(f, "victim", 0, []byte("v"), nil)
			h.fillASCII(f, "k", 0, []byte("v"), nil)
			h.tcp(f, 1, []byte(tc.head))
			h.getHit(f, "get", "victim") // nothing complete yet: memcached has not run it
			if n := h.statDelta(StatFlushes, func() { h.xdp(f.tcpToServer(t, 1+uint32(len(tc.head)), []byte(tc.tail))) }); n != 0 {
				t.Fatalf("flushes +%d, want a precise invalidation", n)
			}
			h.expectMiss(f, "victim")
			h.getHit(f, "get", "k")
		})
	}
	// Data blocks that look like commands are data: nothing is invalidated.
	h := newHarness(t, nil)
	f := v4flow()
	h.fillASCII(f, "k", 0, []byte("v"), nil)
	h.tcp(f, 1, []byte("set other 0 0 10\r\ndelete k\r\n\r\n"))
	h.getHit(f, "get", "k")
}

// TestUnknownConnectionsConservative: a connection whose start XDP never saw
// (opened before the deployment) cannot be read exactly: a binary or
// unknown one flushes on every segment, an ASCII one that lost bytes has
// every line read and data lengths ignored.
func TestUnknownConnectionsConservative(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	h.fillASCII(f, "k", 0, []byte("v"), nil)
	if n := h.statDelta(StatFlushUnsynced, func() { h.xdp(f.tcpToServer(t, 1, []byte("xxxxxxxxxxxxxxxxx\r\n"))) }); n != 1 {
		t.Fatalf("segment of an unknown connection: flush_unsynced +%d", n)
	}
	h.expectMiss(f, "k")
	// Its next segments, with no 0x80 byte (no binary request), are read
	// line by line: only what they name goes.
	h.fillASCII(f, "k", 0, []byte("v"), nil)
	h.fillASCII(f, "victim", 0, []byte("v"), nil)
	h.xdp(f.tcpToServer(t, 20, []byte("delete victim\r\n")))
	h.expectMiss(f, "victim")
	h.getHit(f, "get", "k")
	if n := h.statDelta(StatFlushUnsynced, func() { h.xdp(f.tcpToServer(t, 35, []byte{0x80, 0x04, 0, 1})) }); n != 1 {
		t.Fatalf("a 0x80 byte in a connection of unknown protocol: flush_unsynced +%d", n)
	}

	// An ASCII connection that skips bytes: lines are still read, a set's
	// length no longer trusted.
	h2 := newHarness(t, nil)
	g := v4flow()
	h2.fillASCII(g, "victim", 0, []byte("v"), nil)
	h2.fillASCII(g, "k", 0, []byte("v"), nil)
	h2.tcp(g, 1, []byte("get x\r\n"))
	h2.xdp(g.tcpToServer(t, 100, []byte("get y\r\n"))) // 92 bytes missed: flush
	h2.fillASCII(g, "k", 0, []byte("v"), nil)
	h2.fillASCII(g, "victim", 0, []byte("v"), nil)
	h2.xdp(g.tcpToServer(t, 107, []byte("set z 0 0 10\r\ndelete victim\r\n")))
	h2.expectMiss(g, "victim")
	h2.getHit(g, "get", "k")
}

func TestBinaryMutationsInvalidate(t *testing.T) {
	setExtras := make([]byte, 8) // flags, exptime
	touchExtras := make([]byte, 4)
	arith := make([]byte, 20)
	cases := []struct {
		name   string
		op     byte
		extras []byte
		value  []byte
	}{
		{"set", 0x01, setExtras, []byte("v")}, {"add", 0x02, setExtras, []byte("v")},
		{"replace", 0x03, setExtras, []byte("v")}, {"delete", 0x04, nil, nil},
		{"incr", 0x05, arith, nil}, {"decr", 0x06, arith, nil},
		{"append", 0x0e, nil, []byte("v")}, {"prepend", 0x0f, nil, []byte("v")},
		{"setq", 0x11, setExtras, []byte("v")}, {"deleteq", 0x14, nil, nil},
		{"touch", 0x1c, touchExtras, nil}, {"gat", 0x1d, touchExtras, nil}, {"gatkq", 0x24, touchExtras, nil},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, c := range cases {
			t.Run(proto+"/"+c.name, func(t *testing.T) {
				h := newHarness(t, nil)
				f := v4flow()
				h.fillASCII(f, "victim", 0, []byte("old"), nil)
				h.fillASCII(f, "bystander", 0, []byte("keep"), nil)
				// pipelined after a NOOP-like GETQ of another key
				req := append(binReq(0x09, "other", nil, nil, 1), binReq(c.op, "victim", c.extras, c.value, 2)...)
				if proto == "udp" {
					h.xdp(f.udpToServer(t, frame(h.nextID(), req)))
				} else {
					h.tcp(f, 77, req)
				}
				h.expectMiss(f, "victim")
				h.getHit(f, "get", "bystander")
			})
		}
	}
}

func TestBinaryTCPFollowsLargeValues(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	h.fillASCII(f, "victim", 0, []byte("old"), nil)
	h.fillASCII(f, "bystander", 0, []byte("keep"), nil)
	// A SET whose value spans three segments, then a DELETE in the last one.
	value := make([]byte, 3000)
	for i := range value {
		value[i] = 0x80 // looks like a request magic everywhere
	}
	stream := append(binReq(0x01, "big", make([]byte, 8), value, 1), binReq(0x04, "victim", nil, nil, 2)...)
	seq := uint32(5000)
	h.conn(f, seq)
	for off := 0; off < len(stream); off += 1400 {
		end := min(off+1400, len(stream))
		h.xdp(f.tcpToServer(t, seq+uint32(off), stream[off:end]))
	}
	h.expectMiss(f, "victim")
	h.getHit(f, "get", "bystander")
	if n := h.stats().Get(StatFlushUnreadable); n != 0 {
		t.Errorf("lost track of the binary stream: %d unreadable flushes", n)
	}
	// A gap in the stream: the flow is lost and flushes.
	h.fillASCII(f, "bystander2", 0, []byte("x"), nil)
	h.xdp(f.tcpToServer(t, seq+uint32(len(stream))+100, binReq(0x04, "zzz", nil, nil, 3)))
	h.expectMiss(f, "bystander2")
}

func TestStaleFillRefused(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	// (a) GET passes, then a SET arrives, then memcached's (old) reply leaves.
	id := h.nextID()
	h.getMiss(f, id, "get", "k")
	h.tcp(f, 1, []byte("set k 0 0 3\r\nnew\r\n"))
	if n := h.statDelta(StatFillStale, func() {
		h.tc(f.udpToClient(t, frame(id, append(asciiItem("k", 0, []byte("old"), nil), "END\r\n"...))))
	}); n != 1 {
		t.Fatalf("fill_stale +%d", n)
	}
	h.expectMiss(f, "k")
	// A reply nobody asked for (no ticket) never fills.
	if n := h.statDelta(StatFillNoTicket, func() {
		h.tc(f.udpToClient(t, frame(9999, append(asciiItem("k", 0, []byte("x"), nil), "END\r\n"...))))
	}); n != 1 {
		t.Errorf("fill_no_ticket +%d", n)
	}
	h.expectMiss(f, "k")
}

func TestWriteHold(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.WriteHold = 300 * time.Millisecond })
	f := v4flow()
	// (b) SET arrives, then a GET: memcached may still answer the GET first
	// with the old value, so fills are held.
	h.tcp(f, 1, []byte("set k 0 0 3\r\nnew\r\n"))
	id := h.nextID()
	h.getMiss(f, id, "get", "k")
	if n := h.statDelta(StatFillHeld, func() {
		h.tc(f.udpToClient(t, frame(id, append(asciiItem("k", 0, []byte("old"), nil), "END\r\n"...))))
	}); n != 1 {
		t.Fatalf("fill inside the write hold: fill_stale +%d", n)
	}
	sleepPast(300 * time.Millisecond)
	h.fillASCII(f, "k", 0, []byte("new"), nil)
	h.getHit(f, "get", "k")
}

func TestExpiry(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxAge = 200 * time.Millisecond })
	f := v4flow()
	h.fillASCII(f, "k", 0, []byte("v"), nil)
	h.getHit(f, "get", "k")
	sleepPast(200 * time.Millisecond)
	if n := h.statDelta(StatMissExpired, func() { h.expectMiss(f, "k") }); n != 1 {
		t.Errorf("miss_expired +%d", n)
	}

	// An exptime in the past (negative) means memcached holds nothing: no fill.
	h2 := newHarness(t, nil)
	h2.tcp(f, 1, []byte("set gone 0 -1 1\r\nx\r\n"))
	id := h2.nextID()
	h2.getMiss(f, id, "get", "gone")
	if n := h2.statDelta(StatFills, func() {
		h2.tc(f.udpToClient(t, frame(id, append(asciiItem("gone", 0, []byte("x"), nil), "END\r\n"...))))
	}); n != 0 {
		t.Errorf("filled an item whose exptime had passed")
	}
	// A relative exptime bounds the entry (taken a second early).
	h2.tcp(f, 1, []byte("set soon 0 2 1\r\nx\r\n"))
	h2.fillASCII(f, "soon", 0, []byte("x"), nil)
	h2.getHit(f, "get", "soon")
	time.Sleep(1100 * time.Millisecond)
	h2.expectMiss(f, "soon")
}

func TestConcurrentFillAndInvalidate(t *testing.T) {
	// (c) fills and invalidations of one bucket from several goroutines
	// (the kernel runs each test run on the calling CPU): an entry is never
	// torn, and after the last invalidation nothing is served.
	h := newHarness(t, func(s *Settings) { s.Entries = 2 })
	f := v4flow()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			h.xdp(f.tcpToServer(t, uint32(i), []byte("delete k\r\n")))
		}
	}()
	for i := range 300 {
		id := uint16(20000 + i)
		v := []byte(fmt.Sprintf("value-%04d", i))
		h.xdp(f.tcpToServer(t, uint32(i), []byte(fmt.Sprintf("set k 0 0 10\r\n%s\r\n", v))))
		h.xdp(f.udpToServer(t, frame(id, getLine("get", "k"))))
		h.tc(f.udpToClient(t, frame(id, append(asciiItem("k", 0, v, nil), "END\r\n"...))))
		ret, out := h.xdp(f.udpToServer(t, frame(id, getLine("get", "k"))))
		if ret == xdpTX {
			r := decodeReply(t, f, out)
			var n int
			if _, err := fmt.Sscanf(string(r.payload[8:]), "VALUE k 0 10\r\nvalue-%04d\r\nEND\r\n", &n); err != nil || n != i {
				t.Fatalf("served %q for fill %d", r.payload[8:], i)
			}
		}
	}
	<-done
	h.tcp(f, 1, []byte("delete k\r\n"))
	h.expectMiss(f, "k")
	_ = binary.BigEndian
}

func TestFragmentedMutationsFlush(t *testing.T) {
	// A mutation in a fragmented datagram cannot be read: the first fragment
	// (which carries the port) empties the cache.
	h := newHarness(t, nil)
	f := v4flow()
	h.fillASCII(f, "k", 0, []byte("v"), nil)
	pkt := f.udpToServer(t, frame(1, []byte("set k 0 0 1\r\nx\r\n")))
	pkt[14+6] |= 0x20 // IPv4 more-fragments
	pkt[14+10], pkt[14+11] = 0, 0
	if n := h.statDelta(StatFlushUnreadable, func() { h.xdp(pkt) }); n != 1 {
		t.Fatalf("first IPv4 fragment: flush_unreadable +%d", n)
	}
	h.expectMiss(f, "k")

	// TCP with a first fragment too short for the TCP header (8 bytes: the
	// ports and the sequence number) still flushes (issue 13, defect 8), in
	// both flavors.
	for _, short := range []int{8, 16} {
		h.fillASCII(f, "k", 0, []byte("v"), nil)
		if n := h.statDelta(StatFlushUnreadable, func() { h.xdp(shortFirstFragment(f.tcpToServer(t, 1, []byte("delete k\r\n")), short)) }); n != 1 {
			t.Fatalf("first IPv4 fragment with %d bytes of TCP: flush_unreadable +%d", short, n)
		}
		h.expectMiss(f, "k")
	}
	// A first fragment whose ports cannot be read at all: flushed too.
	h.fillASCII(f, "k", 0, []byte("v"), nil)
	if n := h.statDelta(StatFlushUnreadable, func() { h.xdp(shortFirstFragment(f.tcpToServer(t, 1, []byte("delete k\r\n")), 0)) }); n != 1 {
		t.Fatalf("first IPv4 fragment without ports: flush_unreadable +%d", n)
	}
	h.expectMiss(f, "k")
	oh := newOffHarness(t, nil)
	oh.fill(f, "k", 0, []byte("v"))
	oh.xdp(shortFirstFragment(f.tcpToServer(t, 1, []byte("delete k\r\n")), 8))
	oh.expectMiss(f, "k")
	// IPv6 likewise: a first fragment (fragment header, offset 0, M set)
	// with 8 bytes of TCP.
	h6f := newHarness(t, nil)
	f6 := v6flow()
	h6f.fillASCII(f6, "k", 0, []byte("v"), nil)
	if n := h6f.statDelta(StatFlushUnreadable, func() { h6f.xdp(shortFirstFragment6(f6.tcpToServer(t, 1, []byte("delete k\r\n")), 8)) }); n != 1 {
		t.Fatalf("first IPv6 fragment with 8 bytes of TCP: flush_unreadable +%d", n)
	}
	h6f.expectMiss(f6, "k")
	// Later fragments carry no port and pass: their datagram cannot be
	// delivered before its first fragment, which flushed.

	// IPv6: a mutation behind extension headers is still found.
	h6 := newHarness(t, nil)
	f6 = v6flow()
	h6.fillASCII(f6, "k", 0, []byte("v"), nil)
	h6.fillASCII(f6, "other", 0, []byte("o"), nil)
	h6.xdp(withIPv6DestOpts(t, f6.tcpSyn(t, 0, nil)))
	h6.xdp(withIPv6DestOpts(t, f6.tcpToServer(t, 1, []byte("delete k\r\n"))))
	h6.expectMiss(f6, "k")
	h6.getHit(f6, "get", "other")
}

// withIPv6DestOpts inserts an 8-byte destination-options header after the
// IPv6 header of an Ethernet frame.
func withIPv6DestOpts(t testing.TB, pkt []byte) []byte { return withIPv6DestOptsN(t, pkt, 8) }

// withIPv6DestOptsN inserts an n-byte destination-options header (n a
// multiple of 8, 8 to 2048) filled with PadN options.
func withIPv6DestOptsN(t testing.TB, pkt []byte, n int) []byte {
	t.Helper()
	const ip6 = 14
	if n%8 != 0 || n < 8 || n > 2048 {
		t.Fatalf("destination options of %d bytes", n)
	}
	out := append([]byte{}, pkt[:ip6+40]...)
	next := out[ip6+6]
	out[ip6+6] = 60
	plen := int(out[ip6+4])<<8 | int(out[ip6+5])
	plen += n
	out[ip6+4], out[ip6+5] = byte(plen>>8), byte(plen)
	out = append(out, next, byte(n/8-1))
	for left := n - 2; left > 0; {
		k := min(left, 257) // PadN: 2 + up to 255 bytes
		if left-k == 1 {
			k-- // leave room for one more PadN, not a lone byte
		}
		out = append(out, 1, byte(k-2))
		out = append(out, make([]byte, k-2)...)
		left -= k
	}
	return append(out, pkt[ip6+40:]...)
}

// TestLineBoundariesAsMemcached: where a command ends and the next begins is
// memcached's decision (proto_text.c): a line it refuses reads no data block,
// one it accepts reads exactly <bytes>+2, numbers follow strtol's rules and
// are cut to 32 bits. Each stream is followed by "delete victim" that XDP
// must find (or, for the bytes memcached takes as data, must not act on).
func TestLineBoundariesAsMemcached(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream string
		stale  bool // victim's delete is data to memcached: victim stays cached
	}{
		{"too many tokens: ERROR, no data", "set k 0 0 10 x y\r\ndelete victim\r\n", false},
		{"bad length: CLIENT_ERROR, no data", "set k 0 0 10x\r\ndelete victim\r\n", false},
		{"bad cas unique: no data", "cas k 0 0 3 abc\r\ndelete victim\r\n", false},
		{"negative length: no data", "set k 0 0 -1\r\ndelete victim\r\n", false},
		{"key too long: no data", "set " + strings.Repeat("a", 251) + " 0 0 14\r\ndelete victim\r\n", false},
		{"plus sign accepted", "set k +0 0 13\r\ndelete victim\r\n", true},
		{"tab after a number accepted", "set k 0 0 13\t\r\ndelete victim\r\n", true},
		{"length cut to 32 bits", "set k 0 0 4294967309\r\ndelete victim\r\n", true},
		{"any 6th token is noreply's place", "set k 0 0 13 whatever\r\ndelete victim\r\n", true},
		{"NUL ends the line for the tokenizer", "set k 0 0 13\x00 junk\r\ndelete victim\r\n", true},
		{"meta set, error after the length swallows", "ms k 13 T1 T2\r\ndelete victim\r\n", true},
		{"meta set, too many flags reads no data", "ms k 13" + strings.Repeat(" q", 18) + "\r\ndelete victim\r\n", false},
		{"lone LF ends a line", "set k 0 0 1\nx\r\ndelete victim\n", false},
		{"data with protocol bytes", "set k 0 0 16\r\n\x80\x01\x00\x03set z 0 0 99\r\n\r\ndelete victim\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			f := v4flow()
			h.fillASCII(f, "victim", 0, []byte("v"), nil)
			h.tcp(f, 1, []byte(tc.stream))
			if tc.stale {
				h.getHit(f, "get", "victim")
			} else {
				h.expectMiss(f, "victim")
			}
			if n := h.stats().Get(StatFlushes); n != 0 {
				t.Errorf("%d flushes: the stream is readable exactly", n)
			}
		})
	}
}

// TestBinaryLookingASCIIValue: a segment of an ASCII connection that starts
// with 0x80 (the middle of a value) is value bytes, not a binary header.
func TestBinaryLookingASCIIValue(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	h.fillASCII(f, "victim", 0, []byte("v"), nil)
	value := append([]byte{0x80, 0x01, 0x00, 0x05}, bytes.Repeat([]byte{0}, 28)...)
	h.tcp(f, 1, []byte("set pickle 0 0 36\r\nabcd"))
	seq := uint32(1 + len("set pickle 0 0 36\r\nabcd"))
	h.xdp(f.tcpToServer(t, seq, append(value, "\r\ndelete victim\r\n"...)))
	h.expectMiss(f, "victim")
	if n := h.stats().Get(StatFlushes); n != 0 {
		t.Errorf("%d flushes", n)
	}
}

// shortFirstFragment turns an IPv4 frame (no VLAN, no options) into the
// first fragment of its datagram carrying only l4 bytes of its L4 header.
func shortFirstFragment(pkt []byte, l4 int) []byte {
	const ip = 14
	out := append([]byte{}, pkt[:ip+20+l4]...)
	out[ip+6] |= 0x20 // more fragments
	tot := 20 + l4
	out[ip+2], out[ip+3] = byte(tot>>8), byte(tot)
	out[ip+10], out[ip+11] = 0, 0
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(out[ip+i])<<8 | uint32(out[ip+i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	out[ip+10], out[ip+11] = byte(c>>8), byte(c)
	return out
}

// shortFirstFragment6 inserts a fragment header (offset 0, more fragments)
// into an IPv6 frame (no VLAN) and keeps only l4 bytes of its L4 header.
func shortFirstFragment6(pkt []byte, l4 int) []byte {
	const ip6 = 14
	out := append([]byte{}, pkt[:ip6+40]...)
	next := out[ip6+6]
	out[ip6+6] = 44
	plen := 8 + l4
	out[ip6+4], out[ip6+5] = byte(plen>>8), byte(plen)
	out = append(out, next, 0, 0, 1, 0, 0, 0x12, 0x34) // offset 0, M = 1
	return append(out, pkt[ip6+40:ip6+40+l4]...)
}

// TestUDPStoreCompletedByTheNextDatagram: a UDP datagram that ends inside a
// set's data block makes memcached read the next datagram on its socket,
// anyone's, as the rest of the block and store then: that next datagram
// flushes the cache before memcached can read it.
func TestUDPStoreCompletedByTheNextDatagram(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	h.fillASCII(f, "k", 0, []byte("v"), nil)
	h.xdp(f.udpToServer(t, frame(h.nextID(), []byte("set other 0 0 10\r\nab"))))
	if n := h.statDelta(StatFlushes, func() { h.expectMiss(f, "k") }); n != 1 {
		t.Fatalf("the datagram after an incomplete store: flushes +%d, want 1", n)
	}
	// once: the datagram after it is read normally
	h.fillASCII(f, "k", 0, []byte("v"), nil)
	h.getHit(f, "get", "k")
}
