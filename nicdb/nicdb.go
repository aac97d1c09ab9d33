// Package nicdb is an embedded database of Linux NIC drivers and their XDP
// support: the kernel release of each capability, single-page XDP MTU
// limits, quirks with the command that fixes them, and a source for every
// fact. xdpcache uses it where the kernel cannot tell (older kernels have no
// netdev XDP-features family) and to explain attach failures.
package nicdb

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

//go:embed drivers.json
var data []byte

// KernelVersion is a kernel release.
type KernelVersion struct{ Major, Minor, Patch int }

var versionRE = regexp.MustCompile(`^(\d+)\.(\d+)(?:\.(\d+))?`)

// ParseKernelVersion accepts "6.1", "5.10.0", "6.1.0-13-amd64", "6.18.44-fc-v657".
func ParseKernelVersion(s string) (KernelVersion, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return KernelVersion{}, fmt.Errorf("%q is not a kernel version", s)
	}
	var v KernelVersion
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		v.Patch, _ = strconv.Atoi(m[3])
	}
	return v, nil
}

// AtLeast reports v >= o.
func (v KernelVersion) AtLeast(o KernelVersion) bool {
	if v.Major != o.Major {
		return v.Major > o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor > o.Minor
	}
	return v.Patch >= o.Patch
}

func (v KernelVersion) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Severity of a quirk.
type Severity string

const (
	Info Severity = "info"
	Warn Severity = "warn"
	Fail Severity = "fail"
)

// Quirk is a known pitfall of a driver, with its fix.
type Quirk struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	Summary  string   `json:"summary"`
	Fix      string   `json:"fix"`
	Source   string   `json:"source"`
}

// Source backs a fact.
type Source struct {
	Fact string `json:"fact"`
	Ref  string `json:"ref"`
}

// Driver is one driver's XDP support. Version fields hold the first kernel
// release with the capability, "" when the driver lacks it.
type Driver struct {
	Name        string   `json:"name"`
	Aliases     []string `json:"aliases"`
	Vendor      string   `json:"vendor"`
	Description string   `json:"description"`
	NativeXDP   string   `json:"native_xdp"`
	XDPTX       string   `json:"xdp_tx"`
	Redirect    string   `json:"redirect"`     // ndo_xdp_xmit: can be a redirect target
	MultiBuffer string   `json:"multi_buffer"` // XDP frags
	ZeroCopy    string   `json:"zero_copy"`    // AF_XDP zero-copy
	HWOffload   string   `json:"hw_offload"`
	MaxXDPMTU   int      `json:"max_xdp_mtu"` // single-page XDP on x86; 0 = unknown
	Quirks      []Quirk  `json:"quirks"`
	Sources     []Source `json:"sources"`
}

func since(field string, k KernelVersion) bool {
	if field == "" {
		return false
	}
	v, err := ParseKernelVersion(field)
	return err == nil && k.AtLeast(v)
}

// NativeAt: native (driver) XDP on kernel k.
func (d Driver) NativeAt(k KernelVersion) bool { return since(d.NativeXDP, k) }

// OffloadAt: hardware offload on kernel k.
func (d Driver) OffloadAt(k KernelVersion) bool { return since(d.HWOffload, k) }

// DB is the loaded database.
type DB struct {
	drivers []Driver
	byName  map[string]int
}

// Load parses and validates the embedded data.
func Load() (*DB, error) { return parse(data) }

func parse(b []byte) (*DB, error) {
	var f struct {
		Drivers []Driver `json:"drivers"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("nicdb: %w", err)
	}
	db := &DB{drivers: f.Drivers, byName: map[string]int{}}
	for i, d := range f.Drivers {
		if err := d.validate(); err != nil {
			return nil, fmt.Errorf("nicdb: driver %q: %w", d.Name, err)
		}
		for _, n := range append([]string{d.Name}, d.Aliases...) {
			if _, dup := db.byName[n]; dup {
				return nil, fmt.Errorf("nicdb: %q named twice", n)
			}
			db.byName[n] = i
		}
	}
	sort.Slice(db.drivers, func(i, j int) bool { return db.drivers[i].Name < db.drivers[j].Name })
	for i, d := range db.drivers {
		for _, n := range append([]string{d.Name}, d.Aliases...) {
			db.byName[n] = i
		}
	}
	return db, nil
}

func (d Driver) validate() error {
	if d.Name == "" {
		return fmt.Errorf("no name")
	}
	native := KernelVersion{}
	if d.NativeXDP != "" {
		v, err := ParseKernelVersion(d.NativeXDP)
		if err != nil {
			return fmt.Errorf("native_xdp: %w", err)
		}
		native = v
	}
	for field, s := range map[string]string{"xdp_tx": d.XDPTX, "redirect": d.Redirect, "multi_buffer": d.MultiBuffer,
		"zero_copy": d.ZeroCopy, "hw_offload": d.HWOffload} {
		if s == "" {
			continue
		}
		v, err := ParseKernelVersion(s)
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		if field != "hw_offload" && d.NativeXDP != "" && !v.AtLeast(native) {
			return fmt.Errorf("%s %s is earlier than native XDP %s", field, s, d.NativeXDP)
		}
	}
	if d.MaxXDPMTU < 0 || d.MaxXDPMTU > 9216 {
		return fmt.Errorf("max_xdp_mtu %d out of range", d.MaxXDPMTU)
	}
	if len(d.Sources) == 0 {
		return fmt.Errorf("no source")
	}
	seen := map[string]bool{}
	for _, q := range d.Quirks {
		if q.ID == "" || seen[q.ID] {
			return fmt.Errorf("quirk id %q empty or repeated", q.ID)
		}
		seen[q.ID] = true
		switch q.Severity {
		case Info, Warn, Fail:
		default:
			return fmt.Errorf("quirk %s: severity %q", q.ID, q.Severity)
		}
		if q.Summary == "" || q.Fix == "" || q.Source == "" {
			return fmt.Errorf("quirk %s: summary, fix and source are required", q.ID)
		}
	}
	return nil
}

// Driver looks a driver up by name or alias.
func (db *DB) Driver(name string) (Driver, bool) {
	i, ok := db.byName[name]
	if !ok {
		return Driver{}, false
	}
	return db.drivers[i], true
}

// Drivers lists every driver, sorted by name.
func (db *DB) Drivers() []Driver { return append([]Driver(nil), db.drivers...) }
