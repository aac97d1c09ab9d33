// Package record keeps what xdpcache deployed where: a deployment's record
// (JSON in a pinned map next to the programs' and maps' pins, since bpffs
// holds no plain files), the pin root on the host's bpffs and how to find it
// from inside other mount namespaces, and the one way to open a pinned
// deployment's programs and maps.
package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/offload/mode"
)

// XDPAttach is how the XDP program is attached.
type XDPAttach string

// XDP attachments.
const (
	XDPLink    XDPAttach = "link"    // a pinned bpf_link (kernel 5.9+)
	XDPNetlink XDPAttach = "netlink" // IFLA_XDP: stays until removed
	// XDPDispatcher: a component of a libxdp multi-program dispatcher
	// (offload/dispatch), an freplace link pinned with the dispatcher.
	XDPDispatcher XDPAttach = "dispatcher"
)

// DispatcherSlot is how a deployment runs in a libxdp dispatcher.
type DispatcherSlot struct {
	Priority  uint32 `json:"priority"`
	ChainCall string `json:"chain_call_actions"` // e.g. "XDP_PASS"
}

// TCAttach is how the TC egress program is attached.
type TCAttach string

// TC attachments.
const (
	TCX      TCAttach = "tcx"    // a pinned TCX link (kernel 6.6+)
	TCClsact TCAttach = "clsact" // a cls_bpf filter on a clsact qdisc
)

// Deployment describes what is attached to one interface.
type Deployment struct {
	Iface      string          `json:"iface"`
	Ifindex    int             `json:"ifindex"`
	Mode       mode.Mode       `json:"mode"`
	XDPAttach  XDPAttach       `json:"xdp_attach"`           // link, netlink or dispatcher
	Dispatcher *DispatcherSlot `json:"dispatcher,omitempty"` // XDPAttach dispatcher
	TCAttach   TCAttach        `json:"tc_attach"`            // tcx or clsact
	XDPProgID  uint32          `json:"xdp_prog_id"`
	TCProgID   uint32          `json:"tc_prog_id"`
	ProgTags   string          `json:"prog_tags"` // this build's program tags (bpf.ProgramTags)
	PinDir     string          `json:"pin_dir"`
	DeployedAt time.Time       `json:"deployed_at"`
	Settings   bpf.Settings    `json:"settings"`
	Allow      []netip.Prefix  `json:"allow"`
	Attempts   []Attempt       `json:"attempts"`       // each mode tried, in order, with the reason it failed
	Plan       []string        `json:"plan,omitempty"` // --dry-run: what deploy would do
	Warnings   []string        `json:"warnings,omitempty"`
	// RestoreOffloads: offload features that were on before the deployment
	// and that attaching XDP turns off for good (netdev.XDPDisabledOffloads);
	// undeploy turns them back on.
	RestoreOffloads []string `json:"restore_offloads,omitempty"`
	// Members are the deployment's other interfaces, on the same maps:
	// further listed ones (RoleServe) and those only watched for writes
	// (RoleWatch: lo, any other interface writes may reach memcached
	// through). Empty for a deployment on one interface with --listed-only.
	Members []Member `json:"members,omitempty"`
	// ListedOnly: deployed with --listed-only (writes reach memcached only
	// through the listed interfaces: none is watched).
	ListedOnly bool `json:"listed_only,omitempty"`
	// Coverage says, for every path a write can take to memcached, whether
	// the deployment sees it (deploy --dry-run and the record alike).
	Coverage []Path `json:"coverage,omitempty"`
	// MemberOf is set in a member interface's own record only: the first
	// interface of the deployment it belongs to, whose record has the rest.
	MemberOf string `json:"member_of,omitempty"`
}

// Role is what a deployment does on an interface.
type Role string

// Roles.
const (
	RoleServe Role = "serve" // answers GETs, fills, invalidates (a listed interface)
	RoleWatch Role = "watch" // invalidates on writes and repeats them on acknowledgement; never answers
)

// Member is one more interface of a deployment.
type Member struct {
	Iface     string    `json:"iface"`
	Ifindex   int       `json:"ifindex"`
	Role      Role      `json:"role"`
	Mode      mode.Mode `json:"mode"`
	XDPAttach XDPAttach `json:"xdp_attach"`
	TCAttach  TCAttach  `json:"tc_attach"`
	XDPProgID uint32    `json:"xdp_prog_id"`
	TCProgID  uint32    `json:"tc_prog_id"`
	PinDir    string    `json:"pin_dir"` // its links' pins
}

// Path is one way writes can reach memcached: an interface, and whether
// (and how) the deployment sees the writes arriving on it.
type Path struct {
	Iface   string `json:"iface"`
	Covered bool   `json:"covered"`
	Role    Role   `json:"role,omitempty"`
	Why     string `json:"why"`
}

