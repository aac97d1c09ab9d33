package probe

import (
	"net/netip"
	"testing"

	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/offload/record"
)

// TestWritePaths builds a namespace with lo, a listed interface, another
// one up, two down and a bridge with a port (veths: no dummy module here), and checks which paths a
// deployment would watch, with and without --listed-only.
func TestWritePaths(t *testing.T) {
	ns := labtest.NS(t, "xcwp")
	for _, args := range [][]string{
		{"link", "add", "srv0", "type", "veth", "peer", "name", "oth0"}, {"link", "set", "srv0", "up"}, {"link", "set", "oth0", "up"},
		{"addr", "add", "198.18.7.1/24", "dev", "oth0"},
		{"link", "add", "off0", "type", "veth", "peer", "name", "off1"},
		{"link", "add", "br0", "type", "bridge"}, {"link", "set", "br0", "up"},
		{"link", "add", "port0", "type", "veth", "peer", "name", "port1"}, {"link", "set", "port0", "master", "br0"}, {"link", "set", "port0", "up"},
	} {
		labtest.IP(t, ns, args...)
	}
	type want struct {
		covered bool
		role    record.Role
	}
	for _, tc := range []struct {
		name       string
		listedOnly bool
		listen     []netip.Addr
		want       map[string]want
	}{
		{"default", false, nil, map[string]want{
			"srv0": {true, record.RoleServe}, "lo": {true, record.RoleWatch}, "oth0": {true, record.RoleWatch},
			"br0": {true, record.RoleWatch}, "port0": {true, ""}, "off0": {false, ""}, "off1": {false, ""}, "port1": {false, ""}}},
		{"memcached on oth0's address", false, []netip.Addr{netip.MustParseAddr("198.18.7.1")}, map[string]want{
			"srv0": {true, record.RoleServe}, "lo": {true, record.RoleWatch}, "oth0": {true, record.RoleWatch},
			"br0": {false, ""}, "port0": {true, ""}, "off0": {false, ""}, "off1": {false, ""}, "port1": {false, ""}}},
		{"listed only", true, nil, map[string]want{
			"srv0": {true, record.RoleServe}, "lo": {false, ""}, "oth0": {false, ""},
			"br0": {false, ""}, "port0": {true, ""}, "off0": {false, ""}, "off1": {false, ""}, "port1": {false, ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var paths []record.Path
			if err := ns.Do(func() error {
				var err error
				paths, err = WritePaths([]string{"srv0"}, tc.listedOnly, tc.listen)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			got := map[string]want{}
			for _, p := range paths {
				got[p.Iface] = want{p.Covered, p.Role}
				if p.Why == "" {
					t.Errorf("%s: no reason", p.Iface)
				}
			}
			for iface, w := range tc.want {
				if got[iface] != w {
					t.Errorf("%s: %+v, want %+v (all: %+v)", iface, got[iface], w, paths)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("paths %+v, want exactly %v", paths, tc.want)
			}
		})
	}
}
