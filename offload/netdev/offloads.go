package netdev

import (
	"fmt"
	"maps"
	"slices"

	"github.com/safchain/ethtool"
)

// XDPDisabledOffloads are the offload features (ethtool names) the kernel
// turns off for good when XDP is attached and does not turn back on when it
// is removed: generic XDP calls dev_disable_lro and dev_disable_gro_hw, and
// some drivers (vmxnet3) drop LRO for native XDP.
var XDPDisabledOffloads = []string{"rx-lro", "rx-gro-hw"}

// featureStates reads the interface's offload features with whether each
// can be changed.
func featureStates(iface string) (map[string]ethtool.FeatureState, *ethtool.Ethtool, error) {
	et, err := ethtool.NewEthtool()
	if err != nil {
		return nil, nil, fmt.Errorf("ethtool: %w", err)
	}
	fs, err := et.FeaturesWithState(iface)
	if err != nil {
		et.Close()
		return nil, nil, fmt.Errorf("offload features of %s: %w", iface, err)
	}
	return fs, et, nil
}

// OffloadsOn returns those of names that are on and could be turned off
// (a fixed feature is never changed, so there is nothing to restore).
func OffloadsOn(iface string, names []string) ([]string, error) {
	fs, et, err := featureStates(iface)
	if err != nil {
		return nil, err
	}
	defer et.Close()
	var on []string
	for _, n := range names {
		if st, ok := fs[n]; ok && st.Active && st.Available {
			on = append(on, n)
		}
	}
	return on, nil
}

// TurnOn turns the named offload features back on where they are off, and
// returns those it turned on.
func TurnOn(iface string, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	fs, et, err := featureStates(iface)
	if err != nil {
		return nil, err
	}
	defer et.Close()
	change := map[string]bool{}
	for _, n := range names {
		if st, ok := fs[n]; ok && !st.Active && st.Available {
			change[n] = true
		}
	}
	if len(change) == 0 {
		return nil, nil
	}
	if err := et.Change(iface, change); err != nil {
		return nil, fmt.Errorf("turn %v back on on %s: %w", slices.Sorted(maps.Keys(change)), iface, err)
	}
	var done []string
	for _, n := range names {
		if change[n] {
			done = append(done, n)
		}
	}
	return done, nil
}
