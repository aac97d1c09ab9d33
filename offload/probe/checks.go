package probe

import (
	"fmt"
	"slices"
	"strings"

	"github.com/xdpcache/xdpcache/nicdb"
	"github.com/xdpcache/xdpcache/offload/mode"
)

// CheckStatus is the outcome of a pre-flight check.
type CheckStatus string

// Outcomes.
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
	Modes  []mode.Mode `json:"modes,omitempty"`
	// Silent: the kernel would accept the attach, and the cache would then
	// lose what it sends, so asking for the mode explicitly does not help.
	Silent bool `json:"silent,omitempty"`
}

// Blocks reports whether this check rules mode m out.
func (c Check) Blocks(m mode.Mode) bool {
	return c.Status == Fail && (len(c.Modes) == 0 || slices.Contains(c.Modes, m))
}

// checkInput is what every check reads: the report, the driver database,
// and the kernel version parsed once.
type checkInput struct {
	r    *Report
	db   *nicdb.DB
	kv   nicdb.KernelVersion
	kvOK bool
}

// checks are the pre-flight checks in the order a report lists them. Each
// reads its input only and returns what it found (often nothing).
var checks = []struct {
	name string
	run  func(in checkInput) []Check
}{
	{"mtu", checkMTU},
	{"lro", checkLRO},
	{"gro-hw", checkGROHW},
	{"generic-fixed-offloads", checkGenericFixedOffloads},
	{"bond-mode", checkBondMode},
	{"channels", checkChannels},
	{"cpus", checkCPUs},
	{"veth-peer", checkVethPeer},
	{"master", checkMaster},
	{"upper-xdp", checkUppers},
	{"attached", checkAttached},
	{"kernel", checkKernel},
	{"memcached-auth", checkMemcachedAuth},
	{"memcached-udp", checkMemcachedUDP},
	{"nicdb", checkNICDBQuirks},
}

// nativeModes are the modes that run XDP in or on the device.
var nativeModes = []mode.Mode{mode.Native, mode.Offload}

// RunChecks evaluates a report. It only reads r.
func RunChecks(r *Report, db *nicdb.DB) []Check {
	in := checkInput{r: r, db: db}
	var err error
	in.kv, err = nicdb.ParseKernelVersion(r.Kernel.Version)
	in.kvOK = err == nil
	out := []Check{}
	for _, c := range checks {
		out = append(out, c.run(in)...)
	}
	return out
}

func one(c Check) []Check { return []Check{c} }

// checkMTU: an MTU above the driver's single-page XDP limit.
func checkMTU(in checkInput) []Check {
	r := in.r
	if r.NICDB == nil || r.NICDB.MaxXDPMTU <= 0 {
		return nil
	}
	// rx-sg does not help: xdpcache's program is single-buffer (not loaded
	// as frags-aware), and drivers refuse such a program above the limit
	// ("MTU too large to enable XDP without frags", 6.12).
	if r.MTU > r.NICDB.MaxXDPMTU {
		words, ok := mtuRefusal[r.Driver]
		if !ok {
			words = "MTU too large"
		}
		return one(Check{ID: "mtu", Status: Fail, Modes: nativeModes,
			Reason: fmt.Sprintf("MTU %d is above %s's single-page XDP limit %d (xdpcache's program is single-buffer, so rx-sg does not help): native attach fails with \"%s\"", r.MTU, r.Driver, r.NICDB.MaxXDPMTU, words),
			Fix:    fmt.Sprintf("ip link set dev %s mtu %d", r.Iface, r.NICDB.MaxXDPMTU)})
	}
	return one(Check{ID: "mtu", Status: Pass, Reason: fmt.Sprintf("MTU %d fits %s's XDP limit %d", r.MTU, r.Driver, r.NICDB.MaxXDPMTU)})
}

