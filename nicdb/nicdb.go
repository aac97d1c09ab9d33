// Package nicdb is an embedded database of Linux NIC drivers and their XDP
// support: the kernel release of each capability, single-page XDP MTU
// limits, quirks with the command that fixes them, and a source for every
// fact. xdpcache uses it where the kernel cannot tell (kernels before 6.3 have
// no netdev XDP-features family) and to explain attach failures.
//
// The data lives in drivers.json; docs/nicdb.md is generated from it.
package nicdb

//go:generate go run ./gen

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

//go:embed drivers.json
var data []byte

// KernelVersion is a kernel release.
type KernelVersion struct{ Major, Minor, Patch int }

var versionRE = regexp.MustCompile(`^(\d+)\.(\d+)(?:\.(\d+))?(?:[-+~._].*)?$`)

// ParseKernelVersion accepts "6.1", "5.10.0", "6.1.0-13-amd64",
// "6.18.44-fc-v657" (uname -r): major.minor[.patch] and any suffix after a
// separator.
func ParseKernelVersion(s string) (KernelVersion, error) {
	m := versionRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return KernelVersion{}, fmt.Errorf("%q is not a kernel version", s)
	}
	var v KernelVersion
	for i, p := range []*int{&v.Major, &v.Minor, &v.Patch} {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.Atoi(m[i+1])
		if err != nil {
			return KernelVersion{}, fmt.Errorf("%q is not a kernel version: %w", s, err)
		}
		*p = n
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
	Info Severity = "info" // worth knowing; nothing to do
	Warn Severity = "warn" // XDP works, but slower or with a caveat
	Fail Severity = "fail" // attach fails or traffic is lost until fixed
)

// Quirk is a known pitfall or pre-flight requirement of a driver, with its fix.
type Quirk struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	Summary  string   `json:"summary"`
	Fix      string   `json:"fix"`
	Source   string   `json:"source"`
}

// Source backs a fact: Ref is a kernel release and commit subject, or a path
// in the kernel tree.
type Source struct {
	Fact string `json:"fact"`
	Ref  string `json:"ref"`
}

// Driver is one driver's XDP support. Version fields hold the first kernel
// release with the capability, "" when the driver lacks it.
type Driver struct {
	Name        string   `json:"name"` // as ethtool -i reports it
	Aliases     []string `json:"aliases"`
	Vendor      string   `json:"vendor"`
	Description string   `json:"description"`
	NativeXDP   string   `json:"native_xdp"`
	XDPTX       string   `json:"xdp_tx"`
	Redirect    string   `json:"redirect"`     // ndo_xdp_xmit: can be a redirect target
	MultiBuffer string   `json:"multi_buffer"` // XDP frags
	ZeroCopy    string   `json:"zero_copy"`    // AF_XDP zero-copy
	HWOffload   string   `json:"hw_offload"`
	MaxXDPMTU   int      `json:"max_xdp_mtu"` // single-page XDP on x86, 4 KiB pages; 0 = unknown
	Quirks      []Quirk  `json:"quirks"`
	Sources     []Source `json:"sources"`
	// Verified lists what the driver and kernel matrix (make test-lab,
	// docs/lab.md) checked on a real driver; every other fact comes from
	// the kernel sources named in Sources and Quirks.
	Verified []Verification `json:"verified,omitempty"`
}

// Verification is what the lab checked for a driver on one kernel series.
type Verification struct {
	Kernel string `json:"kernel"` // kernel series, e.g. "6.1" (Debian's 6.1.0-N-amd64)
	Device string `json:"device"` // what the driver drove, e.g. "QEMU 7.2 virtio-net-pci"
	Facts  string `json:"facts"`  // what was checked, in the kernel's words where it refused
}

func since(field string, k KernelVersion) bool {
	if field == "" {
		return false
	}
	v, err := ParseKernelVersion(field)
	return err == nil && k.AtLeast(v)
}

// NativeAt reports whether native (driver) XDP is available on kernel k.
func (d Driver) NativeAt(k KernelVersion) bool { return since(d.NativeXDP, k) }

