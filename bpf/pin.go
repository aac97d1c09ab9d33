package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
)

// Pin names under a deployment's pin directory: the two programs, and each
// map under maps/ by its name in the C source. Both flavors use the same
// layout, so Unpin removes either flavor's pins.
const (
	PinXDPProg   = "prog_xdp"
	PinTCProg    = "prog_tc"
	PinWatchProg = "prog_xdp_watch" // host flavor: the watch-only XDP program, if loaded
	pinMapsDir   = "maps"
)

// objectLoader is a generated loadXxx: one object's collection spec.
type objectLoader func() (*ebpf.CollectionSpec, error)

// The objects each flavor is made of.
var (
	hostObjects    = []objectLoader{loadXdp, loadTc}
	offloadObjects = []objectLoader{loadXdpoff, loadTcrelay}
)

// objectMapNames lists the maps of the objects' collection specs, sorted,
// without duplicates (the host TC object reuses the XDP object's maps).
// Sections such as .rodata would be maps too; the programs have none.
func objectMapNames(objs []objectLoader) ([]string, error) {
	seen := map[string]bool{}
	for _, load := range objs {
		spec, err := load()
		if err != nil {
			return nil, fmt.Errorf("parse BPF object: %w", err)
		}
		for name := range spec.Maps {
			if !strings.HasPrefix(name, ".") { // a program's constants (.rodata)
				seen[name] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// mapFields are the *ebpf.Map fields of a bpf2go maps struct (a pointer to
// it), by their `ebpf:"name"` tag: the map's name in the C source.
func mapFields(structPtr any) map[string]**ebpf.Map {
	v := reflect.ValueOf(structPtr).Elem()
	out := map[string]**ebpf.Map{}
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("ebpf")
		if f, ok := v.Field(i).Addr().Interface().(**ebpf.Map); ok && name != "" {
			out[name] = f
		}
	}
	return out
}

// pinnedMaps pairs every map of the objects with its field in fields: what
// Pin pins and LoadPinned opens. A map of the objects without a field is an
// error, so no map is silently left unpinned.
func pinnedMaps(objs []objectLoader, fields map[string]**ebpf.Map) (map[string]**ebpf.Map, error) {
	names, err := objectMapNames(objs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]**ebpf.Map, len(names))
	var missing []string
	for _, n := range names {
		f, ok := fields[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		out[n] = f
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the BPF objects' maps %s have no Go field (run make generate)", strings.Join(missing, ", "))
	}
	return out, nil
}

// hostPins are the host flavor's maps by name.
func (c *Cache) pins() (map[string]**ebpf.Map, error) {
	return pinnedMaps(hostObjects, mapFields(&c.Maps))
}

// offloadPins are the offload flavor's maps by name: the device maps and the
// relay's host maps.
func (c *OffloadCache) pins() (map[string]**ebpf.Map, error) {
	fields := mapFields(&c.Maps)
	fields[tcrelayMapRelayRing] = &c.Ring
	fields[tcrelayMapRelayCfgMap] = &c.RelayCfg
	fields[tcrelayMapRelayStats] = &c.RelayStats
	return pinnedMaps(offloadObjects, fields)
}

// pinAll pins progs (by pin name) and maps (by map name) under dir.
func pinAll(dir string, progs map[string]*ebpf.Program, maps map[string]**ebpf.Map) error {
	if err := os.MkdirAll(filepath.Join(dir, pinMapsDir), 0o700); err != nil {
		return fmt.Errorf("create pin directory: %w", err)
	}
	for name, m := range maps {
		if *m == nil {
			return fmt.Errorf("pin map %s: not loaded", name)
		}
		if err := (*m).Pin(filepath.Join(dir, pinMapsDir, name)); err != nil {
			return fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	for name, p := range progs {
		if err := p.Pin(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("pin program %s: %w", name, err)
		}
	}
	return nil
}

// loadPinnedAll opens the pins pinAll made into xdp, tc and maps; what of
// the flavor describes the programs in errors.
func loadPinnedAll(dir, what string, objs []objectLoader, xdp, tc **ebpf.Program, maps map[string]**ebpf.Map) error {
	specs, err := objectMapSpecs(objs)
	if err != nil {
		return err
	}
	if *xdp, err = ebpf.LoadPinnedProgram(filepath.Join(dir, PinXDPProg), nil); err != nil {
		return fmt.Errorf("open pinned %s XDP program: %w", what, err)
	}
	if *tc, err = ebpf.LoadPinnedProgram(filepath.Join(dir, PinTCProg), nil); err != nil {
		return fmt.Errorf("open pinned %s TC program: %w", what, err)
	}
	for _, name := range sortedKeys(maps) {
		dst := maps[name]
		if *dst, err = ebpf.LoadPinnedMap(filepath.Join(dir, pinMapsDir, name), nil); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return &IncompatiblePinsError{Dir: dir, Map: name, Why: "not pinned"}
			}
			return fmt.Errorf("open pinned map %s: %w", name, err)
		}
		if why := mapMismatch(*dst, specs[name]); why != "" {
			return &IncompatiblePinsError{Dir: dir, Map: name, Why: why}
		}
	}
	return nil
}

// IncompatiblePinsError says a pinned deployment's maps are not the ones this
// build's programs use: another xdpcache version pinned them (a map added,
// or a value layout changed). Its programs keep running; this build cannot
// read or change its maps.
type IncompatiblePinsError struct {
	Dir, Map, Why string
}

func (e *IncompatiblePinsError) Error() string {
	return fmt.Sprintf("the deployment pinned at %s was made by another xdpcache version (map %s: %s); "+
		"`xdpcache undeploy` removes it and `xdpcache deploy` replaces it with this version's (the cache starts empty)",
		e.Dir, e.Map, e.Why)
}

// objectMapSpecs are the objects' map specs by name (the first object's
// where two share a map).
func objectMapSpecs(objs []objectLoader) (map[string]*ebpf.MapSpec, error) {
	out := map[string]*ebpf.MapSpec{}
	for _, load := range objs {
		spec, err := load()
		if err != nil {
			return nil, fmt.Errorf("parse BPF object: %w", err)
		}
		for name, ms := range spec.Maps {
			if _, ok := out[name]; !ok {
				out[name] = ms
			}
		}
	}
	return out, nil
}

// mapMismatch says how m differs from spec in what its readers depend on
// (type, key and value sizes; the entry counts follow the settings), "" if
// it does not.
func mapMismatch(m *ebpf.Map, spec *ebpf.MapSpec) string {
	switch {
	case spec == nil:
		return ""
	case m.Type() != spec.Type:
		return fmt.Sprintf("type %s pinned, %s here", m.Type(), spec.Type)
	case m.KeySize() != spec.KeySize:
		return fmt.Sprintf("%d-byte keys pinned, %d here", m.KeySize(), spec.KeySize)
	case m.ValueSize() != spec.ValueSize:
		return fmt.Sprintf("%d-byte values pinned, %d here", m.ValueSize(), spec.ValueSize)
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Pin pins the programs and every map under dir (which must be on bpffs),
// so that status and undeploy find them after this process exits.
func (c *Cache) Pin(dir string) error {
	maps, err := c.pins()
	if err != nil {
		return err
	}
	progs := map[string]*ebpf.Program{PinXDPProg: c.XDP, PinTCProg: c.TC}
	if c.Watch != nil {
		progs[PinWatchProg] = c.Watch
	}
	return pinAll(dir, progs, maps)
}

// LoadPinned opens a pinned deployment's programs and maps (and the
// watch-only program, if one is pinned).
func LoadPinned(dir string) (*Cache, error) {
	c := &Cache{}
	maps, err := c.pins()
	if err != nil {
		return nil, err
	}
	if err := loadPinnedAll(dir, "host", hostObjects, &c.XDP, &c.TC, maps); err != nil {
		c.Close()
		return nil, err
	}
	w, err := ebpf.LoadPinnedProgram(filepath.Join(dir, PinWatchProg), nil)
	if err == nil {
		c.Watch = w
	} else if !errors.Is(err, os.ErrNotExist) {
		c.Close()
		return nil, fmt.Errorf("open pinned watch-only XDP program: %w", err)
	}
	return c, nil
}

// Pin pins the programs and maps under dir (on bpffs).
func (c *OffloadCache) Pin(dir string) error {
	maps, err := c.pins()
	if err != nil {
		return err
	}
	return pinAll(dir, map[string]*ebpf.Program{PinXDPProg: c.XDP, PinTCProg: c.TC}, maps)
}

// LoadPinnedOffload opens a pinned offload deployment. seed and buckets come
// from the deployment's record.
func LoadPinnedOffload(dir string, seed, buckets uint32) (*OffloadCache, error) {
	c := &OffloadCache{Seed: seed, Buckets: buckets}
	maps, err := c.pins()
	if err != nil {
		return nil, err
	}
	if err := loadPinnedAll(dir, "offload", offloadObjects, &c.XDP, &c.TC, maps); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Unpin removes the pins Pin created (the objects live on while attached or open).
func Unpin(dir string) error {
	var errs []error
	for _, name := range []string{PinXDPProg, PinTCProg, PinWatchProg} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, pinMapsDir)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
