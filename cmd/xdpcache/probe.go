package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/offload"
)

func probeCommand() *cli.Command {
	return &cli.Command{
		Name:  "probe",
		Usage: "report what a NIC can do, what to fix, and the XDP mode deploy would choose (changes nothing)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "iface", Aliases: []string{"i"}, Usage: "interface (default: every interface)"},
			&cli.UintSliceFlag{Name: "port", Value: cli.NewUintSlice(11211), Usage: "memcached UDP port (repeatable)"},
			&cli.StringFlag{Name: "mode", Value: "auto", Usage: "mode to plan for: auto, offload, native or generic"},
			&cli.BoolFlag{Name: "no-generic", Usage: "plan without falling back to generic mode"},
			&cli.BoolFlag{Name: "json", Usage: "print as JSON (schema: docs/probe.md)"},
			&cli.StringFlag{Name: "pin-root", Value: offload.DefaultPinRoot, Hidden: true},
		},
		Action: func(c *cli.Context) error {
			var ports []uint16
			for _, p := range c.UintSlice("port") {
				if p == 0 || p > 65535 {
					return cli.Exit(fmt.Sprintf("xdpcache probe: --port %d: ports are 1..65535", p), exitUsage)
				}
				ports = append(ports, uint16(p))
			}
			switch c.String("mode") {
			case "auto", "offload", "native", "generic":
			default:
				return cli.Exit(fmt.Sprintf("xdpcache probe: --mode %q: use auto, offload, native or generic", c.String("mode")), exitUsage)
			}
			opts := offload.ProbeOptions{Ports: ports, PinRoot: c.String("pin-root")}
			dopts := offload.DecideOptions{Requested: c.String("mode"), NoGeneric: c.Bool("no-generic")}
			var reports []*offload.Report
			if iface := c.String("iface"); iface != "" {
				r, err := offload.ProbeInterface(iface, opts, dopts)
				if err != nil {
					return cli.Exit("xdpcache probe: "+err.Error(), exitNotFound)
				}
				reports = []*offload.Report{r}
			} else {
				var err error
				if reports, err = offload.ProbeAll(opts, dopts); err != nil {
					return cli.Exit("xdpcache probe: "+err.Error(), exitFailed)
				}
			}
			if c.Bool("json") {
				if c.String("iface") != "" {
					printJSON(c.App.Writer, reports[0])
				} else {
					printJSON(c.App.Writer, reports)
				}
			} else {
				color := isTerminal(c.App.Writer)
				for _, r := range reports {
					printReport(c.App.Writer, r, color)
				}
			}
			if c.String("iface") != "" && reports[0].Plan.Mode == "" {
				return cli.Exit(fmt.Sprintf("xdpcache probe: no XDP mode is usable on %s: %s", reports[0].Iface, firstReason(reports[0].Plan)), exitNoMode)
			}
			return nil
		},
	}
}

func firstReason(p offload.Plan) string {
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

func printReport(w io.Writer, r *offload.Report, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	mark := map[offload.CheckStatus]string{offload.Pass: paint("32", "✔"), offload.Warn: paint("33", "!"), offload.Fail: paint("31", "✘")}
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
	if r.XDPFeatures.Available {
		fmt.Fprintf(w, "  XDP:       %s (0x%x)", strings.Join(r.XDPFeatures.Flags, " "), r.XDPFeatures.Raw)
		if r.XDPFeatures.ZCMaxSegs > 0 {
			fmt.Fprintf(w, ", zero-copy max segments %d", r.XDPFeatures.ZCMaxSegs)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "  XDP:       unknown to the kernel: %s\n", r.XDPFeatures.Reason)
	}
	attached := r.XDP.Attached
	if r.XDPProgName != "" {
		attached += fmt.Sprintf(" (%s, drv %d skb %d hw %d)", r.XDPProgName, r.XDP.DrvProgID, r.XDP.SkbProgID, r.XDP.HwProgID)
	}
	fmt.Fprintf(w, "  attached:  XDP %s; tc egress: %s\n", attached, or(strings.Join(r.TCFilters, ", ")))
	k := r.Kernel
	fmt.Fprintf(w, "  kernel:    %s, BTF %v, bpffs %v, spin lock %v, XDP link %v, TCX %v\n", k.Version, k.BTF, k.BPFFS, k.SpinLock, k.XDPLink, k.TCX)
	fmt.Fprintf(w, "  memcached: UDP ports %v, listening %v\n", r.Memcached.Ports, r.Memcached.UDPListening)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note:      %s\n", n)
	}
	fmt.Fprintln(w, "  checks:")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "    %s %-14s %s\n", mark[c.Status], c.ID, c.Reason)
		if c.Status != offload.Pass && c.Fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", c.Fix)
		}
	}
	fmt.Fprintln(w, "  plan:")
	for _, s := range r.Plan.Steps {
		m := mark[offload.Fail]
		if s.Usable {
			m = mark[offload.Pass]
		}
		fmt.Fprintf(w, "    %s %-8s %s\n", m, s.Mode, s.Reason)
	}
	if r.Plan.Mode == "" {
		fmt.Fprintf(w, "  => %s\n", paint("31", "no usable mode"))
	} else {
		fmt.Fprintf(w, "  => deploy --mode auto would use %s mode\n", paint("1", string(r.Plan.Mode)))
	}
	for _, warn := range r.Plan.Warnings {
		fmt.Fprintf(w, "  %s %s\n", paint("33", "WARNING:"), warn)
	}
	fmt.Fprintln(w)
}
