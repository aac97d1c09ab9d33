package dispatch

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/xdpcache/xdpcache/offload/mode"
)

// Adopt moves the program running alone on ifindex into a new dispatcher,
// with m beside it, in one atomic swap. The kernel cannot turn a loaded XDP
// program into a dispatcher's component, so the program is loaded again
// from object, the ELF file it was loaded from: the program of the same
// name, which must have the running program's tag (the same instructions),
// reusing the running program's maps (so its state and whatever else holds
// them stay), with the run priority and chain-call actions of the object's
// XDP_RUN_CONFIG (libxdp's defaults without one).
func Adopt(ifindex int, object string, m Member, o Options) (*Result, error) {
	if m.Load == nil {
		return nil, errors.New("adopt: no loader for the program")
	}
	var lone *reloaded
	defer func() {
		if lone != nil {
			lone.close()
		}
	}()
	return change(ifindex, o, func(cur *current) (mode.Mode, []entry, error) {
		st := cur.state
		if !st.Lone() {
			if st.Dispatcher != nil {
				return "", nil, fmt.Errorf("interface %d already runs a dispatcher: join it instead", ifindex)
			}
			return "", nil, fmt.Errorf("no XDP program runs on interface %d in native or generic mode", ifindex)
		}
		var err error
		if lone, err = reload(cur.prog, object); err != nil {
			return "", nil, err
		}
		return st.Mode, []entry{
			{name: lone.name, prio: lone.prio, chain: lone.chain, load: lone.load, added: true},
			{name: m.Name, prio: m.Priority, chain: m.ChainCall, load: m.Load, added: true, member: true},
		}, nil
	})
}

// reloaded is a running program's object, ready to load again as an
// extension with the running program's maps.
type reloaded struct {
	spec  *ebpf.CollectionSpec
	name  string
	prio  uint32
	chain Actions
	maps  map[string]*ebpf.Map
	prog  *ebpf.Program
}

func (r *reloaded) close() {
	for _, m := range r.maps {
		m.Close()
	}
	if r.prog != nil {
		r.prog.Close()
	}
}

// reload finds running's program in object and checks that it is the
// same program, pairs its maps with the running program's, and reads its
// run configuration.
func reload(running *ebpf.Program, object string) (*reloaded, error) {
	info, err := running.Info()
	if err != nil {
		return nil, err
	}
	spec, err := ebpf.LoadCollectionSpec(object)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", object, err)
	}
	var ps *ebpf.ProgramSpec
	for name, p := range spec.Programs {
		if p.Type == ebpf.XDP && truncate(name, 15) == info.Name {
			ps = p
		}
	}
	if ps == nil {
		return nil, fmt.Errorf("%s has no XDP program named %q, the one running (%s)", object, info.Name, programNames(spec))
	}
	r := &reloaded{spec: spec, name: ps.Name, maps: map[string]*ebpf.Map{}}
	if err := r.pairMaps(info); err != nil {
		r.close()
		return nil, err
	}
	r.prio, r.chain = runConfig(spec, ps.Name)
	for name := range spec.Programs {
		if name != ps.Name {
			delete(spec.Programs, name)
		}
	}
	if err := r.sameAs(info, object); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// sameAs loads the object's program once as it runs now (an XDP program,
// attached nowhere) and compares the tags the kernel gives both: the
// object must hold the very instructions that run (the tag of a program
// read from an ELF file depends on how its loader links it).
func (r *reloaded) sameAs(info *ebpf.ProgramInfo, object string) error {
	coll, err := ebpf.NewCollectionWithOptions(r.spec.Copy(), ebpf.CollectionOptions{MapReplacements: r.maps})
	if err != nil {
		return fmt.Errorf("load %s from %s to compare it with the running program: %w", r.name, object, err)
	}
	defer coll.Close()
	ti, err := coll.Programs[r.name].Info()
	if err != nil {
		return err
	}
	if ti.Tag != info.Tag {
		return fmt.Errorf("%s's %s (tag %s) is not the program running (tag %s): another build of it? Not moving it", object, r.name, ti.Tag, info.Tag)
	}
	return nil
}

