package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

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
