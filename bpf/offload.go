package bpf

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// Limits of the hardware-offload flavor (c/include/offload/offload.h).
const (
	OffloadChunk     = 56 // item bytes per device map element
	OffloadMaxChunks = 8  // chunks per item
	OffloadItemMax   = OffloadChunk * OffloadMaxChunks
	OffloadKeyMax    = 48 // longest key served
	OffloadElemMax   = 64 // largest device map element (key + value, each rounded up to 8)
	offloadFillShift = 4  // chunk keys: fill id << shift | chunk index
	offloadPrefixes  = 2  // allow-list prefix lengths per address family
	offloadSmallMaps = 64 // allow-list and local-address entries
)

// OffloadKeyHash is the offload programs' key hash (ohash_* in offload.h):
// a seeded one-at-a-time hash with adds and shifts only.
func OffloadKeyHash(key []byte, seed uint32) uint32 {
	h := seed ^ uint32(len(key))
	for _, c := range key {
		h += uint32(c)
		h += h << 10
		h ^= h >> 6
	}
	h += h << 3
	h ^= h >> 11
	h += h << 15
	return h
}

// OffloadInstanceSeed is the seed the offload programs hash the keys of the
// memcached instance on port with (OINST_SEED in offload/commands.h): on the
// card each port is an instance, so two instances on two ports never answer
// for each other (instances told apart by address do not fit the card).
func OffloadInstanceSeed(seed uint32, port uint16) uint32 {
	return seed ^ (uint32(port) * 0x9E3779B1)
}

// OffloadMaps are the offload XDP program's maps, which live on the device
// when the program is offloaded.
type OffloadMaps = xdpoffMaps

// OffloadEntry, OffloadChunkKey, ... mirror the C structures.
type (
	OffloadEntry     = xdpoffOentry
	OffloadChunkKey  = xdpoffOchunkKey
	OffloadChunkData = xdpoffOchunk
	OffloadTicketKey = xdpoffOticketKey
	OffloadTicket    = xdpoffOticket
	OffloadGen       = xdpoffOgen
	OffloadTTL       = xdpoffOttl
)

// OffloadCache is the offload flavor loaded: the XDP program (on the device,
// or on the host for tests), its maps, and the host TC program with the ring
// buffer the relay reads.
type OffloadCache struct {
	XDP        *ebpf.Program
	TC         *ebpf.Program
	Maps       OffloadMaps
	Ring       *ebpf.Map // fill records for the relay
	RelayCfg   *ebpf.Map
	RelayStats *ebpf.Map
	Seed       uint32
	Buckets    uint32
}

// OffloadOptions say where the offload flavor goes.
type OffloadOptions struct {
	// Ifindex of the device the XDP program and its maps are offloaded
	// to; 0 loads everything on the host (tests run it there with
	// BPF_PROG_TEST_RUN).
	Ifindex int
	// NewDeviceMap creates a map bound to a device (cilium/ebpf cannot);
	// required when Ifindex is set.
	NewDeviceMap func(spec *ebpf.MapSpec, ifindex int) (*ebpf.Map, error)
	// MaxEntries is the largest map the device holds (0: no limit).
	MaxEntries uint32
}

// OffloadSizes are the map sizes the offload flavor needs for s on a device
// whose maps hold at most maxEntries elements (0: unlimited).
func OffloadSizes(s Settings, maxEntries uint32) (map[string]uint32, error) {
	clip := func(n uint32) uint32 {
		if maxEntries != 0 && n > maxEntries {
			return maxEntries
		}
		return n
	}
	if maxEntries != 0 && s.Entries > maxEntries {
		return nil, fmt.Errorf("%d entries do not fit the device, whose maps hold at most %d elements (use --entries %d or less)",
			s.Entries, maxEntries, maxEntries)
	}
	chunks := uint32(OffloadMaxChunks)
	if n := (uint32(len("VALUE ")+OffloadKeyMax+len(" 4294967295 1024\r\n\r\nEND\r\n")) + s.MaxValue + OffloadChunk - 1) / OffloadChunk; n < chunks {
		chunks = n
	}
	return map[string]uint32{
		"ocfg_map":    1,
		"ostate_map":  1,
		"ogen_map":    s.Entries,
		"oentry_map":  s.Entries,
		"ochunk_map":  clip(2 * s.Entries * chunks), // room for an item and its replacement
		"oticket_map": clip(s.Entries),
		"ottl_map":    clip(s.Entries),
		"oallow_map":  clip(offloadSmallMaps),
		"olocal_map":  clip(offloadSmallMaps),
		"ostats_map":  clip(uint32(numStats)),
	}, nil
}

