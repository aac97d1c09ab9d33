package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/xdpcache/xdpcache/nicdb"
)

// nicdbCommand is `xdpcache nicdb [DRIVER] [--json]`: the embedded database
// of NIC drivers' XDP support, as a table of all drivers or one in detail.
func nicdbCommand() *cli.Command {
	return &cli.Command{
		Name:      "nicdb",
		Usage:     "what xdpcache knows about NIC drivers' XDP support",
		ArgsUsage: "[DRIVER]",
		Description: "Without DRIVER, a table of every driver: the first kernel release with native XDP,\n" +
			"XDP_TX, redirect target, multi-buffer, AF_XDP zero-copy and hardware offload, the\n" +
			"single-page XDP MTU limit and the number of quirks. With DRIVER (as ethtool -i IFACE\n" +
			"names it, or an alias), that driver in detail: quirks with their fixes, and sources.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print as JSON"}},
		Action: func(c *cli.Context) error {
			db, err := nicdb.Load()
			if err != nil {
				return cli.Exit("xdpcache nicdb: "+err.Error(), exitFailed)
			}
			w := c.App.Writer
			switch c.NArg() {
			case 0:
				if c.Bool("json") {
					return nicdbJSON(w, db.Drivers())
				}
				return nicdbTable(w, db.Drivers())
			case 1:
				name := c.Args().First()
				d, ok := db.Driver(name)
				if !ok {
					return cli.Exit(nicdbUnknown(db, name), exitNotFound)
				}
				if c.Bool("json") {
					return nicdbJSON(w, d)
				}
				nicdbDetail(w, d)
				return nil
			default:
				return cli.Exit("xdpcache nicdb: one driver at a time (xdpcache nicdb lists them)", exitUsage)
			}
		},
	}
}

// nicdbUnknown is the message for a driver the database does not know, with
// a suggestion when the name differs only in case or - versus _.
func nicdbUnknown(db *nicdb.DB, name string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	var near []string
	for _, d := range db.Drivers() {
		for _, n := range append([]string{d.Name}, d.Aliases...) {
			if norm(n) == norm(name) {
				near = append(near, n)
			}
		}
	}
	msg := fmt.Sprintf("xdpcache nicdb: no driver %q in the database", name)
	if len(near) > 0 {
		sort.Strings(near)
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(near, " or "))
	}
	return msg + "; run xdpcache nicdb to list the drivers (ethtool -i IFACE names an interface's driver); a driver that is not listed has no native XDP: use --mode generic"
}

func nicdbJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func nicdbTable(w io.Writer, drivers []nicdb.Driver) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DRIVER\tVENDOR\tNATIVE\tXDP_TX\tREDIRECT\tFRAGS\tAF_XDP ZC\tOFFLOAD\tXDP MTU\tQUIRKS")
	for _, d := range drivers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", d.Name, d.Vendor, or(d.NativeXDP), or(d.XDPTX), or(d.Redirect),
			or(d.MultiBuffer), or(d.ZeroCopy), or(d.HWOffload), nicdbMTU(d.MaxXDPMTU), len(d.Quirks))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nVersions are the first kernel release with the capability (- = none); XDP MTU is the single-page limit on x86 (? = unknown).\nxdpcache nicdb DRIVER shows a driver's quirks, fixes and sources.")
	return err
}

func nicdbMTU(mtu int) string {
	if mtu <= 0 {
		return "?"
	}
	return fmt.Sprint(mtu)
}

func nicdbDetail(w io.Writer, d nicdb.Driver) {
	fmt.Fprintf(w, "%s: %s %s\n", d.Name, d.Vendor, d.Description)
	if len(d.Aliases) > 0 {
		fmt.Fprintf(w, "  also known as:     %s\n", strings.Join(d.Aliases, ", "))
	}
	tw := tabwriter.NewWriter(w, 2, 4, 1, ' ', 0)
	for _, row := range [][2]string{
		{"native XDP", d.NativeXDP}, {"XDP_TX", d.XDPTX}, {"redirect target", d.Redirect},
		{"multi-buffer", d.MultiBuffer}, {"AF_XDP zero-copy", d.ZeroCopy}, {"hardware offload", d.HWOffload},
	} {
		since := "no"
		if row[1] != "" {
			since = "since " + row[1]
		}
		fmt.Fprintf(tw, "  %s:\t%s\n", row[0], since)
	}
	fmt.Fprintf(tw, "  XDP MTU limit:\t%s\n", nicdbMTU(d.MaxXDPMTU)+" (single page, x86)")
	tw.Flush()
	if len(d.Quirks) > 0 {
		fmt.Fprintln(w, "\nquirks:")
		for _, q := range d.Quirks {
			fmt.Fprintf(w, "  [%s] %s: %s\n      fix:    %s\n      source: %s\n", q.Severity, q.ID, q.Summary, q.Fix, q.Source)
		}
	}
	fmt.Fprintln(w, "\nsources:")
	for _, s := range d.Sources {
		fmt.Fprintf(w, "  - %s\n    %s\n", s.Fact, s.Ref)
	}
}

// or returns s, or "-" when s is empty.
func or(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
