package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/probe"
	"github.com/xdpcache/xdpcache/offload/record"
)

func probeCommand() *cli.Command {
	return &cli.Command{
		Name:  "probe",
		Usage: "report what a NIC can do, what to fix, and the XDP mode deploy would choose (changes nothing)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "iface", Aliases: []string{"i"}, Usage: "interface (default: every interface)"},
			&cli.UintSliceFlag{Name: "port", Value: cli.NewUintSlice(11211), Usage: "memcached UDP port (repeatable)"},
			&cli.StringFlag{Name: "mode", Value: string(mode.Auto), Usage: "mode to plan for: " + mode.List()},
			&cli.BoolFlag{Name: "no-generic", Usage: "plan without falling back to generic mode"},
			entriesFlag(), allowFlag(), anyDestinationFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print as JSON (schema: docs/probe.md)"},
			&cli.StringFlag{Name: "pin-root", Value: record.DefaultRoot, Hidden: true},
		},
		Action: func(c *cli.Context) error {
			iface := c.String("iface")
			opts, dopts, err := probeOptions(c)
			if err != nil {
				return cli.Exit("xdpcache probe: "+err.Error(), exitUsage)
			}
			reports, err := probeReports(iface, opts, dopts)
			if err != nil {
				return err
			}
			printReports(c, reports, iface != "")
			return noModeExit(reports, iface != "")
		},
	}
}

// maxIfaceName is the longest interface name the kernel accepts (IFNAMSIZ - 1).
const maxIfaceName = 15

// probeOptions validates probe's flags and arguments.
func probeOptions(c *cli.Context) (probe.Options, probe.DecideOptions, error) {
	if c.Args().Present() {
		return probe.Options{}, probe.DecideOptions{}, fmt.Errorf("unexpected argument %q: name the interface with --iface %s", c.Args().First(), c.Args().First())
	}
	if iface := c.String("iface"); c.IsSet("iface") && (iface == "" || len(iface) > maxIfaceName || strings.ContainsAny(iface, "/ \t\n")) {
		return probe.Options{}, probe.DecideOptions{}, fmt.Errorf("--iface %q: not an interface name (1..%d characters, no '/' or spaces; ip link show lists them)", iface, maxIfaceName)
	}
	var ports []uint16
	for _, p := range c.UintSlice("port") {
		if p == 0 || p > 65535 {
			return probe.Options{}, probe.DecideOptions{}, fmt.Errorf("--port %d: ports are 1..65535", p)
		}
		ports = append(ports, uint16(p))
	}
	m, err := modeFlag(c)
	if err != nil {
		return probe.Options{}, probe.DecideOptions{}, err
	}
	entries, err := entriesValue(c)
	if err != nil {
		return probe.Options{}, probe.DecideOptions{}, err
	}
	allow, err := allowPrefixes(c)
	if err != nil {
		return probe.Options{}, probe.DecideOptions{}, err
	}
	return probe.Options{Ports: ports, PinRoot: c.String("pin-root")},
		probe.DecideOptions{Requested: m, NoGeneric: c.Bool("no-generic"), Entries: entries,
			RequireLocal: !c.Bool("any-destination"), Allow: len(allow)}, nil
}

// probeReports probes iface, or every interface when iface is "".
func probeReports(iface string, opts probe.Options, dopts probe.DecideOptions) ([]*probe.Report, error) {
	if iface == "" {
		reports, err := probe.ProbeAll(opts, dopts)
		if err != nil {
			return nil, cli.Exit("xdpcache probe: "+err.Error(), exitFailed)
		}
		return reports, nil
	}
	r, err := probe.Run(iface, opts, dopts)
	if err != nil {
		return nil, cli.Exit("xdpcache probe: "+err.Error(), exitCodeFor(err))
	}
	return []*probe.Report{r}, nil
}

// printReports prints one report (single) or all of them, as JSON or text.
func printReports(c *cli.Context, reports []*probe.Report, single bool) {
	switch {
	case c.Bool("json") && single:
		printJSON(c.App.Writer, reports[0])
	case c.Bool("json"):
		printJSON(c.App.Writer, reports)
	default:
		color := isTerminal(c.App.Writer)
		for _, r := range reports {
			printReport(c.App.Writer, r, color)
		}
	}
}