// checkLRO: the kernel refuses XDP on a device that merges packets.
func checkLRO(in checkInput) []Check {
	if !in.r.Features["rx-lro"] {
		return nil
	}
	if why, ok := lroHandled[in.r.Driver]; ok {
		return one(Check{ID: "lro", Status: Pass, Reason: "LRO is on: " + why})
	}
	return one(Check{ID: "lro", Status: Fail, Modes: nativeModes, Reason: "LRO is on: the kernel refuses XDP on a device that merges packets",
		Fix: "ethtool -K " + in.r.Iface + " lro off"})
}

// checkGROHW: hardware GRO hands XDP merged frames.
func checkGROHW(in checkInput) []Check {
	r := in.r
	if c, ok := virtioOffloadsCheck(r); ok {
		return one(c)
	}
	if !r.Features["rx-gro-hw"] {
		return nil
	}
	c := Check{ID: "gro-hw", Status: Fail, Modes: nativeModes, Reason: "hardware GRO (rx-gro-hw) is on: native XDP sees merged frames and drivers refuse it",
		Fix: "ethtool -K " + r.Iface + " rx-gro-hw off"}
	if r.Driver == "virtio_net" {
		c.Reason = "the hypervisor implements GRO_HW/CSUM for this virtio device: \"Can't set XDP while host is implementing GRO_HW/CSUM\""
		c.Fix = "only fixable on the hypervisor: guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off,guest_csum=off for the device"
	}
	return one(c)
}

// fixedOffloadWarnings: generic_xdp_install turns LRO and hardware GRO off
// (dev_disable_lro, dev_disable_gro_hw); where the device does not let them
// go, the kernel logs a WARNING with these words and taints itself (seen in
// the lab on virtio-net with guest offloads the guest cannot control).
var fixedOffloadWarnings = []struct{ feature, words string }{
	{"rx-lro", "failed to disable LRO!"},
	{"rx-gro-hw", "failed to disable GRO_HW!"},
}

// checkGenericFixedOffloads: generic mode on a device whose LRO or
// hardware GRO is fixed on.
func checkGenericFixedOffloads(in checkInput) []Check {
	r := in.r
	var fixed, words []string
	for _, f := range fixedOffloadWarnings {
		if slices.Contains(r.FixedFeatures, f.feature) {
			fixed = append(fixed, f.feature)
			words = append(words, fmt.Sprintf("%q", f.words))
		}
	}
	if len(fixed) == 0 {
		return nil
	}
	c := Check{ID: "generic-fixed-offloads", Status: Warn, Modes: []mode.Mode{mode.Generic},
		Reason: fmt.Sprintf("%s cannot be turned off on this device, and generic XDP makes the kernel try: it logs a WARNING (%s) and marks itself tainted; the cache works", strings.Join(fixed, " and "), strings.Join(words, ", ")),
		Fix:    "a device that lets the guest turn " + strings.Join(fixed, " and ") + " off (for virtio-net: ctrl_guest_offloads=on on the hypervisor), or accept the taint"}
	if r.Kernel.PanicOnWarn {
		c.Status, c.Silent = Fail, true
		c.Reason = fmt.Sprintf("%s cannot be turned off on this device, and generic XDP makes the kernel try and log a WARNING (%s): with kernel.panic_on_warn set, that WARNING panics the host", strings.Join(fixed, " and "), strings.Join(words, ", "))
		c.Fix = "a device that lets " + strings.Join(fixed, " and ") + " be turned off, or sysctl kernel.panic_on_warn=0 if a taint is acceptable"
	}
	return one(c)
}

// bondXDPModes are the bonding modes with native XDP (bond_xdp_check);
// balance-xor and 802.3ad only without the vlan+srcmac hash policy.
var bondXDPModes = []string{"balance-rr", "active-backup", "balance-xor", "802.3ad"}

