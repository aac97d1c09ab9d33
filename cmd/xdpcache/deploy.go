package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/offload/deploy"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/netdev"
	"github.com/xdpcache/xdpcache/offload/record"
)

func settingsFlags() []cli.Flag {
	d := bpf.DefaultSettings()
	return []cli.Flag{
		&cli.StringFlag{Name: "iface", Aliases: []string{"i"}, EnvVars: []string{"XDPCACHE_IFACE"}, Usage: "network interface memcached listens on", Required: true},
		&cli.StringFlag{Name: "mode", Value: string(mode.Auto), EnvVars: []string{"XDPCACHE_MODE"}, Usage: "XDP mode: " + mode.List()},
		&cli.BoolFlag{Name: "no-generic", Usage: "with --mode auto: fail rather than fall back to generic mode"},
		&cli.UintSliceFlag{Name: "port", Value: cli.NewUintSlice(11211), Usage: "memcached port (repeatable, up to 4)"},
		&cli.UintFlag{Name: "entries", Value: uint(d.Entries), Usage: "cache buckets (a power of two)"},
		&cli.UintFlag{Name: "max-value-size", Value: uint(d.MaxValue), Usage: fmt.Sprintf("largest value cached, bytes (at most %d)", bpf.MaxValueCap)},
		&cli.DurationFlag{Name: "max-age", Value: d.MaxAge, Usage: "longest time an entry is served without memcached being asked again"},
		&cli.DurationFlag{Name: "write-hold", Value: d.WriteHold, Usage: "fills of a key are refused this long after a write nothing acknowledges exactly (noreply, quiet binary, ...); acknowledged writes do not need it (docs/consistency.md)"},
		&cli.StringSliceFlag{Name: "allow", Usage: "source prefix served from the cache (repeatable; default: the interface's own subnets)"},
		&cli.UintFlag{Name: "unlisted-amplification", Usage: "serve sources outside --allow only if the reply is at most this many times the request (0: never)"},
		&cli.BoolFlag{Name: "any-destination", Usage: "also answer requests not addressed to this host's own addresses"},
		&cli.UintFlag{Name: "mtu", Value: uint(d.MTU), Usage: "largest reply packet (IP bytes)"},
		&cli.BoolFlag{Name: "force", Usage: "replace an XDP program xdpcache did not attach"},
		&cli.BoolFlag{Name: "dry-run", Usage: "print what deploy would do and change nothing"},
		&cli.StringFlag{Name: "pin-root", Value: record.DefaultRoot, Usage: "bpffs directory for pins", Hidden: true},
		&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
	}
}

// deployOptions turns flags into options, rejecting bad values with the flag's name.
func deployOptions(c *cli.Context, log io.Writer) (deploy.Options, error) {
	s := bpf.DefaultSettings()
	var ports []uint16
	for _, p := range c.UintSlice("port") {
		if p == 0 || p > 65535 {
			return deploy.Options{}, fmt.Errorf("--port %d: ports are 1..65535", p)
		}
		ports = append(ports, uint16(p))
	}
	s.Ports = ports
	if c.Uint("entries") > 1<<24 {
		return deploy.Options{}, fmt.Errorf("--entries %d: at most %d", c.Uint("entries"), 1<<24)
	}
	s.Entries = uint32(c.Uint("entries"))
	if c.Uint("max-value-size") > bpf.MaxValueCap {
		return deploy.Options{}, fmt.Errorf("--max-value-size %d: at most %d", c.Uint("max-value-size"), bpf.MaxValueCap)
	}
	s.MaxValue = uint32(c.Uint("max-value-size"))
	s.MaxAge = c.Duration("max-age")
	s.WriteHold = c.Duration("write-hold")
	s.MTU = uint32(min(c.Uint("mtu"), 1<<16))
	s.UnlistedAmp = uint32(min(c.Uint("unlisted-amplification"), 1<<16))
	s.RequireLocal = !c.Bool("any-destination")
	if err := s.Validate(); err != nil {
		return deploy.Options{}, err
	}
	var allow []netip.Prefix
	for _, a := range c.StringSlice("allow") {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return deploy.Options{}, fmt.Errorf("--allow %q: not a CIDR prefix such as 198.18.0.0/15 or 2001:db8::/32", a)
		}
		allow = append(allow, p)
	}
	m, err := modeFlag(c)
	if err != nil {
		return deploy.Options{}, err
	}
	return deploy.Options{
		Iface: c.String("iface"), Mode: m, NoGeneric: c.Bool("no-generic"), Settings: s, Allow: allow,
		Force: c.Bool("force"), DryRun: c.Bool("dry-run"), PinRoot: c.String("pin-root"),
		Log: func(f string, a ...any) { fmt.Fprintf(log, f+"\n", a...) },
	}, nil
}

// modeFlag parses --mode (with mode's one parser) and checks it against
// --no-generic where the command has it.
func modeFlag(c *cli.Context) (mode.Mode, error) {
	m, err := mode.Parse(c.String("mode"))
	if err != nil {
		return "", fmt.Errorf("--mode %q: use %s", c.String("mode"), mode.List())
	}
	if c.Bool("no-generic") && m == mode.Generic {
		return "", errors.New("--no-generic contradicts --mode generic")
	}
	return m, nil
}