// noModeExit is exitNoMode when no probed interface has a usable mode (for
// --iface: that interface), with the first reason; nil otherwise.
func noModeExit(reports []*probe.Report, single bool) error {
	var names []string
	for _, r := range reports {
		if r.Plan.Mode != "" {
			return nil
		}
		names = append(names, r.Iface)
	}
	if len(reports) == 0 {
		return cli.Exit("xdpcache probe: no interfaces in this network namespace", exitNoMode)
	}
	first := reports[0]
	if single {
		return cli.Exit(fmt.Sprintf("xdpcache probe: no XDP mode is usable on %s: %s", first.Iface, firstReason(first.Plan)), exitNoMode)
	}
	return cli.Exit(fmt.Sprintf("xdpcache probe: no XDP mode is usable on any interface (%s); %s: %s",
		strings.Join(names, ", "), first.Iface, firstReason(first.Plan)), exitNoMode)
}

func firstReason(p probe.Plan) string {
	for _, s := range p.Steps {
		if !s.Usable {
			return s.Reason
		}
	}
	return "no mode considered"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func printReport(w io.Writer, r *probe.Report, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	mark := map[probe.CheckStatus]string{probe.Pass: paint("32", "✔"), probe.Warn: paint("33", "!"), probe.Fail: paint("31", "✘")}
	fmt.Fprintf(w, "%s (ifindex %d)\n", paint("1", r.Iface), r.Ifindex)
	fmt.Fprintf(w, "  device:    driver %s %s, firmware %s, bus %s\n", or(r.Driver), r.DriverVersion, or(r.Firmware), or(r.BusInfo))
	fmt.Fprintf(w, "             type %s, %s, MTU %d (min %d, max %d)", r.LinkType, r.OperState, r.MTU, r.MinMTU, r.MaxMTU)
	if r.Master != "" {
		fmt.Fprintf(w, ", port of %s", r.Master)
	}
	fmt.Fprintln(w)
	if ch := r.Channels; ch != nil {
		fmt.Fprintf(w, "             channels rx %d tx %d combined %d (max %d/%d/%d)\n", ch.RX, ch.TX, ch.Combined, ch.MaxRX, ch.MaxTX, ch.MaxCombined)
	}
	var feats []string
	for k, v := range r.Features {
		if v {
			feats = append(feats, k)
		}
	}
	sort.Strings(feats)
	fmt.Fprintf(w, "             offloads on: %s\n", strings.Join(feats, " "))
	if p := r.VethPeer; p != nil {
		fmt.Fprintf(w, "  veth peer: %s\n", describePeer(p))
	}
	if len(r.Uppers) > 0 {
		fmt.Fprintf(w, "  uppers:    %s\n", describeUppers(r.Uppers))
	}
	if r.XDPFeatures.Available {
		flags := strings.Join(r.XDPFeatures.Flags, " ")
		if flags == "" {
			flags = "none, generic mode only"
		}
		fmt.Fprintf(w, "  XDP:       %s (0x%x)", flags, r.XDPFeatures.Raw)
		if r.XDPFeatures.ZCMaxSegs > 0 {
			fmt.Fprintf(w, ", zero-copy max segments %d", r.XDPFeatures.ZCMaxSegs)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "  XDP:       unknown to the kernel: %s\n", r.XDPFeatures.Reason)
	}
	if o := r.Offload; o != nil {
		if o.Maps {
			fmt.Fprintf(w, "  offload:   device maps of %d entries of %d bytes accepted (largest tried that fit); items up to %d bytes\n",
				o.MaxEntries, o.ElemBytes, o.ItemBytes)
		} else {
			fmt.Fprintf(w, "  offload:   no device maps: %s\n", o.Reason)
		}
	}
	attached := r.XDP.Attached
	if r.XDPProgName != "" {
		attached += fmt.Sprintf(" (%s, drv %d skb %d hw %d)", r.XDPProgName, r.XDP.DrvProgID, r.XDP.SkbProgID, r.XDP.HwProgID)
	}
	fmt.Fprintf(w, "  attached:  XDP %s; tc egress: %s\n", attached, or(strings.Join(r.TCFilters, ", ")))
	if l := r.LibXDP; l != nil {
		switch {
		case l.State != nil && l.State.Dispatcher != nil:
			var progs []string
			for _, c := range l.State.Dispatcher.Components {
				progs = append(progs, fmt.Sprintf("%s (priority %d, chain %s)", c.Name, c.Priority, c.Chain))
			}
			fmt.Fprintf(w, "  libxdp:    dispatcher %d in %s mode runs %s\n", l.State.Dispatcher.ProgID, l.State.Mode, strings.Join(progs, ", "))
		case l.State != nil && l.State.NotDispatcher != "":
			fmt.Fprintf(w, "  libxdp:    %s looks like a dispatcher but is not usable: %s\n", l.State.ProgName, l.State.NotDispatcher)
		}
		if !l.Supported {
			fmt.Fprintf(w, "  libxdp:    programs cannot run under a dispatcher here: %s\n", l.Why)
		}
	}
	k := r.Kernel
	fmt.Fprintf(w, "  kernel:    %s, BTF %v, bpffs %v, spin lock %v, XDP link %v, TCX %v\n", k.Version, k.BTF, k.BPFFS, k.SpinLock, k.XDPLink, k.TCX)
	fmt.Fprintf(w, "  memcached: UDP ports %v, listening %v\n", r.Memcached.Ports, r.Memcached.UDPListening)
	for i, p := range r.WritePaths {
		label := "           "
		if i == 0 {
			label = "writes:    "
		}
		seen := "seen"
		if !p.Covered {
			seen = paint("33", "NOT SEEN")
		}
		fmt.Fprintf(w, "  %s%s %s: %s\n", label, p.Iface, seen, p.Why)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note:      %s\n", n)
	}
	fmt.Fprintln(w, "  checks:")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "    %s %-14s %s\n", mark[c.Status], c.ID, c.Reason)
		if c.Status != probe.Pass && c.Fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", c.Fix)
		}
	}
	fmt.Fprintln(w, "  plan:")
	for _, s := range r.Plan.Steps {
		m := mark[probe.Fail]
		if s.Usable {
			m = mark[probe.Pass]
		}
		fmt.Fprintf(w, "    %s %-8s %s\n", m, s.Mode, s.Reason)
	}
	fmt.Fprintf(w, "  => %s\n", planVerdict(r.Plan, paint))
	for _, warn := range r.Plan.Warnings {
		fmt.Fprintf(w, "  %s %s\n", paint("33", "WARNING:"), warn)
	}
	fmt.Fprintln(w)
}