// checkBondMode: a bond hands native XDP to its slaves only in some modes.
func checkBondMode(in checkInput) []Check {
	b := in.r.Bond
	if b == nil {
		return nil
	}
	const refused = "No native XDP support for the current bonding mode"
	switch {
	case !slices.Contains(bondXDPModes, b.Mode):
		return one(Check{ID: "bond-mode", Status: Fail, Modes: nativeModes,
			Reason: fmt.Sprintf("the bond is in mode %s, which has no native XDP: native attach fails with \"%s\"", b.Mode, refused),
			Fix:    fmt.Sprintf("ip link set dev %s type bond mode active-backup (or balance-rr, balance-xor, 802.3ad; the bond must be down with no slaves to change it)", in.r.Iface)})
	case (b.Mode == "balance-xor" || b.Mode == "802.3ad") && b.XmitHashPolicy == "vlan+srcmac":
		return one(Check{ID: "bond-mode", Status: Fail, Modes: nativeModes,
			Reason: fmt.Sprintf("the bond is in mode %s with transmit hash policy vlan+srcmac, which native XDP does not support: native attach fails with \"%s\"", b.Mode, refused),
			Fix:    fmt.Sprintf("ip link set dev %s type bond xmit_hash_policy layer3+4", in.r.Iface)})
	}
	return one(Check{ID: "bond-mode", Status: Pass, Reason: fmt.Sprintf("the bond's mode %s has native XDP (each slave's driver must have it too)", b.Mode)})
}

// checkChannels: drivers that need spare queues for XDP.
func checkChannels(in checkInput) []Check {
	r := in.r
	ch := r.Channels
	if ch == nil {
		return nil
	}
	switch r.Driver {
	case "ena":
		if ch.MaxCombined > 0 && ch.Combined > ch.MaxCombined/2 {
			return one(Check{ID: "channels", Status: Fail, Modes: nativeModes,
				Reason: fmt.Sprintf("ena needs spare queues for XDP: %d combined channels of at most %d (the limit is half)", ch.Combined, ch.MaxCombined),
				Fix:    fmt.Sprintf("ethtool -L %s combined %d", r.Iface, ch.MaxCombined/2)})
		}
	case "virtio_net":
		// virtnet_xdp_set wants one spare queue pair per possible CPU
		// for XDP_TX; otherwise XDP_TX/REDIRECT take a shared, locked queue.
		if r.CPUs > 0 && int(ch.Combined)+r.CPUs > int(ch.MaxCombined) {
			c := Check{ID: "channels", Status: Warn,
				Reason: fmt.Sprintf("virtio_net uses %d of %d queue pairs and XDP wants %d more (one per CPU): XDP_TX will run a slower locked path", ch.Combined, ch.MaxCombined, r.CPUs)}
			if int(ch.MaxCombined) > r.CPUs {
				c.Fix = fmt.Sprintf("ethtool -L %s combined %d", r.Iface, int(ch.MaxCombined)-r.CPUs)
			} else {
				c.Fix = fmt.Sprintf("give the VM's virtio-net device %d queues (2x the vCPUs; e.g. libvirt <driver queues='%d'/>), then ethtool -L %s combined %d", 2*r.CPUs, 2*r.CPUs, r.Iface, r.CPUs)
			}
			return one(c)
		}
	}
	return nil
}

// checkCPUs: ixgbe has 64 XDP TX rings.
func checkCPUs(in checkInput) []Check {
	r := in.r
	if r.Driver != "ixgbe" || r.CPUs <= 64 || !in.kvOK {
		return nil
	}
	if !in.kv.AtLeast(nicdb.KernelVersion{Major: 5, Minor: 17}) {
		return one(Check{ID: "cpus", Status: Fail, Modes: nativeModes, Reason: fmt.Sprintf("ixgbe before 5.17 needs an XDP TX ring per CPU and has 64; this host has %d possible CPUs, so native attach fails", r.CPUs),
			Fix: "use a kernel >= 5.17, or boot with nr_cpus=64"})
	}
	return one(Check{ID: "cpus", Status: Warn, Reason: fmt.Sprintf("ixgbe has 64 XDP TX rings for %d possible CPUs: CPUs share them under a lock (slower XDP_TX)", r.CPUs),
		Fix: "boot with nr_cpus=64 if XDP_TX throughput matters more than the extra CPUs"})
}

// checkVethPeer: native-mode XDP_TX frames reach a veth peer only if it
// runs XDP itself (an XDP_PASS program is enough; GRO is not).
func checkVethPeer(in checkInput) []Check {
	if in.r.VethPeer == nil {
		return nil
	}
	return one(vethPeerCheck(in.r.VethPeer))
}

