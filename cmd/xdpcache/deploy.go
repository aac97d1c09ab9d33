package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/offload/deploy"
	"github.com/xdpcache/xdpcache/offload/dispatch"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/netdev"
	"github.com/xdpcache/xdpcache/offload/record"
)

func settingsFlags() []cli.Flag {
	d := bpf.DefaultSettings()
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "iface", Aliases: []string{"i"}, EnvVars: []string{"XDPCACHE_IFACE"}, Required: true,
			Usage: "network interface clients reach memcached through (repeatable: one deployment whose interfaces share one cache)"},
		&cli.BoolFlag{Name: "listed-only", Usage: "writes reach memcached only through the --iface interfaces: watch no other interface (lo included) for them"},
		&cli.StringFlag{Name: "mode", Value: string(mode.Auto), EnvVars: []string{"XDPCACHE_MODE"}, Usage: "XDP mode: " + mode.List()},
		&cli.BoolFlag{Name: "no-generic", Usage: "with --mode auto: fail rather than fall back to generic mode"},
		&cli.UintSliceFlag{Name: "port", Value: cli.NewUintSlice(11211), Usage: "memcached port (repeatable, up to 4)"},
		entriesFlag(),
		&cli.UintFlag{Name: "max-value-size", Value: uint(d.MaxValue), Usage: fmt.Sprintf("largest value cached, bytes (at most %d)", bpf.MaxValueCap)},
		&cli.DurationFlag{Name: "max-age", Value: d.MaxAge, Usage: "longest time an entry is served without memcached being asked again"},
		&cli.DurationFlag{Name: "write-hold", Value: d.WriteHold, Usage: "fills of a key are refused this long after a write nothing acknowledges exactly (noreply, quiet binary, ...); acknowledged writes do not need it (docs/consistency.md)"},
		allowFlag(),
		&cli.UintFlag{Name: "unlisted-amplification", Usage: "serve sources outside --allow only if the reply is at most this many times the request (0: never)"},
		anyDestinationFlag(),
		&cli.UintFlag{Name: "mtu", Value: uint(d.MTU), Usage: "largest reply packet (IP bytes)"},
		&cli.BoolFlag{Name: "shadow", Usage: "shadow mode: answer nothing, pass every GET to memcached and count what the cache would have answered and any reply that differs (docs/shadow.md); deploy without it to go live, keeping the cache"},
		&cli.BoolFlag{Name: "force", Usage: "replace an XDP program xdpcache did not attach (one running alone; a libxdp dispatcher is joined instead)"},
		&cli.BoolFlag{Name: "dispatcher", Usage: "run under a libxdp multi-program dispatcher even with no other XDP program, so xdp-loader can add programs beside xdpcache (one already there is always joined)"},
		&cli.StringFlag{Name: "adopt", Usage: "the object file (.o) of the XDP program running alone on the interface: move it into a libxdp dispatcher with xdpcache beside it (loaded again from the file, keeping its maps; its tag must match)"},
		&cli.UintFlag{Name: "xdp-priority", Value: deploy.DefaultPriority, Usage: "run priority in a libxdp dispatcher: lower runs first (libxdp's default is 50)"},
		&cli.StringFlag{Name: "chain-call", Value: "XDP_PASS", Usage: "in a libxdp dispatcher, the XDP actions after which the next program runs (comma-separated)"},
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
	var err error
	if s.Entries, err = entriesValue(c); err != nil {
		return deploy.Options{}, err
	}
	if c.Uint("max-value-size") > bpf.MaxValueCap {
		return deploy.Options{}, fmt.Errorf("--max-value-size %d: at most %d", c.Uint("max-value-size"), bpf.MaxValueCap)
	}
	s.MaxValue = uint32(c.Uint("max-value-size"))
	s.MaxAge = c.Duration("max-age")
	s.WriteHold = c.Duration("write-hold")
	s.MTU = uint32(min(c.Uint("mtu"), 1<<16))
	s.UnlistedAmp = uint32(min(c.Uint("unlisted-amplification"), 1<<16))
	s.RequireLocal = !c.Bool("any-destination")
	s.Shadow = c.Bool("shadow")
	if err := s.Validate(); err != nil {
		return deploy.Options{}, err
	}
	allow, err := allowPrefixes(c)
	if err != nil {
		return deploy.Options{}, err
	}
	m, err := modeFlag(c)
	if err != nil {
		return deploy.Options{}, err
	}
	if s.Shadow && m == mode.Offload {
		return deploy.Options{}, errors.New("--shadow contradicts --mode offload: shadow mode runs in the host flavor (native, generic or auto)")
	}
	ifaces := c.StringSlice("iface")
	if len(ifaces) == 0 {
		return deploy.Options{}, errors.New("--iface: give at least one interface")
	}
	for i, n := range ifaces {
		if slices.Contains(ifaces[:i], n) {
			return deploy.Options{}, fmt.Errorf("--iface %s is given twice", n)
		}
	}
	chain, err := dispatch.ParseActions(c.String("chain-call"))
	if err != nil {
		return deploy.Options{}, fmt.Errorf("--chain-call %q: %w", c.String("chain-call"), err)
	}
	if c.Uint("xdp-priority") > 1<<31 {
		return deploy.Options{}, fmt.Errorf("--xdp-priority %d: too large", c.Uint("xdp-priority"))
	}
	return deploy.Options{
		Share: deploy.Share{Dispatcher: c.Bool("dispatcher"), Priority: uint32(c.Uint("xdp-priority")), ChainCall: chain, Adopt: c.String("adopt")},
		Iface: ifaces[0], More: ifaces[1:], ListedOnly: c.Bool("listed-only"), Mode: m, NoGeneric: c.Bool("no-generic"), Settings: s, Allow: allow,
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
				fmt.Fprintf(c.App.Writer, "xdpcache deploy --dry-run on %s would:\n", strings.Join(d.Ifaces(), ", "))
				for i, step := range d.Plan {
					fmt.Fprintf(c.App.Writer, "  %d. %s\n", i+1, step)
				}
				printCoverage(c.App.Writer, d.Coverage)
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
	for _, m := range d.Members {
		fmt.Fprintf(w, "  and on %s (%s) in %s mode (XDP via %s, prog %d; TC egress via %s), same cache\n",
			m.Iface, m.Role, m.Mode, m.XDPAttach, m.XDPProgID, m.TCAttach)
	}
	if m := d.Dispatcher; m != nil {
		fmt.Fprintf(w, "  in the interface's libxdp dispatcher at priority %d, the next program runs after %s (xdp-loader status %s lists it)\n",
			m.Priority, m.ChainCall, d.Iface)
	}
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

// printCoverage prints the paths writes can take to memcached and whether
// the deployment sees them.
func printCoverage(w io.Writer, paths []record.Path) {
	if len(paths) == 0 {
		return
	}
	fmt.Fprintln(w, "paths writes can take to memcached:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, p := range paths {
		seen := "NOT SEEN"
		if p.Covered {
			seen = "seen"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", p.Iface, seen, p.Why)
	}
	tw.Flush()
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
			&cli.StringSliceFlag{Name: "iface", Aliases: []string{"i"}, Required: true,
				Usage: "an interface of the deployment (repeatable); the whole deployment it belongs to is removed"},
			&cli.StringFlag{Name: "pin-root", Value: record.DefaultRoot, Hidden: true},
		},
		Action: func(c *cli.Context) error {
			for _, iface := range c.StringSlice("iface") {
				names := []string{iface}
				if st, err := deploy.ReadStatus(c.String("pin-root"), iface); err == nil {
					names = st.Ifaces() // the whole deployment goes
				}
				if err := deploy.Undeploy(iface, c.String("pin-root")); err != nil {
					return cli.Exit("xdpcache undeploy: "+err.Error(), exitFailed)
				}
				fmt.Fprintf(c.App.Writer, "xdpcache removed from %s\n", strings.Join(names, ", "))
			}
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
			&cli.StringSliceFlag{Name: "key", Usage: "print this key's hash with each deployment's seed (to match shadow-mode mismatches), its set and the ways holding it (repeatable)"},
			&cli.StringFlag{Name: "pin-root", Value: record.DefaultRoot, Hidden: true},
		},
		Action: func(c *cli.Context) error {
			for _, k := range c.StringSlice("key") {
				if len(k) == 0 || len(k) > bpf.MaxKey {
					return cli.Exit(fmt.Sprintf("xdpcache status: --key %q: memcached keys are 1..%d bytes", k, bpf.MaxKey), exitUsage)
				}
			}
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
				for _, k := range c.StringSlice("key") {
					places, err := deploy.FindKey(c.String("pin-root"), st.Iface, k)
					if err != nil {
						return cli.Exit("xdpcache status: "+err.Error(), exitCodeFor(err))
					}
					printKeyPlaces(c.App.Writer, k, places)
				}
			}
			return nil
		},
	}
}

