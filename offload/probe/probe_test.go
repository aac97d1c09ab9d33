package probe

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/netdev"
)

func probeIn(t *testing.T, ns netlab.NS, iface string, pinRoot ...string) *Report {
	t.Helper()
	var r *Report
	opts := Options{}
	if len(pinRoot) > 0 {
		opts.PinRoot = pinRoot[0]
	}
	if err := ns.Do(func() error {
		var err error
		r, err = Run(iface, opts, DecideOptions{})
		return err
	}); err != nil {
		t.Fatalf("probe %s: %v", iface, err)
	}
	return r
}

// probeNS runs Run inside the namespace, with a pin root of its own.
func probeNS(t *testing.T, ns netlab.NS, iface string, dopts DecideOptions) *Report {
	t.Helper()
	var r *Report
	if err := ns.Do(func() error {
		var err error
		r, err = Run(iface, Options{PinRoot: t.TempDir()}, dopts)
		return err
	}); err != nil {
		t.Fatalf("probe %s in %s: %v", iface, ns.Name, err)
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
	lab, _ := labtest.Start(t) // memcached -U 11211 runs in the server namespace

	// veth: native XDP, no offload; the peer has no XDP program yet.
	r := probeIn(t, lab.Server, lab.Server.Iface)
	if r.Driver != "veth" || !r.XDPFeatures.Available || !r.XDPFeatures.Has(netdev.XDPBasic) || r.XDPFeatures.Has(netdev.XDPHWOffload) {
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
	if r.Plan.Mode != mode.Generic {
		t.Errorf("veth plan with a peer without XDP: %+v", r.Plan)
	}
	if err := lab.Client.AttachXDPPass(); err != nil {
		t.Fatal(err)
	}
	r = probeIn(t, lab.Server, lab.Server.Iface)
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Pass || r.Plan.Mode != mode.Native {
		t.Errorf("veth peer in another netns with XDP: check %+v, plan %+v", c, r.Plan)
	}

	// A veth pair inside one namespace: the peer check fails until the peer runs XDP.
	for _, args := range [][]string{{"link", "add", "xcpa", "type", "veth", "peer", "name", "xcpb"}, {"link", "set", "xcpa", "up"}, {"link", "set", "xcpb", "up"}} {
		if out, err := lab.Server.Command(t.Context(), "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	r = probeIn(t, lab.Server, "xcpa")
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Fail || r.Plan.Mode != mode.Generic {
		t.Errorf("same-netns peer without XDP: check %+v, plan %+v", c, r.Plan)
	}
	peer := lab.Server
	peer.Iface = "xcpb"
	if err := peer.AttachXDPPass(); err != nil {
		t.Fatal(err)
	}
	r = probeIn(t, lab.Server, "xcpa")
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Pass || r.Plan.Mode != mode.Native {
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
		if r.XDPFeatures.Has(netdev.XDPBasic) || r.Plan.Mode != mode.Generic || len(r.Plan.Warnings) == 0 {
			t.Errorf("%s: features %+v plan %+v", dev, r.XDPFeatures, r.Plan)
		}
		if !strings.Contains(r.Plan.Steps[1].Reason, "no native XDP") {
			t.Errorf("%s: native step reason %q", dev, r.Plan.Steps[1].Reason)
		}
	}
	// Unknown interface.
	if err := lab.Server.Do(func() error { _, err := Run("nosuch0", Options{}, DecideOptions{}); return err }); err == nil ||
		!strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown interface: %v", err)
	}
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
	a, b := labtest.NS(t, "xcp"), labtest.NS(t, "xcp")
	labtest.IP(t, a, "link", "add", "xva", "type", "veth", "peer", "name", "xvb", "netns", b.Name)
	labtest.IP(t, a, "addr", "add", "198.18.201.1/24", "dev", "xva")
	labtest.IP(t, b, "addr", "add", "198.18.201.2/24", "dev", "xvb")
	labtest.IP(t, a, "link", "set", "xva", "up")
	labtest.IP(t, b, "link", "set", "xvb", "up")
	// something listening on UDP 11211 in a (memcached -U stands in)
	var conn net.PacketConn
	if err := a.Do(func() error {
		var err error
		conn, err = net.ListenPacket("udp", "198.18.201.1:11211")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	r := probeNS(t, a, "xva", DecideOptions{})
	if r.Driver != "veth" || r.LinkType != "veth" || r.Ifindex == 0 || r.MTU != 1500 || r.MaxMTU == 0 {
		t.Errorf("device: driver %q type %q ifindex %d mtu %d max %d", r.Driver, r.LinkType, r.Ifindex, r.MTU, r.MaxMTU)
	}
	if !r.XDPFeatures.Available || !r.XDPFeatures.Has(netdev.XDPBasic) || r.XDPFeatures.Has(netdev.XDPHWOffload) || !slices.Contains(r.XDPFeatures.Flags, "basic") {
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
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Fail || !slices.Equal(c.Modes, []mode.Mode{mode.Native}) ||
		!strings.Contains(c.Fix, "ip -n "+b.Name+" link set dev xvb xdpdrv obj pass.o sec xdp") {
		t.Errorf("veth-peer check: %+v", c)
	}
	if r.Plan.Mode != mode.Generic || !strings.Contains(r.Plan.Steps[1].Reason, "xvb (in another network namespace") {
		t.Errorf("veth plan: %+v", r.Plan)
	}

	pass := labtest.PassProgram(t, "xcp_pass")
	if err := b.SetXDP("xvb", pass.FD(), unix.XDP_FLAGS_DRV_MODE); err != nil {
		t.Fatal(err)
	}
	r = probeNS(t, a, "xva", DecideOptions{})
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Pass || !r.VethPeer.XDPAttached ||
		!strings.Contains(c.Reason, fmt.Sprint(labtest.ProgID(t, pass))) {
		t.Errorf("peer with XDP_PASS: check %+v peer %+v", c, r.VethPeer)
	}
	if r.Plan.Mode != mode.Native || len(r.Plan.Warnings) != 0 {
		t.Errorf("veth plan with XDP on the peer: %+v", r.Plan)
	}

	// Both ends in one namespace: without XDP on the peer native is ruled out.
	labtest.IP(t, a, "link", "add", "xpa", "type", "veth", "peer", "name", "xpb")
	labtest.IP(t, a, "link", "set", "xpa", "up")
	labtest.IP(t, a, "link", "set", "xpb", "up")
	r = probeNS(t, a, "xpa", DecideOptions{})
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Fail || !slices.Equal(c.Modes, []mode.Mode{mode.Native}) {
		t.Errorf("same-namespace peer without XDP: %+v", c)
	}
	if r.Plan.Mode != mode.Generic || len(r.Plan.Warnings) == 0 || !strings.Contains(r.Plan.Warnings[0], "slower") ||
		!strings.Contains(r.Plan.Steps[1].Reason, "runs no XDP program") {
		t.Errorf("same-namespace peer without XDP: plan %+v", r.Plan)
	}
	foreign := labtest.PassProgram(t, "foreign_pass")
	if err := a.SetXDP("xpb", foreign.FD(), unix.XDP_FLAGS_DRV_MODE); err != nil {
		t.Fatal(err)
	}
	r = probeNS(t, a, "xpa", DecideOptions{})
	if c := checkByID(r, "veth-peer"); c == nil || c.Status != Pass || r.Plan.Mode != mode.Native {
		t.Errorf("same-namespace peer with XDP: check %+v plan %+v", c, r.Plan)
	}

	// The peer now carries a program xdpcache did not attach.
	r = probeNS(t, a, "xpb", DecideOptions{})
	id := labtest.ProgID(t, foreign)
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
	if r = probeNS(t, a, "xpb", DecideOptions{Force: true}); r.Plan.Mode == "" {
		t.Errorf("--force: %+v", r.Plan)
	}

	if err := a.Do(func() error { _, err := Run("nosuch0", Options{}, DecideOptions{}); return err }); err == nil ||
		err.Error() != `interface "nosuch0" not found (ip link show lists interfaces)` {
		t.Errorf("unknown interface: %v", err)
	}
}

// Devices without ndo_bpf report xdp-features 0: generic only. A port of a
// bridge that runs XDP cannot get a program of its own.
func TestProbeGenericOnlyDevices(t *testing.T) {
	a := labtest.NS(t, "xcp")
	labtest.IP(t, a, "link", "add", "xcpbr0", "type", "bridge")
	labtest.IP(t, a, "link", "add", "xbp0", "type", "veth", "peer", "name", "xbp1")
	labtest.IP(t, a, "link", "set", "xbp0", "master", "xcpbr0")
	for _, d := range []string{"xcpbr0", "xbp0", "xbp1"} {
		labtest.IP(t, a, "link", "set", d, "up")
	}
	for _, dev := range []string{"xcpbr0", "lo"} {
		r := probeNS(t, a, dev, DecideOptions{})
		if !r.XDPFeatures.Available || r.XDPFeatures.Raw != 0 {
			t.Errorf("%s: xdp features %+v", dev, r.XDPFeatures)
		}
		if r.Plan.Mode != mode.Generic || len(r.Plan.Steps) != 3 || len(r.Plan.Warnings) != 1 {
			t.Errorf("%s: plan %+v", dev, r.Plan)
		}
		if !strings.Contains(r.Plan.Steps[0].Reason, "does not offer XDP hardware offload") || !strings.Contains(r.Plan.Steps[1].Reason, "no native XDP") {
			t.Errorf("%s: reasons %+v", dev, r.Plan.Steps)
		}
		if r = probeNS(t, a, dev, DecideOptions{Requested: "native"}); r.Plan.Mode != "" || len(r.Plan.Steps) != 1 || r.Plan.Steps[0].Usable {
			t.Errorf("%s: explicit native: %+v", dev, r.Plan)
		}
		if r = probeNS(t, a, dev, DecideOptions{NoGeneric: true}); r.Plan.Mode != "" || !strings.Contains(r.Plan.Steps[2].Reason, "--no-generic") {
			t.Errorf("%s: --no-generic: %+v", dev, r.Plan)
		}
	}

	r := probeNS(t, a, "xbp0", DecideOptions{})
	if r.Master != "xcpbr0 (bridge)" || len(r.Uppers) != 1 || r.Uppers[0].Relation != "master" || r.Uppers[0].XDP.Attached != "none" {
		t.Fatalf("bridge port: master %q uppers %+v", r.Master, r.Uppers)
	}
	if c := checkByID(r, "master"); c == nil || c.Status != Warn || c.Fix != "xdpcache probe --iface xcpbr0" {
		t.Errorf("master check: %+v", c)
	}
	if checkByID(r, "upper-xdp") != nil {
		t.Errorf("upper-xdp without a program on the bridge")
	}

	pass := labtest.PassProgram(t, "xcp_br_pass")
	if err := a.SetXDP("xcpbr0", pass.FD(), unix.XDP_FLAGS_SKB_MODE); err != nil {
		t.Fatal(err)
	}
	r = probeNS(t, a, "xbp0", DecideOptions{})
	if r.Uppers[0].XDP.Attached != "generic" || r.Uppers[0].XDP.SkbProgID != labtest.ProgID(t, pass) {
		t.Errorf("bridge program not seen from the port: %+v", r.Uppers)
	}
	if c := checkByID(r, "upper-xdp"); c == nil || c.Status != Fail || r.Plan.Mode != "" {
		t.Errorf("upper-xdp: check %+v plan %+v", c, r.Plan)
	}
	// The kernel agrees, in both modes.
	port := labtest.PassProgram(t, "xcp_port_pass")
	for _, flags := range []int{unix.XDP_FLAGS_DRV_MODE, unix.XDP_FLAGS_SKB_MODE} {
		if err := a.SetXDP("xbp0", port.FD(), flags); err == nil {
			a.SetXDP("xbp0", -1, flags)
			t.Errorf("the kernel let XDP (flags %d) attach below a bridge that runs XDP", flags)
		}
	}
}