// checkMaster: a port of a bond or bridge may not see the traffic.
func checkMaster(in checkInput) []Check {
	r := in.r
	if r.Master == "" {
		return nil
	}
	return one(Check{ID: "master", Status: Warn, Reason: "the interface is a port of " + r.Master + ": traffic may arrive on the master instead; deploy there if the master supports XDP",
		Fix: "xdpcache probe --iface " + strings.SplitN(r.Master, " ", 2)[0]})
}

// checkUppers: the kernel refuses XDP below an upper device that runs XDP.
func checkUppers(in checkInput) []Check {
	var out []Check
	for _, u := range in.r.Uppers {
		if u.XDP.Any() {
			out = append(out, Check{ID: "upper-xdp", Status: Fail,
				Reason: fmt.Sprintf("the %s %s on top of this interface runs XDP (%s): the kernel refuses XDP here (\"Cannot attach when an upper device already has a program\")", u.Kind, u.Name, u.XDP.Describe()),
				Fix:    fmt.Sprintf("deploy on %s instead, or remove its program: ip link set dev %s xdp off", u.Name, u.Name)})
		}
	}
	return out
}

// checkAttached: something is attached already — ours (deploy upgrades it)
// or not (deploy refuses without --force).
func checkAttached(in checkInput) []Check {
	r := in.r
	if !r.XDP.Any() {
		return nil
	}
	if r.Ours {
		return one(Check{ID: "attached", Status: Pass, Reason: fmt.Sprintf("xdpcache is attached (%s mode): deploy upgrades it", r.XDP.Attached)})
	}
	if l := r.LibXDP; l != nil && l.State != nil && l.State.Dispatcher != nil {
		return checkDispatcher(r, l)
	}
	why := fmt.Sprintf("another XDP program (%q, %s) is attached: deploy refuses to replace it", r.XDPProgName, r.XDP.Describe())
	if strings.HasPrefix(r.XDPProgName, "xdpcache_xdp") {
		why = fmt.Sprintf("an xdpcache program (%s) is attached but has no deployment record under the pin root (another pin root, or its pins were removed), so it cannot be upgraded in place", r.XDP.Describe())
	}
	fix := "xdpcache deploy --force replaces it, or remove it: ip link set dev " + r.Iface + " xdp off"
	if l := r.LibXDP; l != nil && l.Supported && !strings.HasPrefix(r.XDPProgName, "xdpcache_xdp") {
		fix += "; or share the interface: xdpcache deploy --adopt ITS_OBJECT.o moves it into a libxdp dispatcher beside xdpcache, " +
			"or load it again through libxdp (xdp-loader load " + r.Iface + " ITS_OBJECT.o) and deploy joins it"
	}
	return one(Check{ID: "attached", Status: Fail, Reason: why, Fix: fix})
}

