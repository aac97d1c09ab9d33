package deploy

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/offload/dispatch"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/record"
)

// Share says how deploy shares the interface with other XDP programs
// through libxdp's multi-program dispatcher (docs/coexistence.md). A
// dispatcher already on the interface is always joined.
type Share struct {
	// Dispatcher: run in a dispatcher even with no other program (one is
	// created), so that xdp-loader can add programs beside xdpcache later.
	Dispatcher bool
	Priority   uint32           // run priority; 0 is DefaultPriority
	ChainCall  dispatch.Actions // after these the next program runs; 0 is XDP_PASS
	// Adopt is the object file the program running alone on the interface
	// was loaded from: it is loaded again as a component of a new
	// dispatcher, keeping its maps, with xdpcache beside it.
	Adopt string
}

// DefaultPriority runs xdpcache after programs of libxdp's default
// priority (50), such as filters, which should see a packet first.
const DefaultPriority = 60

func (s Share) member() record.DispatcherSlot {
	prio, chain := s.Priority, s.ChainCall
	if prio == 0 {
		prio = DefaultPriority
	}
	if chain == 0 {
		chain = dispatch.ActionPass
	}
	return record.DispatcherSlot{Priority: prio, ChainCall: chain.String()}
}

// sameShare: prev shares the interface as o asks (in a dispatcher at the
// same priority and chain-call actions, or alone with no dispatcher to join).
func sameShare(prev *record.Deployment, o *Options, joins bool) bool {
	if prev.XDPAttach == record.XDPDispatcher {
		return prev.Dispatcher != nil && *prev.Dispatcher == o.Share.member()
	}
	return !joins
}

// joinPlan is deploy's decision to join a dispatcher.
type joinPlan struct {
	mode   mode.Mode
	member record.DispatcherSlot
	chain  dispatch.Actions
	adopt  string // the lone program's object (dispatch.Adopt)
	do     string
}

// planJoin decides whether deploying joins a dispatcher: one runs on the
// interface with programs besides prev's, or Share.Dispatcher asks for
// one. nil: attach as usual (alone). modes are the host modes the probe
// allows, in order of preference.
func planJoin(o *Options, ifindex int, prev *record.Deployment, modes []mode.Mode) (*joinPlan, error) {
	if o.Mode == mode.Offload {
		return nil, nil // offloaded programs stay outside dispatchers (libxdp's rule)
	}
	st, err := dispatch.Inspect(ifindex, dispatch.Options{})
	if err != nil {
		if o.Share.Dispatcher {
			return nil, fmt.Errorf("read libxdp's state: %w", err)
		}
		o.logf("cannot tell whether a libxdp dispatcher runs on %s (%v): deploying as a program of its own", o.Iface, err)
		return nil, nil
	}
	ours := uint32(0)
	if prev != nil && prev.XDPAttach == record.XDPDispatcher {
		ours = prev.XDPProgID
	}
	m := o.Share.member()
	chain, _ := dispatch.ParseActions(m.ChainCall)
	jp := &joinPlan{member: m, chain: chain}
	switch d := st.Dispatcher; {
	case d != nil && slices.ContainsFunc(d.Components, func(c dispatch.Component) bool { return c.ProgID != ours }):
		jp.mode = st.Mode
		var names []string
		for _, c := range d.Components {
			if c.ProgID != ours {
				names = append(names, fmt.Sprintf("%s (priority %d)", c.Name, c.Priority))
			}
		}
		jp.do = fmt.Sprintf("join the libxdp dispatcher on %s (program %d, %s mode, running %v) at priority %d, going on after %s",
			o.Iface, d.ProgID, st.Mode, names, m.Priority, m.ChainCall)
	case st.Lone() && (prev == nil || prev.XDPProgID != st.ProgID) && o.Share.Adopt != "":
		jp.mode, jp.adopt = st.Mode, o.Share.Adopt
		jp.do = fmt.Sprintf("move %q (program %d, running alone in %s mode) into a new libxdp dispatcher: load it again from %s with its maps, and xdpcache beside it at priority %d",
			st.ProgName, st.ProgID, st.Mode, o.Share.Adopt, m.Priority)
	case o.Share.Adopt != "":
		return nil, fmt.Errorf("--adopt %s: no program runs alone on %s to move into a dispatcher", o.Share.Adopt, o.Iface)
	case !o.Share.Dispatcher:
		return nil, nil
	case st.Lone() && (prev == nil || prev.XDPProgID != st.ProgID):
		return nil, &LoneProgramError{Iface: o.Iface, ProgID: st.ProgID, Name: st.ProgName}
	default:
		for _, md := range modes {
			if md == mode.Native || md == mode.Generic {
				jp.mode = md
				break
			}
		}
		if jp.mode == "" {
			return nil, fmt.Errorf("a dispatcher runs in native or generic mode, and the probe allows neither on %s", o.Iface)
		}
		jp.do = fmt.Sprintf("put a libxdp dispatcher on %s in %s mode holding xdpcache at priority %d, going on after %s",
			o.Iface, jp.mode, m.Priority, m.ChainCall)
	}
	if !o.Mode.IsAuto() && o.Mode != jp.mode {
		return nil, fmt.Errorf("the libxdp dispatcher on %s runs in %s mode: xdpcache can share the interface only in that mode (asked for %s)", o.Iface, jp.mode, o.Mode)
	}
	if !slices.Contains(modes, jp.mode) {
		return nil, fmt.Errorf("the libxdp dispatcher on %s runs in %s mode, which the probe rules out for the cache (xdpcache probe --iface %s says why)", o.Iface, jp.mode, o.Iface)
	}
	if err := dispatch.Supported(); err != nil {
		return nil, fmt.Errorf("cannot join the libxdp dispatcher on %s: %w", o.Iface, err)
	}
	return jp, nil
}

