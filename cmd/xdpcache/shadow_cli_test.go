package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
)

// TestShadowCLI: deploy --shadow, status shows the would-be ratio, and the
// plan of going live says the cache stays.
func TestShadowCLI(t *testing.T) {
	lab, m := labtest.Start(t)
	root := filepath.Join("/sys/fs/bpf", "xdpcache-test-shadow-"+lab.Server.Iface)
	defer os.RemoveAll(root)
	iface := lab.Server.Iface
	in := func(args ...string) (int, string) {
		var code int
		var out string
		lab.Server.Do(func() error { code, out = runApp(append(args, "--pin-root", root)...); return nil })
		return code, out
	}
	if code, out := in("deploy", "--iface", iface, "--listed-only", "--mode", "generic", "--write-hold", "10ms", "--shadow"); code != 0 {
		t.Fatalf("deploy --shadow: exit %d\n%s", code, out)
	}
	defer in("undeploy", "--iface", iface)
	c := labtest.Dial(t, lab, m)
	if err := c.TCP.Set("k", 0, 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	for range 4 {
		if items, err := c.UDP.Get("k"); err != nil || len(items) != 1 {
			t.Fatalf("get: %+v %v", items, err)
		}
	}
	code, out := in("status", "--iface", iface)
	if code != 0 || !strings.Contains(out, "SHADOW MODE") || !strings.Contains(out, "would answer 75.0% in the kernel (3 requests, 3 keys), 3 matched, 0 mismatches") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	// status --key: the key's set, computed from its hash as the programs
	// do, and the way it was filled into (the only key of its set: way 0)
	code, out = in("status", "--iface", iface, "--key", "k")
	place := regexp.MustCompile(`key "k" at port \d+: hash (0x[0-9a-f]{16}), set (\d+) \(entries (\d+) and (\d+)\), cached in way 0\n`).FindStringSubmatch(out)
	if code != 0 || place == nil {
		t.Fatalf("status --key: exit %d\n%s", code, out)
	}
	hashK, _ := strconv.ParseUint(place[1], 0, 64)
	set := (uint32(hashK) & (bpf.DefaultSettings().Entries - 1)) / bpf.CacheWays
	if place[2] != fmt.Sprint(set) || place[3] != fmt.Sprint(2*set) || place[4] != fmt.Sprint(2*set+1) {
		t.Fatalf("status --key: want set %d (entries %d and %d):\n%s", set, 2*set, 2*set+1, out)
	}
	// a value changed behind the cache's back (the server's loopback): the
	// mismatch names the key's hash, which status --key computes
	if err := lab.Server.Do(func() error {
		conn, err := lab.Server.DialTCP(netip.AddrPortFrom(m.Addr, m.Port), 2*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		return mcproto.NewTCPClient(conn, 2*time.Second).Set("k", 0, 0, []byte("changed"))
	}); err != nil {
		t.Fatal(err)
	}
	if items, err := c.UDP.Get("k"); err != nil || len(items) != 1 || string(items[0].Value) != "changed" {
		t.Fatalf("get after the change: %+v %v", items, err)
	}
	code, out = in("status", "--iface", iface, "--key", "k")
	hash := regexp.MustCompile(`key "k" at port \d+: hash (0x[0-9a-f]{16})`).FindStringSubmatch(out)
	if code != 0 || hash == nil || !strings.Contains(out, "1 mismatches") ||
		!strings.Contains(out, "key hash "+hash[1]+", value differs") {
		t.Fatalf("status after a mismatch: exit %d\n%s", code, out)
	}
	code, out = in("deploy", "--iface", iface, "--listed-only", "--mode", "generic", "--write-hold", "10ms", "--dry-run")
	if code != 0 || !strings.Contains(out, "turn shadow mode off (go live)") || !strings.Contains(out, "programs and cache stay") {
		t.Fatalf("deploy --dry-run without --shadow: exit %d\n%s", code, out)
	}
}
