package bpf

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
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
		return c.newAccessGen()
	}
	k := xdpAllowKey6{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
	if err := c.Maps.Allow6Map.Put(k, rule); err != nil {
		return fmt.Errorf("allow %s: %w", p, err)
	}
	return c.newAccessGen()
}

// newAccessGen writes a new access generation into the config after a change
// of the allow-list or the local addresses: the XDP program memoizes their
// answers per CPU under the generation it read before its lookups, and
// drops every memo of another generation. A random value rather than a
// counter: two writers racing on the config cannot both leave the one that
// a memo taken between their changes carries.
func (c *Cache) newAccessGen() error {
	var cfg xdpConfig
	if err := c.Maps.ConfigMap.Lookup(uint32(0), &cfg); err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	g, err := randomNonZero()
	if err != nil {
		return err
	}
	cfg.AccessGen = g
	if err := c.Maps.ConfigMap.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// randomNonZero is a random 64-bit value other than 0.
func randomNonZero() (uint64, error) {
	for {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("random: %w", err)
		}
		if v := binary.LittleEndian.Uint64(b[:]); v != 0 {
			return v, nil
		}
	}
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
	return c.newAccessGen()
}

func v4mapped(a netip.Addr) [16]byte {
	var b [16]byte
	b[10], b[11] = 0xff, 0xff
	v4 := a.As4()
	copy(b[12:], v4[:])
	return b
}

// Flush empties the cache in O(1), exactly as flush_all does: it runs the
// XDP program itself (BPF_PROG_TEST_RUN) on a TCP segment carrying
// "flush_all", so the epoch moves atomically and fills of requests already
// in flight are held, with no read-modify-write racing the datapath.
func (c *Cache) Flush() error {
	s, _, err := c.Config()
	if err != nil {
		return err
	}
	if len(s.Ports) == 0 {
		return fmt.Errorf("flush: no memcached port configured")
	}
	ret, err := c.XDP.Run(&ebpf.RunOptions{Data: flushFrame(s.Ports[0])})
	if err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if ret != 2 { // XDP_PASS
		return fmt.Errorf("flush: unexpected verdict %d", ret)
	}
	return nil
}

// flushFrame is an Ethernet/IPv4/TCP frame to port carrying "flush_all\r\n"
// on a SYN (data on a SYN, as TCP Fast Open sends it: the program reads it as
// a new connection's first command; checksums are not looked at on the
// mutation path). FIN too, so no connection state is left behind.
func flushFrame(port uint16) []byte {
	payload := []byte("flush_all\r\n")
	b := make([]byte, 14+20+20, 14+20+20+len(payload))
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+len(payload)))
	ip[8], ip[9] = 64, 6
	copy(ip[12:], []byte{127, 0, 0, 1, 127, 0, 0, 1})
	tcp := b[34:]
	binary.BigEndian.PutUint16(tcp[0:], 1)
	binary.BigEndian.PutUint16(tcp[2:], port)
	tcp[12] = 5 << 4
	tcp[13] = 0x03 // SYN|FIN
	return append(b, payload...)
}
