package bpf

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
)

// Limits compiled into the programs (c/include/common/consts.h).
const (
	MaxKey      = 250
	MaxValueCap = 1408
	MaxPorts    = 4
)

// Settings are a deployment's tunables, written to config_map before the
// programs are attached.
type Settings struct {
	Ports         []uint16      // memcached ports (UDP for GETs, TCP and UDP for mutations)
	Entries       uint32        // cache entries, a power of two >= CacheWays (Entries/CacheWays sets of CacheWays ways)
	MaxValue      uint32        // largest value cached, at most MaxValueCap
	MTU           uint32        // largest IP packet a reply may be
	MaxAge        time.Duration // upper bound on an entry's age
	WriteHold     time.Duration // fills refused this long after a mutation of the key
	UnlistedAmp   uint32        // sources outside the allow-list: amplification limit, 0 = never served
	RequireLocal  bool          // serve only requests addressed to a local address (local_map)
	VerifyUDPCsum bool          // verify requests' UDP checksums (off where senders leave them partial, e.g. veth)
	Seed          uint64        // key hash seed; 0 picks a random one
	// Protocol is memcached's -B setting: "auto" (or empty: each TCP
	// connection's first byte decides, memcached's default), "ascii" or
	// "binary". XDP must read connections as memcached does.
	Protocol string
	// Shadow: GETs the cache would answer go to memcached all the same,
	// and TC compares memcached's replies with the would-be ones
	// (docs/shadow.md). Switching it changes only the config: the
	// cache is kept.
	Shadow bool `json:",omitempty"`
	// Instances names the memcached instance of each listening socket on
	// Ports, when a port is held by more than one (at different local
	// addresses); empty: each port is one instance. Entries belong to one
	// instance: a GET to one is never answered with another's value.
	Instances []Listener `json:",omitempty"`
}

// Listener is one memcached listening socket: its local address (the
// unspecified address of its family for a wildcard socket), port, and the
// instance (process) holding it.
type Listener struct {
	Addr     netip.Addr
	Port     uint16
	Instance uint32 // 1.. per memcached process; the programs use 1<<16 | Instance
}

// DefaultSettings are the documented defaults (docs/consistency.md).
func DefaultSettings() Settings {
	return Settings{
		Ports:         []uint16{11211},
		Entries:       65536,
		MaxValue:      1024,
		MTU:           1500,
		MaxAge:        60 * time.Second,
		WriteHold:     time.Second,
		RequireLocal:  true,
		VerifyUDPCsum: true,
	}
}

// Validate reports the first setting the programs cannot work with.
func (s Settings) Validate() error {
	if len(s.Ports) == 0 || len(s.Ports) > MaxPorts {
		return fmt.Errorf("between 1 and %d memcached ports are needed, got %d", MaxPorts, len(s.Ports))
	}
	for _, p := range s.Ports {
		if p == 0 {
			return errors.New("port 0 is not a memcached port")
		}
	}
	if s.Entries < CacheWays || s.Entries > 1<<24 || bits.OnesCount32(s.Entries) != 1 {
		return fmt.Errorf("entries must be a power of two between %d (one %d-way set) and %d, got %d",
			CacheWays, CacheWays, 1<<24, s.Entries)
	}
	if s.MaxValue == 0 || s.MaxValue > MaxValueCap {
		return fmt.Errorf("max value size must be between 1 and %d bytes, got %d", MaxValueCap, s.MaxValue)
	}
	if s.MTU < 576 || s.MTU > 9216 {
		return fmt.Errorf("MTU %d is outside 576..9216", s.MTU)
	}
	if s.MaxAge <= 0 {
		return fmt.Errorf("max age must be positive, got %s", s.MaxAge)
	}
	if s.WriteHold < 0 {
		return fmt.Errorf("write hold must not be negative, got %s", s.WriteHold)
	}
	switch s.Protocol {
	case "", "auto", "ascii", "binary":
	default:
		return fmt.Errorf("memcached protocol must be auto, ascii or binary (its -B setting), got %q", s.Protocol)
	}
	if len(s.Instances) > instMapSize {
		return fmt.Errorf("%d memcached listening sockets: at most %d are told apart", len(s.Instances), instMapSize)
	}
	for _, l := range s.Instances {
		if !l.Addr.IsValid() || l.Instance == 0 || l.Instance > 0xffff || !slices.Contains(s.Ports, l.Port) {
			return fmt.Errorf("memcached listener %v port %d instance %d: needs an address, one of the ports and an instance in 1..65535", l.Addr, l.Port, l.Instance)
		}
	}
	return nil
}

