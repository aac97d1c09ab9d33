package probe

import (
	"cmp"
	"slices"
	"strings"
	"testing"

	"github.com/xdpcache/xdpcache/nicdb"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/netdev"
)

func testReport(t *testing.T, driver string, mut func(*Report)) (*Report, *nicdb.DB) {
	t.Helper()
	db, err := nicdb.Load()
	if err != nil {
		t.Fatal(err)
	}
	r := &Report{Iface: "eth0", Driver: driver, MTU: 1500, Features: map[string]bool{}, CPUs: 8,
		XDP: netdev.XDPState{Attached: "none"}, XDPFeatures: netdev.XDPFeatures{Available: true, Raw: netdev.XDPBasic | netdev.XDPRedirect},
		Kernel:    KernelFacts{Version: "6.18.0", BTF: true, BPFFS: true, SpinLock: true, XDPLink: true, TCX: true, Memlock: -1},
		Memcached: MemcachedFacts{Ports: []uint16{11211}, UDPListening: []uint16{11211}}}
	if d, ok := db.Driver(driver); ok {
		r.NICDB = &d
	}
	if mut != nil {
		mut(r)
	}
	return r, db
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name   string
		driver string
		mut    func(*Report)
		opts   DecideOptions
		want   mode.Mode
		reason string // in the first unusable step's reason
	}{
		{"native NIC", "mlx5_core", nil, DecideOptions{}, mode.Native, "hardware offload"},
		{"offload NIC that refuses maps", "nfp", func(r *Report) {
			r.XDPFeatures.Raw |= netdev.XDPHWOffload
			r.Offload = &netdev.DeviceOffload{Reason: "EOPNOTSUPP"}
		}, DecideOptions{}, mode.Native, "refused an offloaded map: EOPNOTSUPP"},
		{"offload NIC", "nfp", func(r *Report) { r.XDPFeatures.Raw |= netdev.XDPHWOffload }, DecideOptions{}, mode.Offload, ""},
		{"offload measured, cache fits", "netdevsim", func(r *Report) {
			r.Offload = &netdev.DeviceOffload{Maps: true, MaxEntries: 2, ElemBytes: 64}
		}, DecideOptions{Entries: 2}, mode.Offload, ""},
		{"offload measured, cache too large", "netdevsim", func(r *Report) {
			r.Offload = &netdev.DeviceOffload{Maps: true, MaxEntries: 2, ElemBytes: 64}
		}, DecideOptions{Entries: 65536}, mode.Native, "65536 cache entries do not fit the device's maps (at most 2 measured)"},
		{"offload measured, answering only local addresses that do not fit", "netdevsim", func(r *Report) {
			r.Offload = &netdev.DeviceOffload{Maps: true, MaxEntries: 2, ElemBytes: 64}
			r.LocalAddrs = 5
		}, DecideOptions{Entries: 2, RequireLocal: true}, mode.Native, "this host's 5 addresses"},
		{"offload measured, any destination", "netdevsim", func(r *Report) {
			r.Offload = &netdev.DeviceOffload{Maps: true, MaxEntries: 2, ElemBytes: 64}
			r.LocalAddrs = 5
			r.Subnets = []string{"198.18.0.0/24"}
		}, DecideOptions{Entries: 2}, mode.Offload, ""},
		{"offload measured, allow-list too long", "netdevsim", func(r *Report) {
			r.Offload = &netdev.DeviceOffload{Maps: true, MaxEntries: 2, ElemBytes: 64}
		}, DecideOptions{Entries: 2, Allow: 3}, mode.Native, "allow-list's 3 prefixes"},
		{"bond in a mode without native XDP", "bonding", func(r *Report) {
			r.XDPFeatures = netdev.XDPFeatures{Reason: "no netdev family"}
			r.Kernel.Version = "6.1.0-57-amd64"
			r.Bond = &BondFacts{Mode: "balance-alb", XmitHashPolicy: "layer2"}
		}, DecideOptions{}, mode.Generic, "No native XDP support for the current bonding mode"},
		{"generic-only device", "bridge", func(r *Report) { r.XDPFeatures.Raw = 0 }, DecideOptions{}, mode.Generic, "no native XDP"},
		{"old kernel, nicdb knows the driver", "ixgbe", func(r *Report) {
			r.XDPFeatures = netdev.XDPFeatures{Reason: "no netdev family"}
			r.Kernel.Version = "5.10.0-28-amd64"
		}, DecideOptions{}, mode.Native, "does not offer"},
		{"old kernel, driver too new", "gve", func(r *Report) {
			r.XDPFeatures = netdev.XDPFeatures{Reason: "no netdev family"}
			r.Kernel.Version = "5.10.0"
		}, DecideOptions{}, mode.Generic, "nicdb does not list native XDP"},
		{"LRO on", "i40e", func(r *Report) { r.Features["rx-lro"] = true }, DecideOptions{}, mode.Generic, "LRO is on"},
		{"MTU too large", "ixgbe", func(r *Report) { r.MTU = 9000 }, DecideOptions{}, mode.Generic, "single-page XDP limit 3050"},
		{"MTU too large, rx-sg does not help a single-buffer program", "ice", func(r *Report) { r.MTU = 9000; r.XDPFeatures.Raw |= netdev.XDPRxSG }, DecideOptions{}, mode.Generic, "rx-sg does not help"},
		{"foreign program", "mlx5_core", func(r *Report) { r.XDP = netdev.XDPState{Attached: "native", ProgID: 7} }, DecideOptions{}, "", "another XDP program"},
		{"a native dispatcher is joined natively", "mlx5_core", func(r *Report) { withDispatcher(r, mode.Native, true, false) }, DecideOptions{}, mode.Native, ""},
		{"a generic dispatcher is joined in generic mode", "mlx5_core", func(r *Report) { withDispatcher(r, mode.Generic, true, false) }, DecideOptions{}, mode.Generic, ""},
		{"foreign program, --force", "mlx5_core", func(r *Report) { r.XDP = netdev.XDPState{Attached: "native", ProgID: 7} }, DecideOptions{Force: true}, mode.Native, ""},
		{"ours attached", "mlx5_core", func(r *Report) { r.XDP = netdev.XDPState{Attached: "native", ProgID: 7}; r.Ours = true }, DecideOptions{}, mode.Native, ""},
		{"veth peer without XDP", "veth", func(r *Report) {
			r.XDPFeatures.Raw = 0x23
			r.VethPeer = &VethPeer{Name: "peer0", SameNetns: true, NetnsID: -1, Checked: true}
		}, DecideOptions{}, mode.Generic, "runs no XDP program"},
		{"veth peer with XDP", "veth", func(r *Report) {
			r.XDPFeatures.Raw = 0x23
			r.VethPeer = &VethPeer{Name: "peer0", SameNetns: true, NetnsID: -1, Checked: true, XDPAttached: true, XDP: "native mode, program id 9"}
		}, DecideOptions{}, mode.Native, ""},
		{"veth peer in another netns, unreadable", "veth", func(r *Report) {
			r.XDPFeatures.Raw = 0x23
			r.VethPeer = &VethPeer{Ifindex: 2, NetnsID: 0}
		}, DecideOptions{}, mode.Native, ""},
		{"veth peer in another netns without XDP", "veth", func(r *Report) {
			r.XDPFeatures.Raw = 0x23
			r.VethPeer = &VethPeer{Name: "vethab12", Ifindex: 2, NetnsID: 0, Checked: true}
		}, DecideOptions{}, mode.Generic, "vethab12 (in another network namespace, id 0 here) runs no XDP program"},
		{"veth peer in another netns without XDP, explicit native", "veth", func(r *Report) {
			r.XDPFeatures.Raw = 0x23
			r.VethPeer = &VethPeer{Name: "vethab12", Ifindex: 2, NetnsID: 0, Checked: true}
		}, DecideOptions{Requested: "native"}, "", "attach an XDP program to the veth peer"},
		{"veth peer in another netns without XDP, --no-generic", "veth", func(r *Report) {
			r.XDPFeatures.Raw = 0x23
			r.VethPeer = &VethPeer{Name: "vethab12", Ifindex: 2, NetnsID: 0, Checked: true}
		}, DecideOptions{NoGeneric: true}, "", "runs no XDP program"},
		{"veth peer in another netns with XDP", "veth", func(r *Report) {
			r.XDPFeatures.Raw = 0x23
			r.VethPeer = &VethPeer{Name: "vethab12", Ifindex: 2, NetnsID: 0, Checked: true, XDPAttached: true, XDP: "native mode, program id 9"}
		}, DecideOptions{}, mode.Native, ""},
		{"veth peer without XDP, explicit generic", "veth", func(r *Report) {
			r.XDPFeatures.Raw = 0x23
			r.VethPeer = &VethPeer{Name: "peer0", SameNetns: true, NetnsID: -1, Checked: true}
		}, DecideOptions{Requested: "generic"}, mode.Generic, ""},
		{"veth peer without XDP, explicit native", "veth", func(r *Report) {
			r.XDPFeatures.Raw = 0x23
			r.VethPeer = &VethPeer{Name: "peer0", SameNetns: true, NetnsID: -1, Checked: true}
		}, DecideOptions{Requested: "native"}, "", "runs no XDP program"},
		{"bridge port whose bridge runs XDP", "veth", func(r *Report) {
			r.XDPFeatures.Raw = 0x23
			r.Master = "br0 (bridge)"
			r.Uppers = []UpperDev{{Name: "br0", Kind: "bridge", Relation: "master", XDP: netdev.XDPState{Attached: "generic", ProgID: 5, SkbProgID: 5}}}
		}, DecideOptions{}, "", "upper device already has a program"},
		{"bridge port, bridge without XDP", "veth", func(r *Report) {
			r.XDPFeatures.Raw = 0x23
			r.Master = "br0 (bridge)"
			r.Uppers = []UpperDev{{Name: "br0", Kind: "bridge", Relation: "master", XDP: netdev.XDPState{Attached: "none"}}}
		}, DecideOptions{}, mode.Native, ""},
		{"old kernel, offload NIC from nicdb", "nfp", func(r *Report) {
			r.XDPFeatures = netdev.XDPFeatures{Reason: "no netdev family"}
			r.Kernel.Version = "5.10.0"
		}, DecideOptions{}, mode.Offload, ""},
		{"explicit offload on a native NIC", "mlx5_core", nil, DecideOptions{Requested: "offload"}, "", "does not offer XDP hardware offload"},
		{"explicit generic with --no-generic is still generic", "bridge", func(r *Report) { r.XDPFeatures.Raw = 0 }, DecideOptions{Requested: "generic", NoGeneric: true}, mode.Generic, ""},
		{"explicit native unusable", "bridge", func(r *Report) { r.XDPFeatures.Raw = 0 }, DecideOptions{Requested: "native"}, "", "no native XDP"},
		{"no generic", "bridge", func(r *Report) { r.XDPFeatures.Raw = 0 }, DecideOptions{NoGeneric: true}, "", "no native XDP"},
		{"no spin lock", "mlx5_core", func(r *Report) { r.Kernel.SpinLock = false }, DecideOptions{}, "", "bpf_spin_lock"},
		{"ena channels", "ena", func(r *Report) { r.Channels = &Channels{Combined: 8, MaxCombined: 8} }, DecideOptions{}, mode.Generic, "half"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, db := testReport(t, tc.driver, tc.mut)
			checks := RunChecks(r, db)
			p := Decide(r, checks, tc.opts)
			if p.Mode != tc.want {
				t.Fatalf("mode %q, want %q; plan %+v", p.Mode, tc.want, p)
			}
			if tc.reason != "" {
				found := false
				for _, s := range p.Steps {
					if !s.Usable && strings.Contains(s.Reason, tc.reason) {
						found = true
					}
				}
				if !found {
					t.Errorf("no step explains %q: %+v", tc.reason, p.Steps)
				}
			}
			if (p.Mode == mode.Generic) != slices.Contains(p.Warnings, genericWarning) {
				t.Errorf("generic warning: mode %s, warnings %v", p.Mode, p.Warnings)
			}
			if tc.opts.Requested != "" && tc.opts.Requested != "auto" && len(p.Steps) != 1 {
				t.Errorf("an explicit mode must not fall back: %+v", p.Steps)
			}
			if want := cmp.Or(tc.opts.Requested, "auto"); p.Requested != want {
				t.Errorf("plan.requested %q, want %q", p.Requested, want)
			}
		})
	}
}

