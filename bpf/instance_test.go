package bpf

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// TestEntriesBelongToOneInstance fills a key from one memcached instance
// and checks that a GET to another instance (another port, or the same
// port at another address held by another process) is never answered with
// it, and that a write to the other instance leaves it cached.
func TestEntriesBelongToOneInstance(t *testing.T) {
	a := v4flow() // 198.18.0.1:11211
	otherPort, otherAddr, sameProc := a, a, a
	otherPort.sport = 11212
	otherAddr.server = netip.MustParseAddr("198.18.0.3")
	sameProc.server = netip.MustParseAddr("198.18.0.4")
	byAddr := []Listener{
		{Addr: netip.MustParseAddr("198.18.0.1"), Port: 11211, Instance: 1},
		{Addr: netip.MustParseAddr("198.18.0.4"), Port: 11211, Instance: 1}, // -l 198.18.0.1,198.18.0.4
		{Addr: netip.MustParseAddr("198.18.0.3"), Port: 11211, Instance: 2},
	}
	for _, tc := range []struct {
		name      string
		instances []Listener
		other     flow
		separate  bool // other is another instance
	}{
		{"another port", nil, otherPort, true},
		{"another address, another process", byAddr, otherAddr, true},
		{"another address, the same process", byAddr, sameProc, false},
		{"another address, one instance per port", nil, otherAddr, false},
		{"IPv4 wildcard listener of another process", []Listener{
			{Addr: netip.MustParseAddr("198.18.0.1"), Port: 11211, Instance: 1},
			{Addr: netip.IPv4Unspecified(), Port: 11211, Instance: 2}}, otherAddr, true},
		{"IPv6 wildcard listener of the same process", []Listener{
			{Addr: netip.MustParseAddr("198.18.0.3"), Port: 11211, Instance: 2},
			{Addr: netip.IPv6Unspecified(), Port: 11211, Instance: 1}}, sameProc, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(s *Settings) {
				s.Ports = []uint16{11211, 11212}
				s.Instances = tc.instances
			})
			h.fillASCII(a, "foo", 0, []byte("AAA"), nil)
			if got := h.getHit(a, "get", "foo"); string(got) != string(asciiItem("foo", 0, []byte("AAA"), nil))+"END\r\n" {
				t.Fatalf("hit at the filling instance: %q", got)
			}
			if !tc.separate {
				if got := h.getHit(tc.other, "get", "foo"); len(got) == 0 {
					t.Fatal("no hit at the same instance")
				}
				h.xdp(tc.other.udpToServer(t, frame(h.nextID(), []byte("delete foo\r\n"))))
				h.expectMiss(a, "foo")
				return
			}
			h.expectMiss(tc.other, "foo")
			// the other instance fills and serves its own value
			h.fillASCII(tc.other, "foo", 0, []byte("BBB"), nil)
			if got := h.getHit(tc.other, "get", "foo"); string(got) != string(asciiItem("foo", 0, []byte("BBB"), nil))+"END\r\n" {
				t.Fatalf("other instance's hit: %q", got)
			}
			// a write to the other instance leaves the first one's entry
			h.xdp(tc.other.udpToServer(t, frame(h.nextID(), []byte("delete foo\r\n"))))
			h.expectMiss(tc.other, "foo")
			if got := h.getHit(a, "get", "foo"); string(got) != string(asciiItem("foo", 0, []byte("AAA"), nil))+"END\r\n" {
				t.Fatalf("after a write to the other instance: %q", got)
			}
			// so does a flush_all of the other instance (ASCII, binary);
			// the other instance's own entries go
			h.fillASCII(tc.other, "bar", 0, []byte("B2"), nil)
			for _, flush := range [][]byte{[]byte("flush_all\r\n"), binReq(0x08, "", nil, nil, 1)} {
				h.xdp(tc.other.udpToServer(t, frame(h.nextID(), flush)))
				h.expectMiss(tc.other, "bar")
				if got := h.getHit(a, "get", "foo"); string(got) != string(asciiItem("foo", 0, []byte("AAA"), nil))+"END\r\n" {
					t.Fatalf("after %q to the other instance: %q", flush, got)
				}
				h.fillASCII(tc.other, "bar", 0, []byte("B2"), nil)
			}
			// a flush_all of its own instance drops the entry
			h.xdp(a.udpToServer(t, frame(h.nextID(), []byte("flush_all\r\n"))))
			h.expectMiss(a, "foo")
			if got := h.getHit(tc.other, "get", "bar"); len(got) == 0 {
				t.Fatal("a flush_all of the first instance dropped the other's entry")
			}
		})
	}
}