// pairMaps finds, for every map of the object, the running program's map
// of that name (the kernel keeps 15 characters; libbpf names a section's
// map OBJECT.SECTION, which the section name ends).
func (r *reloaded) pairMaps(info *ebpf.ProgramInfo) error {
	ids, _ := info.MapIDs()
	running := map[string]*ebpf.Map{}
	defer func() {
		for _, m := range running {
			m.Close()
		}
	}()
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			return fmt.Errorf("open the running program's map %d: %w", id, err)
		}
		mi, err := m.Info()
		if err != nil {
			m.Close()
			return err
		}
		running[mi.Name] = m
	}
	for name := range r.spec.Maps {
		var found string
		for kn := range running {
			if kn == truncate(name, 15) || (strings.HasPrefix(name, ".") && strings.HasSuffix(kn, truncate(name, 8))) {
				found = kn
			}
		}
		if found == "" {
			return fmt.Errorf("the running program has no map %q: its state could not be kept; not moving it", name)
		}
		r.maps[name] = running[found]
		delete(running, found)
	}
	return nil
}

// load loads the program as an extension of fn in target, with the
// running program's maps.
func (r *reloaded) load(target *ebpf.Program, fn string) (*ebpf.Program, error) {
	ps := r.spec.Programs[r.name]
	ps.Type, ps.AttachType, ps.AttachTarget, ps.AttachTo = ebpf.Extension, ebpf.AttachNone, target, fn
	coll, err := ebpf.NewCollectionWithOptions(r.spec, ebpf.CollectionOptions{MapReplacements: r.maps})
	if err != nil {
		return nil, fmt.Errorf("load %s again as a dispatcher's component: %w", r.name, err)
	}
	defer coll.Close()
	r.prog = coll.DetachProgram(r.name)
	return r.prog, nil
}

// runConfig reads libxdp's run configuration of program fn from the
// object's BTF (protocol.org, "Processing program metadata"): the
// .xdp_run_config section's variable _FN, a struct whose member priority
// and members named after XDP actions hold their values as the lengths of
// the arrays they point to. Without one: priority 50, chain on XDP_PASS.
func runConfig(spec *ebpf.CollectionSpec, fn string) (uint32, Actions) {
	prio, chain := uint32(DefaultPriority), ActionPass
	if spec.Types == nil {
		return prio, chain
	}
	var sec *btf.Datasec
	if err := spec.Types.TypeByName(".xdp_run_config", &sec); err != nil {
		return prio, chain
	}
	for _, v := range sec.Vars {
		vr, ok := v.Type.(*btf.Var)
		if !ok || vr.Name != "_"+fn {
			continue
		}
		st, ok := btf.UnderlyingType(vr.Type).(*btf.Struct)
		if !ok {
			return prio, chain
		}
		var actions Actions
		sawAction := false
		for _, m := range st.Members {
			n, ok := arrayLen(m.Type)
			if !ok {
				continue
			}
			if m.Name == "priority" {
				prio = n
			} else if i := indexOf(actionNames, m.Name); i >= 0 {
				sawAction = true
				if n != 0 {
					actions |= 1 << i
				}
			}
		}
		if sawAction {
			chain = actions
		}
	}
	return prio, chain
}

// arrayLen is n of a member declared int (*name)[n].
func arrayLen(t btf.Type) (uint32, bool) {
	p, ok := btf.UnderlyingType(t).(*btf.Pointer)
	if !ok {
		return 0, false
	}
	a, ok := btf.UnderlyingType(p.Target).(*btf.Array)
	if !ok {
		return 0, false
	}
	return a.Nelems, true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func programNames(spec *ebpf.CollectionSpec) string {
	var out []string
	for n := range spec.Programs {
		out = append(out, n)
	}
	return strings.Join(out, ", ")
}
