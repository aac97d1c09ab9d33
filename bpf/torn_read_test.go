package bpf

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrentReadsSeeWholeItems races GET hits on two threads against
// fills of other values into the same entry on a third. Hits copy an item's
// bytes outside the entry's lock and keep the copy only if its version did
// not move (struct item in structs.h). Every value is one letter repeated; a
// reply mixing letters, or with a length or flags from another fill, is a
// torn read. (Removing the version check makes this fail.) The cache is one
// 2-way set; with another key in way 0 the fills and hits go to way 1,
// whose readers first check way 0 and whose fills read the set's gen there.
func TestConcurrentReadsSeeWholeItems(t *testing.T) {
	for _, tc := range []struct {
		name  string
		other string // a key filled first, into way 0 ("": none)
		way   int    // the way k's fills go to
		udp   bool   // k deleted over UDP (over TCP the connection is unsynced: every delete flushes)
	}{
		{"way 0", "", 0, false},
		{"way 1", "other", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) { raceReadsAndFills(t, tc.other, tc.way, tc.udp) })
	}
}

func raceReadsAndFills(t *testing.T, other string, way int, udpDelete bool) {
	const (
		vlen   = 1000 // long copies widen the window a torn read needs
		rounds = 8000
	)
	h := newHarness(t, func(s *Settings) { s.Entries = CacheWays })
	f := v4flow()
	if other != "" {
		h.fillASCII(f, other, 0, []byte("o"), nil)
	}
	// Two items that differ in every byte, in their lengths and in
	// their flags; a fill alternates between them.
	type fillPkts struct{ invalidate, get, reply []byte }
	items := [2][]byte{
		asciiItem("k", 1, bytes.Repeat([]byte("a"), vlen), nil),
		asciiItem("k", 22, bytes.Repeat([]byte("b"), vlen-9), nil),
	}
	var fills [64]fillPkts
	for i := range fills {
		id := uint16(1000 + i)
		invalidate := f.tcpToServer(t, uint32(i), []byte("delete k\r\n"))
		if udpDelete {
			invalidate = f.udpToServer(t, frame(uint16(2000+i), []byte("delete k\r\n")))
		}
		fills[i] = fillPkts{
			invalidate: invalidate,
			get:        f.udpToServer(t, frame(id, getLine("get", "k"))),
			reply:      f.udpToClient(t, frame(id, append(items[i%2], "END\r\n"...))),
		}
	}
	readPkt := f.udpToServer(t, frame(7, getLine("get", "k")))
	var whole [2][]byte
	for i := range whole {
		whole[i] = append(frame(7, items[i]), "END\r\n"...)
	}

	var stop atomic.Bool
	var hits, torn atomic.Int64
	var firstTorn atomic.Value
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for !stop.Load() {
				ret, out, err := runProg(h.c.XDP, readPkt)
				if err != nil {
					errc <- err
					return
				}
				if ret != xdpTX {
					continue
				}
				hits.Add(1)
				if !bytes.HasSuffix(out, whole[0]) && !bytes.HasSuffix(out, whole[1]) {
					torn.Add(1)
					firstTorn.CompareAndSwap(nil, string(out))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stop.Store(true)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for i := range rounds {
			p := fills[i%len(fills)]
			for _, pkt := range [][]byte{p.invalidate, p.get} {
				if _, _, err := runProg(h.c.XDP, pkt); err != nil {
					errc <- err
					return
				}
			}
			if _, _, err := runProg(h.c.TC, p.reply); err != nil {
				errc <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	filled := h.stats().Get(StatFills)
	t.Logf("%d fills, %d hits, %d torn", filled, hits.Load(), torn.Load())
	if filled < rounds/2 {
		t.Fatalf("only %d of %d fills took: the race was not exercised; stats %v", filled, rounds, h.stats().Named())
	}
	if hits.Load() == 0 {
		t.Fatal("no GET hit while fills ran: the race was not exercised")
	}
	if n := torn.Load(); n > 0 {
		t.Fatalf("%d torn replies, first:\n%q", n, firstTorn.Load())
	}
	if got := h.waysOf("k"); len(got) != 1 || got[0] != way {
		t.Errorf("k is in ways %v, want [%d]", got, way)
	}
	if other != "" {
		h.getHit(f, "get", other) // k's deletes left it
	}
}

// The lock-free item reads use plain loads only where the CPU keeps loads
// in order (loads_ordered in c/include/host/cache.h): x86-64. Everywhere else
// the loader must leave the fully ordered atomics.
func TestLoadsOrderedFollowsTheCPU(t *testing.T) {
	spec, err := xdpSpec()
	if err != nil {
		t.Fatal(err)
	}
	var got uint32
	if err := spec.Variables[xdpVarLoadsOrdered].Get(&got); err != nil {
		t.Fatal(err)
	}
	if want := map[bool]uint32{true: 1, false: 0}[runtime.GOARCH == "amd64"]; got != want {
		t.Errorf("loads_ordered = %d on %s, want %d", got, runtime.GOARCH, want)
	}
}
