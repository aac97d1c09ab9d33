// Package probe finds out what an interface and the kernel can do for
// xdpcache and what deploying there would take: Interface gathers the facts
// into a Report (read-only; the JSON is a stable schema, docs/probe.md),
// the checks — a table of small named functions — judge them, and Decide
// plans the mode. Nothing here changes the system.
package probe

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/nicdb"
	"github.com/xdpcache/xdpcache/offload/dispatch"
	"github.com/xdpcache/xdpcache/offload/netdev"
	"github.com/xdpcache/xdpcache/offload/record"
)

// Report is everything probe learns about one interface, read-only. The
// JSON names are a stable schema (docs/probe.md).
type Report struct {
	Hostname      string             `json:"hostname"`
	Iface         string             `json:"iface"`
	Ifindex       int                `json:"ifindex"`
	Driver        string             `json:"driver"`
	DriverVersion string             `json:"driver_version"`
	Firmware      string             `json:"firmware"`
	BusInfo       string             `json:"bus_info"`
	LinkType      string             `json:"link_type"`
	MTU           int                `json:"mtu"`
	MinMTU        int                `json:"min_mtu"`
	MaxMTU        int                `json:"max_mtu"`
	Master        string             `json:"master,omitempty"` // "NAME (KIND)" of a bond/bridge/team this is a port of
	Uppers        []UpperDev         `json:"uppers,omitempty"` // the master and vlan/macvlan/ipvlan devices on top
	OperState     string             `json:"operstate"`
	Netns         string             `json:"netns"` // the network namespace's inode, net:[N]
	Features      map[string]bool    `json:"features"`
	Channels      *Channels          `json:"channels,omitempty"`
	Rings         *Rings             `json:"rings,omitempty"`
	XDP           netdev.XDPState    `json:"xdp"`
	XDPProgName   string             `json:"xdp_prog_name,omitempty"`
	Ours          bool               `json:"ours"`             // the attached XDP program is xdpcache's
	LibXDP        *LibXDPFacts       `json:"libxdp,omitempty"` // a libxdp dispatcher, or why none can be joined
	TCFilters     []string           `json:"tc_filters"`
	XDPFeatures   netdev.XDPFeatures `json:"xdp_features"`
	Kernel        KernelFacts        `json:"kernel"`
	Memcached     MemcachedFacts     `json:"memcached"`
	// WritePaths: every interface writes could reach memcached through, and
	// what `deploy --iface` this interface would do there (WritePaths).
	WritePaths []record.Path         `json:"write_paths,omitempty"`
	VethPeer   *VethPeer             `json:"veth_peer,omitempty"`
	Offload    *netdev.DeviceOffload `json:"offload,omitempty"` // measured map offload (nil: not probed)
	NICDB      *nicdb.Driver         `json:"nicdb,omitempty"`
	CPUs       int                   `json:"cpus"`            // possible CPUs (nr_cpu_ids): what drivers size XDP TX queues by
	Notes      []string              `json:"notes,omitempty"` // what could not be read
	Checks     []Check               `json:"checks"`
	Plan       Plan                  `json:"plan"`

	// FixedFeatures: offload features (of Features) that are on and that
	// the device does not let anyone turn off (ethtool -k's "[fixed]").
	FixedFeatures []string `json:"fixed_features,omitempty"`
	// Bond: a bonding device's mode and transmit hash policy (what its
	// native XDP depends on).
	Bond *BondFacts `json:"bond,omitempty"`
	// Subnets: the interface's own subnets, the default allow-list.
	Subnets []string `json:"subnets,omitempty"`
	// LocalAddrs: how many addresses this network namespace has (with a
	// destination rule the cache holds each: the offload flavor's device
	// map must fit them).
	LocalAddrs int `json:"local_addrs"`

	// VirtioFeatures: virtio_net's negotiated virtio feature bits, one
	// '0'/'1' per bit (/sys/class/net/IFACE/device/features).
	VirtioFeatures string `json:"virtio_features,omitempty"`
}

// BondFacts: how a bond sends, as ip -d link shows it.
type BondFacts struct {
	Mode           string `json:"mode"`             // e.g. active-backup, balance-alb
	XmitHashPolicy string `json:"xmit_hash_policy"` // e.g. layer2, vlan+srcmac
}

