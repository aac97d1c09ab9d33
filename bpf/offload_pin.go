package bpf

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// Pin names of the offload flavor's host-side maps; the device maps keep
// their C names. Programs use PinXDPProg and PinTCProg, so Unpin removes
// either flavor's pins.
const (
	pinRelayRing  = "relay_ring"
	pinRelayCfg   = "relay_cfg_map"
	pinRelayStats = "relay_stats"
)

func (c *OffloadCache) maps() map[string]**ebpf.Map {
	m := &c.Maps
	return map[string]**ebpf.Map{
		"oallow_map": &m.OallowMap, "ocfg_map": &m.OcfgMap, "ochunk_map": &m.OchunkMap,
		"oentry_map": &m.OentryMap, "ogen_map": &m.OgenMap, "olocal_map": &m.OlocalMap,
		"ostate_map": &m.OstateMap, "ostats_map": &m.OstatsMap, "oticket_map": &m.OticketMap,
		"ottl_map":   &m.OttlMap,
		pinRelayRing: &c.Ring, pinRelayCfg: &c.RelayCfg, pinRelayStats: &c.RelayStats,
	}
}

// Pin pins the programs and maps under dir (on bpffs).
func (c *OffloadCache) Pin(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, pinMapsDir), 0o700); err != nil {
		return fmt.Errorf("create pin directory: %w", err)
	}
	for name, m := range c.maps() {
		if err := (*m).Pin(filepath.Join(dir, pinMapsDir, name)); err != nil {
			return fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	for name, p := range map[string]*ebpf.Program{PinXDPProg: c.XDP, PinTCProg: c.TC} {
		if err := p.Pin(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("pin program %s: %w", name, err)
		}
	}
	return nil
}

// LoadPinnedOffload opens a pinned offload deployment. seed and buckets come
// from the deployment's record.
func LoadPinnedOffload(dir string, seed, buckets uint32) (*OffloadCache, error) {
	c := &OffloadCache{Seed: seed, Buckets: buckets}
	var err error
	if c.XDP, err = ebpf.LoadPinnedProgram(filepath.Join(dir, PinXDPProg), nil); err != nil {
		return nil, fmt.Errorf("open pinned offload XDP program: %w", err)
	}
	if c.TC, err = ebpf.LoadPinnedProgram(filepath.Join(dir, PinTCProg), nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("open pinned relay TC program: %w", err)
	}
	for name, dst := range c.maps() {
		if *dst, err = ebpf.LoadPinnedMap(filepath.Join(dir, pinMapsDir, name), nil); err != nil {
			c.Close()
			return nil, fmt.Errorf("open pinned map %s: %w", name, err)
		}
	}
	return c, nil
}

// Stats reads the counters. The device's counter map may be shorter than
// the list (small device maps): counters past its end read as zero.
func (c *OffloadCache) Stats() (Stats, error) {
	n := min(numStats, int(c.Maps.OstatsMap.MaxEntries()))
	out := make(Stats, numStats)
	for i := range n {
		if err := c.Maps.OstatsMap.Lookup(uint32(i), &out[i]); err != nil {
			return nil, fmt.Errorf("read counter %s: %w", StatName(Stat(i)), err)
		}
	}
	return out, nil
}

// Flush makes every item unservable: the epoch moves on (by more than the
// XDP program's own flushes could meet while this read-modify-write runs),
// then the store empties the buckets.
func (c *OffloadCache) Flush() error {
	var st xdpoffOstate
	if err := c.Maps.OstateMap.Lookup(uint32(0), &st); err != nil {
		return fmt.Errorf("read epoch: %w", err)
	}
	st.Epoch += 1 << 32
	if err := c.Maps.OstateMap.Update(uint32(0), &st, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write epoch: %w", err)
	}
	s := &OffloadStore{Maps: &c.Maps, Seed: c.Seed, Buckets: c.Buckets}
	return s.Clear()
}