// printKeyPlaces prints where key is in each memcached instance of a
// deployment: its hash and, in the host flavor, its set and the ways holding
// it.
func printKeyPlaces(w io.Writer, key string, places []deploy.KeyAt) {
	for _, at := range places {
		fmt.Fprintf(w, "  key %q at %s: hash %#016x", key, at.Where, at.Hash)
		if at.Read {
			ways := bpf.SetWays(at.Set)
			fmt.Fprintf(w, ", set %d (entries %d and %d)", at.Set, ways[0], ways[1])
			if len(at.Ways) == 0 {
				fmt.Fprint(w, ", not cached")
			} else {
				var ways []string
				for _, way := range at.Ways {
					ways = append(ways, fmt.Sprint(way))
				}
				fmt.Fprintf(w, ", cached in way %s", strings.Join(ways, " and "))
			}
		}
		fmt.Fprintln(w)
	}
}

// shownMismatches is how many of the last shadow mismatches status prints.
const shownMismatches = 10

func printStatus(w io.Writer, st *deploy.Status) {
	state := "attached"
	if !st.Attached {
		state = "NOT ATTACHED (the XDP program was removed by someone else; run deploy again)"
	}
	fmt.Fprintf(w, "%s: %s mode, %s, XDP prog %d (%s), TC prog %d (%s), deployed %s (%s ago)\n",
		st.Iface, st.Mode, state, st.XDPProgID, st.XDPAttach, st.TCProgID, st.TCAttach,
		st.DeployedAt.Format(time.RFC3339), time.Since(st.DeployedAt).Truncate(time.Second))
	for _, m := range st.Members {
		fmt.Fprintf(w, "  and %s (%s): %s mode, XDP prog %d (%s), TC prog %d (%s)\n", m.Iface, m.Role, m.Mode, m.XDPProgID, m.XDPAttach, m.TCProgID, m.TCAttach)
	}
	if st.ListedOnly {
		fmt.Fprintln(w, "  --listed-only: writes through other interfaces (lo included) are not seen")
	}
	for _, p := range st.Coverage {
		if !p.Covered && !st.ListedOnly {
			fmt.Fprintf(w, "  writes through %s NOT seen: %s\n", p.Iface, p.Why)
		}
	}
	if n := len(st.Settings.Instances); n > 0 {
		fmt.Fprintf(w, "  memcached instances told apart by address: %d listening sockets\n", n)
	}
	if d := st.LibXDP; d != nil {
		fmt.Fprintf(w, "  in the libxdp dispatcher (program %d), in run order:\n", d.ProgID)
		for _, c := range d.Components {
			me := ""
			if c.ProgID == st.XDPProgID {
				me = "  <- xdpcache"
			}
			fmt.Fprintf(w, "    %d. %s (prog %d, priority %d, next after %s)%s\n", c.Slot, c.Name, c.ProgID, c.Priority, c.Chain, me)
		}
	}
	s := st.Settings
	fmt.Fprintf(w, "  settings: ports %v, %d entries, values <= %d B, max age %s, write hold %s\n",
		s.Ports, s.Entries, s.MaxValue, s.MaxAge, s.WriteHold)
	fmt.Fprintf(w, "  hit ratio %.1f%% (%d of %d GET requests answered in the kernel), occupancy ~%.1f%% of %d entries\n",
		100*st.HitRatio, st.Stats.Get(bpf.StatHits), st.Stats.Get(bpf.StatGetReqs), 100*st.Occupancy, s.Entries)
	fmt.Fprintf(w, "  evictions %d (fills that replaced another key's live entry: more --entries would keep them), %d keys found in their set's second way\n",
		st.Stats.Get(bpf.StatEvictions), st.Stats.Get(bpf.StatHitWay1))
	if s.Shadow || st.Shadow.WouldAnswer > 0 {
		state := "SHADOW MODE (nothing is answered in the kernel)"
		if !s.Shadow {
			state = "live now; in shadow mode earlier"
		}
		fmt.Fprintf(w, "  %s: %s\n", state, st.Shadow)
		for i, m := range st.ShadowMismatches {
			if i == shownMismatches {
				fmt.Fprintf(w, "    ... %d more (--json lists them)\n", len(st.ShadowMismatches)-i)
				break
			}
			fmt.Fprintf(w, "    mismatch %s: key hash %#016x, %s\n", m.At.Format(time.RFC3339Nano), m.KeyHash, m.Reason)
		}
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for i, v := range st.Stats {
		if v != 0 {
			fmt.Fprintf(tw, "  %s\t%d\n", bpf.StatName(bpf.Stat(i)), v)
		}
	}
	tw.Flush()
}
