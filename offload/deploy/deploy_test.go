package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/probe"
	"github.com/xdpcache/xdpcache/offload/record"
)

func testSettings() bpf.Settings {
	s := bpf.DefaultSettings()
	s.Entries = 4096
	s.WriteHold = 50 * time.Millisecond
	return s
}

func deployIn(t *testing.T, ns netlab.NS, o Options) (*record.Deployment, error) {
	t.Helper()
	var d *record.Deployment
	err := ns.Do(func() error {
		var err error
		d, err = Deploy(o)
		return err
	})
	return d, err
}

func statusIn(t *testing.T, ns netlab.NS, root string) *Status {
	t.Helper()
	var st *Status
	if err := ns.Do(func() error {
		var err error
		st, err = ReadStatus(root, ns.Iface)
		return err
	}); err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// assertClean checks that nothing of xdpcache is left on the interface.
func assertClean(t *testing.T, ns netlab.NS, root string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, ns.Iface)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pins left in %s", filepath.Join(root, ns.Iface))
	}
	err := ns.Do(func() error {
		lk, err := netlink.LinkByName(ns.Iface)
		if err != nil {
			return err
		}
		if x := lk.Attrs().Xdp; x != nil && x.Attached {
			return fmt.Errorf("XDP program %d still attached", x.ProgId)
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: lk.Attrs().Index, Attach: ebpf.AttachTCXEgress})
		if err == nil && len(res.Programs) > 0 {
			return fmt.Errorf("%d TCX egress programs still attached", len(res.Programs))
		}
		filters, _ := netlink.FilterList(lk, netlink.HANDLE_MIN_EGRESS)
		if len(filters) > 0 {
			return fmt.Errorf("%d tc egress filters left", len(filters))
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestDeployServesGETsEndToEnd(t *testing.T) {
	for _, want := range []mode.Mode{mode.Native, mode.Generic} {
		t.Run(string(want), func(t *testing.T) {
			lab, m := newLab(t)
			attachPass(t, lab.Client)
			root := testPinRoot(t)
			keys := make([]string, 20)
			for i := range keys {
				keys[i] = fmt.Sprintf("key:%02d", i)
			}
			// Three of these keys in one 2-way set would evict each other
			// every round (rare with any seed; the seed rules it out).
			s := testSettings()
			s.Seed = seedWithoutCollisions(t, keys, s.Entries, uint32(s.Ports[0]))
			d, err := deployIn(t, lab.Server, Options{Iface: lab.Server.Iface, Mode: want, Settings: s, PinRoot: root})
			if err != nil {
				t.Fatalf("deploy: %v", err)
			}
			if d.Mode != want {
				t.Fatalf("deployed in %s, want %s", d.Mode, want)
			}
			if want == mode.Generic && len(d.Warnings) == 0 {
				t.Errorf("generic mode deployed without a warning")
			}
			c := dialMC(t, lab, m)
			for i, k := range keys {
				c.set(k, fmt.Sprintf("value-%02d-%s", i, strings.Repeat("x", i)))
			}
			time.Sleep(100 * time.Millisecond) // past the write hold
			before := c.stats()
			const rounds = 10
			for r := range rounds {
				for i, k := range keys {
					v, ok := c.get(k)
					if want := fmt.Sprintf("value-%02d-%s", i, strings.Repeat("x", i)); !ok || v != want {
						t.Fatalf("round %d: get %s = %q, %v; want %q", r, k, v, ok, want)
					}
				}
			}
			after := c.stats()
			st := statusIn(t, lab.Server, root)
			if st.Occupancy <= 0 {
				t.Errorf("occupancy %v with %d keys cached", st.Occupancy, len(keys))
			}
			hits := st.Stats.Get(bpf.StatHits)
			mcGets := atoi(after["cmd_get"]) - atoi(before["cmd_get"])
			t.Logf("%s: %d GETs, %d answered by XDP, %d reached memcached", want, rounds*len(keys), hits, mcGets)
			if hits < uint64((rounds-1)*len(keys)) {
				t.Errorf("only %d of %d GETs answered from XDP; counters %v", hits, rounds*len(keys), st.Counters)
			}
			if mcGets > len(keys)+2 {
				t.Errorf("memcached saw %d GETs, want about %d (one miss per key)", mcGets, len(keys))
			}

			// A SET over TCP is seen by the very next UDP GET.
			for i := range 5 {
				nv := fmt.Sprintf("new-%d", i)
				c.set(keys[0], nv)
				if v, _ := c.get(keys[0]); v != nv {
					t.Fatalf("after set %q the next get returned %q", nv, v)
				}
			}
			// A GET over TCP fills the cache for later UDP GETs.
			c.set("tcp:key", "via-tcp")
			time.Sleep(100 * time.Millisecond)
			if v := c.tcpGet("tcp:key"); v != "via-tcp" {
				t.Fatalf("TCP get = %q", v)
			}
			hitsBefore := statusIn(t, lab.Server, root).Stats.Get(bpf.StatHits)
			if v, ok := c.get("tcp:key"); !ok || v != "via-tcp" {
				t.Fatalf("UDP get after TCP fill = %q, %v", v, ok)
			}
			if statusIn(t, lab.Server, root).Stats.Get(bpf.StatHits) != hitsBefore+1 {
				t.Errorf("the UDP GET after a TCP GET was not answered from the cache")
			}
			if st := statusIn(t, lab.Server, root); st.Stats.Get(bpf.StatInvalidations) < 5 {
				t.Errorf("invalidations %d, want >= 5", st.Stats.Get(bpf.StatInvalidations))
			}
			memcaslap(t, lab, m)

			if err := lab.Server.Do(func() error { return Undeploy(lab.Server.Iface, root) }); err != nil {
				t.Fatalf("undeploy: %v", err)
			}
			assertClean(t, lab.Server, root)
			// and memcached still answers without us
			if v, ok := c.get(keys[1]); !ok || !strings.HasPrefix(v, "value-01") {
				t.Errorf("after undeploy get = %q, %v", v, ok)
			}
		})
	}
}

// seedWithoutCollisions returns a hash seed that puts no more keys of
// instance inst (a port, bpf.Settings.InstanceID) in one set than it has
// ways, so that every key stays cached.
func seedWithoutCollisions(t *testing.T, keys []string, entries, inst uint32) uint64 {
	t.Helper()
	for seed := uint64(1); seed < 1000; seed++ {
		if !setOverflows(keys, bpf.InstanceSeed(seed, inst), entries) {
			return seed
		}
	}
	t.Fatalf("no seed below 1000 spreads %d keys over %d sets of %d ways", len(keys), entries/bpf.CacheWays, bpf.CacheWays)
	return 0
}

// setOverflows reports whether more than bpf.CacheWays of keys share a set.
func setOverflows(keys []string, seed uint64, entries uint32) bool {
	in := map[uint32]int{}
	for _, k := range keys {
		s := bpf.SetOf([]byte(k), seed, entries)
		if in[s]++; in[s] > bpf.CacheWays {
			return true
		}
	}
	return false
}

// memcaslap drives libmemcached's UDP load generator against the cache and
// requires that it finds no wrong value.
func memcaslap(t *testing.T, lab *netlab.Lab, m *netlab.Memcached) {
	t.Helper()
	if _, err := exec.LookPath("memcaslap"); err != nil {
		t.Log("memcaslap not installed (libmemcached-tools): skipping its run")
		return
	}
	cfg := filepath.Join(t.TempDir(), "memcaslap.cnf")
	os.WriteFile(cfg, []byte("key\n16 16 1\nvalue\n32 32 1\ncmd\n0 0.01\n1 0.99\n"), 0o644)
	out, err := lab.Client.Command(t.Context(), "memcaslap", "-s", fmt.Sprintf("%s:%d", m.Addr, m.Port),
		"-U", "-t", "2s", "-c", "4", "-T", "1", "-v", "1.0", "-F", cfg, "-w", "1k").CombinedOutput()
	if err != nil {
		t.Fatalf("memcaslap: %v\n%s", err, out)
	}
	for _, field := range []string{"verify_failed", "packet_drop"} {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, field+":") && strings.TrimSpace(strings.TrimPrefix(l, field+":")) != "0" {
				t.Errorf("memcaslap %s", l)
			}
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func TestDeployLifecycle(t *testing.T) {
	lab, _ := newLab(t)
	attachPass(t, lab.Client) // native XDP_TX replies reach a veth peer only if it runs XDP
	root := testPinRoot(t)
	o := Options{Iface: lab.Server.Iface, Mode: mode.Auto, Settings: testSettings(), PinRoot: root}

	// auto picks native on a veth whose peer runs XDP
	d, err := deployIn(t, lab.Server, o)
	if err != nil {
		t.Fatal(err)
	}
	if d.Mode != mode.Native {
		t.Fatalf("auto chose %s on veth, want native", d.Mode)
	}
	// deploying again with the same settings changes nothing
	d2, err := deployIn(t, lab.Server, o)
	if err != nil {
		t.Fatal(err)
	}
	if d2.XDPProgID != d.XDPProgID {
		t.Errorf("a repeated deploy replaced the program (%d -> %d)", d.XDPProgID, d2.XDPProgID)
	}
	// new settings replace it
	o2 := o
	o2.Settings.MaxAge = 5 * time.Second
	d3, err := deployIn(t, lab.Server, o2)
	if err != nil {
		t.Fatal(err)
	}
	if d3.XDPProgID == d.XDPProgID || d3.Settings.MaxAge != 5*time.Second {
		t.Errorf("new settings were not applied: %+v", d3)
	}
	if d3.Attempts[0].Why != "programs swapped in place" {
		t.Errorf("the upgrade was not done in place: %+v", d3.Attempts)
	}
	if st := statusIn(t, lab.Server, root); !st.Attached || st.XDPProgID != d3.XDPProgID || st.Settings.MaxAge != 5*time.Second {
		t.Errorf("status after the upgrade: attached=%v prog %d settings %+v", st.Attached, st.XDPProgID, st.Settings)
	}
	// a deployment made by a build whose maps differ (here: one pin
	// missing) cannot take the new programs in place: it is replaced
	if err := os.Remove(filepath.Join(d3.PinDir, "maps", "stream_map")); err != nil {
		t.Fatal(err)
	}
	d4, err := deployIn(t, lab.Server, o)
	if err != nil {
		t.Fatalf("deploy over a deployment of another build: %v", err)
	}
	if d4.Attempts[0].Why == "programs swapped in place" || d4.Mode != mode.Native {
		t.Errorf("a deployment with other maps was upgraded in place: %+v", d4)
	}
	d3 = d4
	// offload on veth: a clear error, nothing changed
	if _, err := deployIn(t, lab.Server, Options{Iface: lab.Server.Iface, Mode: mode.Offload, Settings: testSettings(), PinRoot: root}); err == nil {
		t.Errorf("offload mode on veth succeeded")
	}
	if st := statusIn(t, lab.Server, root); !st.Attached || st.XDPProgID != d3.XDPProgID {
		t.Errorf("after a refused deploy: attached=%v prog %d", st.Attached, st.XDPProgID)
	}
	// undeploy twice: the second finds nothing and succeeds
	for range 2 {
		if err := lab.Server.Do(func() error { return Undeploy(lab.Server.Iface, root) }); err != nil {
			t.Fatalf("undeploy: %v", err)
		}
	}
	assertClean(t, lab.Server, root)
	// unknown interface
	if _, err := deployIn(t, lab.Server, Options{Iface: "nosuch0", Settings: testSettings(), PinRoot: root}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown interface: %v", err)
	}
}

func TestDeployRefusesForeignProgram(t *testing.T) {
	lab, _ := newLab(t)
	root := testPinRoot(t)
	attachPass(t, lab.Client) // keeps native usable once --force replaces the server's program
	attachPass(t, lab.Server) // someone else's XDP program
	o := Options{Iface: lab.Server.Iface, Settings: testSettings(), PinRoot: root}
	if _, err := deployIn(t, lab.Server, o); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("deploy over a foreign program: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, lab.Server.Iface)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused deploy left pins")
	}
	o.Force = true
	if d, err := deployIn(t, lab.Server, o); err != nil {
		t.Fatalf("deploy --force: %v", err)
	} else if d.Mode != mode.Native {
		t.Errorf("deploy --force chose %s, want native (attempts %+v)", d.Mode, d.Attempts)
	}
	if err := lab.Server.Do(func() error { return Undeploy(lab.Server.Iface, root) }); err != nil {
		t.Fatal(err)
	}
	assertClean(t, lab.Server, root)
}

func TestDeployRollsBackWhenTCAttachFails(t *testing.T) {
	lab, _ := newLab(t)
	attachPass(t, lab.Client) // roll back a native attach
	root := testPinRoot(t)
	o := Options{Iface: lab.Server.Iface, Settings: testSettings(), PinRoot: root,
		attachTC: func(int, *ebpf.Program, string) (record.TCAttach, error) {
			return "", errors.New("injected TC failure")
		}}
	if _, err := deployIn(t, lab.Server, o); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("deploy with a failing TC attach: %v", err)
	}
	assertClean(t, lab.Server, root)
}

func TestAutoFallsBackToGenericWithTheKernelsReason(t *testing.T) {
	lab, _ := newLab(t)
	root := testPinRoot(t)
	br := "xcbr" + lab.Server.Iface[3:]
	for _, args := range [][]string{
		{"link", "add", br, "type", "bridge"},
		{"addr", "add", "198.19.250.1/24", "dev", br},
		{"link", "set", br, "up"},
	} {
		if out, err := lab.Server.Command(t.Context(), "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	d, err := deployIn(t, lab.Server, Options{Iface: br, Mode: mode.Auto, Settings: testSettings(), PinRoot: root})
	if err != nil {
		t.Fatalf("deploy on a bridge: %v", err)
	}
	if d.Mode != mode.Generic {
		t.Fatalf("auto on a bridge: mode %s, attempts %+v", d.Mode, d.Attempts)
	}
	var native *record.Attempt
	for i := range d.Attempts {
		if d.Attempts[i].Mode == mode.Native {
			native = &d.Attempts[i]
		}
	}
	if native == nil || native.OK || !strings.Contains(native.Why, "native XDP") {
		t.Fatalf("the native step is not explained: %+v", d.Attempts)
	}
	t.Logf("native not used: %s", native.Why)
	if len(d.Warnings) == 0 {
		t.Errorf("generic mode chosen without a warning")
	}
	// --no-generic: auto stops at native and fails, leaving nothing behind.
	if err := lab.Server.Do(func() error { return Undeploy(br, root) }); err != nil {
		t.Fatal(err)
	}
	if _, err := deployIn(t, lab.Server, Options{Iface: br, Mode: mode.Auto, NoGeneric: true, Settings: testSettings(), PinRoot: root}); err == nil {
		t.Fatalf("--no-generic on a bridge succeeded")
	}
	br0 := lab.Server
	br0.Iface = br
	assertClean(t, br0, root)
}

func TestDryRunChangesNothing(t *testing.T) {
	lab, _ := newLab(t)
	attachPass(t, lab.Client)
	root := testPinRoot(t)
	d, err := deployIn(t, lab.Server, Options{Iface: lab.Server.Iface, Settings: testSettings(), PinRoot: root, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Plan) < 3 || !slices.ContainsFunc(d.Plan, func(s string) bool { return strings.Contains(s, "attach XDP in native mode") }) {
		t.Errorf("plan: %q", d.Plan)
	}
	assertClean(t, lab.Server, root)
}

// TestAutoFollowsTheVethPeersXDP: memcached's end of a veth whose peer is in
// another namespace (a container's): while the peer runs no XDP program,
// native-mode replies would be dropped there, so auto deploys in generic mode
// and says why; once the peer runs XDP, auto deploys in native mode. Either
// way the client's GETs are answered from the cache.
func TestAutoFollowsTheVethPeersXDP(t *testing.T) {
	lab, m := newLab(t)
	root := testPinRoot(t)
	o := Options{Iface: lab.Server.Iface, Mode: mode.Auto, Settings: testSettings(), PinRoot: root}
	c := dialMC(t, lab, m)
	c.set("k", "v")
	time.Sleep(100 * time.Millisecond) // past the write hold

	for _, tc := range []struct {
		name      string
		peerXDP   bool
		want      mode.Mode
		nativeWhy string // in the skipped native attempt; "" = native was used
	}{
		{"peer without XDP", false, mode.Generic, "runs no XDP program"},
		{"peer with XDP", true, mode.Native, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.peerXDP {
				attachPass(t, lab.Client)
			}
			d, err := deployIn(t, lab.Server, o)
			if err != nil {
				t.Fatalf("deploy: %v", err)
			}
			defer func() {
				if err := lab.Server.Do(func() error { return Undeploy(lab.Server.Iface, root) }); err != nil {
					t.Errorf("undeploy: %v", err)
				}
			}()
			if d.Mode != tc.want {
				t.Fatalf("auto chose %s, want %s; attempts %+v", d.Mode, tc.want, d.Attempts)
			}
			if tc.nativeWhy != "" {
				i := slices.IndexFunc(d.Attempts, func(a record.Attempt) bool { return a.Mode == mode.Native })
				if i < 0 || d.Attempts[i].OK || !strings.Contains(d.Attempts[i].Why, tc.nativeWhy) ||
					!strings.Contains(d.Attempts[i].Why, lab.Client.Iface) {
					t.Fatalf("the native step does not say why: %+v", d.Attempts)
				}
				t.Logf("native not used: %s", d.Attempts[i].Why)
			}
			hits := statusIn(t, lab.Server, root).Stats.Get(bpf.StatHits)
			for range 5 {
				if v, ok := c.get("k"); !ok || v != "v" {
					t.Fatalf("get in %s mode: %q %v", d.Mode, v, ok)
				}
			}
			if got := statusIn(t, lab.Server, root).Stats.Get(bpf.StatHits) - hits; got < 4 {
				t.Errorf("%s mode answered %d of 5 GETs from the cache, want at least 4 (the first may fill it)", d.Mode, got)
			}
		})
	}
}

// TestExplicitNativeRefusedWhenThePeerDropsReplies: asked for native mode by
// name on a veth whose peer runs no XDP program, deploy refuses — the kernel
// would accept the attach and every reply the cache sends would be lost —
// says how to fix it, and leaves nothing behind.
func TestExplicitNativeRefusedWhenThePeerDropsReplies(t *testing.T) {
	lab, _ := newLab(t)
	root := testPinRoot(t)
	_, err := deployIn(t, lab.Server, Options{Iface: lab.Server.Iface, Mode: mode.Native, Settings: testSettings(), PinRoot: root})
	if err == nil {
		t.Fatal("native mode attached although the veth peer runs no XDP program")
	}
	for _, want := range []string{"runs no XDP program", lab.Client.Iface, "--mode generic"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	assertClean(t, lab.Server, root)
}

// The probe recognises a deployment as ours (a generic-mode one, with its
// TC filler).
func TestProbeSeesOurDeployment(t *testing.T) {
	lab, _ := newLab(t)
	root := testPinRoot(t)
	d, err := deployIn(t, lab.Server, Options{Iface: lab.Server.Iface, Mode: mode.Generic, Settings: testSettings(), PinRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	var r *probe.Report
	if err := lab.Server.Do(func() error {
		var err error
		r, err = probe.Run(lab.Server.Iface, probe.Options{PinRoot: root}, probe.DecideOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.TCFilters, "tcx egress xdpcache_tc") || !strings.HasPrefix(r.Netns, "net:[") {
		t.Errorf("tc filters %v, netns %q", r.TCFilters, r.Netns)
	}
	if r.XDP.Attached != "generic" || r.XDP.SkbProgID != d.XDPProgID || !r.Ours || r.XDPProgName != "xdpcache_xdp" {
		t.Errorf("generic deployment seen as %+v (ours=%v, name %q); deployed prog %d", r.XDP, r.Ours, r.XDPProgName, d.XDPProgID)
	}
	if i := slices.IndexFunc(r.Checks, func(c probe.Check) bool { return c.ID == "attached" }); i < 0 || r.Checks[i].Status != probe.Pass {
		t.Errorf("our own program should be an upgrade, not a failure: %+v", r.Checks)
	}
	lab.Server.Do(func() error { return Undeploy(lab.Server.Iface, root) })
}

// TestDeployFollowsTheLinkAndMemcached: the reply limit comes down to the
// interface's MTU (a larger reply would be lost), and the datapath reads
// connections with memcached's own -B setting.
func TestDeployFollowsTheLinkAndMemcached(t *testing.T) {
	lab, _ := labtest.Start(t, "-B", "ascii")
	attachPass(t, lab.Client)
	labtest.IP(t, lab.Server, "link", "set", "dev", lab.Server.Iface, "mtu", "1450")
	root := testPinRoot(t)
	d, err := deployIn(t, lab.Server, Options{Iface: lab.Server.Iface, Mode: mode.Native, Settings: testSettings(), PinRoot: root})
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Server.Do(func() error { return Undeploy(lab.Server.Iface, root) }); err != nil {
			t.Errorf("undeploy: %v", err)
		}
	})
	if d.Settings.MTU != 1450 || d.Settings.Protocol != "ascii" {
		t.Errorf("settings MTU %d protocol %q, want 1450 and ascii", d.Settings.MTU, d.Settings.Protocol)
	}
	c, err := bpf.LoadPinned(d.PinDir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _, err := c.Config()
	if err != nil || s.MTU != 1450 || s.Protocol != "ascii" {
		t.Errorf("the programs run with MTU %d protocol %q (%v)", s.MTU, s.Protocol, err)
	}
}

// TestClsactQdiscRemovedWhenOurs: on kernels without TCX the filler goes on
// a clsact qdisc; undeploy removes the qdisc only if deploy added it and no
// filter is left on it.
func TestClsactQdiscRemovedWhenOurs(t *testing.T) {
	labtest.RequireRoot(t, "creates network namespaces and attaches TC programs")
	c, err := bpf.Load(testSettings())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		name     string
		existing bool // a clsact qdisc was there before deploy
	}{{"added by deploy", false}, {"there before", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := labtest.NS(t, "xc-clsact")
			labtest.IP(t, ns, "link", "add", "xq0", "type", "veth", "peer", "name", "xq1")
			labtest.IP(t, ns, "link", "set", "xq0", "up")
			if tc.existing {
				if err := ns.Command(context.Background(), "tc", "qdisc", "add", "dev", "xq0", "clsact").Run(); err != nil {
					t.Fatalf("tc qdisc add: %v", err)
				}
			}
			pinDir := filepath.Join(testPinRoot(t), "xq0")
			if err := os.MkdirAll(pinDir, 0o700); err != nil {
				t.Fatal(err)
			}
			qdiscs := func() string {
				out, err := ns.Command(context.Background(), "tc", "qdisc", "show", "dev", "xq0").CombinedOutput()
				if err != nil {
					t.Fatalf("tc qdisc show: %v %s", err, out)
				}
				return string(out)
			}
			if err := ns.Do(func() error {
				idx, err := ns.Ifindex("xq0")
				if err != nil {
					return err
				}
				if how, err := attachClsact(idx, c.TC, pinDir); err != nil || how != record.TCClsact {
					return fmt.Errorf("attach: %v %v", how, err)
				}
				if q := qdiscs(); !strings.Contains(q, "clsact") {
					return fmt.Errorf("no clsact qdisc after attach: %s", q)
				}
				return detachTC(idx, pinDir)
			}); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(qdiscs(), "clsact"); got != tc.existing {
				t.Errorf("clsact qdisc left: %v, want %v (%s)", got, tc.existing, qdiscs())
			}
		})
	}
}

func TestSetOverflows(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keys    []string
		entries uint32
		want    bool
	}{
		{"two keys in one set fit its ways", []string{"a", "b"}, 2, false},
		{"a third key in one set overflows", []string{"a", "b", "c"}, 2, true},
		{"one key", []string{"a"}, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := setOverflows(tc.keys, 1, tc.entries); got != tc.want {
				t.Errorf("setOverflows(%q, %d entries) = %v, want %v", tc.keys, tc.entries, got, tc.want)
			}
		})
	}
}