// Ifaces lists every interface of d: its first, then its members.
func (d *Deployment) Ifaces() []string {
	out := []string{d.Iface}
	for _, m := range d.Members {
		out = append(out, m.Iface)
	}
	return out
}

// MemberDir is where the links of member iface of the deployment whose
// first interface is first are pinned.
func MemberDir(root, first, iface string) string {
	return filepath.Join(root, first, "members", iface)
}

// Attempt is one step of the mode fallback.
type Attempt struct {
	Mode mode.Mode `json:"mode"`
	OK   bool      `json:"ok"`
	Why  string    `json:"why"`
}

// Pin names in a deployment's directory besides the programs' and maps'
// (bpf.Pin): the record and the attachments' links.
const (
	PinMeta    = "meta"
	PinXDPLink = "link_xdp"
	PinTCLink  = "link_tc"
)

const (
	metaSize = 8192    // a record's map value, at least
	metaMax  = 1 << 20 // at most
)

// ErrNotDeployed is matched (errors.Is) by the error of an interface
// without a deployment record; so is os.ErrNotExist.
var ErrNotDeployed = errors.New("not deployed")

// NotDeployedError is the one message for an interface without a deployment.
type NotDeployedError struct{ Iface string }

func (e *NotDeployedError) Error() string {
	return fmt.Sprintf("xdpcache is not deployed on %s", e.Iface)
}

// Is makes errors.Is hold for ErrNotDeployed and os.ErrNotExist.
func (e *NotDeployedError) Is(target error) bool {
	return target == ErrNotDeployed || target == os.ErrNotExist
}

// Write stores d as JSON in a one-element array map pinned as
// <root>/<iface>/meta, replacing an older record.
func Write(root string, d *Deployment) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode deployment: %w", err)
	}
	size := metaSize // grown for a deployment on many interfaces; Read takes any size
	for size < len(b) {
		size *= 2
	}
	if size > metaMax {
		return fmt.Errorf("deployment record is %d bytes, more than %d", len(b), metaMax)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "xdpcache_meta", Type: ebpf.Array, KeySize: 4, ValueSize: uint32(size), MaxEntries: 1})
	if err != nil {
		return fmt.Errorf("create deployment record: %w", err)
	}
	defer m.Close()
	val := make([]byte, size)
	copy(val, b)
	if err := m.Put(uint32(0), val); err != nil {
		return fmt.Errorf("write deployment record: %w", err)
	}
	path := filepath.Join(root, d.Iface, PinMeta)
	os.Remove(path)
	if err := m.Pin(path); err != nil {
		return fmt.Errorf("pin deployment record: %w", err)
	}
	return nil
}

// Read returns the record of the deployment on iface under root (a root
// Resolve found); an interface without one is a *NotDeployedError.
func Read(root, iface string) (*Deployment, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(root, iface, PinMeta), nil)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &NotDeployedError{Iface: iface}
		}
		return nil, fmt.Errorf("open deployment record of %s: %w", iface, err)
	}
	defer m.Close()
	val := make([]byte, m.ValueSize())
	if err := m.Lookup(uint32(0), &val); err != nil {
		return nil, fmt.Errorf("read deployment record of %s: %w", iface, err)
	}
	var d Deployment
	if err := json.Unmarshal(bytes.TrimRight(val, "\x00"), &d); err != nil {
		return nil, fmt.Errorf("decode deployment record of %s: %w", iface, err)
	}
	return &d, nil
}

// ReadDeployment is Read, following a member interface's record to the
// record of its deployment.
func ReadDeployment(root, iface string) (*Deployment, error) {
	d, err := Read(root, iface)
	if err != nil || d.MemberOf == "" {
		return d, err
	}
	return Read(root, d.MemberOf)
}

// Deployed lists the interfaces that have a deployment record under root
// (a root Resolve found), sorted; none is an empty list. A deployment on
// several interfaces is listed by its first; its members are not.
func Deployed(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", root, err)
	}
	out := []string{}
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(root, e.Name(), PinMeta)); err == nil {
			if d, err := Read(root, e.Name()); err == nil && d.MemberOf != "" {
				continue
			}
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Dir is the pin directory of iface under root.
func Dir(root, iface string) string { return filepath.Join(root, iface) }

// Open opens the pinned programs and maps of d's deployment under root
// (not d.PinDir: that may have been recorded from another mount
// namespace), in the flavor its mode uses.
func Open(root string, d *Deployment) (bpf.Flavor, error) {
	dir := Dir(root, d.Iface)
	if d.Mode == mode.Offload {
		return bpf.LoadPinnedOffload(dir, uint32(d.Settings.Seed), d.Settings.Entries)
	}
	return bpf.LoadPinned(dir)
}