// checkDispatcher: a libxdp dispatcher runs on the interface. deploy joins
// it, in its mode only (the other host mode is ruled out); offload stays
// outside it, on the device.
func checkDispatcher(r *Report, l *LibXDPFacts) []Check {
	st := l.State
	var progs []string
	for _, c := range st.Dispatcher.Components {
		progs = append(progs, fmt.Sprintf("%s (id %d, priority %d, chain %s)", c.Name, c.ProgID, c.Priority, c.Chain))
	}
	what := fmt.Sprintf("a libxdp dispatcher (program %d, %s mode) runs %d program(s): %s", st.Dispatcher.ProgID, st.Mode, len(progs), strings.Join(progs, ", "))
	if l.OursInside {
		return one(Check{ID: "attached", Status: Pass, Reason: what + "; xdpcache is one of them: deploy replaces its own program only"})
	}
	if !l.Supported {
		return one(Check{ID: "attached", Status: Fail, Reason: what + ", but xdpcache cannot join it: " + l.Why,
			Fix: "remove them (xdp-loader unload " + r.Iface + " --all) or deploy elsewhere"})
	}
	out := []Check{{ID: "attached", Status: Pass, Reason: what + ": deploy joins it as one more program (xdp-loader status lists it; undeploy removes only xdpcache)"}}
	if l.ChecksPacketChanges {
		out = append(out, Check{ID: "libxdp-relink", Status: Warn,
			Reason: "this kernel refuses an extension that changes packet data (xdpcache does) in place of a dispatcher slot that does not: libxdp before 1.5.5 (Debian 12 ships 1.3.1) cannot re-link xdpcache, so xdp-loader cannot add or remove programs while xdpcache is in the dispatcher (it fails and changes nothing)",
			Fix:    "change the other programs with xdpcache undeployed, or use libxdp 1.5.5 or later"})
	}
	other := mode.Generic
	if st.Mode == mode.Generic {
		other = mode.Native
	}
	out = append(out, Check{ID: "dispatcher-mode", Status: Fail, Modes: []mode.Mode{other},
		Reason: fmt.Sprintf("the dispatcher runs in %s mode: programs join it in that mode only", st.Mode),
		Fix:    "to use " + string(other) + " mode, move the dispatcher's programs (xdp-loader unload/load -m)"})
	return out
}

// checkKernel: the kernel's BPF features and limits.
func checkKernel(in checkInput) []Check {
	k := in.r.Kernel
	var out []Check
	if !k.SpinLock {
		out = append(out, Check{ID: "spin-lock", Status: Fail, Reason: "the kernel lacks bpf_spin_lock for XDP (5.1+): the cache needs it", Fix: "upgrade the kernel"})
	}
	if !k.BPFFS {
		out = append(out, Check{ID: "bpffs", Status: Warn, Reason: "/sys/fs/bpf is not a BPF filesystem: deploy mounts one to pin the cache", Fix: "mount -t bpf bpf /sys/fs/bpf"})
	}
	if !k.BTF {
		out = append(out, Check{ID: "btf", Status: Warn, Reason: "no kernel BTF (/sys/kernel/btf/vmlinux): fine for xdpcache, but tools like bpftool show less", Fix: "a kernel built with CONFIG_DEBUG_INFO_BTF=y"})
	}
	if !k.XDPLink {
		out = append(out, Check{ID: "xdp-link", Status: Warn, Reason: "no bpf_link for XDP (kernel < 5.9): xdpcache attaches over netlink; upgrades are not atomic", Fix: "a kernel >= 5.9"})
	}
	if !k.TCX {
		out = append(out, Check{ID: "tcx", Status: Pass, Reason: "no TCX (kernel < 6.6): the egress filler uses clsact + cls_bpf"})
	}
	if in.kvOK && !in.kv.AtLeast(nicdb.KernelVersion{Major: 5, Minor: 11}) && k.Memlock >= 0 && k.Memlock < 256<<20 {
		out = append(out, Check{ID: "memlock", Status: Warn, Reason: fmt.Sprintf("RLIMIT_MEMLOCK is %d bytes and this kernel charges BPF maps to it (before 5.11): the cache map needs more", k.Memlock),
			Fix: "ulimit -l unlimited (or LimitMEMLOCK=infinity in the systemd unit)"})
	}
	return out
}

// checkMemcachedAuth: a memcached that asks clients to authenticate serves
// no UDP; a cache answering UDP GETs in front of it would hand the values
// authenticated clients read to anyone.
func checkMemcachedAuth(in checkInput) []Check {
	var out []Check
	for _, m := range in.r.Memcached.Instances {
		if !m.AuthSASL && !m.AuthASCII {
			continue
		}
		how := "SASL (-S)"
		if m.AuthASCII {
			how = "ASCII authentication (-Y)"
		}
		out = append(out, Check{ID: "memcached-auth", Status: Fail, Silent: true,
			Reason: fmt.Sprintf("memcached at %s port %d requires %s: it serves no UDP, and answering UDP GETs from the kernel would bypass its authentication", m.Addr, m.Port, how),
			Fix:    "xdpcache serves only a memcached without authentication, on a trusted network"})
	}
	return out
}