// LoadOffload creates the offload flavor's maps (on the device when
// o.Ifindex is set), loads its XDP program there and the relay's TC program
// on the host. The caller attaches them, fills the allow-list (AllowPrefixes)
// and runs the relay.
func LoadOffload(s Settings, o OffloadOptions) (*OffloadCache, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if o.Ifindex != 0 && o.NewDeviceMap == nil {
		return nil, errors.New("offload: no device map constructor")
	}
	sizes, err := OffloadSizes(s, o.MaxEntries)
	if err != nil {
		return nil, err
	}
	xspec, err := loadXdpoff()
	if err != nil {
		return nil, fmt.Errorf("parse offload XDP object: %w", err)
	}
	c := &OffloadCache{Buckets: s.Entries}
	replaced := map[string]*ebpf.Map{}
	closeAll := func() {
		for _, m := range replaced {
			m.Close()
		}
	}
	for name, ms := range xspec.Maps {
		n, ok := sizes[name]
		if !ok {
			closeAll()
			return nil, fmt.Errorf("offload object has an unexpected map %q", name)
		}
		ms.MaxEntries = n
		if o.Ifindex == 0 {
			continue
		}
		m, err := o.NewDeviceMap(ms, o.Ifindex)
		if err != nil {
			closeAll()
			return nil, err
		}
		replaced[name] = m
	}
	if o.Ifindex != 0 {
		xspec.Programs["xdpcache_offload"].Ifindex = uint32(o.Ifindex)
	}
	var xo xdpoffObjects
	if err := xspec.LoadAndAssign(&xo, &ebpf.CollectionOptions{MapReplacements: replaced}); err != nil {
		closeAll()
		return nil, fmt.Errorf("load the offload XDP program%s: %w", onDevice(o.Ifindex), VerifierSummary(err))
	}
	// LoadAndAssign holds its own references to the replacements.
	closeAll()
	c.XDP, c.Maps = xo.XdpcacheOffload, xo.xdpoffMaps

	tspec, err := loadTcrelay()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("parse relay TC object: %w", err)
	}
	var to tcrelayObjects
	if err := tspec.LoadAndAssign(&to, nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("load the relay TC program: %w", VerifierSummary(err))
	}
	c.TC, c.Ring, c.RelayCfg, c.RelayStats = to.XdpcacheTcRelay, to.RelayRing, to.RelayCfgMap, to.RelayStats
	if err := c.configure(s); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func onDevice(ifindex int) string {
	if ifindex == 0 {
		return ""
	}
	return fmt.Sprintf(" on device %d", ifindex)
}

func (c *OffloadCache) configure(s Settings) error {
	seed := uint32(s.Seed)
	if seed == 0 {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("random seed: %w", err)
		}
		seed = binary.LittleEndian.Uint32(b[:]) | 1
	}
	c.Seed = seed
	cfg := xdpoffOcfg{BucketsMask: s.Entries - 1, Seed: seed, Mtu: s.MTU, UnlistedAmp: s.UnlistedAmp}
	rc := tcrelayRelayCfg{MaxLen: OffloadItemMax}
	for i, p := range s.Ports {
		cfg.Ports[i], rc.Ports[i] = p, p
	}
	if s.RequireLocal {
		cfg.Flags |= cfgRequireLocal
	}
	if s.VerifyUDPCsum {
		cfg.Flags |= cfgVerifyUDPCsum
	}
	if err := c.Maps.OcfgMap.Update(uint32(0), &cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write offload config: %w", err)
	}
	if err := c.RelayCfg.Update(uint32(0), &rc, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write relay config: %w", err)
	}
	return nil
}

// AllowPrefixes sets the allow-list: sources in prefixes are served with
// amplification limit maxAmp (0: none). The device looks up at most two
// prefix lengths per address family.
func (c *OffloadCache) AllowPrefixes(prefixes []netip.Prefix, maxAmp uint32) error {
	var cfg xdpoffOcfg
	if err := c.Maps.OcfgMap.Lookup(uint32(0), &cfg); err != nil {
		return fmt.Errorf("read offload config: %w", err)
	}
	for _, p := range prefixes {
		p = p.Masked()
		bitsIn := p.Bits()
		lens := &cfg.Prefix6
		if p.Addr().Is4() {
			lens = &cfg.Prefix4
		}
		if !addPrefixLen(lens, uint8(bitsIn+1)) {
			return fmt.Errorf("allow-list %s: the offload program looks up at most %d prefix lengths per address family", p, offloadPrefixes)
		}
		k := xdpoffOallowKey{Prefixlen: uint32(bitsIn)}
		a := p.Addr().As16()
		if p.Addr().Is4() {
			k.Prefixlen += 96
		}
		k.Addr = a
		if err := c.Maps.OallowMap.Update(&k, &xdpoffAllowRule{MaxAmp: maxAmp}, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("allow %s: %w", p, err)
		}
	}
	if err := c.Maps.OcfgMap.Update(uint32(0), &cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write offload config: %w", err)
	}
	return nil
}

// addPrefixLen records n (a prefix length plus one) in the first free slot.
func addPrefixLen(lens *[2]uint8, n uint8) bool {
	for i := range lens {
		if lens[i] == n {
			return true
		}
		if lens[i] == 0 {
			lens[i] = n
			return true
		}
	}
	return false
}

// AddLocal marks addr as local (requests to others are not served
// when RequireLocal is set).
func (c *OffloadCache) AddLocal(addr netip.Addr) error {
	// As16 maps IPv4 to ::ffff:a.b.c.d, as the program stores addresses.
	k := xdpoffLocalAddr{Addr: addr.Unmap().As16()}
	if err := c.Maps.OlocalMap.Update(&k, uint32(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("add local address %s: %w", addr, err)
	}
	return nil
}

// Close releases this process's references (pinned objects stay).
func (c *OffloadCache) Close() error {
	var errs []error
	for _, p := range []*ebpf.Program{c.XDP, c.TC} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	for _, m := range []*ebpf.Map{c.Ring, c.RelayCfg, c.RelayStats} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	errs = append(errs, c.Maps.Close())
	return errors.Join(errs...)
}