// instMapSize is inst_map's max_entries (c/include/host/maps.h).
const instMapSize = 64

// InstanceID is the instance the programs name a request to (addr, port)
// by, given the deployment's listeners: the port, unless s.Instances holds
// the socket (exact address first, then the wildcard sockets), as
// sc_instance does.
func (s Settings) InstanceID(addr netip.Addr, port uint16) uint32 {
	if len(s.Instances) == 0 {
		return uint32(port)
	}
	addr = addr.Unmap()
	try := []netip.Addr{addr}
	if addr.Is4() {
		try = append(try, netip.IPv4Unspecified())
	}
	try = append(try, netip.IPv6Unspecified())
	for _, a := range try {
		for _, l := range s.Instances {
			if l.Port == port && l.Addr.Unmap() == a {
				return 1<<16 | l.Instance
			}
		}
	}
	return uint32(port)
}

// ProgramTags identify this build's programs, both flavors (the kernel's
// program tags of the host XDP and TC programs and of the offload XDP and
// relay TC programs, joined by "/"), so a deployment of another build is
// recognised as an upgrade whichever flavor changed.
func ProgramTags() (string, error) {
	var tags []string
	for _, obj := range []struct {
		load func() (*ebpf.CollectionSpec, error)
		prog string
	}{
		{loadXdp, "xdpcache_xdp"},
		{loadTc, "xdpcache_tc"},
		{loadXdpoff, "xdpcache_offload"},
		{loadTcrelay, "xdpcache_tc_relay"},
	} {
		spec, err := obj.load()
		if err != nil {
			return "", fmt.Errorf("parse the object of %s: %w", obj.prog, err)
		}
		ps := spec.Programs[obj.prog]
		if ps == nil {
			return "", fmt.Errorf("no program %s in its object", obj.prog)
		}
		tag, err := ps.Tag()
		if err != nil {
			return "", fmt.Errorf("tag of %s: %w", obj.prog, err)
		}
		tags = append(tags, tag)
	}
	return strings.Join(tags, "/"), nil
}

// Cache is the loaded XDP and TC programs with their shared maps. Watch,
// when loaded (LoadWatch), is the XDP program for interfaces that are only
// watched for writes, on the same maps.
type Cache struct {
	XDP   *ebpf.Program
	TC    *ebpf.Program
	Watch *ebpf.Program
	Maps  Maps
}

// Maps are the maps both programs share.
type Maps = xdpMaps

// Load creates the maps and loads both programs. The caller attaches them.
func Load(s Settings) (*Cache, error) { return LoadExtension(s, nil) }

// Extension says to load the XDP program as an freplace extension
// (BPF_PROG_TYPE_EXT) of the function Function of Target, a multi-program
// dispatcher's slot (offload/dispatch), rather than as an XDP program.
type Extension struct {
	Target   *ebpf.Program
	Function string
}

