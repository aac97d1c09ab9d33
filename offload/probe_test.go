package offload

import (
	"slices"
	"strings"
	"testing"

	"github.com/xdpcache/xdpcache/internal/netlab"
)

func probeIn(t *testing.T, ns netlab.NS, iface string, pinRoot ...string) *Report {
	t.Helper()
	var r *Report
	opts := ProbeOptions{}
	if len(pinRoot) > 0 {
		opts.PinRoot = pinRoot[0]
	}
	if err := ns.Do(func() error {
		var err error
		r, err = ProbeInterface(iface, opts, DecideOptions{})
		return err
	}); err != nil {
		t.Fatalf("probe %s: %v", iface, err)
	}
	return r
}

func checkByID(r *Report, id string) *Check {
	for i := range r.Checks {
		if r.Checks[i].ID == id {
			return &r.Checks[i]
		}
	}
	return nil
}

func TestProbeRealDevices(t *testing.T) {
	lab, _ := newLab(t) // memcached -U 11211 runs in the server namespace

	// veth: native XDP, no offload; the peer has no XDP program yet.
	r := probeIn(t, lab.Server, lab.Server.Iface)
	if r.Driver != "veth" || !r.XDPFeatures.Available || !r.XDPFeatures.Has(XDPBasic) || r.XDPFeatures.Has(XDPHWOffload) {
		t.Fatalf("veth: driver %q, xdp features %+v", r.Driver, r.XDPFeatures)
	}
	if r.NICDB == nil || r.NICDB.MaxXDPMTU != 3520 {
		t.Errorf("veth not found in nicdb: %+v", r.NICDB)
	}
	if !slices.Contains(r.Memcached.UDPListening, 11211) {
		t.Errorf("memcached -U 11211 not seen: %+v", r.Memcached)
	}
	// the peer is in the client namespace: cannot be checked
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Warn {
		t.Errorf("veth peer in another netns: %+v", c)
	}
	if r.Plan.Mode != ModeNative {
		t.Errorf("veth plan: %+v", r.Plan)
	}

	// A veth pair inside one namespace: the peer check fails until the peer runs XDP.
	for _, args := range [][]string{{"link", "add", "xcpa", "type", "veth", "peer", "name", "xcpb"}, {"link", "set", "xcpa", "up"}, {"link", "set", "xcpb", "up"}} {
		if out, err := lab.Server.Command(t.Context(), "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	r = probeIn(t, lab.Server, "xcpa")
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Fail || r.Plan.Mode != ModeGeneric {
		t.Errorf("same-netns peer without XDP: check %+v, plan %+v", c, r.Plan)
	}
	peer := lab.Server
	peer.Iface = "xcpb"
	attachPass(t, peer)
	r = probeIn(t, lab.Server, "xcpa")
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Pass || r.Plan.Mode != ModeNative {
		t.Errorf("peer with XDP: check %+v, plan %+v", c, r.Plan)
	}
	// The peer's own program is foreign to xdpcache: probing it says so, with its mode and id.
	r = probeIn(t, lab.Server, "xcpb")
	if r.XDP.Attached != "native" || r.XDP.DrvProgID == 0 || r.Ours {
		t.Errorf("attached program: %+v ours=%v", r.XDP, r.Ours)
	}
	if c := checkByID(r, "attached"); c == nil || c.Status != Fail || r.Plan.Mode != "" {
		t.Errorf("foreign program: check %+v, plan %+v", c, r.Plan)
	}

	// A bridge and loopback have no native XDP: generic only.
	if out, err := lab.Server.Command(t.Context(), "ip", "link", "add", "xcbr0", "type", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, dev := range []string{"xcbr0", "lo"} {
		r = probeIn(t, lab.Server, dev)
		if r.XDPFeatures.Has(XDPBasic) || r.Plan.Mode != ModeGeneric || len(r.Plan.Warnings) == 0 {
			t.Errorf("%s: features %+v plan %+v", dev, r.XDPFeatures, r.Plan)
		}
		if !strings.Contains(r.Plan.Steps[1].Reason, "no native XDP") {
			t.Errorf("%s: native step reason %q", dev, r.Plan.Steps[1].Reason)
		}
	}
	// Unknown interface.
	if err := lab.Server.Do(func() error { _, err := ProbeInterface("nosuch0", ProbeOptions{}, DecideOptions{}); return err }); err == nil ||
		!strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown interface: %v", err)
	}
}

func TestQueryXDPGeneric(t *testing.T) {
	lab, _ := newLab(t)
	root := testPinRoot(t)
	d, err := deployIn(t, lab.Server, DeployOptions{Iface: lab.Server.Iface, Mode: "generic", Settings: testSettings(), PinRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	r := probeIn(t, lab.Server, lab.Server.Iface, root)
	if !slices.Contains(r.TCFilters, "tcx egress xdpcache_tc") || !strings.HasPrefix(r.Netns, "net:[") {
		t.Errorf("tc filters %v, netns %q", r.TCFilters, r.Netns)
	}
	if r.XDP.Attached != "generic" || r.XDP.SkbProgID != d.XDPProgID || !r.Ours || r.XDPProgName != "xdpcache_xdp" {
		t.Errorf("generic deployment seen as %+v (ours=%v, name %q); deployed prog %d", r.XDP, r.Ours, r.XDPProgName, d.XDPProgID)
	}
	if c := checkByID(r, "attached"); c == nil || c.Status != Pass {
		t.Errorf("our own program should be an upgrade, not a failure: %+v", c)
	}
	lab.Server.Do(func() error { return Undeploy(lab.Server.Iface, root) })
}
