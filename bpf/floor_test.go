package bpf

// The benchmark floor (c/bench_floor.c): generated into *_test files, so it
// is built only into this package's tests.
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3" -type floor_val floor c/bench_floor.c -- -I/usr/include/x86_64-linux-gnu

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"
)

// floorEntries and floorSeed are FLOOR_ENTRIES and FLOOR_SEED in bench_floor.c.
const (
	floorEntries = 1024
	floorSeed    = 0x5eed
)

// floorProgram loads the floor program with value stored under each key.
func floorProgram(tb testing.TB, value []byte, keys ...string) *ebpf.Program {
	tb.Helper()
	requireRoot(tb)
	var objs floorObjects
	if err := loadFloorObjects(&objs, nil); err != nil {
		tb.Fatalf("load floor: %v", err)
	}
	tb.Cleanup(func() { objs.Close() })
	var v floorFloorVal
	copy(v.V[:], value)
	for _, k := range keys {
		// the floor's map is direct-mapped
		if err := objs.FloorMap.Put(uint32(KeyHash([]byte(k), floorSeed))&(floorEntries-1), &v); err != nil {
			tb.Fatal(err)
		}
	}
	return objs.FloorXdp
}

// The floor must give the very reply the cache gives (same bytes after the
// frame header, valid checksums, addresses swapped), or it would not be a
// floor under that reply.
func TestBenchFloorReply(t *testing.T) {
	h := newHarness(t, nil)
	f := v4flow()
	key, value := "0123456789abcdef", bytes.Repeat([]byte("v"), 32)
	h.fillASCII(f, key, 0, value, nil)
	floor := floorProgram(t, value, key)
	for _, tc := range []struct {
		name string
		key  string
		want uint32
	}{
		{"hit", key, xdpTX},
		{"odd-length key", "0123456789abcde", xdpTX}, // another bucket: the floor answers from whatever it holds
		{"key too long for the floor", "0123456789abcdef0123456789abcdef0", xdpPass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt := f.udpToServer(t, frame(9, getLine("get", tc.key)))
			ret, out, err := runProg(floor, pkt)
			if err != nil {
				t.Fatal(err)
			}
			if ret != tc.want {
				t.Fatalf("floor returned %d, want %d", ret, tc.want)
			}
			if ret != xdpTX {
				return
			}
			r := decodeReply(t, f, out)
			var v floorFloorVal // a bucket the floor never filled holds zeros
			if tc.key == key {
				copy(v.V[:], value)
			}
			want := append(asciiItem(tc.key, 0, v.V[:], nil), "END\r\n"...)
			if got := r.payload[8:]; !bytes.Equal(got, want) {
				t.Fatalf("floor reply\n got %q\nwant %q", got, want)
			}
			if tc.key != key {
				return
			}
			ret, cached := h.xdp(pkt)
			if ret != xdpTX || !bytes.Equal(cached, out) {
				t.Fatalf("cache (%d) and floor replies differ:\ncache %x\nfloor %x", ret, cached, out)
			}
		})
	}
}
