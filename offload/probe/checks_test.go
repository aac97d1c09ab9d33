package probe

import (
	"strings"
	"testing"

	"github.com/xdpcache/xdpcache/offload/dispatch"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/netdev"
)

// RunChecks on constructed reports: status, the modes blocked, the reason
// and the exact fix.
func TestRunChecks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		driver string
		mut    func(*Report)
		id     string
		status CheckStatus // "" = the check must be absent
		modes  []mode.Mode
		reason string
		fix    string
	}{
		{"MTU above the single-page limit", "mlx5_core", func(r *Report) { r.MTU = 9000 }, "mtu", Fail, []mode.Mode{mode.Native, mode.Offload},
			"above mlx5_core's single-page XDP limit 3498", "ip link set dev eth0 mtu 3498"},
		{"MTU fits", "mlx5_core", nil, "mtu", Pass, nil, "fits", ""},
		{"jumbo MTU with rx-sg: the program is single-buffer", "ice", func(r *Report) { r.MTU = 9000; r.XDPFeatures.Raw |= netdev.XDPRxSG }, "mtu", Fail, []mode.Mode{mode.Native, mode.Offload}, "rx-sg does not help", "ip link set dev eth0 mtu 3046"},
		{"LRO", "ixgbe", func(r *Report) { r.Features["rx-lro"] = true }, "lro", Fail, []mode.Mode{mode.Native, mode.Offload}, "LRO is on", "ethtool -K eth0 lro off"},
		{"LRO off", "ixgbe", func(r *Report) { r.Features["rx-lro"] = false }, "lro", "", nil, "", ""},
		{"hardware GRO", "bnxt_en", func(r *Report) { r.Features["rx-gro-hw"] = true }, "gro-hw", Fail, nil, "rx-gro-hw", "ethtool -K eth0 rx-gro-hw off"},
		{"virtio GRO_HW is the hypervisor's", "virtio_net", func(r *Report) { r.Features["rx-gro-hw"] = true }, "gro-hw", Fail, nil, "hypervisor", "only fixable on the hypervisor"},
		{"ena channels above half", "ena", func(r *Report) { r.Channels = &Channels{Combined: 8, MaxCombined: 8} }, "channels", Fail, nil, "half", "ethtool -L eth0 combined 4"},
		{"ena channels fine", "ena", func(r *Report) { r.Channels = &Channels{Combined: 4, MaxCombined: 8} }, "channels", "", nil, "", ""},
		{"virtio: no spare queue pairs, fixable in the guest", "virtio_net", func(r *Report) { r.Channels = &Channels{Combined: 16, MaxCombined: 16} }, "channels", Warn, nil,
			"slower locked path", "ethtool -L eth0 combined 8"},
		{"virtio: too few queue pairs, fix on the hypervisor", "virtio_net", func(r *Report) { r.Channels = &Channels{Combined: 4, MaxCombined: 4} }, "channels", Warn, nil,
			"XDP wants 8 more", "16 queues"},
		{"virtio: enough spare queue pairs", "virtio_net", func(r *Report) { r.Channels = &Channels{Combined: 8, MaxCombined: 16} }, "channels", "", nil, "", ""},
		{"ixgbe, 96 CPUs, old kernel", "ixgbe", func(r *Report) { r.CPUs = 96; r.Kernel.Version = "5.15.0" }, "cpus", Fail, nil, "96 possible CPUs", "5.17"},
		{"ixgbe, 96 CPUs, new kernel", "ixgbe", func(r *Report) { r.CPUs = 96 }, "cpus", Warn, nil, "lock", "nr_cpus=64"},
		{"veth peer without XDP", "veth", func(r *Report) {
			r.VethPeer = &VethPeer{Name: "p0", NetnsID: -1, SameNetns: true, Checked: true}
		}, "veth-peer", Fail, []mode.Mode{mode.Native}, "silently dropped", "ip link set dev p0 xdpdrv obj pass.o sec xdp"},
		{"veth peer elsewhere, unreadable", "veth", func(r *Report) { r.VethPeer = &VethPeer{Ifindex: 9, NetnsID: 3} }, "veth-peer", Warn, nil,
			"ifindex 9 (in another network namespace, id 3 here) cannot be checked", "ip link set dev ifindex 9"},
		{"veth peer elsewhere without XDP (a container)", "veth", func(r *Report) { r.VethPeer = &VethPeer{Name: "vethc0ffee", Ifindex: 9, NetnsID: 0, Checked: true} }, "veth-peer", Fail, []mode.Mode{mode.Native},
			"vethc0ffee (in another network namespace, id 0 here) runs no XDP program", "ip link set dev vethc0ffee xdpdrv obj pass.o sec xdp, run in the peer's network namespace (id 0 as seen from here; the host, for a container)"},
		{"veth peer in a named namespace without XDP", "veth", func(r *Report) {
			r.VethPeer = &VethPeer{Name: "xcc1", Ifindex: 4, NetnsID: 2, NetnsName: "lab-c", Checked: true}
		}, "veth-peer", Fail, []mode.Mode{mode.Native}, "memcached in a container", "ip -n lab-c link set dev xcc1 xdpdrv obj pass.o sec xdp"},
		{"veth peer elsewhere with XDP", "veth", func(r *Report) {
			r.VethPeer = &VethPeer{Name: "xcc1", Ifindex: 4, NetnsID: 2, Checked: true, XDPAttached: true, XDP: "native mode, program id 12"}
		}, "veth-peer", Pass, nil, "runs XDP (native mode, program id 12)", ""},
		{"bond port", "ixgbe", func(r *Report) { r.Master = "bond0 (bond)" }, "master", Warn, nil, "port of bond0", "xdpcache probe --iface bond0"},
		{"vlan on top runs XDP", "ixgbe", func(r *Report) {
			r.Uppers = []UpperDev{{Name: "eth0.7", Kind: "vlan", Relation: "upper", XDP: netdev.XDPState{Attached: "generic", ProgID: 3, SkbProgID: 3}}}
		}, "upper-xdp", Fail, nil, "vlan eth0.7", "ip link set dev eth0.7 xdp off"},
		{"foreign program", "ixgbe", func(r *Report) {
			r.XDP = netdev.XDPState{Attached: "native", ProgID: 42, DrvProgID: 42}
			r.XDPProgName = "katran"
		},
			"attached", Fail, nil, `another XDP program ("katran", native mode, program id 42)`, "--force"},
		{"xdpcache program without a record", "ixgbe", func(r *Report) {
			r.XDP = netdev.XDPState{Attached: "generic", ProgID: 4, SkbProgID: 4}
			r.XDPProgName = "xdpcache_xdp"
		}, "attached", Fail, nil, "no deployment record", ""},
		{"a lone program, dispatchers supported: the fix says how to share", "ixgbe", func(r *Report) {
			r.XDP = netdev.XDPState{Attached: "native", ProgID: 42, DrvProgID: 42}
			r.XDPProgName = "katran"
			r.LibXDP = &LibXDPFacts{Supported: true, State: &dispatch.State{Mode: mode.Native, ProgID: 42, ProgName: "katran"}}
		}, "attached", Fail, nil, "another XDP program", "xdp-loader load eth0"},
		{"a libxdp dispatcher: deploy joins it", "ixgbe", func(r *Report) { withDispatcher(r, mode.Native, true, false) },
			"attached", Pass, nil, "a libxdp dispatcher (program 50, native mode) runs 1 program(s): xdp_filter (id 51, priority 10, chain XDP_PASS): deploy joins it", ""},
		{"a generic-mode dispatcher rules native out", "ixgbe", func(r *Report) { withDispatcher(r, mode.Generic, true, false) },
			"dispatcher-mode", Fail, []mode.Mode{mode.Native}, "runs in generic mode", "xdp-loader"},
		{"a dispatcher this kernel cannot add to", "ixgbe", func(r *Report) { withDispatcher(r, mode.Native, false, false) },
			"attached", Fail, nil, "cannot join it: lockdown", "xdp-loader unload eth0 --all"},
		{"a kernel where old libxdp cannot re-link xdpcache", "ixgbe", func(r *Report) {
			withDispatcher(r, mode.Native, true, false)
			r.LibXDP.ChecksPacketChanges = true
		}, "libxdp-relink", Warn, nil, "libxdp before 1.5.5", "undeployed"},
		{"no warning where it can", "ixgbe", func(r *Report) { withDispatcher(r, mode.Native, true, false) }, "libxdp-relink", "", nil, "", ""},
		{"xdpcache inside the dispatcher", "ixgbe", func(r *Report) { withDispatcher(r, mode.Native, true, true) },
			"attached", Pass, nil, "xdpcache is one of them", ""},
		{"ours", "ixgbe", func(r *Report) { r.XDP = netdev.XDPState{Attached: "native", ProgID: 4, DrvProgID: 4}; r.Ours = true }, "attached", Pass, nil, "upgrades", ""},
		{"no spin lock", "ixgbe", func(r *Report) { r.Kernel.SpinLock = false }, "spin-lock", Fail, nil, "bpf_spin_lock", ""},
		{"no bpffs", "ixgbe", func(r *Report) { r.Kernel.BPFFS = false }, "bpffs", Warn, nil, "deploy mounts", "mount -t bpf bpf /sys/fs/bpf"},
		{"no BTF", "ixgbe", func(r *Report) { r.Kernel.BTF = false }, "btf", Warn, nil, "/sys/kernel/btf/vmlinux", ""},
		{"no XDP link", "ixgbe", func(r *Report) { r.Kernel.XDPLink = false }, "xdp-link", Warn, nil, "netlink", ""},
		{"no TCX is information", "ixgbe", func(r *Report) { r.Kernel.TCX = false }, "tcx", Pass, nil, "clsact", ""},
		{"memlock on an old kernel", "ixgbe", func(r *Report) { r.Kernel.Version = "5.4.0"; r.Kernel.Memlock = 64 << 10 }, "memlock", Warn, nil, "RLIMIT_MEMLOCK", "ulimit -l unlimited"},
		{"memlock does not matter from 5.11", "ixgbe", func(r *Report) { r.Kernel.Memlock = 64 << 10 }, "memlock", "", nil, "", ""},
		{"generic on a device whose hardware GRO is fixed on", "virtio_net", func(r *Report) {
			r.Features["rx-gro-hw"] = true
			r.FixedFeatures = []string{"rx-gro-hw"}
		}, "generic-fixed-offloads", Warn, []mode.Mode{mode.Generic}, `"failed to disable GRO_HW!"`, "ctrl_guest_offloads=on"},
		{"generic with fixed LRO and kernel.panic_on_warn", "ixgbe", func(r *Report) {
			r.Features["rx-lro"] = true
			r.FixedFeatures = []string{"rx-lro"}
			r.Kernel.PanicOnWarn = true
		}, "generic-fixed-offloads", Fail, []mode.Mode{mode.Generic}, "panics the host", "kernel.panic_on_warn=0"},
		{"hardware GRO that can be turned off", "bnxt_en", func(r *Report) { r.Features["rx-gro-hw"] = true }, "generic-fixed-offloads", "", nil, "", ""},
		{"bond in balance-alb", "bonding", func(r *Report) { r.Bond = &BondFacts{Mode: "balance-alb", XmitHashPolicy: "layer2"} }, "bond-mode", Fail, []mode.Mode{mode.Native, mode.Offload},
			`"No native XDP support for the current bonding mode"`, "ip link set dev eth0 type bond mode active-backup"},
		{"bond in 802.3ad hashing vlan+srcmac", "bonding", func(r *Report) { r.Bond = &BondFacts{Mode: "802.3ad", XmitHashPolicy: "vlan+srcmac"} }, "bond-mode", Fail, []mode.Mode{mode.Native, mode.Offload},
			"vlan+srcmac", "xmit_hash_policy layer3+4"},
		{"bond in active-backup", "bonding", func(r *Report) { r.Bond = &BondFacts{Mode: "active-backup", XmitHashPolicy: "layer2"} }, "bond-mode", Pass, nil, "has native XDP", ""},
		{"not a bond", "ixgbe", nil, "bond-mode", "", nil, "", ""},
		{"memcached UDP off", "ixgbe", func(r *Report) { r.Memcached.UDPListening = nil }, "memcached-udp", Warn, nil, "UDP off by default since 1.5.6", "start memcached with -U 11211"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, db := testReport(t, tc.driver, tc.mut)
			var got *Check
			for _, c := range RunChecks(r, db) {
				if c.ID == tc.id {
					got = &c
					break
				}
			}
			if tc.status == "" {
				if got != nil {
					t.Fatalf("check %s should be absent: %+v", tc.id, got)
				}
				return
			}
			if got == nil {
				t.Fatalf("no %s check", tc.id)
			}
			if got.Status != tc.status || !strings.Contains(got.Reason, tc.reason) || !strings.Contains(got.Fix, tc.fix) {
				t.Errorf("got %+v\nwant status %s, reason ~%q, fix ~%q", got, tc.status, tc.reason, tc.fix)
			}
			if tc.modes != nil && !equalModes(got.Modes, tc.modes) {
				t.Errorf("modes %v, want %v", got.Modes, tc.modes)
			}
			if got.Status != Pass && got.Fix == "" {
				t.Errorf("a %s check needs a fix", got.Status)
			}
		})
	}
}

