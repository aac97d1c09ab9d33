package deploy

import (
	"fmt"
	"net/netip"

	"github.com/xdpcache/xdpcache/bpf"
)

// KeyAt is where a key lives in one memcached instance of a deployment.
type KeyAt struct {
	Where string // the instance: "port N", or its listener's address and port
	bpf.KeyPlace
	Read bool // the host flavor's cache was read: Set and Ways are known
}

// FindKey reports, for every memcached instance of the deployment on
// iface, key's hash and, in the host flavor, its set and the ways holding
// it (entries belong to one instance, whose seed the hash takes).
func FindKey(pinRoot, iface, key string) ([]KeyAt, error) {
	d, f, err := openDeployment(pinRoot, iface, "find key on")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := d.Settings
	type inst struct {
		where string
		id    uint32
	}
	var insts []inst
	if len(s.Instances) == 0 {
		for _, p := range s.Ports {
			insts = append(insts, inst{fmt.Sprintf("port %d", p), uint32(p)})
		}
	} else {
		for _, l := range s.Instances {
			insts = append(insts, inst{netip.AddrPortFrom(l.Addr, l.Port).String(), s.InstanceID(l.Addr, l.Port)})
		}
	}
	c, host := f.(*bpf.Cache)
	var out []KeyAt
	for _, i := range insts {
		at := KeyAt{Where: i.where}
		if host {
			if at.KeyPlace, err = c.FindKey([]byte(key), i.id); err != nil {
				return nil, fmt.Errorf("find key %q at %s: %w", key, i.where, err)
			}
			at.Read = true
		} else {
			at.Hash = bpf.KeyHash([]byte(key), bpf.InstanceSeed(s.Seed, i.id))
		}
		out = append(out, at)
	}
	return out, nil
}
