package dispatch

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/netdev"
)

// Member is a program joining a dispatcher.
type Member struct {
	Name      string  // its function name: orders programs of equal priority
	Priority  uint32  // lower runs first
	ChainCall Actions // after these actions the next program runs
	// Load loads the program as an extension (BPF_PROG_TYPE_EXT) of the
	// function fn of target, the new dispatcher. It is called once, with
	// libxdp's lock held.
	Load func(target *ebpf.Program, fn string) (*ebpf.Program, error)
}

// Result is the dispatcher after a change (nil Dispatcher: none is left).
type Result struct {
	Mode       mode.Mode
	Dispatcher *Dispatcher
	Slot       int // Join: the member's slot
}

// ErrNotDispatcher is matched by Join's error when one program runs on the
// interface without a dispatcher: joining would replace it.
var ErrNotDispatcher = errors.New("the XDP program on the interface is not a libxdp dispatcher")

// Join adds m to the dispatcher on ifindex, or, when nothing is attached,
// puts a new dispatcher holding m alone there in mode want (native or
// generic). An existing dispatcher keeps its mode: want must be it or "".
func Join(ifindex int, want mode.Mode, m Member, o Options) (*Result, error) {
	if m.Load == nil {
		return nil, errors.New("join a dispatcher: no loader for the program")
	}
	return change(ifindex, o, func(cur *current) (mode.Mode, []entry, error) {
		st := cur.state
		if st.ProgID != 0 && st.Dispatcher == nil {
			why := st.NotDispatcher
			if why == "" {
				why = fmt.Sprintf("%q runs alone", st.ProgName)
			}
			return "", nil, fmt.Errorf("%w (program %d: %s)", ErrNotDispatcher, st.ProgID, why)
		}
		md := st.Mode
		switch {
		case md == "":
			md = want
			if md != mode.Native && md != mode.Generic {
				return "", nil, fmt.Errorf("a dispatcher runs in native or generic mode, not %q", want)
			}
		case want != "" && want != md:
			return "", nil, fmt.Errorf("the dispatcher on the interface runs in %s mode: a program can join it only in that mode (asked for %s)", md, want)
		}
		es := existing(cur)
		if len(es) >= MaxPrograms {
			return "", nil, fmt.Errorf("the dispatcher already runs %d programs, its most", len(es))
		}
		return md, append(es, entry{name: m.Name, prio: m.Priority, chain: m.ChainCall, load: m.Load, added: true, member: true}), nil
	})
}

// Leave removes the component with program id from the dispatcher on
// ifindex. The others keep running, in a new dispatcher; with none left
// the dispatcher is detached. A program that is not there is no error.
func Leave(ifindex int, id uint32, o Options) (*Result, error) {
	return change(ifindex, o, func(cur *current) (mode.Mode, []entry, error) {
		st := cur.state
		if st.Dispatcher == nil || !st.Dispatcher.Has(id) {
			return "", nil, errUnchanged
		}
		var es []entry
		for _, e := range existing(cur) {
			if e.id != id {
				es = append(es, e)
			}
		}
		return st.Mode, es, nil
	})
}

// errUnchanged: nothing to do.
var errUnchanged = errors.New("unchanged")

// entry is one program of the dispatcher being built.
type entry struct {
	name   string
	prio   uint32
	chain  Actions
	frags  bool
	id     uint32        // an existing component's id
	prog   *ebpf.Program // an existing component (nil for the member)
	load   func(*ebpf.Program, string) (*ebpf.Program, error)
	added  bool // loaded for this dispatcher
	member bool // the program joining (its slot is Result.Slot)
}

// existing lists the current dispatcher's components as entries, keeping
// the priority and chain-call actions it was given (its config, not the
// programs' metadata, as libxdp does).
func existing(cur *current) []entry {
	if cur.state.Dispatcher == nil {
		return nil
	}
	var out []entry
	for i, c := range cur.state.Dispatcher.Components {
		out = append(out, entry{name: c.Name, prio: c.Priority, chain: c.ChainCall, frags: c.Frags, id: c.ProgID, prog: cur.comps[i]})
	}
	return out
}

