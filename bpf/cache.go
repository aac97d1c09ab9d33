package bpf

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
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
	Entries       uint32        // cache buckets, a power of two
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
	if s.Entries < 2 || s.Entries > 1<<24 || bits.OnesCount32(s.Entries) != 1 {
		return fmt.Errorf("entries must be a power of two between 2 and %d, got %d", 1<<24, s.Entries)
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
	return nil
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

// Cache is the loaded XDP and TC programs with their shared maps.
type Cache struct {
	XDP  *ebpf.Program
	TC   *ebpf.Program
	Maps Maps
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
	xspec, err := loadXdp()
	if err != nil {
		return nil, fmt.Errorf("parse XDP object: %w", err)
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

func (c *Cache) loadTC() error {
	tspec, err := loadTc()
	if err != nil {
		return fmt.Errorf("parse TC object: %w", err)
	}
	tspec.Maps["cache_map"].MaxEntries = c.Maps.CacheMap.MaxEntries()
	repl := map[string]*ebpf.Map{}
	all := mapFields(&c.Maps)
	for name := range tspec.Maps {
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
	for seed == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("hash seed: %w", err)
		}
		seed = binary.LittleEndian.Uint64(b[:])
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
	}
	copy(cfg.Ports[:], s.Ports)
	if s.RequireLocal {
		cfg.Flags |= cfgRequireLocal
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
)

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
	for _, p := range []*ebpf.Program{c.XDP, c.TC} {
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