// A warning of a check that names the chosen mode comes with the plan.
func TestPlanCarriesModeWarnings(t *testing.T) {
	r, db := testReport(t, "virtio_net", func(r *Report) {
		r.XDPFeatures.Raw = 0 // generic only
		r.Features["rx-gro-hw"] = true
		r.FixedFeatures = []string{"rx-gro-hw"}
	})
	p := Decide(r, RunChecks(r, db), DecideOptions{})
	if p.Mode != mode.Generic || len(p.Warnings) != 2 || !strings.Contains(p.Warnings[1], "failed to disable GRO_HW!") {
		t.Fatalf("plan %s, warnings %q", p.Mode, p.Warnings)
	}
	r.Kernel.PanicOnWarn = true
	if p := Decide(r, RunChecks(r, db), DecideOptions{Requested: mode.Generic}); p.Mode != "" || !p.Steps[0].Final {
		t.Fatalf("with panic_on_warn, generic must be refused even by name: %+v", p)
	}
}

func TestChecksHaveFixes(t *testing.T) {
	r, db := testReport(t, "virtio_net", func(r *Report) {
		r.Features["rx-lro"] = true
		r.Features["rx-gro-hw"] = true
		r.MTU = 9000
		r.Channels = &Channels{Combined: 2, MaxCombined: 2}
		r.Memcached.UDPListening = nil
		r.Kernel = KernelFacts{Version: "5.4.0", Memlock: 65536}
	})
	for _, c := range RunChecks(r, db) {
		if c.Status != Pass && c.Fix == "" {
			t.Errorf("check %s (%s) has no fix", c.ID, c.Status)
		}
		if c.ID == "gro-hw" && !strings.Contains(c.Fix, "hypervisor") {
			t.Errorf("virtio GRO_HW fix should point at the hypervisor: %q", c.Fix)
		}
	}
}
