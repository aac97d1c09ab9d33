// Package dispatch shares an interface with other XDP programs the way
// libxdp does (xdp-tools' lib/libxdp/protocol.org, dispatcher version 2):
// a dispatcher program on the interface calls up to ten component programs
// in turn, each an freplace extension of one of its slot functions, in
// order of run priority; a component's chain-call actions say which of its
// results go on to the next. The dispatcher and its components are pinned
// under <bpffs>/xdp/dispatch-IFINDEX-PROGID, and every change builds a new
// dispatcher and swaps it in atomically, holding the flock on <bpffs>/xdp
// that libxdp holds. So xdp-loader lists xdpcache beside the other
// programs, and either side can add or remove its own.
//
// This package reads what is on an interface (Inspect), adds a program
// (Join) and removes one (Leave). Offloaded (hardware) programs stay
// outside dispatchers, as in libxdp.
package dispatch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/netdev"
)

// The protocol's constants.
const (
	Magic       = 236 // config.magic of a dispatcher
	Version     = 2   // the dispatcher version this package writes and reads
	MaxPrograms = 10  // slots in a dispatcher
	// emptySlotAction is what an unreplaced slot returns; its bit is in
	// every slot's chain-call mask.
	emptySlotAction = 31
	// DefaultPriority is libxdp's run priority for a program that names none.
	DefaultPriority = 50
	// ProgName is the name libxdp recognises a dispatcher by.
	ProgName = "xdp_dispatcher"
	// fragsFlag is BPF_F_XDP_HAS_FRAGS in config.program_flags.
	fragsFlag = 1 << 5
)

// Actions is a set of XDP actions, bit n for action n (XDP_ABORTED 0,
// XDP_DROP 1, XDP_PASS 2, XDP_TX 3, XDP_REDIRECT 4): a component's
// chain-call actions, after which the next component runs.
type Actions uint32

// ActionPass is XDP_PASS alone: libxdp's default chain-call actions.
const ActionPass Actions = 1 << 2

var actionNames = []string{"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"}

