package bpf

import (
	"bytes"
	"fmt"
)

// KeyPlace is where a key of one memcached instance lives in the host
// flavor's cache: its hash, its set and the ways of the set holding an
// item of the key that a GET could be answered from now.
type KeyPlace struct {
	Hash uint64
	Set  uint32
	Ways []int // 0, 1 or both (two fills of one key racing); empty: not cached
}

// FindKey reads key's set for memcached instance inst (Settings.InstanceID)
// under the deployment's seed and reports which ways hold it, servable
// (valid, not being filled, the key's bytes, its instance, the instance's
// current epoch, not expired), as sc_serve_ascii would find it.
func (c *Cache) FindKey(key []byte, inst uint32) (KeyPlace, error) {
	s, seed, err := c.Config()
	if err != nil {
		return KeyPlace{}, err
	}
	var g xdpGlobalState
	if err := c.Maps.GlobalMap.Lookup(uint32(0), &g); err != nil {
		return KeyPlace{}, fmt.Errorf("read global state: %w", err)
	}
	now, err := clockMonotonic()
	if err != nil {
		return KeyPlace{}, err
	}
	h := KeyHash(key, InstanceSeed(seed, inst))
	p := KeyPlace{Hash: h, Set: setOfHash(h, s.Entries)}
	var it xdpItem
	for w, idx := range SetWays(p.Set) {
		if err := c.Maps.CacheMap.Lookup(idx, &it); err != nil {
			return KeyPlace{}, fmt.Errorf("read set %d way %d: %w", p.Set, w, err)
		}
		if it.Valid != 0 && it.Busy == 0 && it.Hash == h && int(it.KeyLen) == len(key) && len(key) <= len(it.B.Key) &&
			bytes.Equal(it.B.Key[:len(key)], key) && it.Inst == inst && it.Epoch == instEpochOf(&g, inst) &&
			it.ExpiresNs > uint64(now) {
			p.Ways = append(p.Ways, w)
		}
	}
	return p, nil
}
