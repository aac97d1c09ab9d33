package probe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/offload/mode"
)

// TestMemcachedSettings: the probe asks a real memcached for its settings;
// one that asks clients to authenticate, or serves no UDP, is refused for
// every mode (trying a mode explicitly cannot help), and its -B setting is
// reported for the datapath to follow.
func TestMemcachedSettings(t *testing.T) {
	auth := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(auth, []byte("user:secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		check    string // a failing check, or "" for none of ours
		protocol string
	}{
		{"plain", nil, "", "auto-negotiate"},
		{"ascii only", []string{"-B", "ascii"}, "", "ascii"},
		{"binary only", []string{"-B", "binary"}, "", "binary"},
		{"ascii authentication", []string{"-U", "0", "-Y", auth}, "memcached-auth", ""},
		{"no UDP", []string{"-U", "0"}, "memcached-udp", "auto-negotiate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lab, _ := labtest.Start(t, tc.args...)
			r := probeNS(t, lab.Server, lab.Server.Iface, DecideOptions{})
			if len(r.Memcached.Instances) != 1 {
				t.Fatalf("memcached instances: %+v", r.Memcached)
			}
			in := r.Memcached.Instances[0]
			if in.Protocol != tc.protocol || in.Port != 11211 {
				t.Errorf("instance %+v, want protocol %q", in, tc.protocol)
			}
			for _, id := range []string{"memcached-auth", "memcached-udp"} {
				c := checkByID(r, id)
				failing := c != nil && c.Status == Fail
				if failing != (id == tc.check) {
					t.Errorf("check %s: %+v", id, c)
				}
				if failing && (!c.Silent || !c.Blocks(mode.Native) || !c.Blocks(mode.Generic)) {
					t.Errorf("check %s must rule out every mode, even asked for: %+v", id, c)
				}
			}
			if tc.check != "" {
				if r.Plan.Mode != "" {
					t.Errorf("a mode was chosen: %+v", r.Plan)
				}
				if c := checkByID(r, tc.check); !strings.Contains(c.Reason, "11211") {
					t.Errorf("reason does not name the port: %q", c.Reason)
				}
			}
		})
	}
}
