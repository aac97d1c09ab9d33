package probe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/offload/dispatch"
	"github.com/xdpcache/xdpcache/offload/listeners"
	"github.com/xdpcache/xdpcache/offload/netdev"
	"github.com/xdpcache/xdpcache/offload/record"
)

// fact gathers one part of a report. What it cannot read goes to note
// (what, err), which becomes one of the report's notes.
type fact struct {
	name   string
	gather func(r *Report, lk netlink.Link, o Options, note func(what string, err error))
}

// facts are what Interface gathers, in order (later ones read earlier ones:
// nicdb needs the driver).
var facts = []fact{
	{"master", gatherMaster},
	{"uppers", gatherUppers},
	{"ethtool", gatherEthtool},
	{"nicdb", gatherNICDB},
	{"virtio", func(r *Report, lk netlink.Link, _ Options, _ func(string, error)) {
		// virtio_net's negotiated feature bits decide its guest-offload
		// refusal (checks.go, virtioOffloadsCheck)
		if r.Driver == "virtio_net" {
			if b, err := os.ReadFile(filepath.Join("/sys/class/net", lk.Attrs().Name, "device", "features")); err == nil {
				r.VirtioFeatures = strings.TrimSpace(string(b))
			}
		}
	}},
	{"bond", func(r *Report, lk netlink.Link, _ Options, _ func(string, error)) {
		if b, ok := lk.(*netlink.Bond); ok {
			r.Bond = &BondFacts{Mode: b.Mode.String(), XmitHashPolicy: b.XmitHashPolicy.String()}
		}
	}},
	{"addresses", gatherAddrs},
	{"xdp", gatherXDP},
	{"write-paths", func(r *Report, lk netlink.Link, o Options, note func(string, error)) {
		// what a default deploy on this interface alone would see
		socks, err := listeners.Find(o.Ports)
		if err != nil {
			note("memcached's listening sockets", err)
		}
		paths, err := WritePaths([]string{lk.Attrs().Name}, false, ListenAddrs(socks))
		if err != nil {
			note("write paths", err)
		}
		r.WritePaths = paths
	}},
	{"netns", gatherNetns},
	{"tc", gatherTC},
	{"xdp-features", gatherXDPFeatures},
	{"kernel", func(r *Report, _ netlink.Link, _ Options, _ func(string, error)) { r.Kernel = kernelFacts() }},
	{"memcached", func(r *Report, lk netlink.Link, o Options, _ func(string, error)) {
		r.Memcached = MemcachedFacts{Ports: o.Ports, UDPListening: udpListening(o.Ports),
			Instances: memcachedInstances(lk, o.Ports)}
	}},
	{"veth-peer", func(r *Report, lk netlink.Link, _ Options, _ func(string, error)) {
		if veth, ok := lk.(*netlink.Veth); ok {
			r.VethPeer = vethPeer(veth, lk.Attrs())
		}
	}},
	{"device-offload", func(r *Report, lk netlink.Link, _ Options, _ func(string, error)) {
		if os.Geteuid() == 0 {
			o := netdev.ProbeDeviceOffload(lk.Attrs().Index)
			r.Offload = &o
		}
	}},
}

func gatherMaster(r *Report, lk netlink.Link, _ Options, _ func(string, error)) {
	if a := lk.Attrs(); a.MasterIndex != 0 {
		if m, err := netlink.LinkByIndex(a.MasterIndex); err == nil {
			r.Master = m.Attrs().Name + " (" + m.Type() + ")"
		}
	}
}

func gatherUppers(r *Report, lk netlink.Link, _ Options, note func(string, error)) {
	var err error
	if r.Uppers, err = uppers(lk.Attrs()); err != nil {
		note("upper devices", err)
	}
}

// probedFeatures are the offload features the report shows (ethtool -k).
var probedFeatures = []string{"rx-lro", "rx-gro", "rx-gro-hw", "rx-vlan-hw-parse", "rx-checksum", "tx-checksum-ip-generic",
	"tx-checksum-ipv4", "tx-checksum-ipv6", "rx-gro-list", "rx-udp-gro-forwarding"}

func gatherEthtool(r *Report, lk netlink.Link, _ Options, note func(string, error)) {
	name := r.Iface
	et, err := ethtool.NewEthtool()
	if err != nil {
		note("ethtool", err)
	} else {
		defer et.Close()
		if di, err := et.DriverInfo(name); err != nil {
			note("driver info", err)
		} else {
			r.Driver, r.DriverVersion, r.Firmware, r.BusInfo = di.Driver, di.Version, di.FwVersion, di.BusInfo
		}
		if fs, err := et.FeaturesWithState(name); err != nil {
			note("offload features", err)
		} else {
			for _, f := range probedFeatures {
				if st, ok := fs[f]; ok {
					r.Features[f] = st.Active
					if st.Active && !st.Available {
						r.FixedFeatures = append(r.FixedFeatures, f)
					}
				}
			}
		}
		if ch, err := et.GetChannels(name); err == nil {
			r.Channels = &Channels{ch.RxCount, ch.TxCount, ch.CombinedCount, ch.MaxRx, ch.MaxTx, ch.MaxCombined}
		} else if !errors.Is(err, unix.EOPNOTSUPP) {
			note("channels", err)
		}
		if rg, err := et.GetRing(name); err == nil {
			r.Rings = &Rings{rg.RxPending, rg.TxPending, rg.RxMaxPending, rg.TxMaxPending}
		} else if !errors.Is(err, unix.EOPNOTSUPP) {
			note("rings", err)
		} // EOPNOTSUPP (veth, bridge, lo): no rings to report, not an error
	}
	if r.Driver == "" && lk.Type() != "device" {
		r.Driver = lk.Type() // e.g. a bridge reports its kind
	}
}

