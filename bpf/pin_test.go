package bpf

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
)

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
			dir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-pintest-%d-%d", os.Getpid(), time.Now().UnixNano()))
			t.Cleanup(func() { os.RemoveAll(dir) })
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