// checkMemcachedUDP: memcached has UDP off by default; the cache must not
// answer UDP for a memcached that does not serve it itself.
func checkMemcachedUDP(in checkInput) []Check {
	var out []Check
	for _, p := range in.r.Memcached.Ports {
		var inst *MemcachedInstance
		for i, m := range in.r.Memcached.Instances {
			if m.Port == p {
				inst = &in.r.Memcached.Instances[i]
			}
		}
		if inst != nil && inst.Error == "" && inst.UDPPort != int(p) {
			out = append(out, Check{ID: "memcached-udp", Status: Fail, Silent: true,
				Reason: fmt.Sprintf("memcached at %s port %d serves no UDP there (its udpport is %d): the cache must not answer UDP for it", inst.Addr, p, inst.UDPPort),
				Fix:    fmt.Sprintf("start memcached with -U %d", p)})
			continue
		}
		if !slices.Contains(in.r.Memcached.UDPListening, p) {
			out = append(out, Check{ID: "memcached-udp", Status: Warn,
				Reason: fmt.Sprintf("nothing listens on UDP port %d in this network namespace: memcached has UDP off by default since 1.5.6", p),
				Fix:    fmt.Sprintf("start memcached with -U %d", p)})
		}
	}
	return out
}

// checkNICDBQuirks: what nicdb knows, except what the checks above
// measured directly.
func checkNICDBQuirks(in checkInput) []Check {
	r := in.r
	if r.NICDB == nil {
		return nil
	}
	measured := map[string]bool{
		"peer-needs-xdp": r.VethPeer != nil,
		"lro-off":        len(r.Features) > 0,
		"gro-hw":         len(r.Features) > 0,
		"guest-offloads": len(r.Features) > 0,
		"half-channels":  r.Channels != nil,
		"spare-queues":   r.Channels != nil,
		"many-cpus":      in.kvOK,
		"jumbo-mtu":      r.NICDB.MaxXDPMTU > 0, // checkMTU
	}
	var out []Check
	for _, q := range r.NICDB.Quirks {
		if measured[q.ID] {
			continue
		}
		st := Warn
		if q.Severity == nicdb.Info {
			st = Pass
		}
		out = append(out, Check{ID: "nicdb:" + q.ID, Status: st, Reason: q.Summary, Fix: q.Fix})
	}
	return out
}

// vethPeerCheck: frames a native-mode XDP program sends back with XDP_TX on a
// veth are delivered to the peer only when the peer runs XDP; otherwise they
// are silently lost (measured on 6.18: 0 of 10 echoes without a program on the
// peer, 10 of 10 with an XDP_PASS program). That holds wherever the peer
// lives, so a peer known to run no XDP rules native mode out; one whose state
// cannot be read is a warning. Generic mode is not affected.
func vethPeerCheck(p *VethPeer) Check {
	name := p.Name
	if name == "" {
		name = fmt.Sprintf("ifindex %d", p.Ifindex)
	}
	where := ""
	if !p.SameNetns {
		where = fmt.Sprintf(" (in another network namespace, id %d here)", p.NetnsID)
	}
	const dropped = "native-mode XDP_TX replies are silently dropped there (an XDP program on the peer fixes that, GRO does not) — the usual case for memcached in a container"
	switch {
	case !p.Checked:
		return Check{ID: "veth-peer", Status: Warn,
			Reason: fmt.Sprintf("the veth peer %s%s cannot be checked for an XDP program; if it runs none, %s", name, where, dropped),
			Fix:    peerXDPFix(p, name)}
	case p.XDPAttached:
		return Check{ID: "veth-peer", Status: Pass,
			Reason: fmt.Sprintf("the veth peer %s%s runs XDP (%s), so XDP_TX replies reach it", name, where, p.XDP)}
	default:
		return Check{ID: "veth-peer", Status: Fail, Modes: []mode.Mode{mode.Native}, Silent: true,
			Reason: fmt.Sprintf("the veth peer %s%s runs no XDP program, so %s", name, where, dropped),
			Fix:    peerXDPFix(p, name)}
	}
}