// order sorts entries into run order: priority, then name, then programs
// already in the dispatcher before the new one, then id (libxdp breaks
// ties by name, loaded before not loaded, then size, tag and load time).
func order(es []entry) {
	slices.SortStableFunc(es, func(a, b entry) int {
		if c := cmp.Compare(a.prio, b.prio); c != 0 {
			return c
		}
		if c := cmp.Compare(a.name, b.name); c != 0 {
			return c
		}
		if a.added != b.added {
			if b.added {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.id, b.id)
	})
}

// change rebuilds the dispatcher on ifindex under libxdp's lock: plan says
// which programs the new one holds (in any order) and in which mode. It
// loads a new dispatcher, links every program into its slot (an existing
// component is linked a second time, to the new dispatcher, as libxdp
// does), pins them, swaps the new dispatcher in for the old one atomically
// (the kernel refuses if the attachment changed meanwhile) and unpins the
// old. With no program left it detaches the old dispatcher.
func change(ifindex int, o Options, plan func(*current) (mode.Mode, []entry, error)) (*Result, error) {
	dir, err := o.Dir()
	if err != nil {
		return nil, err
	}
	unlock, err := lock(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cur, err := read(ifindex, dir)
	if err != nil {
		return nil, err
	}
	defer cur.close()
	md, es, err := plan(cur)
	if errors.Is(err, errUnchanged) {
		return &Result{Mode: cur.state.Mode, Dispatcher: cur.state.Dispatcher}, nil
	}
	if err != nil {
		return nil, err
	}
	flags, err := modeFlags(md)
	if err != nil {
		return nil, err
	}
	old := cur.state.Dispatcher
	if len(es) == 0 {
		if err := netdev.ReplaceXDP(ifindex, -1, cur.prog.FD(), flags); err != nil {
			return nil, fmt.Errorf("detach the dispatcher: %w", err)
		}
		return &Result{Mode: md}, unpin(old)
	}
	order(es)
	b, err := build(ifindex, dir, es)
	if err != nil {
		return nil, err
	}
	defer b.close()
	expected := -1
	if cur.prog != nil {
		expected = cur.prog.FD()
	}
	if err := netdev.ReplaceXDP(ifindex, b.prog.FD(), expected, flags); err != nil {
		unpin(b.d)
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("the XDP program on interface %d changed while the dispatcher was rebuilt (try again): %w", ifindex, err)
		}
		return nil, fmt.Errorf("attach the dispatcher in %s mode: %w", md, err)
	}
	res := &Result{Mode: md, Dispatcher: b.d, Slot: -1}
	for i, e := range es {
		if e.member {
			res.Slot = i
		}
	}
	if old != nil {
		if err := unpin(old); err != nil {
			return res, fmt.Errorf("the new dispatcher runs, but the old one's pins stay: %w", err)
		}
	}
	return res, nil
}

func modeFlags(m mode.Mode) (uint32, error) {
	switch m {
	case mode.Native:
		return unix.XDP_FLAGS_DRV_MODE, nil
	case mode.Generic:
		return unix.XDP_FLAGS_SKB_MODE, nil
	}
	return 0, fmt.Errorf("a dispatcher runs in native or generic mode, not %q", m)
}

// built is a new dispatcher with its programs linked and pinned.
type built struct {
	prog  *ebpf.Program
	d     *Dispatcher
	owned []closer // what this process opened (the member's program stays the caller's)
}

type closer interface{ Close() error }

func (b *built) close() {
	for _, c := range b.owned {
		c.Close()
	}
}

// build loads a dispatcher for es (in run order), links each into its slot
// and pins the links and programs as libxdp names them. On error nothing
// it made is left.
func build(ifindex int, dir string, es []entry) (_ *built, err error) {
	spec, err := loadDispatcher()
	if err != nil {
		return nil, err
	}
	cfg := dispatcherXdpDispatcherConfig{Magic: Magic, DispatcherVersion: Version, NumProgsEnabled: uint8(len(es))}
	frags := true
	for i, e := range es {
		cfg.ChainCallActions[i] = uint32(e.chain) | 1<<emptySlotAction
		cfg.RunPrios[i] = e.prio
		if e.frags {
			cfg.ProgramFlags[i] = fragsFlag
		} else {
			frags = false
		}
	}
	if frags {
		cfg.IsXdpFrags = 1
		spec.Programs[ProgName].Flags |= unix.BPF_F_XDP_HAS_FRAGS
	}
	if err := spec.Variables["conf"].Set(cfg); err != nil {
		return nil, fmt.Errorf("dispatcher config: %w", err)
	}
	var objs dispatcherObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("load the dispatcher: %w", err)
	}
	b := &built{prog: objs.XdpDispatcher, owned: []closer{&objs}}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	info, err := b.prog.Info()
	if err != nil {
		return nil, err
	}
	id, _ := info.ID()
	b.d = &Dispatcher{ProgID: uint32(id), Version: Version, Frags: frags, PinDir: pinDir(dir, ifindex, uint32(id))}
	type linked struct {
		l link.Link
		p *ebpf.Program
	}
	var links []linked
	for i, e := range es {
		// One program alone replaces the whole dispatcher function, as
		// libxdp does; it still sits in slot 0.
		fn := fmt.Sprintf("prog%d", i)
		if len(es) == 1 {
			fn = ProgName
		}
		p := e.prog
		if p == nil {
			if p, err = e.load(b.prog, fn); err != nil {
				return nil, err
			}
		}
		l, err := link.AttachFreplace(b.prog, fn, p)
		if err != nil {
			return nil, fmt.Errorf("link %s into the dispatcher's %s: %w", describe(e), fn, err)
		}
		b.owned = append(b.owned, l)
		links = append(links, linked{l, p})
		c := Component{Slot: i, ProgID: e.id, Name: e.name, Priority: e.prio, ChainCall: e.chain, Chain: e.chain.String(), Frags: e.frags}
		if pi, err := p.Info(); err == nil {
			if pid, ok := pi.ID(); ok {
				c.ProgID = uint32(pid)
			}
			c.Name = pi.Name
		}
		b.d.Components = append(b.d.Components, c)
	}
	if err := os.Mkdir(b.d.PinDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", b.d.PinDir, err)
	}
	for i, lp := range links {
		err := lp.l.Pin(filepath.Join(b.d.PinDir, fmt.Sprintf("prog%d-link", i)))
		if err == nil {
			err = pinProgram(lp.p, filepath.Join(b.d.PinDir, fmt.Sprintf("prog%d-prog", i)))
		}
		if err != nil {
			unpin(b.d)
			return nil, fmt.Errorf("pin component %d: %w", i, err)
		}
	}
	return b, nil
}

// pinProgram pins p at path without changing where p itself is pinned (a
// program can be pinned at several paths; ebpf.Program.Pin would move it).
func pinProgram(p *ebpf.Program, path string) error {
	c, err := p.Clone()
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Pin(path)
}

func describe(e entry) string {
	if e.added {
		return "the new program " + e.name
	}
	return fmt.Sprintf("component %s (id %d)", e.name, e.id)
}

// unpin removes a dispatcher's pins (links and programs) and its directory.
func unpin(d *Dispatcher) error {
	if d == nil {
		return nil
	}
	var errs []error
	for i := range d.Components {
		for _, suffix := range []string{"link", "prog"} {
			p := filepath.Join(d.PinDir, fmt.Sprintf("prog%d-%s", i, suffix))
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := os.Remove(d.PinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
