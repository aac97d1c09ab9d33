package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/probe"
)

func fleetCommand() *cli.Command {
	return &cli.Command{
		Name:      "fleet-summary",
		Usage:     "summarise `xdpcache probe --json` reports from many nodes: one line per node and interface, and counts by mode",
		ArgsUsage: "REPORT.json... (or - for standard input; several JSON documents per file are fine)",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "all", Usage: "include loopback and interfaces without an IPv4/IPv6 driver"}},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cli.Exit("xdpcache fleet-summary: give report files (or -)", exitUsage)
			}
			var reports []*probe.Report
			for _, name := range c.Args().Slice() {
				rs, err := readReports(name)
				if err != nil {
					return cli.Exit("xdpcache fleet-summary: "+err.Error(), exitUsage)
				}
				reports = append(reports, rs...)
			}
			return summarize(c.App.Writer, reports, c.Bool("all"))
		},
	}
}

// readReports accepts probe output: one report, an array of them, or a
// stream of either.
func readReports(name string) ([]*probe.Report, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []*probe.Report
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
			var rs []*probe.Report
			if err := json.Unmarshal(raw, &rs); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out = append(out, rs...)
			continue
		}
		var r probe.Report
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, &r)
	}
}

func summarize(w io.Writer, reports []*probe.Report, all bool) error {
	sort.Slice(reports, func(i, j int) bool {
		if reports[i].Hostname != reports[j].Hostname {
			return reports[i].Hostname < reports[j].Hostname
		}
		return reports[i].Iface < reports[j].Iface
	})
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tIFACE\tDRIVER\tKERNEL\tMODE\tWHY NOT FASTER / WHAT TO FIX")
	byMode := map[string]int{}
	for _, r := range reports {
		if !all && (r.Driver == "" || r.Iface == "lo") {
			continue
		}
		chosen := string(r.Plan.Mode)
		if chosen == "" {
			chosen = "none"
		}
		byMode[chosen]++
		var why []string
		for _, s := range r.Plan.Steps {
			if !s.Usable && s.Mode != mode.Offload {
				why = append(why, string(s.Mode)+": "+s.Reason)
			}
			if s.Usable {
				break
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Hostname, r.Iface, r.Driver, r.Kernel.Version, chosen, strings.Join(why, "; "))
	}
	tw.Flush()
	var modes []string
	for m := range byMode {
		modes = append(modes, m)
	}
	sort.Strings(modes)
	var parts []string
	for _, m := range modes {
		parts = append(parts, fmt.Sprintf("%s %d", m, byMode[m]))
	}
	fmt.Fprintf(w, "\ninterfaces by mode: %s\n", strings.Join(parts, ", "))
	return nil
}
