package offload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/bpf"
)

const (
	pinMeta    = "meta"
	metaSize   = 8192
	bpffsMagic = 0xcafe4a11
)

// writeDeployment stores d as JSON in a one-element array map pinned as
// <pinDir>/meta.
func writeDeployment(pinRoot string, d *Deployment) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode deployment: %w", err)
	}
	if len(b) > metaSize {
		return fmt.Errorf("deployment record is %d bytes, more than %d", len(b), metaSize)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "xdpcache_meta", Type: ebpf.Array, KeySize: 4, ValueSize: metaSize, MaxEntries: 1})
	if err != nil {
		return fmt.Errorf("create deployment record: %w", err)
	}
	defer m.Close()
	val := make([]byte, metaSize)
	copy(val, b)
	if err := m.Put(uint32(0), val); err != nil {
		return fmt.Errorf("write deployment record: %w", err)
	}
	if err := m.Pin(filepath.Join(pinRoot, d.Iface, pinMeta)); err != nil {
		return fmt.Errorf("pin deployment record: %w", err)
	}
	return nil
}

// ReadDeployment returns the record of the deployment on iface.
func ReadDeployment(pinRoot, iface string) (*Deployment, error) {
	if pinRoot == "" {
		pinRoot = DefaultPinRoot
	}
	pinRoot = resolvePinRoot(pinRoot)
	m, err := ebpf.LoadPinnedMap(filepath.Join(pinRoot, iface, pinMeta), nil)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("xdpcache is not deployed on %s: %w", iface, os.ErrNotExist)
		}
		return nil, fmt.Errorf("open deployment record of %s: %w", iface, err)
	}
	defer m.Close()
	val := make([]byte, metaSize)
	if err := m.Lookup(uint32(0), &val); err != nil {
		return nil, fmt.Errorf("read deployment record of %s: %w", iface, err)
	}
	var d Deployment
	if err := json.Unmarshal(bytes.TrimRight(val, "\x00"), &d); err != nil {
		return nil, fmt.Errorf("decode deployment record of %s: %w", iface, err)
	}
	return &d, nil
}

// Deployed lists the interfaces that have a deployment record.
func Deployed(pinRoot string) ([]string, error) {
	if pinRoot == "" {
		pinRoot = DefaultPinRoot
	}
	pinRoot = resolvePinRoot(pinRoot)
	ents, err := os.ReadDir(pinRoot)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", pinRoot, err)
	}
	var out []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(pinRoot, e.Name(), pinMeta)); err == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Status is a deployment with its live counters.
type Status struct {
	Deployment
	Attached  bool              `json:"attached"` // our XDP program is still on the interface
	Stats     bpf.Stats         `json:"-"`
	Counters  map[string]uint64 `json:"counters"`
	HitRatio  float64           `json:"hit_ratio"`
	Occupancy float64           `json:"occupancy"` // share of buckets holding a servable entry (sampled)
}

// ReadStatus reads a deployment's record and counters.
func ReadStatus(pinRoot, iface string) (*Status, error) {
	d, err := ReadDeployment(pinRoot, iface)
	if err != nil {
		return nil, err
	}
	if pinRoot == "" {
		pinRoot = DefaultPinRoot
	}
	dir := filepath.Join(resolvePinRoot(pinRoot), iface) // not d.PinDir: it may have been recorded from another mount namespace
	var st bpf.Stats
	var occ float64
	if d.Mode == ModeOffload {
		c, err := bpf.LoadPinnedOffload(dir, uint32(d.Settings.Seed), d.Settings.Entries)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		if st, err = c.Stats(); err != nil {
			return nil, err
		}
	} else {
		c, err := bpf.LoadPinned(dir)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		if st, err = c.Stats(); err != nil {
			return nil, err
		}
		if occ, err = c.Occupancy(4096); err != nil {
			return nil, err
		}
	}
	s := &Status{Deployment: *d, Attached: stillAttached(d), Stats: st, Counters: st.Named(), Occupancy: occ}
	if g := st.Get(bpf.StatGetReqs); g > 0 {
		s.HitRatio = float64(st.Get(bpf.StatHits)) / float64(g)
	}
	return s, nil
}

// resolvePinRoot finds the bpffs a pin root lives on. `ip netns exec` runs
// commands in a private mount namespace with a fresh /sys and no bpffs: a
// bpffs mounted there would vanish with the command, and the links pinned in
// it would detach. The host's bpffs is still reachable through the root of a
// process outside that mount namespace.
func resolvePinRoot(root string) string {
	dir := filepath.Dir(root)
	if isBPFFS(dir) {
		return root
	}
	// The parent (the shell that ran ip netns exec) normally still sees the
	// host's mounts; PID 1 always does, where we may look at it.
	for _, pid := range []int{os.Getppid(), 1} {
		via := fmt.Sprintf("/proc/%d/root", pid)
		if isBPFFS(filepath.Join(via, dir)) {
			return filepath.Join(via, root)
		}
	}
	return root
}

func isBPFFS(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && uint32(st.Type) == bpffsMagic
}

// ensureBPFFS mounts bpffs at dir (normally /sys/fs/bpf) if it is not there.
func ensureBPFFS(dir string) error {
	if isBPFFS(dir) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("%s is not a BPF filesystem and mounting one failed (mount -t bpf bpf %s): %w", dir, dir, err)
	}
	return nil
}

// connectedPrefixes are the subnets of the interface's own addresses: the
// default allow-list (docs/security.md).
func connectedPrefixes(lk netlink.Link) ([]netip.Prefix, error) {
	addrs, err := netlink.AddrList(lk, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", lk.Attrs().Name, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.IsLinkLocalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones).Masked())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no addresses, so there is no default allow-list: give --allow CIDR", lk.Attrs().Name)
	}
	return out, nil
}

// addLocalAddrs records every address of this network namespace.
func addLocalAddrs(c *bpf.Cache) error {
	return forLocalAddrs(c.AddLocal)
}
