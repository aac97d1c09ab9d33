package deploy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/offload/mode"
)

func TestShadowOffloadRefused(t *testing.T) {
	s := testSettings()
	s.Shadow = true
	_, err := Deploy(Options{Iface: "lo", Mode: mode.Offload, Settings: s})
	if err == nil || !strings.Contains(err.Error(), "shadow mode needs the host flavor") {
		t.Fatalf("deploy --shadow --mode offload: %v, want the host-flavor error", err)
	}
}

// TestShadowEndToEnd: deployed in shadow mode, every GET reaches memcached
// while the cache counts what it would have answered; a value changed behind
// the cache's back (over the server's loopback, which XDP on the veth never
// sees) is reported; going live keeps the cache, which then answers at once.
func TestShadowEndToEnd(t *testing.T) {
	lab, m := newLab(t)
	attachPass(t, lab.Client)
	root := testPinRoot(t)
	keys := make([]string, 10)
	for i := range keys {
		keys[i] = fmt.Sprintf("shadow:%02d", i)
	}
	s := testSettings()
	s.Seed = seedWithoutCollisions(t, keys, s.Entries, uint32(s.Ports[0]))
	s.Shadow = true
	o := Options{Iface: lab.Server.Iface, Mode: mode.Native, Settings: s, PinRoot: root,
		ListedOnly: true} // the test changes values behind the cache over loopback
	d, err := deployIn(t, lab.Server, o)
	if err != nil {
		t.Fatalf("deploy --shadow: %v", err)
	}
	defer lab.Server.Do(func() error { return Undeploy(lab.Server.Iface, root) })
	if !d.Settings.Shadow {
		t.Fatal("the deployment record does not say shadow mode")
	}
	c := dialMC(t, lab, m)
	for i, k := range keys {
		c.set(k, fmt.Sprintf("value-%02d", i))
	}
	time.Sleep(100 * time.Millisecond) // past the write hold
	before := c.stats()
	const rounds = 10
	for r := range rounds {
		for i, k := range keys {
			if v, ok := c.get(k); !ok || v != fmt.Sprintf("value-%02d", i) {
				t.Fatalf("round %d: get %s = %q, %v", r, k, v, ok)
			}
		}
	}
	after := c.stats()
	st := statusIn(t, lab.Server, root)
	gets := rounds * len(keys)
	if mcGets := atoi(after["cmd_get"]) - atoi(before["cmd_get"]); mcGets != gets {
		t.Errorf("memcached saw %d GETs of %d: shadow mode must pass every one", mcGets, gets)
	}
	if hits := st.Stats.Get(bpf.StatHits); hits != 0 {
		t.Errorf("shadow mode answered %d GETs in the kernel", hits)
	}
	sh := st.Shadow
	t.Logf("shadow: %s", sh)
	if sh.WouldAnswer < uint64((rounds-1)*len(keys)) || sh.WouldAnswerPct < 85 {
		t.Errorf("would answer %d of %d GETs (%.1f%%), want all but the first round; counters %v", sh.WouldAnswer, gets, sh.WouldAnswerPct, st.Counters)
	}
	if sh.Mismatches != 0 || sh.Matched != sh.WouldAnswerKeys {
		t.Errorf("%d mismatches, %d of %d would-be keys matched; want 0 and all", sh.Mismatches, sh.Matched, sh.WouldAnswerKeys)
	}

	// Change a value where XDP cannot see it: from the server's own
	// namespace, over loopback.
	stale := keys[3]
	var local *mcproto.TCPClient
	if err := lab.Server.Do(func() error {
		conn, err := lab.Server.DialTCP(netip.AddrPortFrom(m.Addr, m.Port), 2*time.Second)
		if err != nil {
			return err
		}
		t.Cleanup(func() { conn.Close() })
		local = mcproto.NewTCPClient(conn, 2*time.Second)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := local.Set(stale, 0, 0, []byte("changed-behind-the-cache")); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.get(stale); v != "changed-behind-the-cache" {
		t.Fatalf("shadow mode returned %q: memcached's reply must reach the client", v)
	}
	st = statusIn(t, lab.Server, root)
	if st.Shadow.Mismatches != 1 || st.Stats.Get(bpf.StatShadowMismatchVal) != 1 {
		t.Fatalf("after the change behind the cache: %d mismatches (counters %v), want 1 value mismatch", st.Shadow.Mismatches, st.Counters)
	}
	if len(st.ShadowMismatches) != 1 || st.ShadowMismatches[0].KeyHash != bpf.KeyHash([]byte(stale), bpf.InstanceSeed(s.Seed, uint32(s.Ports[0]))) ||
		st.ShadowMismatches[0].Reason != bpf.ShadowValue {
		t.Fatalf("mismatch log %+v, want %s's hash %#x, value differs", st.ShadowMismatches, stale, bpf.KeyHash([]byte(stale), bpf.InstanceSeed(s.Seed, uint32(s.Ports[0]))))
	}

	// Go live: the same deployment without --shadow. Programs and cache stay
	// (memcached's reply just now refilled the changed key).
	o.Settings.Shadow = false
	live, err := deployIn(t, lab.Server, o)
	if err != nil {
		t.Fatalf("deploy (go live): %v", err)
	}
	if live.Settings.Shadow || live.XDPProgID != d.XDPProgID || live.TCProgID != d.TCProgID {
		t.Fatalf("going live: shadow %v, programs %d/%d (were %d/%d): want the same programs, shadow off",
			live.Settings.Shadow, live.XDPProgID, live.TCProgID, d.XDPProgID, d.TCProgID)
	}
	before = c.stats()
	hitsBefore := statusIn(t, lab.Server, root).Stats.Get(bpf.StatHits)
	for i, k := range keys {
		want := fmt.Sprintf("value-%02d", i)
		if k == stale {
			want = "changed-behind-the-cache"
		}
		if v, ok := c.get(k); !ok || v != want {
			t.Fatalf("live: get %s = %q, %v; want %q", k, v, ok, want)
		}
	}
	after = c.stats()
	if mcGets := atoi(after["cmd_get"]) - atoi(before["cmd_get"]); mcGets != 0 {
		t.Errorf("live after shadow: memcached saw %d GETs, want 0 (the cache kept from shadow mode answers)", mcGets)
	}
	st = statusIn(t, lab.Server, root)
	if hits := st.Stats.Get(bpf.StatHits) - hitsBefore; hits != uint64(len(keys)) {
		t.Errorf("live: %d GETs answered in the kernel, want %d", hits, len(keys))
	}
	if st.Settings.Shadow {
		t.Error("status still says shadow mode")
	}

	// And back: shadow mode again, cache kept, nothing answered.
	o.Settings.Shadow = true
	if _, err := deployIn(t, lab.Server, o); err != nil {
		t.Fatalf("deploy --shadow again: %v", err)
	}
	before = c.stats()
	if v, _ := c.get(keys[0]); v != "value-00" {
		t.Fatalf("shadow again: get = %q", v)
	}
	if mcGets := atoi(c.stats()["cmd_get"]) - atoi(before["cmd_get"]); mcGets != 1 {
		t.Errorf("shadow again: memcached saw %d GETs, want 1", mcGets)
	}
}