// LibXDPFacts are what sharing the interface through libxdp's
// multi-program dispatcher depends on (docs/coexistence.md).
type LibXDPFacts struct {
	// State: the host-mode program and, if it is a dispatcher, its
	// programs in run order.
	State *dispatch.State `json:"state,omitempty"`
	// Supported: this kernel runs programs under a dispatcher (freplace);
	// Why says why not.
	Supported bool   `json:"supported"`
	Why       string `json:"why,omitempty"`
	// OursInside: xdpcache's deployment is one of the dispatcher's programs.
	OursInside bool `json:"ours_inside,omitempty"`
	// ChecksPacketChanges: the kernel refuses an extension that changes
	// packet data in place of a function that does not, so libxdp before
	// 1.5.5 cannot re-link xdpcache (dispatch.ChecksPacketChanges).
	ChecksPacketChanges bool `json:"kernel_checks_packet_changes,omitempty"`
}

// Channels are the device's queue counts (ethtool -l).
type Channels struct {
	RX          uint32 `json:"rx"`
	TX          uint32 `json:"tx"`
	Combined    uint32 `json:"combined"`
	MaxRX       uint32 `json:"max_rx"`
	MaxTX       uint32 `json:"max_tx"`
	MaxCombined uint32 `json:"max_combined"`
}

// Rings are the device's ring sizes (ethtool -g).
type Rings struct {
	RX    uint32 `json:"rx"`
	TX    uint32 `json:"tx"`
	MaxRX uint32 `json:"max_rx"`
	MaxTX uint32 `json:"max_tx"`
}

// UpperDev is a device stacked on top of the probed one. The kernel refuses
// to attach XDP below an upper device that runs XDP itself ("Cannot attach
// when an upper device already has a program").
type UpperDev struct {
	Name     string          `json:"name"`
	Kind     string          `json:"kind"`     // bridge, bond, vlan, macvlan, ...
	Relation string          `json:"relation"` // "master" or "upper"
	XDP      netdev.XDPState `json:"xdp"`
}

// KernelFacts are the running kernel's BPF capabilities.
type KernelFacts struct {
	Version  string `json:"version"`
	BTF      bool   `json:"btf"`
	BPFFS    bool   `json:"bpffs"`
	SpinLock bool   `json:"spin_lock"`
	XDPLink  bool   `json:"xdp_link"` // bpf_link for XDP (5.9+)
	TCX      bool   `json:"tcx"`      // 6.6+
	Memlock  int64  `json:"memlock"`  // RLIMIT_MEMLOCK bytes, -1 unlimited
	// PanicOnWarn: kernel.panic_on_warn is set, so a kernel WARNING
	// (which some attaches trigger: checks.go, checkGenericGROHW) reboots
	// the host.
	PanicOnWarn bool `json:"panic_on_warn,omitempty"`
}

// MemcachedFacts: is something listening where the cache expects memcached,
// and what does it say of itself?
type MemcachedFacts struct {
	Ports        []uint16            `json:"ports"`
	UDPListening []uint16            `json:"udp_listening"`
	Instances    []MemcachedInstance `json:"instances,omitempty"`
}

// MemcachedInstance is what memcached answered to "stats settings" over TCP
// on one of the ports (the first of the interface's addresses, then
// loopback, that answered).
type MemcachedInstance struct {
	Addr string `json:"addr"`
	Port uint16 `json:"port"`
	// Protocol is its -B setting (auto-negotiate, ascii, binary): how it
	// reads each connection, and so how XDP must.
	Protocol string `json:"binding_protocol,omitempty"`
	UDPPort  int    `json:"udpport"`
	// AuthSASL / AuthASCII: memcached asks clients to authenticate (-S,
	// -Y). It then serves no UDP, and a cache answering UDP GETs in front
	// of it would hand values to anyone.
	AuthSASL  bool   `json:"auth_sasl,omitempty"`
	AuthASCII bool   `json:"auth_ascii,omitempty"`
	Error     string `json:"error,omitempty"` // it answered, but not with its settings
}

