package bpf

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// altCaches loads, for development, the variants named in
// XDPCACHE_BENCH_ALT (comma-separated directories, each holding an
// xdp_bpfel.o and a tc_bpfel.o built from changed C sources), so that a
// change is measured against the committed programs in the same run, on the
// same frames, interleaved with them. Unset: none.
func altCaches(tb testing.TB) map[string]*harness {
	dirs := os.Getenv("XDPCACHE_BENCH_ALT")
	if dirs == "" {
		return nil
	}
	out := map[string]*harness{}
	for _, dir := range strings.Split(dirs, ",") {
		c, err := loadAlt(tb, dir)
		if err != nil {
			tb.Fatalf("variant %s: %v", dir, err)
		}
		tb.Cleanup(func() { c.Close() })
		out[filepath.Base(dir)] = harnessFor(tb, c)
	}
	return out
}

// loadAlt loads a variant's objects by program and map name, so that a
// variant whose maps differ from this build's (one map more or less, as
// before a map was replaced) still loads: its maps that this build names
// are the Cache's, the others live in the collections (closed with tb).
func loadAlt(tb testing.TB, dir string) (*Cache, error) {
	s := DefaultSettings()
	s.Entries = 1024
	s.WriteHold = 0
	s.Seed = 0x5eed
	s.RequireLocal = false
	s.MaxValue = MaxValueCap
	xspec, err := ebpf.LoadCollectionSpec(filepath.Join(dir, "xdp_bpfel.o"))
	if err != nil {
		return nil, err
	}
	xspec.Maps["cache_map"].MaxEntries = s.Entries
	if err := setLoadsOrdered(xspec); err != nil {
		return nil, err
	}
	xcoll, err := ebpf.NewCollection(xspec)
	if err != nil {
		return nil, VerifierSummary(err)
	}
	tb.Cleanup(func() { xcoll.Close() })
	c := &Cache{XDP: xcoll.Programs["xdpcache_xdp"]}
	all := mapFields(&c.Maps)
	for name, m := range xcoll.Maps {
		if f, ok := all[name]; ok {
			*f = m
		}
	}
	tspec, err := ebpf.LoadCollectionSpec(filepath.Join(dir, "tc_bpfel.o"))
	if err != nil {
		return nil, err
	}
	tspec.Maps["cache_map"].MaxEntries = s.Entries
	repl := map[string]*ebpf.Map{}
	for name := range tspec.Maps {
		if m, ok := xcoll.Maps[name]; ok && !strings.HasPrefix(name, ".") {
			repl[name] = m // XDP's maps, not its constants
		}
	}
	tcoll, err := ebpf.NewCollectionWithOptions(tspec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, VerifierSummary(err)
	}
	tb.Cleanup(func() { tcoll.Close() })
	c.TC = tcoll.Programs["xdpcache_tc"]
	if c.XDP == nil || c.TC == nil {
		return nil, fmt.Errorf("%s: no xdpcache_xdp or xdpcache_tc program", dir)
	}
	if err := c.Configure(s); err != nil {
		return nil, err
	}
	return c, nil
}

// altCases are the GET rows of benchCases for each variant, filled alike.
func altCases(tb testing.TB, alts map[string]*harness) []benchCase {
	var cases []benchCase
	f := v4flow()
	key16 := "0123456789abcdef"
	for name, h := range alts {
		// filled without counting fills: a variant may not count
		fill := func(key string, v []byte) {
			id := h.nextID()
			h.getMiss(f, id, "get", key)
			h.tc(f.udpToClient(tb, frame(id, append(asciiItem(key, 0, v, nil), "END\r\n"...))))
		}
		fill(key16, bytes.Repeat([]byte("v"), 32))
		var keys []string
		for i := range 10 {
			k := "multi:" + strings.Repeat("0", 9) + string(rune('0'+i))
			keys = append(keys, k)
			fill(k, bytes.Repeat([]byte("m"), 32))
		}
		prog := func(*harness) *ebpf.Program { return h.c.XDP }
		cases = append(cases,
			benchCase{name + ": GET hit, 16 B key, 32 B value", prog, func(*harness) []byte { return f.udpToServer(tb, frame(7, getLine("get", key16))) }, true},
			benchCase{name + ": GET miss", prog, func(*harness) []byte { return f.udpToServer(tb, frame(7, getLine("get", "absent:01234567"))) }, false},
			benchCase{name + ": 2-key multi-get, all hit", prog, func(*harness) []byte { return f.udpToServer(tb, frame(7, getLine("get", keys[:2]...))) }, true},
			benchCase{name + ": TC egress fill (no ticket)", func(*harness) *ebpf.Program { return h.c.TC }, func(*harness) []byte {
				return f.udpToClient(tb, frame(1, append(asciiItem("fill:0123456789", 0, bytes.Repeat([]byte("f"), 32), nil), "END\r\n"...)))
			}, false},
		)
	}
	return cases
}

// harnessFor is newHarness around a loaded cache.
func harnessFor(tb testing.TB, c *Cache) *harness {
	for _, p := range []string{"0.0.0.0/0", "::/0"} {
		if err := c.Allow(netip.MustParsePrefix(p), 0); err != nil {
			tb.Fatal(err)
		}
	}
	return &harness{t: tb, c: c, reqID: 100}
}
