package bpf

import (
	"fmt"
	"net/netip"
)

// Allow adds a source prefix to the allow-list. maxAmp limits a reply to
// that factor of the request's size; 0 means no limit.
func (c *Cache) Allow(p netip.Prefix, maxAmp uint32) error {
	p = p.Masked()
	rule := xdpAllowRule{MaxAmp: maxAmp}
	if p.Addr().Is4() {
		k := xdpAllowKey4{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}
		if err := c.Maps.Allow4Map.Put(k, rule); err != nil {
			return fmt.Errorf("allow %s: %w", p, err)
		}
		return nil
	}
	k := xdpAllowKey6{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
	if err := c.Maps.Allow6Map.Put(k, rule); err != nil {
		return fmt.Errorf("allow %s: %w", p, err)
	}
	return nil
}

// AllowList returns the allow-list's prefixes and their amplification limits.
func (c *Cache) AllowList() (map[netip.Prefix]uint32, error) {
	out := map[netip.Prefix]uint32{}
	var k4 xdpAllowKey4
	var rule xdpAllowRule
	it := c.Maps.Allow4Map.Iterate()
	for it.Next(&k4, &rule) {
		out[netip.PrefixFrom(netip.AddrFrom4(k4.Addr), int(k4.Prefixlen))] = rule.MaxAmp
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read IPv4 allow-list: %w", err)
	}
	var k6 xdpAllowKey6
	it = c.Maps.Allow6Map.Iterate()
	for it.Next(&k6, &rule) {
		out[netip.PrefixFrom(netip.AddrFrom16(k6.Addr), int(k6.Prefixlen))] = rule.MaxAmp
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read IPv6 allow-list: %w", err)
	}
	return out, nil
}

// AddLocal marks an address as the host's own: with RequireLocal, only
// requests addressed to such addresses are answered.
func (c *Cache) AddLocal(a netip.Addr) error {
	a = a.Unmap()
	k := xdpLocalAddr{Addr: a.As16()}
	if a.Is4() {
		k.Addr = v4mapped(a) // ::ffff:a.b.c.d, as the programs store IPv4
	}
	if err := c.Maps.LocalMap.Put(k, uint8(1)); err != nil {
		return fmt.Errorf("add local address %s: %w", a, err)
	}
	return nil
}

func v4mapped(a netip.Addr) [16]byte {
	var b [16]byte
	b[10], b[11] = 0xff, 0xff
	v4 := a.As4()
	copy(b[12:], v4[:])
	return b
}

// Flush empties the cache in O(1) by moving to a new epoch, exactly as
// flush_all does from the datapath.
func (c *Cache) Flush() error {
	var g xdpGlobalState
	if err := c.Maps.GlobalMap.Lookup(uint32(0), &g); err != nil {
		return fmt.Errorf("read global state: %w", err)
	}
	g.Epoch++
	if err := c.Maps.GlobalMap.Put(uint32(0), g); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}