// VethPeer is the other end of a veth.
type VethPeer struct {
	Name        string `json:"name,omitempty"`
	Ifindex     int    `json:"ifindex"`
	SameNetns   bool   `json:"same_netns"`
	NetnsID     int    `json:"netns_id"`             // the peer's namespace id as this namespace knows it; -1 = same namespace
	NetnsName   string `json:"netns_name,omitempty"` // the peer's namespace under /run/netns (ip -n NAME), when it has one
	Checked     bool   `json:"checked"`              // the peer's XDP state could be read (xdp_attached is meaningful)
	XDPAttached bool   `json:"xdp_attached"`
	XDP         string `json:"xdp,omitempty"` // e.g. "native mode, program id 42"
}

// Options tune a probe.
type Options struct {
	Ports   []uint16 // memcached UDP ports; default 11211
	PinRoot string   // where deployments are pinned (to recognise ours); "" is record.DefaultRoot
	DB      *nicdb.DB
}

// Run probes one interface and assesses it: Interface, then Assess.
func Run(name string, opts Options, dopts DecideOptions) (*Report, error) {
	if opts.DB == nil {
		var err error
		if opts.DB, err = nicdb.Load(); err != nil {
			return nil, err
		}
	}
	r, err := Interface(name, opts)
	if err != nil {
		return nil, err
	}
	r.Assess(opts.DB, dopts)
	return r, nil
}

// Assess runs the checks on the report's facts and plans the mode, filling
// r.Checks and r.Plan. It reads nothing but r and db.
func (r *Report) Assess(db *nicdb.DB, dopts DecideOptions) {
	r.Checks = RunChecks(r, db)
	r.Plan = Decide(r, r.Checks, dopts)
}

// Interface gathers the facts about one interface: r.Checks and r.Plan
// stay empty (Assess fills them). It changes nothing.
func Interface(name string, opts Options) (*Report, error) {
	lk, err := netdev.ByName(name)
	if err != nil {
		return nil, err
	}
	if len(opts.Ports) == 0 {
		opts.Ports = []uint16{11211}
	}
	if opts.DB == nil {
		if opts.DB, err = nicdb.Load(); err != nil {
			return nil, err
		}
	}
	a := lk.Attrs()
	host, _ := os.Hostname()
	r := &Report{Hostname: host, Iface: name, Ifindex: a.Index, LinkType: lk.Type(), MTU: a.MTU,
		OperState: a.OperState.String(), Features: map[string]bool{}, CPUs: possibleCPUs(), TCFilters: []string{}, Checks: []Check{}}
	note := func(what string, err error) { r.Notes = append(r.Notes, what+": "+err.Error()) }
	for _, f := range facts {
		f.gather(r, lk, opts, note)
	}
	return r, nil
}