// LoadExtension is Load with the XDP program loaded as ext says (nil: as
// an XDP program). Maps and the TC program are the same either way.
func LoadExtension(s Settings, ext *Extension) (*Cache, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	xspec, err := xdpSpec()
	if err != nil {
		return nil, err
	}
	xspec.Maps["cache_map"].MaxEntries = s.Entries
	if ext != nil {
		ps := xspec.Programs["xdpcache_xdp"]
		ps.Type, ps.AttachType = ebpf.Extension, ebpf.AttachNone
		ps.AttachTarget, ps.AttachTo = ext.Target, ext.Function
	}
	var xo xdpObjects
	if err := xspec.LoadAndAssign(&xo, nil); err != nil {
		return nil, fmt.Errorf("load XDP program: %w", VerifierSummary(err))
	}
	c := &Cache{XDP: xo.XdpcacheXdp, Maps: xo.xdpMaps}
	if err := c.loadTC(); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Configure(s); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// xdpSpec is the XDP object's spec, its constants set for this machine.
func xdpSpec() (*ebpf.CollectionSpec, error) {
	spec, err := loadXdp()
	if err != nil {
		return nil, fmt.Errorf("parse XDP object: %w", err)
	}
	if err := setLoadsOrdered(spec); err != nil {
		return nil, err
	}
	return spec, nil
}

// setLoadsOrdered tells the program (loads_ordered in c/include/host/cache.h)
// whether this CPU keeps loads in order, so that its lock-free item reads
// can use plain loads: x86-64 does (TSO); arm64 and the others get fully
// ordered atomics. A spec without the constant is left as it is.
func setLoadsOrdered(spec *ebpf.CollectionSpec) error {
	v, ok := spec.Variables[xdpVarLoadsOrdered]
	if !ok || runtime.GOARCH != "amd64" {
		return nil
	}
	if err := v.Set(uint32(1)); err != nil {
		return fmt.Errorf("set %s: %w", xdpVarLoadsOrdered, err)
	}
	return nil
}

func (c *Cache) loadTC() error {
	tspec, err := loadTc()
	if err != nil {
		return fmt.Errorf("parse TC object: %w", err)
	}
	tspec.Maps["cache_map"].MaxEntries = c.Maps.CacheMap.MaxEntries()
	repl := map[string]*ebpf.Map{}
	all := mapFields(&c.Maps)
	for name := range tspec.Maps {
		if strings.HasPrefix(name, ".") {
			continue // the program's own constants
		}
		m := all[name]
		if m == nil || *m == nil {
			return fmt.Errorf("TC object has a map %q the XDP object lacks", name)
		}
		repl[name] = *m
	}
	var to tcObjects
	if err := tspec.LoadAndAssign(&to, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		return fmt.Errorf("load TC program: %w", VerifierSummary(err))
	}
	c.TC = to.XdpcacheTc
	return nil
}

// LoadWatch loads the watch-only XDP program (watch_only in xdp_cache.c)
// on c's maps, unless it is loaded: it invalidates on every write it sees,
// as XDP does, and never answers a GET. For lo and the other interfaces
// writes may reach memcached through.
func (c *Cache) LoadWatch() error {
	if c.Watch != nil {
		return nil
	}
	spec, err := xdpSpec()
	if err != nil {
		return err
	}
	if err := spec.Variables[xdpVarWatchOnly].Set(uint32(1)); err != nil {
		return fmt.Errorf("watch-only program: %w", err)
	}
	spec.Maps[xdpMapCacheMap].MaxEntries = c.Maps.CacheMap.MaxEntries()
	repl := map[string]*ebpf.Map{}
	all := mapFields(&c.Maps)
	for name := range spec.Maps {
		if strings.HasPrefix(name, ".") {
			continue // the program's own constants
		}
		m := all[name]
		if m == nil || *m == nil {
			return fmt.Errorf("XDP object has a map %q the loaded cache lacks", name)
		}
		repl[name] = *m
	}
	var objs struct {
		Prog *ebpf.Program `ebpf:"xdpcache_xdp"`
	}
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		return fmt.Errorf("load the watch-only XDP program: %w", VerifierSummary(err))
	}
	c.Watch = objs.Prog
	return nil
}