func deployCommand() *cli.Command {
	return &cli.Command{
		Name:  "deploy",
		Usage: "attach the cache to an interface and leave it running",
		Flags: settingsFlags(),
		Action: func(c *cli.Context) error {
			opts, err := deployOptions(c, c.App.ErrWriter)
			if err != nil {
				return cli.Exit("xdpcache deploy: "+err.Error(), exitUsage)
			}
			d, err := deploy.Deploy(opts)
			if err != nil {
				return cli.Exit("xdpcache deploy: "+err.Error(), exitCodeFor(err))
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, d)
			}
			if opts.DryRun {
				fmt.Fprintf(c.App.Writer, "xdpcache deploy --dry-run on %s would:\n", d.Iface)
				for i, step := range d.Plan {
					fmt.Fprintf(c.App.Writer, "  %d. %s\n", i+1, step)
				}
				return nil
			}
			printDeployment(c.App.Writer, c.App.ErrWriter, d)
			return nil
		},
	}
}

// exitCodeFor maps the typed errors of deploy, record and netdev to exit
// codes (docs/cli.md).
func exitCodeFor(err error) int {
	switch {
	case errors.Is(err, netdev.ErrNoInterface), errors.Is(err, record.ErrNotDeployed), errors.Is(err, record.ErrNoBPFFS):
		return exitNotFound
	case errors.Is(err, deploy.ErrNoMode):
		return exitNoMode
	}
	return exitFailed
}

func printDeployment(w, ew io.Writer, d *record.Deployment) {
	for _, a := range d.Attempts {
		if !a.OK {
			fmt.Fprintf(w, "  %s mode: not used: %s\n", a.Mode, a.Why)
		}
	}
	fmt.Fprintf(w, "xdpcache deployed on %s in %s mode (XDP via %s, prog %d; TC egress via %s, prog %d)\n",
		d.Iface, d.Mode, d.XDPAttach, d.XDPProgID, d.TCAttach, d.TCProgID)
	fmt.Fprintf(w, "  pins: %s\n", d.PinDir)
	var allow []string
	for _, p := range d.Allow {
		allow = append(allow, p.String())
	}
	fmt.Fprintf(w, "  serving sources: %s\n", strings.Join(allow, ", "))
	for _, warn := range d.Warnings {
		fmt.Fprintf(ew, "WARNING: %s\n", warn)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func undeployCommand() *cli.Command {
	return &cli.Command{
		Name:  "undeploy",
		Usage: "remove everything xdpcache attached to an interface",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "iface", Aliases: []string{"i"}, Required: true, Usage: "interface"},
			&cli.StringFlag{Name: "pin-root", Value: record.DefaultRoot, Hidden: true},
		},
		Action: func(c *cli.Context) error {
			if err := deploy.Undeploy(c.String("iface"), c.String("pin-root")); err != nil {
				return cli.Exit("xdpcache undeploy: "+err.Error(), exitFailed)
			}
			fmt.Fprintf(c.App.Writer, "xdpcache removed from %s\n", c.String("iface"))
			return nil
		},
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show deployments and their counters",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "iface", Aliases: []string{"i"}, Usage: "only this interface"},
			&cli.BoolFlag{Name: "json", Usage: "print as JSON"},
			&cli.StringFlag{Name: "pin-root", Value: record.DefaultRoot, Hidden: true},
		},
		Action: func(c *cli.Context) error {
			ifaces := []string{c.String("iface")}
			if ifaces[0] == "" {
				var err error
				if ifaces, err = deploy.List(c.String("pin-root")); err != nil {
					return cli.Exit("xdpcache status: "+err.Error(), exitCodeFor(err))
				}
			}
			all := []*deploy.Status{}
			for _, i := range ifaces {
				st, err := deploy.ReadStatus(c.String("pin-root"), i)
				if err != nil {
					return cli.Exit("xdpcache status: "+err.Error(), exitCodeFor(err))
				}
				all = append(all, st)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, all)
			}
			if len(all) == 0 {
				fmt.Fprintln(c.App.Writer, "xdpcache is not deployed on any interface")
			}
			for _, st := range all {
				printStatus(c.App.Writer, st)
			}
			return nil
		},
	}
}

func printStatus(w io.Writer, st *deploy.Status) {
	state := "attached"
	if !st.Attached {
		state = "NOT ATTACHED (the XDP program was removed by someone else; run deploy again)"
	}
	fmt.Fprintf(w, "%s: %s mode, %s, XDP prog %d (%s), TC prog %d (%s), deployed %s (%s ago)\n",
		st.Iface, st.Mode, state, st.XDPProgID, st.XDPAttach, st.TCProgID, st.TCAttach,
		st.DeployedAt.Format(time.RFC3339), time.Since(st.DeployedAt).Truncate(time.Second))
	s := st.Settings
	fmt.Fprintf(w, "  settings: ports %v, %d entries, values <= %d B, max age %s, write hold %s\n",
		s.Ports, s.Entries, s.MaxValue, s.MaxAge, s.WriteHold)
	fmt.Fprintf(w, "  hit ratio %.1f%% (%d of %d GET requests answered in the kernel), occupancy ~%.1f%% of %d buckets\n",
		100*st.HitRatio, st.Stats.Get(bpf.StatHits), st.Stats.Get(bpf.StatGetReqs), 100*st.Occupancy, s.Entries)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for i, v := range st.Stats {
		if v != 0 {
			fmt.Fprintf(tw, "  %s\t%d\n", bpf.StatName(bpf.Stat(i)), v)
		}
	}
	tw.Flush()
}