// gatherAddrs reads the default allow-list and the local addresses deploy
// would load (what the offload flavor's small device maps must hold).
func gatherAddrs(r *Report, lk netlink.Link, _ Options, note func(string, error)) {
	if ps, err := netdev.ConnectedPrefixes(lk); err == nil {
		for _, p := range ps {
			r.Subnets = append(r.Subnets, p.String())
		}
	}
	if as, err := netdev.LocalAddrs(); err != nil {
		note("local addresses", err)
	} else {
		r.LocalAddrs = len(as)
	}
}

func gatherNICDB(r *Report, _ netlink.Link, o Options, _ func(string, error)) {
	if d, ok := o.DB.Driver(r.Driver); ok {
		r.NICDB = &d
	}
}

// gatherXDP reads what is attached, its name, and whether it is ours (the
// deployment record under the pin root names its program).
func gatherXDP(r *Report, lk netlink.Link, o Options, note func(string, error)) {
	l, err := netdev.QueryLink(lk.Attrs().Index)
	if err != nil {
		note("XDP state", err)
	}
	r.XDP, r.MinMTU, r.MaxMTU = l.XDP, l.MinMTU, l.MaxMTU
	id := max(r.XDP.ProgID, r.XDP.DrvProgID, r.XDP.SkbProgID, r.XDP.HwProgID)
	if id == 0 {
		return
	}
	if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
		if info, err := p.Info(); err == nil {
			r.XDPProgName = info.Name
		}
		p.Close()
	}
	var d *record.Deployment
	if root, err := record.Resolve(o.PinRoot); err == nil {
		if d, err = record.Read(root, r.Iface); err == nil && d.XDPProgID == id {
			r.Ours = true
		}
	}
	gatherLibXDP(r, lk.Attrs().Index, d, note)
}

// gatherLibXDP reads the dispatcher on the interface, if any, and whether
// this kernel can run programs under one.
func gatherLibXDP(r *Report, ifindex int, d *record.Deployment, note func(string, error)) {
	f := &LibXDPFacts{Supported: true}
	if err := dispatch.Supported(); err != nil {
		f.Supported, f.Why = false, err.Error()
	} else if checks, err := dispatch.ChecksPacketChanges(); err != nil {
		note("extension packet-change check", err)
	} else {
		f.ChecksPacketChanges = checks
	}
	st, err := dispatch.Inspect(ifindex, dispatch.Options{})
	if err != nil {
		note("libxdp dispatcher", err)
	} else {
		f.State = st
		if st.Dispatcher != nil && d != nil && d.XDPAttach == record.XDPDispatcher && st.Dispatcher.Has(d.XDPProgID) {
			f.OursInside = true
		}
	}
	r.LibXDP = f
}

func gatherNetns(r *Report, _ netlink.Link, _ Options, _ func(string, error)) {
	if ns, err := os.Readlink("/proc/thread-self/ns/net"); err == nil {
		r.Netns = ns
	}
}

// gatherTC lists the TC programs on the interface: TCX (ingress and egress)
// and cls_bpf filters on egress.
func gatherTC(r *Report, lk netlink.Link, _ Options, _ func(string, error)) {
	for _, at := range []struct {
		name string
		t    ebpf.AttachType
	}{{"ingress", ebpf.AttachTCXIngress}, {"egress", ebpf.AttachTCXEgress}} {
		res, err := link.QueryPrograms(link.QueryOptions{Target: lk.Attrs().Index, Attach: at.t})
		if err != nil {
			continue
		}
		for _, pr := range res.Programs {
			name := fmt.Sprintf("id %d", pr.ID)
			if prog, err := ebpf.NewProgramFromID(pr.ID); err == nil {
				if info, err := prog.Info(); err == nil {
					name = info.Name
				}
				prog.Close()
			}
			r.TCFilters = append(r.TCFilters, "tcx "+at.name+" "+name)
		}
	}
	if filters, err := netlink.FilterList(lk, netlink.HANDLE_MIN_EGRESS); err == nil {
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok {
				r.TCFilters = append(r.TCFilters, "egress cls_bpf "+bf.Name)
			}
		}
	}
}

func gatherXDPFeatures(r *Report, lk netlink.Link, _ Options, note func(string, error)) {
	var err error
	if r.XDPFeatures, err = netdev.QueryXDPFeatures(lk.Attrs().Index); err != nil {
		note("netdev XDP features", err)
		r.XDPFeatures.Reason = err.Error()
	}
}