// Configure writes the settings into config_map. The programs read it on
// every packet, so this takes effect at once.
func (c *Cache) Configure(s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if c.Maps.CacheMap.MaxEntries() != s.Entries {
		return fmt.Errorf("the cache map has %d entries, settings ask for %d: reload needed", c.Maps.CacheMap.MaxEntries(), s.Entries)
	}
	seed := s.Seed
	if seed == 0 {
		var err error
		if seed, err = randomNonZero(); err != nil {
			return fmt.Errorf("hash seed: %w", err)
		}
	}
	accessGen, err := randomNonZero() // the tables may have changed before: no old memo holds
	if err != nil {
		return err
	}
	cfg := xdpConfig{
		EntriesMask:  s.Entries - 1,
		MaxValue:     s.MaxValue,
		Mtu:          s.MTU,
		UnlistedAmp:  s.UnlistedAmp,
		Seed:         seed,
		MaxAgeNs:     uint64(s.MaxAge),
		HoldNs:       uint64(s.WriteHold),
		MonoToUnixNs: monoToUnix(),
		AccessGen:    accessGen,
	}
	copy(cfg.Ports[:], s.Ports)
	if s.RequireLocal {
		cfg.Flags |= cfgRequireLocal
	}
	if err := c.writeInstances(s.Instances); err != nil {
		return err
	}
	if len(s.Instances) > 0 {
		cfg.Flags |= cfgInstByAddr
	}
	if s.VerifyUDPCsum {
		cfg.Flags |= cfgVerifyUDPCsum
	}
	switch s.Protocol {
	case "ascii":
		cfg.Flags |= cfgProtoASCII
	case "binary":
		cfg.Flags |= cfgProtoBinary
	}
	if s.Shadow {
		cfg.Flags |= cfgShadow
	}
	if err := c.Maps.ConfigMap.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

const (
	cfgRequireLocal  = 1
	cfgVerifyUDPCsum = 2
	cfgProtoASCII    = 4
	cfgProtoBinary   = 8
	cfgShadow        = 16
	cfgInstByAddr    = 32
)

// writeInstances replaces inst_map's contents with ls.
func (c *Cache) writeInstances(ls []Listener) error {
	var k xdpInstKey
	for {
		if err := c.Maps.InstMap.NextKey(nil, &k); err != nil {
			break // empty
		}
		if err := c.Maps.InstMap.Delete(&k); err != nil {
			return fmt.Errorf("clear instances: %w", err)
		}
	}
	for _, l := range ls {
		k := xdpInstKey{Addr: instAddr(l.Addr), Port: l.Port}
		if err := c.Maps.InstMap.Put(&k, uint32(1<<16|l.Instance)); err != nil {
			return fmt.Errorf("write instance of %v port %d: %w", l.Addr, l.Port, err)
		}
	}
	return nil
}

// instAddr is a listener's address as inst_map keys it: IPv4 as
// ::ffff:a.b.c.d (the IPv4 wildcard ::ffff:0.0.0.0), the IPv6 wildcard
// all zeros.
func instAddr(a netip.Addr) [16]byte { return a.As16() }

// Config reads back what Configure wrote.
func (c *Cache) Config() (Settings, uint64, error) {
	var cfg xdpConfig
	if err := c.Maps.ConfigMap.Lookup(uint32(0), &cfg); err != nil {
		return Settings{}, 0, fmt.Errorf("read config: %w", err)
	}
	s := Settings{
		Entries:       cfg.EntriesMask + 1,
		MaxValue:      cfg.MaxValue,
		MTU:           cfg.Mtu,
		MaxAge:        time.Duration(cfg.MaxAgeNs),
		WriteHold:     time.Duration(cfg.HoldNs),
		UnlistedAmp:   cfg.UnlistedAmp,
		RequireLocal:  cfg.Flags&cfgRequireLocal != 0,
		VerifyUDPCsum: cfg.Flags&cfgVerifyUDPCsum != 0,
		Shadow:        cfg.Flags&cfgShadow != 0,
		Seed:          cfg.Seed,
		Protocol:      "auto",
	}
	switch {
	case cfg.Flags&cfgProtoASCII != 0:
		s.Protocol = "ascii"
	case cfg.Flags&cfgProtoBinary != 0:
		s.Protocol = "binary"
	}
	for _, p := range cfg.Ports {
		if p != 0 {
			s.Ports = append(s.Ports, p)
		}
	}
	return s, cfg.Seed, nil
}

// Close releases the programs and maps (attachments and pins keep their own
// references).
func (c *Cache) Close() error {
	var errs []error
	for _, p := range []*ebpf.Program{c.XDP, c.TC, c.Watch} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	errs = append(errs, c.Maps.Close())
	return errors.Join(errs...)
}

// VerifierSummary keeps a verifier rejection readable: the error line and
// the last lines of the log, which name the failing instruction.
func VerifierSummary(err error) error {
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) {
		return err
	}
	log := ve.Log
	if len(log) > 12 {
		log = log[len(log)-12:]
	}
	return fmt.Errorf("%w\n  verifier: %s", err, strings.Join(log, "\n  verifier: "))
}

func monoToUnix() int64 {
	// Monotonic clock of the kernel (bpf_ktime_get_ns) vs wall clock.
	var mono int64
	if ts, err := clockMonotonic(); err == nil {
		mono = ts
	}
	return time.Now().UnixNano() - mono
}