// describePeer is the veth peer's line: name, where it lives, its XDP.
func describePeer(p *probe.VethPeer) string {
	name := fmt.Sprintf("%s (ifindex %d)", p.Name, p.Ifindex)
	if p.Name == "" {
		name = fmt.Sprintf("ifindex %d", p.Ifindex)
	}
	where := "same network namespace"
	switch {
	case !p.SameNetns && p.NetnsName != "":
		where = fmt.Sprintf("network namespace %s (id %d here)", p.NetnsName, p.NetnsID)
	case !p.SameNetns:
		where = fmt.Sprintf("another network namespace (id %d here)", p.NetnsID)
	}
	xdp := "XDP unknown (its state could not be read)"
	switch {
	case p.Checked && p.XDPAttached:
		xdp = "XDP " + p.XDP
	case p.Checked:
		xdp = "no XDP program"
	}
	return fmt.Sprintf("%s, %s: %s", name, where, xdp)
}

// describeUppers lists the devices stacked on the interface with their XDP.
func describeUppers(uppers []probe.UpperDev) string {
	parts := make([]string, 0, len(uppers))
	for _, u := range uppers {
		parts = append(parts, fmt.Sprintf("%s (%s, %s): %s", u.Name, u.Kind, u.Relation, u.XDP.Describe()))
	}
	return strings.Join(parts, "; ")
}

// planVerdict is the plan's last line, worded for the mode asked for: what
// auto would choose, or whether the requested mode is possible.
func planVerdict(p probe.Plan, paint func(code, s string) string) string {
	requested := p.Requested.Resolve()
	if requested.IsAuto() {
		if p.Mode == "" {
			return "auto: " + paint("31", "no usable mode")
		}
		return fmt.Sprintf("deploy --mode auto would use %s mode", paint("1", string(p.Mode)))
	}
	if p.Mode == "" {
		return fmt.Sprintf("%s: %s because %s", requested, paint("31", "not possible"), firstReason(p))
	}
	return fmt.Sprintf("%s: deploy --mode %s would attach in %s mode", requested, requested, paint("1", string(p.Mode)))
}
