package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/xdpcache/xdpcache/nicdb"
)

func nicdbCommand() *cli.Command {
	return &cli.Command{
		Name:      "nicdb",
		Usage:     "what xdpcache knows about NIC drivers' XDP support",
		ArgsUsage: "[DRIVER]",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print as JSON"}},
		Action: func(c *cli.Context) error {
			db, err := nicdb.Load()
			if err != nil {
				return cli.Exit("xdpcache nicdb: "+err.Error(), exitFailed)
			}
			if c.NArg() > 1 {
				return cli.Exit("xdpcache nicdb: one driver at a time (xdpcache nicdb lists them)", exitUsage)
			}
			if c.NArg() == 1 {
				d, ok := db.Driver(c.Args().First())
				if !ok {
					return cli.Exit(fmt.Sprintf("xdpcache nicdb: no driver %q (xdpcache nicdb lists them; ethtool -i IFACE names an interface's driver)", c.Args().First()), exitNotFound)
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, d)
				}
				printDriver(c.App.Writer, d)
				return nil
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, db.Drivers())
			}
			tw := tabwriter.NewWriter(c.App.Writer, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DRIVER\tNATIVE\tREDIRECT\tFRAGS\tAF_XDP ZC\tOFFLOAD\tXDP MTU\tQUIRKS")
			for _, d := range db.Drivers() {
				mtu := "?"
				if d.MaxXDPMTU > 0 {
					mtu = fmt.Sprint(d.MaxXDPMTU)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", d.Name, or(d.NativeXDP), or(d.Redirect), or(d.MultiBuffer),
					or(d.ZeroCopy), or(d.HWOffload), mtu, len(d.Quirks))
			}
			return tw.Flush()
		},
	}
}

func or(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printDriver(w io.Writer, d nicdb.Driver) {
	fmt.Fprintf(w, "%s: %s %s\n", d.Name, d.Vendor, d.Description)
	if len(d.Aliases) > 0 {
		fmt.Fprintf(w, "  also known as: %s\n", strings.Join(d.Aliases, ", "))
	}
	fmt.Fprintf(w, "  native XDP since %s, XDP_TX since %s, redirect target since %s\n", or(d.NativeXDP), or(d.XDPTX), or(d.Redirect))
	fmt.Fprintf(w, "  multi-buffer since %s, AF_XDP zero-copy since %s, hardware offload since %s\n", or(d.MultiBuffer), or(d.ZeroCopy), or(d.HWOffload))
	if d.MaxXDPMTU > 0 {
		fmt.Fprintf(w, "  single-page XDP MTU limit: %d\n", d.MaxXDPMTU)
	}
	for _, q := range d.Quirks {
		fmt.Fprintf(w, "  [%s] %s\n      fix: %s\n      source: %s\n", q.Severity, q.Summary, q.Fix, q.Source)
	}
	for _, s := range d.Sources {
		fmt.Fprintf(w, "  source: %s — %s\n", s.Fact, s.Ref)
	}
}