// LoneProgramError: another program runs alone on the interface and a
// dispatcher was asked for. The kernel cannot turn a loaded XDP program
// into a dispatcher's component: it must be loaded again from its object.
type LoneProgramError struct {
	Iface  string
	ProgID uint32
	Name   string
}

func (e *LoneProgramError) Error() string {
	return fmt.Sprintf("%s runs the XDP program %q (id %d) alone, outside a dispatcher; the kernel cannot turn a loaded program into a dispatcher's component, "+
		"so it must be loaded again from its object file: --adopt ITS_OBJECT.o does that (keeping its maps), or load it through libxdp "+
		"(xdp-loader unload %s --all; xdp-loader load %s ITS_OBJECT.o) and deploy again. Or replace it: --force", e.Iface, e.Name, e.ProgID, e.Iface, e.Iface)
}

// join is the attach step of a deployment that joins (or creates) a
// dispatcher: the flavor is loaded as an extension of the new dispatcher's
// slot, inside dispatch.Join.
func (x *execution) join(jp *joinPlan) error {
	o := x.p.o
	member := dispatch.Member{Name: "xdpcache_xdp", Priority: jp.member.Priority, ChainCall: jp.chain,
		Load: func(target *ebpf.Program, fn string) (*ebpf.Program, error) {
			x.ext = &bpf.Extension{Target: target, Function: fn}
			if err := x.loadFlavor(false); err != nil {
				return nil, err
			}
			xdp, _ := x.flavor.Programs()
			return xdp, nil
		}}
	var res *dispatch.Result
	var err error
	if jp.adopt != "" {
		res, err = dispatch.Adopt(x.ifindex, jp.adopt, member, dispatch.Options{})
	} else {
		res, err = dispatch.Join(x.ifindex, jp.mode, member, dispatch.Options{})
	}
	if err != nil {
		var lone *LoneProgramError
		if errors.As(err, &lone) || errors.Is(err, dispatch.ErrNotDispatcher) {
			return err
		}
		return fmt.Errorf("join the libxdp dispatcher on %s: %w", o.Iface, err)
	}
	xdp, _ := x.flavor.Programs()
	id := progID(xdp)
	x.att.leave = func() { dispatch.Leave(x.ifindex, id, dispatch.Options{}) }
	x.mode, x.xdpHow, x.member = res.Mode, record.XDPDispatcher, &jp.member
	x.attempts = append(x.attempts, record.Attempt{Mode: res.Mode, OK: true,
		Why: fmt.Sprintf("joined the libxdp dispatcher (program %d) in slot %d of %d", res.Dispatcher.ProgID, res.Slot, len(res.Dispatcher.Components))})
	o.logf("xdpcache runs in slot %d of %d of the libxdp dispatcher on %s (program %d, %s mode)",
		res.Slot, len(res.Dispatcher.Components), o.Iface, res.Dispatcher.ProgID, res.Mode)
	return nil
}

// leaveDispatcher takes the deployment's program out of the dispatcher
// on ifindex; the other programs keep running.
func leaveDispatcher(ifindex int, d *record.Deployment, o dispatch.Options) error {
	if _, err := dispatch.Leave(ifindex, d.XDPProgID, o); err != nil {
		return fmt.Errorf("leave the libxdp dispatcher on %s: %w", d.Iface, err)
	}
	return nil
}

// DispatcherOf is the dispatcher a deployment runs in, nil if it runs in
// none (or no longer: someone unloaded it).
func DispatcherOf(d *record.Deployment) *dispatch.Dispatcher {
	if d.XDPAttach != record.XDPDispatcher {
		return nil
	}
	st, err := dispatch.Inspect(d.Ifindex, dispatch.Options{})
	if err != nil || st.Dispatcher == nil || !st.Dispatcher.Has(d.XDPProgID) {
		return nil
	}
	return st.Dispatcher
}

// besideDispatcher: an offload deployment next to the dispatcher with
// program id (offloaded programs stay outside dispatchers, on the device).
func besideDispatcher(o *Options, id uint32) bool {
	if o.Mode != mode.Offload {
		return false
	}
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		return false
	}
	defer p.Close()
	info, err := p.Info()
	return err == nil && info.Name == dispatch.ProgName
}
