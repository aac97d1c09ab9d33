package deploy

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/offload/mode"
)

func TestRacingDeploys(t *testing.T) {
	lab, _ := newLab(t)
	attachPass(t, lab.Client) // auto picks native on a veth whose peer runs XDP
	root := testPinRoot(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := testSettings()
			s.MaxAge = time.Duration(i+1) * time.Second // different settings: each would replace the other
			_, errs[i] = deployIn(t, lab.Server, Options{Iface: lab.Server.Iface, Settings: s, PinRoot: root})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !strings.Contains(err.Error(), "another xdpcache deploy") {
			t.Errorf("a losing deploy failed with an unclear error: %v", err)
		}
	}
	if ok == 0 {
		t.Fatalf("no deploy won: %v", errs)
	}
	st := statusIn(t, lab.Server, root)
	if !st.Attached {
		t.Fatalf("after racing deploys the program is not attached: %+v", st.Deployment)
	}
	if err := lab.Server.Do(func() error { return Undeploy(lab.Server.Iface, root) }); err != nil {
		t.Fatal(err)
	}
	assertClean(t, lab.Server, root)
}

func TestInterfaceDownUpKeepsServing(t *testing.T) {
	lab, m := newLab(t)
	attachPass(t, lab.Client)
	root := testPinRoot(t)
	if _, err := deployIn(t, lab.Server, Options{Iface: lab.Server.Iface, Mode: mode.Native, Settings: testSettings(), PinRoot: root}); err != nil {
		t.Fatal(err)
	}
	defer lab.Server.Do(func() error { return Undeploy(lab.Server.Iface, root) })
	c := dialMC(t, lab, m)
	c.set("k", "v")
	time.Sleep(100 * time.Millisecond)
	c.get("k") // fill
	for _, st := range []string{"down", "up"} {
		if out, err := lab.Server.Command(t.Context(), "ip", "link", "set", lab.Server.Iface, st).CombinedOutput(); err != nil {
			t.Fatalf("ip link set %s: %v %s", st, err, out)
		}
	}
	time.Sleep(200 * time.Millisecond)
	before := statusIn(t, lab.Server, root).Stats.Get(bpf.StatHits)
	if v, ok := c.get("k"); !ok || v != "v" {
		t.Fatalf("after down/up: %q %v", v, ok)
	}
	st := statusIn(t, lab.Server, root)
	if !st.Attached || st.Stats.Get(bpf.StatHits) != before+1 {
		t.Errorf("after down/up: attached=%v hits %d -> %d", st.Attached, before, st.Stats.Get(bpf.StatHits))
	}
}

// TestAllowListInNamespaces: a client outside the allow-list is answered by
// memcached, never from XDP; the pins are root's alone.
func TestAllowListInNamespaces(t *testing.T) {
	lab, m := newLab(t)
	attachPass(t, lab.Client)
	root := testPinRoot(t)
	s := testSettings()
	if _, err := deployIn(t, lab.Server, Options{Iface: lab.Server.Iface, Mode: mode.Native, Settings: s, PinRoot: root,
		Allow: []netip.Prefix{netip.MustParsePrefix("198.19.0.0/16")}}); err != nil {
		t.Fatal(err)
	}
	defer lab.Server.Do(func() error { return Undeploy(lab.Server.Iface, root) })
	c := dialMC(t, lab, m)
	c.set("k", "v")
	time.Sleep(100 * time.Millisecond)
	for range 5 {
		if v, ok := c.get("k"); !ok || v != "v" {
			t.Fatalf("get: %q %v", v, ok)
		}
	}
	st := statusIn(t, lab.Server, root)
	if st.Stats.Get(bpf.StatHits) != 0 || st.Stats.Get(bpf.StatPassNotAllowed) != 5 {
		t.Errorf("a source outside the allow-list was served from XDP: %v", st.Counters)
	}
	// pins: only root may enter or read them
	dir := filepath.Join(root, lab.Server.Iface)
	for _, p := range []string{root, dir, filepath.Join(dir, "maps")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, %v (want no group/other access)", p, fi.Mode(), err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "maps", "cache_map")); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("cache_map pin: %v %v", fi.Mode(), err)
	}
}
