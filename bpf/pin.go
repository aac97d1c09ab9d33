package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// Pin names under a deployment's pin directory.
const (
	PinXDPProg = "prog_xdp"
	PinTCProg  = "prog_tc"
	pinMapsDir = "maps"
)

func (m *Maps) all() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{
		"ack_map": m.AckMap, "allow4_map": m.Allow4Map, "allow6_map": m.Allow6Map, "cache_map": m.CacheMap,
		"config_map": m.ConfigMap, "expiry_map": m.ExpiryMap, "flow_map": m.FlowMap,
		"global_map": m.GlobalMap, "local_map": m.LocalMap, "reply_map": m.ReplyMap,
		"scratch_map": m.ScratchMap, "stats_map": m.StatsMap, "stream_map": m.StreamMap, "ticket_map": m.TicketMap,
	}
}

// Pin pins the programs and every map under dir (which must be on bpffs),
// so that status and undeploy find them after this process exits.
func (c *Cache) Pin(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, pinMapsDir), 0o700); err != nil {
		return fmt.Errorf("create pin directory: %w", err)
	}
	for name, m := range c.Maps.all() {
		if err := m.Pin(filepath.Join(dir, pinMapsDir, name)); err != nil {
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

// LoadPinned opens a pinned deployment's programs and maps.
func LoadPinned(dir string) (*Cache, error) {
	c := &Cache{}
	var err error
	if c.XDP, err = ebpf.LoadPinnedProgram(filepath.Join(dir, PinXDPProg), nil); err != nil {
		return nil, fmt.Errorf("open pinned XDP program: %w", err)
	}
	if c.TC, err = ebpf.LoadPinnedProgram(filepath.Join(dir, PinTCProg), nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("open pinned TC program: %w", err)
	}
	m := &c.Maps
	for name, dst := range map[string]**ebpf.Map{
		"ack_map": &m.AckMap, "allow4_map": &m.Allow4Map, "allow6_map": &m.Allow6Map, "cache_map": &m.CacheMap,
		"config_map": &m.ConfigMap, "expiry_map": &m.ExpiryMap, "flow_map": &m.FlowMap,
		"global_map": &m.GlobalMap, "local_map": &m.LocalMap, "reply_map": &m.ReplyMap,
		"scratch_map": &m.ScratchMap, "stats_map": &m.StatsMap, "stream_map": &m.StreamMap, "ticket_map": &m.TicketMap,
	} {
		if *dst, err = ebpf.LoadPinnedMap(filepath.Join(dir, pinMapsDir, name), nil); err != nil {
			c.Close()
			return nil, fmt.Errorf("open pinned map %s: %w", name, err)
		}
	}
	return c, nil
}

// Unpin removes the pins Pin created (the objects live on while attached or open).
func Unpin(dir string) error {
	var errs []error
	for _, name := range []string{PinXDPProg, PinTCProg} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, pinMapsDir)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
