package probe

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/xdpcache/xdpcache/offload/listeners"
	"github.com/xdpcache/xdpcache/offload/record"
)

// WritePaths lists every interface of this network namespace a write could
// reach memcached through, and what a deployment on the listed interfaces
// does there: a listed interface is served; lo (a client on this host
// reaches memcached's addresses over loopback) and every other interface
// memcached listens on that is up are watched for writes, unless
// listedOnly says writes come only through the listed ones. listen are
// memcached's listening addresses: nil (unknown, or a wildcard socket)
// means every interface; otherwise an interface holding none of them is
// left alone (a write reaches memcached through it only if packets for its
// addresses are routed there: Linux takes a packet for a local address on
// any interface). An interface enslaved to another (bond, bridge) is
// covered by its master's hook; one that is down carries nothing.
func WritePaths(listed []string, listedOnly bool, listen []netip.Addr) ([]record.Path, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []record.Path
	for _, name := range listed {
		out = append(out, record.Path{Iface: name, Covered: true, Role: record.RoleServe,
			Why: "listed: GETs answered, writes invalidate"})
	}
	for _, lk := range links {
		a := lk.Attrs()
		if slices.Contains(listed, a.Name) {
			continue
		}
		p := record.Path{Iface: a.Name}
		switch {
		case a.MasterIndex != 0:
			p.Covered = true
			p.Why = fmt.Sprintf("enslaved: its packets reach memcached through its master (ifindex %d)", a.MasterIndex)
			if m, err := netlink.LinkByIndex(a.MasterIndex); err == nil {
				p.Why = fmt.Sprintf("enslaved: its packets reach memcached through %s", m.Attrs().Name)
			}
		case a.Flags&net.FlagUp == 0:
			p.Why = "down: carries no writes now (deploy again once it is up)"
		case listedOnly:
			p.Why = "--listed-only: writes arriving here are NOT seen"
		case listen != nil && a.Flags&net.FlagLoopback == 0 && !holdsAny(lk, listen):
			p.Why = fmt.Sprintf("memcached listens on none of its addresses (only %v): writes come here only if packets for those are routed here, and are NOT seen", listen)
		default:
			p.Covered, p.Role = true, record.RoleWatch
			p.Why = "watched: writes arriving here invalidate (generic XDP) and their acknowledgements repeat it (TC egress)"
			if a.Flags&net.FlagLoopback != 0 {
				p.Why = "watched (loopback: clients on this host): writes invalidate (generic XDP), acknowledgements repeat it (TC egress)"
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// Watched are the paths of role watch.
func Watched(paths []record.Path) []string {
	var out []string
	for _, p := range paths {
		if p.Role == record.RoleWatch {
			out = append(out, p.Iface)
		}
	}
	return out
}

// holdsAny: lk has one of addrs.
func holdsAny(lk netlink.Link, addrs []netip.Addr) bool {
	list, err := netlink.AddrList(lk, netlink.FAMILY_ALL)
	if err != nil {
		return true // unknown: watch it
	}
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && slices.Contains(addrs, ip.Unmap()) {
			return true
		}
	}
	return false
}

// ListenAddrs are the addresses of memcached's listening sockets, nil if
// any is a wildcard (it listens on every interface) or none is known.
func ListenAddrs(socks []listeners.Socket) []netip.Addr {
	var out []netip.Addr
	for _, s := range socks {
		if s.Addr.IsUnspecified() {
			return nil
		}
		if !slices.Contains(out, s.Addr) {
			out = append(out, s.Addr)
		}
	}
	return out
}
