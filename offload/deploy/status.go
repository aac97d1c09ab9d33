package deploy

import (
	"fmt"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/offload/dispatch"
	"github.com/xdpcache/xdpcache/offload/record"
)

// Status is a deployment with its live counters.
type Status struct {
	record.Deployment
	Attached bool `json:"attached"` // our XDP program is still on the interface (on every interface of the deployment)
	// LibXDP: the libxdp dispatcher the XDP program runs in (nil: none).
	LibXDP    *dispatch.Dispatcher `json:"libxdp_dispatcher,omitempty"`
	Stats     bpf.Stats            `json:"-"`
	Counters  map[string]uint64    `json:"counters"`
	HitRatio  float64              `json:"hit_ratio"`
	Occupancy float64              `json:"occupancy"` // share of cache entries holding a servable item (sampled)
	// Shadow mode (host flavor): what the cache would have answered, and
	// the last keys memcached answered differently, newest first.
	Shadow           bpf.ShadowSummary    `json:"shadow"`
	ShadowMismatches []bpf.ShadowMismatch `json:"shadow_mismatches,omitempty"`
}

// occupancySamples is how many cache entries Status reads to estimate occupancy.
const occupancySamples = 4096

// List lists the interfaces with a deployment under pinRoot ("" is
// record.DefaultRoot); an error when the pins' bpffs cannot be found says why.
func List(pinRoot string) ([]string, error) {
	root, err := record.Resolve(pinRoot)
	if err != nil {
		return nil, err
	}
	return record.Deployed(root)
}

// ReadStatus reads a deployment's record and counters; iface may be any
// of its interfaces.
func ReadStatus(pinRoot, iface string) (*Status, error) {
	d, f, err := openDeployment(pinRoot, iface, "status of")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stats()
	if err != nil {
		return nil, err
	}
	var occ float64
	if c, ok := f.(interface{ Occupancy(int) (float64, error) }); ok { // the host flavor's map can be sampled
		if occ, err = c.Occupancy(occupancySamples); err != nil {
			return nil, err
		}
	}
	s := &Status{Deployment: *d, Attached: stillAttached(d) && membersAttached(d), LibXDP: DispatcherOf(d), Stats: st, Counters: st.Named(), Occupancy: occ, Shadow: st.Shadow()}
	if c, ok := f.(*bpf.Cache); ok {
		if s.Settings.Seed == 0 {
			// picked at random when deployed: the mismatches' key hashes need it
			if _, s.Settings.Seed, err = c.Config(); err != nil {
				return nil, err
			}
		}
		if s.Shadow.Mismatches > 0 {
			if s.ShadowMismatches, err = c.ShadowMismatches(); err != nil {
				return nil, err
			}
		}
	}
	if g := st.Get(bpf.StatGetReqs); g > 0 {
		s.HitRatio = float64(st.Get(bpf.StatHits)) / float64(g)
	}
	return s, nil
}

// Flush empties the cache of the deployment on iface (as flush_all would).
func Flush(pinRoot, iface string) error {
	_, f, err := openDeployment(pinRoot, iface, "flush")
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Flush()
}

// openDeployment reads the record of the deployment on iface (any of its
// interfaces) and opens its pinned programs and maps; what names the
// operation in an error about the pin root.
func openDeployment(pinRoot, iface, what string) (*record.Deployment, bpf.Flavor, error) {
	root, err := record.Resolve(pinRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", what, iface, err)
	}
	d, err := record.ReadDeployment(root, iface)
	if err != nil {
		return nil, nil, err
	}
	f, err := record.Open(root, d)
	if err != nil {
		return nil, nil, err
	}
	return d, f, nil
}
