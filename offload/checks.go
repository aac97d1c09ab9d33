package offload

import (
	"fmt"
	"slices"

	"github.com/xdpcache/xdpcache/nicdb"
)

// CheckStatus is the outcome of a pre-flight check.
type CheckStatus string

const (
	Pass CheckStatus = "pass"
	Warn CheckStatus = "warn"
	Fail CheckStatus = "fail"
)

// Check is one pre-flight check: what it found, why it matters, and the
// command that fixes it. A failing check blocks Modes (all modes if empty).
type Check struct {
	ID     string      `json:"id"`
	Status CheckStatus `json:"status"`
	Reason string      `json:"reason"`
	Fix    string      `json:"fix,omitempty"`
	Modes  []Mode      `json:"modes,omitempty"`
}

// Blocks reports whether this check rules mode m out.
func (c Check) Blocks(m Mode) bool {
	return c.Status == Fail && (len(c.Modes) == 0 || slices.Contains(c.Modes, m))
}

// RunChecks evaluates a report. It only reads r.
func RunChecks(r *Report, db *nicdb.DB) []Check {
	var out []Check
	add := func(c Check) { out = append(out, c) }
	native := []Mode{ModeNative, ModeOffload}
	kv, kerr := nicdb.ParseKernelVersion(r.Kernel.Version)

	// MTU above the driver's single-page XDP limit.
	if r.NICDB != nil && r.NICDB.MaxXDPMTU > 0 {
		if r.MTU > r.NICDB.MaxXDPMTU && !r.XDPFeatures.Has(XDPRxSG) {
			add(Check{ID: "mtu", Status: Fail, Modes: native,
				Reason: fmt.Sprintf("MTU %d is above %s's single-page XDP limit %d (and the device has no rx-sg): native attach fails with \"MTU too large\"", r.MTU, r.Driver, r.NICDB.MaxXDPMTU),
				Fix:    fmt.Sprintf("ip link set dev %s mtu %d", r.Iface, r.NICDB.MaxXDPMTU)})
		} else {
			add(Check{ID: "mtu", Status: Pass, Reason: fmt.Sprintf("MTU %d fits %s's XDP limit %d", r.MTU, r.Driver, r.NICDB.MaxXDPMTU)})
		}
	}
	// LRO / hardware GRO.
	if r.Features["rx-lro"] {
		add(Check{ID: "lro", Status: Fail, Modes: native, Reason: "LRO is on: the kernel refuses XDP on a device that merges packets",
			Fix: "ethtool -K " + r.Iface + " lro off"})
	}
	if r.Features["rx-gro-hw"] {
		c := Check{ID: "gro-hw", Status: Fail, Modes: native, Reason: "hardware GRO (rx-gro-hw) is on: native XDP sees merged frames and drivers refuse it",
			Fix: "ethtool -K " + r.Iface + " rx-gro-hw off"}
		if r.Driver == "virtio_net" {
			c.Reason = "the hypervisor implements GRO_HW/CSUM for this virtio device: \"Can't set XDP while host is implementing GRO_HW/CSUM\""
			c.Fix = "only fixable on the hypervisor: guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off,guest_csum=off for the device"
		}
		add(c)
	}
	// Channels.
	if ch := r.Channels; ch != nil {
		switch r.Driver {
		case "ena":
			if ch.MaxCombined > 0 && ch.Combined > ch.MaxCombined/2 {
				add(Check{ID: "channels", Status: Fail, Modes: native,
					Reason: fmt.Sprintf("ena needs spare queues for XDP: %d combined channels of at most %d (the limit is half)", ch.Combined, ch.MaxCombined),
					Fix:    fmt.Sprintf("ethtool -L %s combined %d", r.Iface, ch.MaxCombined/2)})
			}
		case "virtio_net":
			if int(ch.MaxCombined) < 2*r.CPUs {
				add(Check{ID: "channels", Status: Warn,
					Reason: fmt.Sprintf("virtio_net has %d queue pairs for %d CPUs: without about 2x the vCPUs, XDP_TX shares queues under a lock (slower)", ch.MaxCombined, r.CPUs),
					Fix:    "give the VM's virtio device queues=" + fmt.Sprint(2*r.CPUs) + " and run ethtool -L " + r.Iface + " combined " + fmt.Sprint(2*r.CPUs)})
			}
		}
	}
	if r.Driver == "ixgbe" && r.CPUs > 64 && kerr == nil && !kv.AtLeast(nicdb.KernelVersion{Major: 5, Minor: 17}) {
		add(Check{ID: "cpus", Status: Fail, Modes: native, Reason: fmt.Sprintf("ixgbe needs an XDP TX ring per CPU and supports 64; this host has %d CPUs", r.CPUs),
			Fix: "use a kernel >= 5.17 or fewer online CPUs"})
	}
	// veth peers: XDP_TX frames reach the peer only if it runs XDP.
	if p := r.VethPeer; p != nil {
		switch {
		case !p.SameNetns:
			add(Check{ID: "veth-peer", Status: Warn,
				Reason: "the veth peer is in another network namespace, so xdpcache cannot see whether it runs XDP: replies sent with XDP_TX in native mode are dropped at a peer without an XDP program (memcached in a container is served through the host-side peer)",
				Fix:    "attach an XDP_PASS program to the peer (ip -n PEERNS link set dev PEER xdpdrv obj pass.o), or use --mode generic"})
		case !p.XDPAttached:
			add(Check{ID: "veth-peer", Status: Fail, Modes: []Mode{ModeNative},
				Reason: fmt.Sprintf("the veth peer %s runs no XDP program: native-mode XDP_TX replies would be silently dropped there (GRO on the peer is not enough; measured on 6.18)", p.Name),
				Fix:    fmt.Sprintf("attach an XDP_PASS program to %s (ip link set dev %s xdpdrv obj pass.o), or use generic mode", p.Name, p.Name)})
		default:
			add(Check{ID: "veth-peer", Status: Pass, Reason: fmt.Sprintf("the veth peer %s runs XDP, so XDP_TX replies reach it", p.Name)})
		}
	}
	if r.Master != "" {
		add(Check{ID: "master", Status: Warn, Reason: "the interface is a port of " + r.Master + ": traffic may arrive on the master instead; deploy there if the master supports XDP",
			Fix: "xdpcache probe --iface MASTER"})
	}
	// Something attached already.
	if r.XDP.Attached != "none" && r.XDP.Attached != "" {
		if r.Ours {
			add(Check{ID: "attached", Status: Pass, Reason: fmt.Sprintf("xdpcache is attached (%s mode): deploy upgrades it", r.XDP.Attached)})
		} else {
			why := fmt.Sprintf("another XDP program (%q, %s mode) is attached: deploy refuses to replace it", r.XDPProgName, r.XDP.Attached)
			if r.XDPProgName == "xdpcache_xdp" {
				why = fmt.Sprintf("an xdpcache program (%s mode) is attached but has no deployment record under the pin root (another pin root, or its pins were removed)", r.XDP.Attached)
			}
			add(Check{ID: "attached", Status: Fail, Reason: why,
				Fix: "xdpcache deploy --force replaces it, or remove it: ip link set dev " + r.Iface + " xdp off"})
		}
	}
	// Kernel.
	if !r.Kernel.SpinLock {
		add(Check{ID: "spin-lock", Status: Fail, Reason: "the kernel lacks bpf_spin_lock for XDP (5.1+): the cache needs it", Fix: "upgrade the kernel"})
	}
	if !r.Kernel.BPFFS {
		add(Check{ID: "bpffs", Status: Warn, Reason: "/sys/fs/bpf is not a BPF filesystem: deploy mounts one to pin the cache", Fix: "mount -t bpf bpf /sys/fs/bpf"})
	}
	if !r.Kernel.BTF {
		add(Check{ID: "btf", Status: Warn, Reason: "no kernel BTF (/sys/kernel/btf/vmlinux): fine for xdpcache, but tools like bpftool show less", Fix: "a kernel built with CONFIG_DEBUG_INFO_BTF=y"})
	}
	if !r.Kernel.XDPLink {
		add(Check{ID: "xdp-link", Status: Warn, Reason: "no bpf_link for XDP (kernel < 5.9): xdpcache attaches over netlink; upgrades are not atomic", Fix: "a kernel >= 5.9"})
	}
	if !r.Kernel.TCX {
		add(Check{ID: "tcx", Status: Pass, Reason: "no TCX (kernel < 6.6): the egress filler uses clsact + cls_bpf"})
	}
	if kerr == nil && !kv.AtLeast(nicdb.KernelVersion{Major: 5, Minor: 11}) && r.Kernel.Memlock >= 0 && r.Kernel.Memlock < 256<<20 {
		add(Check{ID: "memlock", Status: Warn, Reason: fmt.Sprintf("RLIMIT_MEMLOCK is %d bytes and this kernel charges BPF maps to it (before 5.11): the cache map needs more", r.Kernel.Memlock),
			Fix: "ulimit -l unlimited (or LimitMEMLOCK=infinity in the systemd unit)"})
	}
	// memcached.
	for _, p := range r.Memcached.Ports {
		if !slices.Contains(r.Memcached.UDPListening, p) {
			add(Check{ID: "memcached-udp", Status: Warn,
				Reason: fmt.Sprintf("nothing listens on UDP port %d in this network namespace: memcached has UDP off by default since 1.5.6", p),
				Fix:    fmt.Sprintf("start memcached with -U %d", p)})
		}
	}
	// What nicdb knows, except what the checks above measured directly.
	measured := map[string]bool{
		"peer-needs-xdp": r.VethPeer != nil,
		"lro-off":        len(r.Features) > 0,
		"gro-hw":         len(r.Features) > 0,
		"guest-offloads": len(r.Features) > 0,
		"half-channels":  r.Channels != nil,
		"spare-queues":   r.Channels != nil,
		"many-cpus":      kerr == nil,
	}
	if r.NICDB != nil {
		for _, q := range r.NICDB.Quirks {
			if measured[q.ID] {
				continue
			}
			st := Warn
			if q.Severity == nicdb.Info {
				st = Pass
			}
			add(Check{ID: "nicdb:" + q.ID, Status: st, Reason: q.Summary, Fix: q.Fix})
		}
	}
	return out
}
