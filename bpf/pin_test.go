package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
)

// pinTestDir is a fresh pin directory on /sys/fs/bpf, removed after the test.
func pinTestDir(t *testing.T) string {
	dir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-pintest-%d-%d", os.Getpid(), time.Now().UnixNano()))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Pin pins every map of each flavor's objects (as the collection specs list
// them) and LoadPinned opens them all again: a map added in C is pinned
// without a Go list to update.
func TestPinsCoverEveryMap(t *testing.T) {
	labtest.RequireRoot(t, "loads BPF programs and pins them")
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/bpf", &st) != nil || uint32(st.Type) != unix.BPF_FS_MAGIC {
		if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"); err != nil {
			t.Fatalf("mount bpffs at /sys/fs/bpf: %v", err)
		}
	}
	s := DefaultSettings()
	s.Entries = 1024
	for _, tc := range []struct {
		name   string
		objs   []objectLoader
		load   func() (Flavor, error)
		reopen func(dir string) (Flavor, error)
	}{
		{"host", hostObjects,
			func() (Flavor, error) { return Load(s) },
			func(dir string) (Flavor, error) { return LoadPinned(dir) }},
		{"offload", offloadObjects,
			func() (Flavor, error) { return LoadOffload(s, OffloadOptions{}) },
			func(dir string) (Flavor, error) { return LoadPinnedOffload(dir, 1, s.Entries) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := objectMapNames(tc.objs)
			if err != nil {
				t.Fatal(err)
			}
			f, err := tc.load()
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			dir := pinTestDir(t)
			if err := f.Pin(dir); err != nil {
				t.Fatal(err)
			}
			ents, err := os.ReadDir(filepath.Join(dir, pinMapsDir))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range ents {
				got = append(got, e.Name())
			}
			if !slices.Equal(got, want) {
				t.Errorf("pinned maps %v, the objects have %v", got, want)
			}
			g, err := tc.reopen(dir)
			if err != nil {
				t.Fatal(err)
			}
			g.Close()
			if err := Unpin(dir); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// LoadPinned refuses, with an error naming the map and saying what to do,
// a deployment whose maps another xdpcache version pinned: a map this
// build has and the pins lack, or one whose layout differs.
func TestLoadPinnedRefusesAnotherVersionsMaps(t *testing.T) {
	labtest.RequireRoot(t, "loads BPF programs and pins them")
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/bpf", &st) != nil || uint32(st.Type) != unix.BPF_FS_MAGIC {
		t.Skip("no bpffs at /sys/fs/bpf")
	}
	s := DefaultSettings()
	s.Entries = 1024
	for _, tc := range []struct {
		name    string
		mapName string
		change  func(t *testing.T, pin string) // the map's pin
		why     string
	}{
		{"a map missing", xdpMapReplySlots, func(t *testing.T, pin string) {
			if err := os.Remove(pin); err != nil {
				t.Fatal(err)
			}
		}, "not pinned"},
		{"a value layout changed", xdpMapConfigMap, func(t *testing.T, pin string) {
			old, err := ebpf.LoadPinnedMap(pin, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			m, err := ebpf.NewMap(&ebpf.MapSpec{Type: old.Type(), KeySize: old.KeySize(), ValueSize: old.ValueSize() - 8, MaxEntries: old.MaxEntries()})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := os.Remove(pin); err != nil {
				t.Fatal(err)
			}
			if err := m.Pin(pin); err != nil {
				t.Fatal(err)
			}
		}, "-byte values pinned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(s)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			dir := pinTestDir(t)
			if err := c.Pin(dir); err != nil {
				t.Fatal(err)
			}
			tc.change(t, filepath.Join(dir, pinMapsDir, tc.mapName))
			got, err := LoadPinned(dir)
			if err == nil {
				got.Close()
				t.Fatal("LoadPinned opened another version's pins")
			}
			var ie *IncompatiblePinsError
			if !errors.As(err, &ie) || ie.Map != tc.mapName || !strings.Contains(ie.Why, tc.why) ||
				!strings.Contains(err.Error(), "xdpcache undeploy") {
				t.Errorf("LoadPinned: %v; want an IncompatiblePinsError for %s (%q) saying what to do", err, tc.mapName, tc.why)
			}
		})
	}
}