// ProbeAll probes every interface of the network namespace.
func ProbeAll(opts Options, dopts DecideOptions) ([]*Report, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	if opts.DB == nil {
		if opts.DB, err = nicdb.Load(); err != nil {
			return nil, err
		}
	}
	var out []*Report
	for _, l := range links {
		r, err := Run(l.Attrs().Name, opts, dopts)
		if err != nil {
			if _, gone := netlink.LinkByIndex(l.Attrs().Index); gone != nil {
				continue // removed while we were probing
			}
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// uppers lists the devices stacked on a: its master, and vlan/macvlan/ipvlan
// devices whose lower device it is, each with its XDP state.
func uppers(a *netlink.LinkAttrs) ([]UpperDev, error) {
	var out []UpperDev
	add := func(l netlink.Link, rel string) {
		u := UpperDev{Name: l.Attrs().Name, Kind: l.Type(), Relation: rel, XDP: netdev.XDPState{Attached: netdev.AttachedNone}}
		if st, err := netdev.QueryXDP(l.Attrs().Index); err == nil {
			u.XDP = st
		}
		out = append(out, u)
	}
	if a.MasterIndex != 0 {
		if m, err := netlink.LinkByIndex(a.MasterIndex); err == nil {
			add(m, "master")
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		return out, err
	}
	for _, l := range links {
		la := l.Attrs()
		if la.ParentIndex != a.Index || la.Index == a.Index || la.NetNsID >= 0 {
			continue
		}
		switch l.Type() {
		case "vlan", "macvlan", "macvtap", "ipvlan", "ipvtap":
			add(l, "upper")
		}
	}
	return out, nil
}

// possibleCPUs is the kernel's nr_cpu_ids (/sys/devices/system/cpu/possible),
// which drivers size per-CPU XDP TX queues by; runtime.NumCPU only counts the
// CPUs this process may run on.
func possibleCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, found := strings.Cut(part, "-")
		l, err1 := strconv.Atoi(lo)
		h := l
		var err2 error
		if found {
			h, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || h < l {
			return runtime.NumCPU()
		}
		n = max(n, h+1)
	}
	if n == 0 {
		return runtime.NumCPU()
	}
	return n
}

// vethPeer finds the other end of a veth and whether it runs XDP. A peer in
// another namespace is read through its namespace id (IFLA_LINK_NETNSID),
// without entering that namespace; when that fails, Checked stays false.
func vethPeer(v *netlink.Veth, a *netlink.LinkAttrs) *VethPeer {
	p := &VethPeer{SameNetns: a.NetNsID < 0, NetnsID: a.NetNsID}
	// IFLA_LINK is the peer's ifindex, in the peer's namespace.
	idx := a.ParentIndex
	if idx == 0 {
		var err error
		if idx, err = netlink.VethPeerIndex(v); err != nil {
			return p
		}
	}
	p.Ifindex = idx
	if !p.SameNetns {
		p.NetnsName = namedNetnsWithID(p.NetnsID)
	}
	if p.SameNetns {
		if pl, err := netlink.LinkByIndex(idx); err == nil {
			p.Name = pl.Attrs().Name
		}
	}
	pl, err := netdev.QueryXDPInNetnsID(p.NetnsID, idx)
	if err != nil {
		return p
	}
	if pl.Name != "" {
		p.Name = pl.Name
	}
	p.Checked = true
	p.XDPAttached = pl.XDP.Any()
	p.XDP = pl.XDP.Describe()
	return p
}

// namedNetnsDir is where `ip netns` keeps named network namespaces.
const namedNetnsDir = "/run/netns"

// namedNetnsWithID finds the named namespace (ip netns) that the current
// namespace knows by namespace id nsid, or "" if none does (a container's
// namespace is usually unnamed; from inside one, the host's is too).
func namedNetnsWithID(nsid int) string {
	entries, err := os.ReadDir(namedNetnsDir)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if netnsIDOfFile(filepath.Join(namedNetnsDir, e.Name())) == nsid {
			return e.Name()
		}
	}
	return ""
}

// netnsIDOfFile is the id the current namespace has for the namespace bound
// at path; -1 when it has none or path cannot be read.
func netnsIDOfFile(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	id, err := netlink.GetNetNsIdByFd(int(f.Fd()))
	if err != nil {
		return -1
	}
	return id
}

func kernelFacts() KernelFacts {
	var k KernelFacts
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		k.Version = unix.ByteSliceToString(u.Release[:])
	}
	_, err := os.Stat("/sys/kernel/btf/vmlinux")
	k.BTF = err == nil
	k.BPFFS = record.IsBPFFS("/sys/fs/bpf")
	k.SpinLock = features.HaveProgramHelper(ebpf.XDP, asm.FnSpinLock) == nil
	if v, err := nicdb.ParseKernelVersion(k.Version); err == nil {
		k.XDPLink = v.AtLeast(nicdb.KernelVersion{Major: 5, Minor: 9})
		k.TCX = v.AtLeast(nicdb.KernelVersion{Major: 6, Minor: 6})
	}
	if b, err := os.ReadFile("/proc/sys/kernel/panic_on_warn"); err == nil {
		k.PanicOnWarn = strings.TrimSpace(string(b)) != "0"
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl) == nil {
		if rl.Cur == unix.RLIM_INFINITY {
			k.Memlock = -1
		} else {
			k.Memlock = int64(rl.Cur)
		}
	}
	return k
}

// udpListening: which of ports have a UDP socket bound in this netns.
func udpListening(ports []uint16) []uint16 {
	bound := map[uint16]bool{}
	// thread-self: the network namespace of this thread (probes may run on a
	// thread switched into another namespace), not of the process.
	for _, f := range []string{"/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 {
				continue
			}
			if i := strings.LastIndexByte(fields[1], ':'); i >= 0 {
				if p, err := strconv.ParseUint(fields[1][i+1:], 16, 16); err == nil {
					bound[uint16(p)] = true
				}
			}
		}
		fh.Close()
	}
	out := []uint16{}
	for _, p := range ports {
		if bound[p] {
			out = append(out, p)
		}
	}
	return out
}
