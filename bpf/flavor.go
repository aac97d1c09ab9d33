package bpf

import (
	"net/netip"

	"github.com/cilium/ebpf"
)

// Flavor is one flavor of xdpcache's programs, loaded: the host flavor
// (*Cache: XDP and TC fill on the host) or the offload flavor
// (*OffloadCache: XDP on the NIC, TC handing replies to the relay).
// Deploying, status, flushing and undeploying go through these methods only.
type Flavor interface {
	// Programs are the XDP program and the TC egress program.
	Programs() (xdp, tc *ebpf.Program)
	// AllowPrefixes adds source prefixes to the allow-list, each served
	// with amplification limit maxAmp (0: none).
	AllowPrefixes(prefixes []netip.Prefix, maxAmp uint32) error
	// AddLocal marks addr as one of the host's own addresses.
	AddLocal(addr netip.Addr) error
	// Pin pins the programs and every map of the flavor's objects under dir.
	Pin(dir string) error
	// Stats reads the counters.
	Stats() (Stats, error)
	// Flush makes every cached item unservable, as flush_all does.
	Flush() error
	// Close releases this process's references (pins and attachments stay).
	Close() error
}

var (
	_ Flavor = (*Cache)(nil)
	_ Flavor = (*OffloadCache)(nil)
)

// Programs are the host flavor's XDP and TC programs.
func (c *Cache) Programs() (xdp, tc *ebpf.Program) { return c.XDP, c.TC }

// Programs are the offload flavor's XDP program (on the device) and the
// relay's TC program (on the host).
func (c *OffloadCache) Programs() (xdp, tc *ebpf.Program) { return c.XDP, c.TC }

// AllowPrefixes adds every prefix with Allow.
func (c *Cache) AllowPrefixes(prefixes []netip.Prefix, maxAmp uint32) error {
	for _, p := range prefixes {
		if err := c.Allow(p, maxAmp); err != nil {
			return err
		}
	}
	return nil
}
