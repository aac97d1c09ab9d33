package netdev

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// ConnectedPrefixes are the subnets of the interface's own addresses (link
// local ones left out): the default allow-list (docs/security.md).
func ConnectedPrefixes(lk netlink.Link) ([]netip.Prefix, error) {
	addrs, err := netlink.AddrList(lk, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", lk.Attrs().Name, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.IsLinkLocalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones).Masked())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no addresses, so there is no default allow-list: give --allow CIDR", lk.Attrs().Name)
	}
	return out, nil
}

// LocalAddrs are the addresses of every interface of this network namespace:
// with a destination rule, the only ones the cache answers for.
func LocalAddrs() ([]netip.Addr, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list local addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip)
		}
	}
	return out, nil
}
