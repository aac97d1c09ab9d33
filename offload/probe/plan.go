package probe

import (
	"fmt"
	"slices"

	"github.com/xdpcache/xdpcache/nicdb"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/netdev"
)

// PlanStep is one mode considered, in order.
type PlanStep struct {
	Mode   mode.Mode `json:"mode"`
	Usable bool      `json:"usable"`
	Reason string    `json:"reason"`
	// Final: not usable even when asked for by name (a check found the
	// attach would succeed and the cache then lose its replies).
	Final bool `json:"final,omitempty"`
}

// Plan is the mode deploy would choose, and why.
type Plan struct {
	Requested mode.Mode  `json:"requested"` // the mode asked for: auto, offload, native or generic
	Mode      mode.Mode  `json:"mode"`      // "" when no mode is usable
	Steps     []PlanStep `json:"steps"`
	Warnings  []string   `json:"warnings,omitempty"`
}

// DecideOptions: what the user asked for.
type DecideOptions struct {
	Requested mode.Mode // auto ("" too), offload, native or generic
	NoGeneric bool
	Force     bool // a foreign program will be replaced
	// Entries is the cache size asked for: offload needs device maps that
	// large (0: not checked).
	Entries uint32
	// RequireLocal: the cache answers only requests to this host's own
	// addresses (deploy's default), so the offload flavor's device map holds
	// every one of them.
	RequireLocal bool
	// Allow is how many allow-list prefixes were given (0: the interface's
	// subnets, Report.Subnets).
	Allow int
}

// genericWarning is said whenever generic mode is chosen or asked for.
const genericWarning = "generic (skb) mode: slower — XDP runs after the kernel has built an skb, which costs most of the speed-up; native mode needs a driver with XDP support"

// Decide chooses a mode from a probe report. It is a pure function of its inputs.
func Decide(r *Report, checks []Check, o DecideOptions) Plan {
	kv, kerr := nicdb.ParseKernelVersion(r.Kernel.Version)
	blocked := func(m mode.Mode) (string, bool) {
		for _, c := range checks {
			if c.ID == "attached" && o.Force {
				continue
			}
			if c.Blocks(m) {
				return c.Reason + " (fix: " + c.Fix + ")", true
			}
		}
		return "", false
	}
	silent := func(m mode.Mode) bool {
		return slices.ContainsFunc(checks, func(c Check) bool { return c.Silent && c.Blocks(m) })
	}
	step := func(m mode.Mode) PlanStep {
		switch m {
		case mode.Offload:
			return offloadStep(r, o, kv, kerr == nil, blocked)
		case mode.Native:
			ok := r.XDPFeatures.Has(netdev.XDPBasic)
			src := "the driver supports native XDP (netdev xdp-features: basic)"
			if !r.XDPFeatures.Available {
				ok = r.NICDB != nil && kerr == nil && r.NICDB.NativeAt(kv)
				src = fmt.Sprintf("nicdb: %s has native XDP on this kernel", r.Driver)
				if !ok {
					return PlanStep{Mode: m, Usable: false, Reason: fmt.Sprintf("the kernel does not report XDP features and nicdb does not list native XDP for %q on %s", r.Driver, r.Kernel.Version)}
				}
			}
			if !ok {
				who := "the device"
				if r.Driver != "" {
					who = "the " + r.Driver + " driver"
				}
				return PlanStep{Mode: m, Usable: false, Reason: who + " has no native XDP (netdev xdp-features lacks basic)"}
			}
			if why, b := blocked(m); b {
				return PlanStep{Mode: m, Reason: why, Final: silent(m)}
			}
			return PlanStep{Mode: m, Usable: true, Reason: src}
		default:
			if o.NoGeneric && o.Requested.IsAuto() {
				return PlanStep{Mode: m, Usable: false, Reason: "--no-generic: generic mode is not allowed"}
			}
			if why, b := blocked(m); b {
				return PlanStep{Mode: m, Reason: why, Final: silent(m)}
			}
			return PlanStep{Mode: m, Usable: true, Reason: "generic mode works on every device"}
		}
	}
	p := Plan{Requested: o.Requested.Resolve()}
	modes := []mode.Mode{p.Requested}
	if p.Requested.IsAuto() {
		modes = mode.Attached()
	}
	for _, m := range modes {
		s := step(m)
		p.Steps = append(p.Steps, s)
		if s.Usable && p.Mode == "" {
			p.Mode = m
		}
	}
	if p.Mode != "" {
		p.Warnings = ModeWarnings(p.Mode, checks)
	}
	return p
}

// ModeWarnings is what an operator should know about running in mode m:
// the warnings of the checks that name m, and generic mode's cost.
func ModeWarnings(m mode.Mode, checks []Check) []string {
	var out []string
	if m == mode.Generic {
		out = append(out, genericWarning)
	}
	for _, c := range checks {
		if c.Status == Warn && slices.Contains(c.Modes, m) {
			out = append(out, c.Reason+" (fix: "+c.Fix+")")
		}
	}
	return out
}

// offloadStep: offload needs a device that holds offloaded maps (measured
// by the probe when it could; else what the kernel or nicdb says) as large
// as the cache asked for.
func offloadStep(r *Report, o DecideOptions, kv nicdb.KernelVersion, kvOK bool, blocked func(mode.Mode) (string, bool)) PlanStep {
	m := mode.Offload
	advertised := r.XDPFeatures.Has(netdev.XDPHWOffload)
	src := "the device advertises hw-offload"
	if !r.XDPFeatures.Available {
		advertised = r.NICDB != nil && kvOK && r.NICDB.OffloadAt(kv)
		src = "nicdb lists hardware offload for " + r.Driver
	}
	d := r.Offload
	switch {
	case d != nil && d.Maps:
		src = fmt.Sprintf("the device holds offloaded maps (measured: %d entries of %d bytes)", d.MaxEntries, d.ElemBytes)
	case d != nil && advertised:
		return PlanStep{Mode: m, Usable: false, Reason: src + ", but it refused an offloaded map: " + d.Reason}
	case !advertised:
		return PlanStep{Mode: m, Usable: false, Reason: "the device does not offer XDP hardware offload"}
	}
	if d != nil && d.MaxEntries > 0 && o.Entries > d.MaxEntries {
		return PlanStep{Mode: m, Usable: false, Reason: fmt.Sprintf("%d cache entries do not fit the device's maps (at most %d measured): use --entries %d or less for offload",
			o.Entries, d.MaxEntries, d.MaxEntries)}
	}
	if d != nil && d.MaxEntries > 0 {
		allow := o.Allow
		if allow == 0 {
			allow = len(r.Subnets)
		}
		if o.RequireLocal && r.LocalAddrs > int(d.MaxEntries) {
			return PlanStep{Mode: m, Usable: false, Reason: fmt.Sprintf("answering only this host's %d addresses needs a device map that holds them, and the device's hold at most %d: use --any-destination for offload",
				r.LocalAddrs, d.MaxEntries)}
		}
		if allow > int(d.MaxEntries) {
			return PlanStep{Mode: m, Usable: false, Reason: fmt.Sprintf("the allow-list's %d prefixes do not fit the device's maps (at most %d measured): give at most %d with --allow for offload",
				allow, d.MaxEntries, d.MaxEntries)}
		}
	}
	if why, b := blocked(m); b {
		return PlanStep{Mode: m, Usable: false, Reason: why}
	}
	return PlanStep{Mode: m, Usable: true, Reason: src}
}