func equalModes(a, b []mode.Mode) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// nicdb quirks become checks, except those a check above measured directly.
func TestRunChecksNicdbQuirks(t *testing.T) {
	r, db := testReport(t, "ena", nil)
	var quirks int
	for _, c := range RunChecks(r, db) {
		if strings.HasPrefix(c.ID, "nicdb:") {
			quirks++
			if c.Reason == "" || c.Fix == "" {
				t.Errorf("quirk check without reason or fix: %+v", c)
			}
		}
	}
	if quirks == 0 {
		t.Skip("nicdb lists no unmeasured quirks for ena")
	}
}

// RunChecks and Decide only read the report.
func TestChecksAndDecidePure(t *testing.T) {
	r, db := testReport(t, "veth", func(r *Report) {
		r.VethPeer = &VethPeer{Name: "p0", NetnsID: -1, SameNetns: true, Checked: true}
		r.Features["rx-lro"] = true
	})
	before := *r
	checks := RunChecks(r, db)
	p1 := Decide(r, checks, DecideOptions{})
	p2 := Decide(r, checks, DecideOptions{})
	if p1.Mode != p2.Mode || len(p1.Steps) != len(p2.Steps) || r.Iface != before.Iface || r.VethPeer != before.VethPeer || len(r.Checks) != 0 {
		t.Errorf("not pure: %+v vs %+v", p1, p2)
	}
}

// withDispatcher puts a libxdp dispatcher running one filter on the report's
// interface in mode m.
func withDispatcher(r *Report, m mode.Mode, supported, oursInside bool) {
	r.XDP = netdev.XDPState{Attached: string(m), ProgID: 50}
	r.XDPProgName = dispatch.ProgName
	f := &LibXDPFacts{Supported: supported, OursInside: oursInside, State: &dispatch.State{Mode: m, ProgID: 50, ProgName: dispatch.ProgName,
		Dispatcher: &dispatch.Dispatcher{ProgID: 50, Version: 2, Components: []dispatch.Component{{ProgID: 51, Name: "xdp_filter", Priority: 10, Chain: "XDP_PASS"}}}}}
	if !supported {
		f.Why = "lockdown forbids freplace"
	}
	r.LibXDP = f
}