// OffloadAt reports whether hardware-offloaded XDP is available on kernel k.
func (d Driver) OffloadAt(k KernelVersion) bool { return since(d.HWOffload, k) }

func (d Driver) clone() Driver {
	d.Aliases = slices.Clone(d.Aliases)
	d.Quirks = slices.Clone(d.Quirks)
	d.Sources = slices.Clone(d.Sources)
	d.Verified = slices.Clone(d.Verified)
	return d
}

// DB is a loaded database. Each Load returns its own; nothing is shared.
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
	if len(f.Drivers) == 0 {
		return nil, fmt.Errorf("nicdb: no drivers")
	}
	for i, d := range f.Drivers {
		if err := d.validate(); err != nil {
			if d.Name == "" {
				return nil, fmt.Errorf("nicdb: driver #%d: %w", i+1, err)
			}
			return nil, fmt.Errorf("nicdb: driver %q: %w", d.Name, err)
		}
	}
	slices.SortStableFunc(f.Drivers, func(a, b Driver) int { return strings.Compare(a.Name, b.Name) })
	db := &DB{drivers: f.Drivers, byName: map[string]int{}}
	for i, d := range db.drivers {
		for _, n := range append([]string{d.Name}, d.Aliases...) {
			if j, dup := db.byName[n]; dup {
				return nil, fmt.Errorf("nicdb: driver %q: name %q is already used by %q", d.Name, n, db.drivers[j].Name)
			}
			db.byName[n] = i
		}
	}
	return db, nil
}

// versionFields lists a driver's version fields by their JSON names.
func (d Driver) versionFields() []struct{ name, value string } {
	return []struct{ name, value string }{
		{"native_xdp", d.NativeXDP}, {"xdp_tx", d.XDPTX}, {"redirect", d.Redirect},
		{"multi_buffer", d.MultiBuffer}, {"zero_copy", d.ZeroCopy}, {"hw_offload", d.HWOffload},
	}
}

func (d Driver) validate() error {
	if d.Name == "" || strings.TrimSpace(d.Name) != d.Name {
		return fmt.Errorf("name %q is empty or padded", d.Name)
	}
	if d.Vendor == "" || d.Description == "" {
		return fmt.Errorf("vendor and description are required")
	}
	for _, a := range d.Aliases {
		if a == "" || a == d.Name {
			return fmt.Errorf("alias %q is empty or repeats the name", a)
		}
	}
	if d.NativeXDP == "" && d.HWOffload == "" {
		return fmt.Errorf("neither native_xdp nor hw_offload: a driver without XDP does not belong here")
	}
	var native KernelVersion
	for _, f := range d.versionFields() {
		if f.value == "" {
			continue
		}
		v, err := ParseKernelVersion(f.value)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if f.name == "native_xdp" {
			native = v
			continue
		}
		// Offload is independent of the driver's native support.
		if f.name != "hw_offload" && d.NativeXDP != "" && !v.AtLeast(native) {
			return fmt.Errorf("%s %s is earlier than native_xdp %s", f.name, f.value, d.NativeXDP)
		}
		if f.name != "hw_offload" && d.NativeXDP == "" {
			return fmt.Errorf("%s %s without native_xdp", f.name, f.value)
		}
	}
	if d.MaxXDPMTU < 0 || d.MaxXDPMTU > 9216 {
		return fmt.Errorf("max_xdp_mtu %d out of range", d.MaxXDPMTU)
	}
	if len(d.Sources) == 0 {
		return fmt.Errorf("no source")
	}
	for i, s := range d.Sources {
		if s.Fact == "" || s.Ref == "" {
			return fmt.Errorf("source #%d: fact and ref are required", i+1)
		}
	}
	for i, v := range d.Verified {
		if _, err := ParseKernelVersion(v.Kernel); err != nil || v.Device == "" || v.Facts == "" {
			return fmt.Errorf("verified #%d: a kernel series, the device and the facts are required", i+1)
		}
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
			return fmt.Errorf("quirk %s: severity %q is not info, warn or fail", q.ID, q.Severity)
		}
		if q.Summary == "" || q.Fix == "" || q.Source == "" {
			return fmt.Errorf("quirk %s: summary, fix and source are required", q.ID)
		}
	}
	return nil
}