// peerXDPFix is the command that gives the veth peer an XDP program, run
// where the peer lives: ip -n NAME for a named namespace, otherwise in the
// peer's namespace (the host, for a container).
func peerXDPFix(p *VethPeer, name string) string {
	const prog = "xdpdrv obj pass.o sec xdp"
	const what = "attach an XDP program to the veth peer (one that only returns XDP_PASS is enough; pass.o is any such object): "
	const or = "; or deploy --mode generic"
	switch {
	case p.SameNetns:
		return what + fmt.Sprintf("ip link set dev %s %s", name, prog) + or
	case p.NetnsName != "":
		return what + fmt.Sprintf("ip -n %s link set dev %s %s", p.NetnsName, name, prog) + or
	default:
		return what + fmt.Sprintf("ip link set dev %s %s, run in the peer's network namespace (id %d as seen from here; the host, for a container)", name, prog, p.NetnsID) + or
	}
}

// mtuRefusal: the words of a driver's refusal of an MTU above its XDP limit,
// where they differ from "MTU too large" (measured in the lab).
var mtuRefusal = map[string]string{
	"virtio_net": "MTU too large to enable XDP",
	"vmxnet3":    "too large for XDP",
}

// lroHandled: drivers that do not refuse XDP while their LRO flag is on
// (measured in the lab, make test-lab).
var lroHandled = map[string]string{
	"bonding": "the bond hands XDP to its slaves, and each slave's driver decides (the bond's own LRO flag merges nothing)",
	"vmxnet3": "vmxnet3 turns LRO off itself when XDP is attached (and leaves it off afterwards)",
}

// virtioGuestOffloads are the virtio-net feature bits virtnet_xdp_set refuses
// XDP for when the device does not let the guest turn them off.
var virtioGuestOffloads = []struct {
	bit  int
	name string
}{{1, "guest_csum"}, {7, "guest_tso4"}, {8, "guest_tso6"}, {9, "guest_ecn"}, {10, "guest_ufo"}, {54, "guest_uso4"}, {55, "guest_uso6"}}

// virtioCtrlGuestOffloads is VIRTIO_NET_F_CTRL_GUEST_OFFLOADS: the driver can
// turn the guest offloads off, and does so itself while XDP is attached.
const virtioCtrlGuestOffloads = 2

// virtioOffloadsCheck decides virtio_net's guest-offload refusal from the
// negotiated feature bits, as virtnet_xdp_set does (ok false: bits unknown).
func virtioOffloadsCheck(r *Report) (Check, bool) {
	f := r.VirtioFeatures
	if r.Driver != "virtio_net" || f == "" {
		return Check{}, false
	}
	has := func(bit int) bool { return bit < len(f) && f[bit] == '1' }
	var on []string
	for _, o := range virtioGuestOffloads {
		if has(o.bit) {
			on = append(on, o.name)
		}
	}
	switch {
	case len(on) == 0:
		return Check{ID: "guest-offloads", Status: Pass, Reason: "the hypervisor implements no guest offloads for this virtio device"}, true
	case has(virtioCtrlGuestOffloads):
		return Check{ID: "guest-offloads", Status: Pass, Reason: fmt.Sprintf("the hypervisor implements guest offloads (%s) and lets the guest control them: virtio_net turns them off itself while XDP is attached", strings.Join(on, ", "))}, true
	}
	var off []string
	for _, o := range on {
		off = append(off, o+"=off")
	}
	return Check{ID: "guest-offloads", Status: Fail, Modes: nativeModes,
		Reason: fmt.Sprintf("the hypervisor implements guest offloads (%s) that the guest cannot turn off (no VIRTIO_NET_F_CTRL_GUEST_OFFLOADS): native attach fails with \"Can't set XDP while host is implementing GRO_HW/CSUM\"", strings.Join(on, ", ")),
		Fix:    "only fixable on the hypervisor: " + strings.Join(off, ",") + " for the device (QEMU -device virtio-net-pci), or ctrl_guest_offloads=on"}, true
}