// TestKeyHashMatchesPrograms fills keys through the real programs and checks
// that each lands in the bucket KeyHash names for the instance's seed,
// holding the hash KeyHash gives and the instance Settings.InstanceID names.
func TestKeyHashMatchesPrograms(t *testing.T) {
	listeners := []Listener{{Addr: netip.MustParseAddr("198.18.0.1"), Port: 11211, Instance: 7},
		{Addr: netip.MustParseAddr("198.18.0.3"), Port: 11211, Instance: 8}}
	for _, tc := range []struct {
		name      string
		instances []Listener
		f         flow
	}{
		{"a port is an instance", nil, v4flow()},
		{"IPv6, a port is an instance", nil, v6flow()},
		{"instances by address", listeners, v4flow()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(s *Settings) { s.Instances = tc.instances })
			s, _, err := h.c.Config()
			if err != nil {
				t.Fatal(err)
			}
			s.Instances = tc.instances
			inst := s.InstanceID(tc.f.server, tc.f.sport)
			if tc.instances != nil && inst != 1<<16|7 {
				t.Fatalf("InstanceID = %#x, want %#x", inst, 1<<16|7)
			}
			seed := InstanceSeed(s.Seed, inst)
			for _, key := range []string{"k", "key:01", "exactly8", "nine-char", strings.Repeat("x", 33), strings.Repeat("long", 62)} {
				h.fillASCII(tc.f, key, 0, []byte("v"), nil)
				p, err := h.c.FindKey([]byte(key), inst)
				if err != nil {
					t.Fatal(err)
				}
				if p.Hash != KeyHash([]byte(key), seed) || p.Set != SetOf([]byte(key), seed, s.Entries) || len(p.Ways) == 0 {
					t.Errorf("%d-byte key: found %+v, want hash %#x in set %d of instance %#x",
						len(key), p, KeyHash([]byte(key), seed), SetOf([]byte(key), seed, s.Entries), inst)
				}
			}
		})
	}
}

// TestWatchProgramInvalidatesAndNeverServes runs the watch-only XDP
// program (for lo and other interfaces writes may come through) on the
// serving program's maps: a write it sees invalidates what the serving
// program answers; a GET it sees is neither answered nor ticketed.
func TestWatchProgramInvalidatesAndNeverServes(t *testing.T) {
	f := v4flow()
	for _, tc := range []struct {
		name  string
		write func(h *harness)
	}{
		{"UDP delete", func(h *harness) {
			h.watch(f.udpToServer(h.t, frame(h.nextID(), []byte("delete foo\r\n"))))
		}},
		{"TCP set", func(h *harness) {
			h.watch(f.tcpSyn(h.t, 999, nil))
			h.watch(f.tcpToServer(h.t, 1000, []byte("set foo 0 0 3\r\nBBB\r\n")))
		}},
		{"binary UDP delete", func(h *harness) {
			req := []byte{0x80, 0x04, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'f', 'o', 'o'}
			h.watch(f.udpToServer(h.t, frame(h.nextID(), req)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			if err := h.c.LoadWatch(); err != nil {
				t.Fatal(err)
			}
			h.fillASCII(f, "foo", 0, []byte("AAA"), nil)
			// a GET on the watched interface: passed, no ticket
			id := h.nextID()
			if ret, _ := h.watch(f.udpToServer(t, frame(id, getLine("get", "foo")))); ret != xdpPass {
				t.Fatalf("watch program answered a GET: %d", ret)
			}
			body := append(asciiItem("foo", 0, []byte("OLD"), nil), "END\r\n"...)
			if n := h.statDelta(StatFills, func() { h.tc(f.udpToClient(t, frame(id, body))) }); n != 0 {
				t.Fatalf("a reply to a GET the watch program saw filled %d", n)
			}
			h.getHit(f, "get", "foo")
			tc.write(h)
			h.expectMiss(f, "foo")
		})
	}
}

func (h *harness) watch(pkt []byte) (uint32, []byte) {
	h.t.Helper()
	ret, out, err := runProg(h.c.Watch, pkt)
	if err != nil {
		h.t.Fatalf("watch XDP test run: %v", err)
	}
	return ret, out
}

// TestOffloadEntriesBelongToOnePort: on the card an instance is a port. A
// key filled from memcached on one port is never served to a GET for the
// other port, which fills and serves its own value; a write to one port
// leaves the other's entry.
func TestOffloadEntriesBelongToOnePort(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write []byte // sent to the second port
	}{
		{"ASCII delete", []byte("delete foo\r\n")},
		{"binary delete", []byte{0x80, 0x04, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'f', 'o', 'o'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newOffHarness(t, func(s *Settings) { s.Ports = []uint16{11211, 11212} })
			a, b := v4flow(), v4flow()
			b.sport = 11212
			h.fill(a, "foo", 0, []byte("AAA"))
			if got, _ := h.getHit(a, "foo"); !bytes.Contains(got, []byte("AAA")) {
				t.Fatalf("hit at the filling port: %q", got)
			}
			h.expectMiss(b, "foo")
			h.fill(b, "foo", 0, []byte("BBB"))
			if got, _ := h.getHit(b, "foo"); !bytes.Contains(got, []byte("BBB")) {
				t.Fatalf("hit at the other port: %q", got)
			}
			h.xdp(b.udpToServer(t, frame(h.nextID(), tc.write)))
			h.expectMiss(b, "foo")
			if got, _ := h.getHit(a, "foo"); !bytes.Contains(got, []byte("AAA")) {
				t.Fatalf("after a write to the other port: %q", got)
			}
		})
	}
}