// Driver looks a driver up by its kernel name or an alias (case-sensitive).
func (db *DB) Driver(name string) (Driver, bool) {
	i, ok := db.byName[name]
	if !ok {
		return Driver{}, false
	}
	return db.drivers[i].clone(), true
}

// Drivers lists every driver, sorted by name.
func (db *DB) Drivers() []Driver {
	out := make([]Driver, len(db.drivers))
	for i, d := range db.drivers {
		out[i] = d.clone()
	}
	return out
}

// Markdown renders the database as docs/nicdb.md (go generate ./nicdb).
func (db *DB) Markdown() string {
	var b strings.Builder
	b.WriteString("# nicdb: NIC drivers and XDP\n\n")
	b.WriteString("Generated from `nicdb/drivers.json` by `go generate ./nicdb`; do not edit by hand.\n")
	b.WriteString("`xdpcache nicdb [DRIVER] [--json]` prints the same data.\n\n")
	b.WriteString("Versions are the first kernel release with the capability; `-` means none. XDP MTU is the\n")
	b.WriteString("single-page (non-frags) limit on x86 with 4 KiB pages, `?` where unknown. Where a source\n")
	b.WriteString("says \"approx\", the release is the best known one: check the kernel's history before relying on it.\n")
	b.WriteString("The lab column names the kernel series on which the driver and kernel matrix (`make test-lab`,\n")
	b.WriteString("[lab.md](lab.md)) checked the driver itself; every other fact comes from the kernel sources cited.\n\n")
	b.WriteString("| driver | vendor | native | XDP_TX | redirect | frags | AF_XDP ZC | offload | XDP MTU | quirks | lab |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, d := range db.drivers {
		var lab []string
		for _, v := range d.Verified {
			if !slices.Contains(lab, v.Kernel) {
				lab = append(lab, v.Kernel)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n", d.Name, d.Vendor, dash(d.NativeXDP), dash(d.XDPTX),
			dash(d.Redirect), dash(d.MultiBuffer), dash(d.ZeroCopy), dash(d.HWOffload), mtuString(d.MaxXDPMTU), len(d.Quirks), dash(strings.Join(lab, ", ")))
	}
	b.WriteString("\n## Drivers\n")
	for _, d := range db.drivers {
		fmt.Fprintf(&b, "\n### %s\n\n%s %s", d.Name, d.Vendor, d.Description)
		if len(d.Aliases) > 0 {
			fmt.Fprintf(&b, " (also: %s)", strings.Join(d.Aliases, ", "))
		}
		b.WriteString(".\n")
		if len(d.Quirks) > 0 {
			b.WriteString("\nQuirks:\n\n")
			for _, q := range d.Quirks {
				fmt.Fprintf(&b, "- **%s** (%s): %s  \n  fix: `%s`  \n  source: %s\n", q.ID, q.Severity, q.Summary, q.Fix, q.Source)
			}
		}
		b.WriteString("\nSources:\n\n")
		for _, s := range d.Sources {
			fmt.Fprintf(&b, "- %s — %s\n", s.Fact, s.Ref)
		}
		if len(d.Verified) > 0 {
			b.WriteString("\nVerified in the lab (make test-lab):\n\n")
			for _, v := range d.Verified {
				fmt.Fprintf(&b, "- %s, %s: %s\n", v.Kernel, v.Device, v.Facts)
			}
		}
	}
	return b.String()
}

// dash returns s, or "-" when s is empty (a capability the driver lacks).
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// mtuString returns the MTU limit, or "?" when unknown.
func mtuString(mtu int) string {
	if mtu <= 0 {
		return "?"
	}
	return strconv.Itoa(mtu)
}
