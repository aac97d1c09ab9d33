package nicdb

//go:generate go run ./gen

import (
	"fmt"
	"strings"
)

// Markdown renders the database as docs/nicdb.md (go generate ./nicdb).
func (db *DB) Markdown() string {
	var b strings.Builder
	b.WriteString("# nicdb: NIC drivers and XDP\n\n")
	b.WriteString("Generated from `nicdb/drivers.json` by `go generate ./nicdb`; do not edit by hand.\n")
	b.WriteString("Versions are the first kernel release with the capability; `-` means none. Where a\n")
	b.WriteString("source says \"approximate\", check the kernel's history before relying on the release.\n\n")
	b.WriteString("| driver | vendor | native | XDP_TX | redirect | frags | AF_XDP ZC | offload | XDP MTU |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, d := range db.drivers {
		mtu := "?"
		if d.MaxXDPMTU > 0 {
			mtu = fmt.Sprint(d.MaxXDPMTU)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", d.Name, d.Vendor, dash(d.NativeXDP), dash(d.XDPTX),
			dash(d.Redirect), dash(d.MultiBuffer), dash(d.ZeroCopy), dash(d.HWOffload), mtu)
	}
	b.WriteString("\n## Quirks and sources\n")
	for _, d := range db.drivers {
		fmt.Fprintf(&b, "\n### %s\n\n%s %s", d.Name, d.Vendor, d.Description)
		if len(d.Aliases) > 0 {
			fmt.Fprintf(&b, " (also: %s)", strings.Join(d.Aliases, ", "))
		}
		b.WriteString("\n\n")
		for _, q := range d.Quirks {
			fmt.Fprintf(&b, "- **%s** (%s): %s  \n  fix: `%s`  \n  source: %s\n", q.ID, q.Severity, q.Summary, q.Fix, q.Source)
		}
		for _, s := range d.Sources {
			fmt.Fprintf(&b, "- source: %s — %s\n", s.Fact, s.Ref)
		}
	}
	return b.String()
}