// String lists the actions as xdp-loader does: "XDP_PASS,XDP_DROP".
func (a Actions) String() string {
	var out []string
	for i, n := range actionNames {
		if a&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}

// ParseActions reads a comma-separated list of XDP action names (with or
// without the XDP_ prefix, any case).
func ParseActions(s string) (Actions, error) {
	var a Actions
	for _, f := range strings.Split(s, ",") {
		f = strings.ToUpper(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if !strings.HasPrefix(f, "XDP_") {
			f = "XDP_" + f
		}
		i := indexOf(actionNames, f)
		if i < 0 {
			return 0, fmt.Errorf("unknown XDP action %q (one of %s)", f, strings.Join(actionNames, ", "))
		}
		a |= 1 << i
	}
	return a, nil
}

func indexOf(names []string, n string) int {
	for i, x := range names {
		if x == n {
			return i
		}
	}
	return -1
}

// Component is one program of a dispatcher, in run order.
type Component struct {
	Slot      int     `json:"slot"`
	ProgID    uint32  `json:"prog_id"`
	Name      string  `json:"name"`
	Priority  uint32  `json:"priority"`
	ChainCall Actions `json:"-"`
	Chain     string  `json:"chain_call_actions"` // ChainCall, spelt out
	Frags     bool    `json:"frags,omitempty"`
}

// Dispatcher is a libxdp dispatcher found on an interface.
type Dispatcher struct {
	ProgID     uint32      `json:"prog_id"`
	Version    int         `json:"version"`
	Frags      bool        `json:"frags,omitempty"` // loaded with BPF_F_XDP_HAS_FRAGS
	PinDir     string      `json:"pin_dir"`
	Components []Component `json:"components"`
}

// Has reports whether the program id is one of the components.
func (d *Dispatcher) Has(id uint32) bool {
	for _, c := range d.Components {
		if c.ProgID == id {
			return true
		}
	}
	return false
}

// State is what runs on an interface in the host modes (native or
// generic), as libxdp sees it.
type State struct {
	Mode       mode.Mode   `json:"mode,omitempty"` // native or generic; "" when nothing is attached
	ProgID     uint32      `json:"prog_id,omitempty"`
	ProgName   string      `json:"prog_name,omitempty"`
	Dispatcher *Dispatcher `json:"dispatcher,omitempty"` // nil: no program, or one program alone
	// Why the program is not taken for a dispatcher when its name says it
	// is one (an unknown version, missing pins).
	NotDispatcher string `json:"not_dispatcher,omitempty"`
}

// Lone reports whether one program runs alone (no dispatcher).
func (s *State) Lone() bool { return s.ProgID != 0 && s.Dispatcher == nil }

// Options say where libxdp's state lives.
type Options struct {
	// BPFFS is the bpffs mount libxdp pins under ("" is $LIBXDP_BPFFS, as
	// libxdp reads it, else /sys/fs/bpf); its xdp/ directory holds the
	// dispatchers and the lock.
	BPFFS string
}

// Dir is libxdp's directory of dispatchers on the bpffs, created if need be.
func (o Options) Dir() (string, error) {
	dir, err := o.dir()
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	return dir, nil
}

func (o Options) dir() (string, error) {
	root := o.BPFFS
	if root == "" {
		root = os.Getenv("LIBXDP_BPFFS")
	}
	if root == "" {
		root = "/sys/fs/bpf"
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return "", fmt.Errorf("libxdp's bpffs %s: %w", root, err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return "", fmt.Errorf("%s is not a BPF filesystem (libxdp pins its dispatchers there): mount -t bpf bpf %s", root, root)
	}
	return filepath.Join(root, "xdp"), nil
}

// lock takes libxdp's lock: flock on its directory, which libxdp holds
// while it reads or changes a dispatcher's pins. It waits for the holder.
func lock(dir string) (func(), error) {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open libxdp's lock directory %s: %w", dir, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { unix.Flock(fd, unix.LOCK_UN); unix.Close(fd) }, nil
}

// pinDir is where libxdp pins a dispatcher's components.
func pinDir(dir string, ifindex int, id uint32) string {
	return filepath.Join(dir, fmt.Sprintf("dispatch-%d-%d", ifindex, id))
}

// Inspect reads what runs on ifindex in native or generic mode and, if it
// is a dispatcher, its components (under libxdp's lock).
// It changes nothing (without libxdp's directory there is no dispatcher
// to read, and no lock to take).
func Inspect(ifindex int, o Options) (*State, error) {
	dir, err := o.dir()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err == nil {
		unlock, err := lock(dir)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	cur, err := read(ifindex, dir)
	if err != nil {
		return nil, err
	}
	defer cur.close()
	return cur.state, nil
}

// current is a dispatcher (or lone program) read from an interface, with
// the open programs a rebuild needs. close releases them.
type current struct {
	state *State
	prog  *ebpf.Program   // the attached program (nil: none)
	comps []*ebpf.Program // the dispatcher's components, in slot order
}

func (c *current) close() {
	if c.prog != nil {
		c.prog.Close()
	}
	for _, p := range c.comps {
		p.Close()
	}
}

// read finds the program attached to ifindex in a host mode and reads it as
// a dispatcher if it is one. The caller holds the lock.
func read(ifindex int, dir string) (*current, error) {
	x, err := netdev.QueryXDP(ifindex)
	if err != nil {
		return nil, err
	}
	st := &State{}
	switch {
	case x.DrvProgID != 0:
		st.Mode, st.ProgID = mode.Native, x.DrvProgID
	case x.SkbProgID != 0:
		st.Mode, st.ProgID = mode.Generic, x.SkbProgID
	default:
		return &current{state: st}, nil
	}
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(st.ProgID))
	if err != nil {
		return nil, fmt.Errorf("open the XDP program %d on interface %d: %w", st.ProgID, ifindex, err)
	}
	cur := &current{state: st, prog: p}
	info, err := p.Info()
	if err != nil {
		cur.close()
		return nil, fmt.Errorf("XDP program %d: %w", st.ProgID, err)
	}
	st.ProgName = info.Name
	if info.Name != ProgName {
		return cur, nil
	}
	d, comps, why := readDispatcher(p, info, ifindex, st.ProgID, dir)
	if why != "" {
		st.NotDispatcher = why
		return cur, nil
	}
	st.Dispatcher, cur.comps = d, comps
	return cur, nil
}

// readDispatcher checks a program named xdp_dispatcher against the
// protocol (its one map is the read-only configuration, with the magic
// and version 2) and opens its components from their pins. why says what
// did not match.
func readDispatcher(p *ebpf.Program, info *ebpf.ProgramInfo, ifindex int, id uint32, dir string) (*Dispatcher, []*ebpf.Program, string) {
	ids, _ := info.MapIDs()
	if len(ids) != 1 {
		return nil, nil, fmt.Sprintf("a dispatcher has one map, this program has %d", len(ids))
	}
	cfg, err := readConfig(ids[0])
	if err != nil {
		return nil, nil, err.Error()
	}
	if cfg.Magic != Magic || cfg.DispatcherVersion != Version {
		return nil, nil, fmt.Sprintf("dispatcher version %d (magic %d): only version %d is understood (libxdp older than 1.2 writes version 1; unload its programs and load them again)",
			cfg.DispatcherVersion, cfg.Magic, Version)
	}
	if cfg.NumProgsEnabled > MaxPrograms {
		return nil, nil, fmt.Sprintf("dispatcher config claims %d programs", cfg.NumProgsEnabled)
	}
	d := &Dispatcher{ProgID: id, Version: int(cfg.DispatcherVersion), Frags: cfg.IsXdpFrags != 0, PinDir: pinDir(dir, ifindex, id)}
	var comps []*ebpf.Program
	for i := range int(cfg.NumProgsEnabled) {
		path := filepath.Join(d.PinDir, fmt.Sprintf("prog%d-prog", i))
		cp, err := ebpf.LoadPinnedProgram(path, nil)
		if err != nil {
			for _, c := range comps {
				c.Close()
			}
			return nil, nil, fmt.Sprintf("component %d: %v", i, err)
		}
		comps = append(comps, cp)
		c := Component{Slot: i, Priority: cfg.RunPrios[i], ChainCall: Actions(cfg.ChainCallActions[i]) &^ (1 << emptySlotAction),
			Frags: cfg.ProgramFlags[i]&fragsFlag != 0}
		c.Chain = c.ChainCall.String()
		if ci, err := cp.Info(); err == nil {
			c.Name = ci.Name
			if cid, ok := ci.ID(); ok {
				c.ProgID = uint32(cid)
			}
		}
		d.Components = append(d.Components, c)
	}
	return d, comps, ""
}

// readConfig reads a dispatcher's configuration map by id, checking its
// shape as libxdp does.
func readConfig(id ebpf.MapID) (*dispatcherXdpDispatcherConfig, error) {
	m, err := ebpf.NewMapFromID(id)
	if err != nil {
		return nil, fmt.Errorf("open its config map %d: %w", id, err)
	}
	defer m.Close()
	want := uint32(binarySize())
	if m.KeySize() != 4 || m.MaxEntries() != 1 || m.ValueSize() != want || m.Flags()&unix.BPF_F_RDONLY_PROG == 0 {
		return nil, fmt.Errorf("its map %d is not a dispatcher's config (key %d, value %d of %d, %d entries, flags %#x)",
			id, m.KeySize(), m.ValueSize(), want, m.MaxEntries(), m.Flags())
	}
	var cfg dispatcherXdpDispatcherConfig
	if err := m.Lookup(uint32(0), &cfg); err != nil {
		return nil, fmt.Errorf("read config map %d: %w", id, err)
	}
	return &cfg, nil
}

// binarySize is the size of the configuration in the kernel: 4 bytes, then
// three arrays of MaxPrograms u32.
func binarySize() int { return 4 + 3*4*MaxPrograms }
