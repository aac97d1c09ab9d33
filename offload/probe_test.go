package offload

import (
	"fmt"
	"net"
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
	// the peer is in the client namespace: read through its namespace id,
	// no XDP there yet, so native is ruled out (its replies would be lost)
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Fail || !r.VethPeer.Checked || r.VethPeer.Name != lab.Client.Iface ||
		r.VethPeer.NetnsName != lab.Client.Name || !strings.Contains(c.Fix, "ip -n "+lab.Client.Name+" link set dev "+lab.Client.Iface+" xdpdrv") {
		t.Errorf("veth peer in another netns: %+v, peer %+v", c, r.VethPeer)
	}
	if r.Plan.Mode != ModeGeneric {
		t.Errorf("veth plan with a peer without XDP: %+v", r.Plan)
	}
	attachPass(t, lab.Client)
	r = probeIn(t, lab.Server, lab.Server.Iface)
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Pass || r.Plan.Mode != ModeNative {
		t.Errorf("veth peer in another netns with XDP: check %+v, plan %+v", c, r.Plan)
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

// hasNote reports a note mentioning s.
func hasNote(r *Report, s string) bool {
	for _, n := range r.Notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// A veth pair across two namespaces, then one inside a namespace: what the
// kernel reports, and the veth-peer check before and after the peer gets an
// XDP_PASS program.
func TestProbeVethNamespaces(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	a.ip("link", "add", "xva", "type", "veth", "peer", "name", "xvb", "netns", b.Name)
	a.ip("addr", "add", "198.18.201.1/24", "dev", "xva")
	b.ip("addr", "add", "198.18.201.2/24", "dev", "xvb")
	a.ip("link", "set", "xva", "up")
	b.ip("link", "set", "xvb", "up")
	// something listening on UDP 11211 in a (memcached -U stands in)
	var conn net.PacketConn
	if err := a.do(func() error {
		var err error
		conn, err = net.ListenPacket("udp", "198.18.201.1:11211")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	r := a.probe("xva", DecideOptions{})
	if r.Driver != "veth" || r.LinkType != "veth" || r.Ifindex == 0 || r.MTU != 1500 || r.MaxMTU == 0 {
		t.Errorf("device: driver %q type %q ifindex %d mtu %d max %d", r.Driver, r.LinkType, r.Ifindex, r.MTU, r.MaxMTU)
	}
	if !r.XDPFeatures.Available || !r.XDPFeatures.Has(XDPBasic) || r.XDPFeatures.Has(XDPHWOffload) || !slices.Contains(r.XDPFeatures.Flags, "basic") {
		t.Errorf("veth xdp features: %+v", r.XDPFeatures)
	}
	if r.NICDB == nil || r.NICDB.MaxXDPMTU != 3520 {
		t.Errorf("nicdb entry for veth: %+v", r.NICDB)
	}
	if r.Rings != nil || hasNote(r, "rings") {
		t.Errorf("veth has no rings (EOPNOTSUPP), which is not an error: rings %+v notes %v", r.Rings, r.Notes)
	}
	if !slices.Contains(r.Memcached.UDPListening, 11211) || checkByID(r, "memcached-udp") != nil {
		t.Errorf("UDP 11211 bound in the namespace not seen: %+v", r.Memcached)
	}
	if r.Kernel.Version == "" || !r.Kernel.SpinLock || r.CPUs < 1 {
		t.Errorf("kernel facts %+v, cpus %d", r.Kernel, r.CPUs)
	}
	p := r.VethPeer
	if p == nil || p.SameNetns || p.NetnsID < 0 || !p.Checked || p.Name != "xvb" || p.XDPAttached {
		t.Fatalf("veth peer in another namespace: %+v", p)
	}
	if p.NetnsName != b.Name {
		t.Errorf("the peer's namespace name: %q, want %q", p.NetnsName, b.Name)
	}
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Fail || !slices.Equal(c.Modes, []Mode{ModeNative}) ||
		!strings.Contains(c.Fix, "ip -n "+b.Name+" link set dev xvb xdpdrv obj pass.o sec xdp") {
		t.Errorf("veth-peer check: %+v", c)
	}
	if r.Plan.Mode != ModeGeneric || !strings.Contains(r.Plan.Steps[1].Reason, "xvb (in another network namespace") {
		t.Errorf("veth plan: %+v", r.Plan)
	}

	pass := passProgram(t, "xcp_pass")
	if err := b.attachXDP("xvb", pass.FD(), xdpDRV); err != nil {
		t.Fatal(err)
	}
	r = a.probe("xva", DecideOptions{})
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Pass || !r.VethPeer.XDPAttached ||
		!strings.Contains(c.Reason, fmt.Sprint(testProgID(t, pass))) {
		t.Errorf("peer with XDP_PASS: check %+v peer %+v", c, r.VethPeer)
	}
	if r.Plan.Mode != ModeNative || len(r.Plan.Warnings) != 0 {
		t.Errorf("veth plan with XDP on the peer: %+v", r.Plan)
	}

	// Both ends in one namespace: without XDP on the peer native is ruled out.
	a.ip("link", "add", "xpa", "type", "veth", "peer", "name", "xpb")
	a.ip("link", "set", "xpa", "up")
	a.ip("link", "set", "xpb", "up")
	r = a.probe("xpa", DecideOptions{})
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Fail || !slices.Equal(c.Modes, []Mode{ModeNative}) {
		t.Errorf("same-namespace peer without XDP: %+v", c)
	}
	if r.Plan.Mode != ModeGeneric || len(r.Plan.Warnings) == 0 || !strings.Contains(r.Plan.Warnings[0], "slower") ||
		!strings.Contains(r.Plan.Steps[1].Reason, "runs no XDP program") {
		t.Errorf("same-namespace peer without XDP: plan %+v", r.Plan)
	}
	foreign := passProgram(t, "foreign_pass")
	if err := a.attachXDP("xpb", foreign.FD(), xdpDRV); err != nil {
		t.Fatal(err)
	}
	r = a.probe("xpa", DecideOptions{})
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Pass || r.Plan.Mode != ModeNative {
		t.Errorf("same-namespace peer with XDP: check %+v plan %+v", c, r.Plan)
	}

	// The peer now carries a program xdpcache did not attach.
	r = a.probe("xpb", DecideOptions{})
	id := testProgID(t, foreign)
	if r.XDP.Attached != "native" || r.XDP.DrvProgID != id || r.XDP.ProgID != id || r.XDPProgName != "foreign_pass" || r.Ours {
		t.Errorf("foreign program seen as %+v name %q ours %v (id %d)", r.XDP, r.XDPProgName, r.Ours, id)
	}
	c := checkByID(r, "attached")
	if c == nil || c.Status != Fail || len(c.Modes) != 0 || !strings.Contains(c.Reason, fmt.Sprintf("native mode, program id %d", id)) ||
		!strings.Contains(c.Fix, "--force") {
		t.Errorf("foreign program check: %+v", c)
	}
	if r.Plan.Mode != "" {
		t.Errorf("a foreign program must block every mode: %+v", r.Plan)
	}
	if r = a.probe("xpb", DecideOptions{Force: true}); r.Plan.Mode == "" {
		t.Errorf("--force: %+v", r.Plan)
	}

	if err := a.do(func() error { _, err := ProbeInterface("nosuch0", ProbeOptions{}, DecideOptions{}); return err }); err == nil ||
		err.Error() != `interface "nosuch0" not found (ip link show lists interfaces)` {
		t.Errorf("unknown interface: %v", err)
	}
}

// Devices without ndo_bpf report xdp-features 0: generic only. A port of a
// bridge that runs XDP cannot get a program of its own.
func TestProbeGenericOnlyDevices(t *testing.T) {
	a := newTestNS(t)
	a.ip("link", "add", "xcpbr0", "type", "bridge")
	a.ip("link", "add", "xbp0", "type", "veth", "peer", "name", "xbp1")
	a.ip("link", "set", "xbp0", "master", "xcpbr0")
	for _, d := range []string{"xcpbr0", "xbp0", "xbp1"} {
		a.ip("link", "set", d, "up")
	}
	for _, dev := range []string{"xcpbr0", "lo"} {
		r := a.probe(dev, DecideOptions{})
		if !r.XDPFeatures.Available || r.XDPFeatures.Raw != 0 {
			t.Errorf("%s: xdp features %+v", dev, r.XDPFeatures)
		}
		if r.Plan.Mode != ModeGeneric || len(r.Plan.Steps) != 3 || len(r.Plan.Warnings) != 1 {
			t.Errorf("%s: plan %+v", dev, r.Plan)
		}
		if !strings.Contains(r.Plan.Steps[0].Reason, "does not offer XDP hardware offload") || !strings.Contains(r.Plan.Steps[1].Reason, "no native XDP") {
			t.Errorf("%s: reasons %+v", dev, r.Plan.Steps)
		}
		if r = a.probe(dev, DecideOptions{Requested: "native"}); r.Plan.Mode != "" || len(r.Plan.Steps) != 1 || r.Plan.Steps[0].Usable {
			t.Errorf("%s: explicit native: %+v", dev, r.Plan)
		}
		if r = a.probe(dev, DecideOptions{NoGeneric: true}); r.Plan.Mode != "" || !strings.Contains(r.Plan.Steps[2].Reason, "--no-generic") {
			t.Errorf("%s: --no-generic: %+v", dev, r.Plan)
		}
	}

	r := a.probe("xbp0", DecideOptions{})
	if r.Master != "xcpbr0 (bridge)" || len(r.Uppers) != 1 || r.Uppers[0].Relation != "master" || r.Uppers[0].XDP.Attached != "none" {
		t.Fatalf("bridge port: master %q uppers %+v", r.Master, r.Uppers)
	}
	if c := checkByID(r, "master"); c == nil || c.Status != Warn || c.Fix != "xdpcache probe --iface xcpbr0" {
		t.Errorf("master check: %+v", c)
	}
	if checkByID(r, "upper-xdp") != nil {
		t.Errorf("upper-xdp without a program on the bridge")
	}

	pass := passProgram(t, "xcp_br_pass")
	if err := a.attachXDP("xcpbr0", pass.FD(), xdpSKB); err != nil {
		t.Fatal(err)
	}
	r = a.probe("xbp0", DecideOptions{})
	if r.Uppers[0].XDP.Attached != "generic" || r.Uppers[0].XDP.SkbProgID != testProgID(t, pass) {
		t.Errorf("bridge program not seen from the port: %+v", r.Uppers)
	}
	if c := checkByID(r, "upper-xdp"); c == nil || c.Status != Fail || r.Plan.Mode != "" {
		t.Errorf("upper-xdp: check %+v plan %+v", c, r.Plan)
	}
	// The kernel agrees, in both modes.
	port := passProgram(t, "xcp_port_pass")
	for _, flags := range []int{xdpDRV, xdpSKB} {
		if err := a.attachXDP("xbp0", port.FD(), flags); err == nil {
			a.attachXDP("xbp0", -1, flags)
			t.Errorf("the kernel let XDP (flags %d) attach below a bridge that runs XDP", flags)
		}
	}
}
