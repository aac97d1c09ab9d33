package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/offload/dispatch"
	"github.com/xdpcache/xdpcache/offload/listeners"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/netdev"
	"github.com/xdpcache/xdpcache/offload/probe"
	"github.com/xdpcache/xdpcache/offload/record"
)

// Options say what to deploy where.
type Options struct {
	Iface string   // the first interface served (its directory holds the pins and the record)
	More  []string // further interfaces served, on the same maps (deploy --iface a --iface b)
	// ListedOnly: writes reach memcached only through the listed interfaces,
	// so no other interface (lo included) is watched for them.
	ListedOnly bool
	Mode       mode.Mode // "" is mode.Auto
	NoGeneric  bool      // auto stops at native
	Settings   bpf.Settings
	Allow      []netip.Prefix // sources served; empty: the interface's own subnets
	Force      bool           // replace a foreign XDP program running alone (a dispatcher is joined, never replaced)
	Share      Share          // sharing the interface through a libxdp dispatcher
	DryRun     bool           // work out and return the plan; change nothing
	PinRoot    string         // "" is record.DefaultRoot
	Log        func(format string, args ...any)

	attachTC func(ifindex int, prog *ebpf.Program, pinDir string) (record.TCAttach, error) // tests inject failures

	paths []record.Path      // the paths writes can take (probe.WritePaths), worked out by Deploy
	socks []listeners.Socket // memcached's listening sockets on the ports
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

// relayWarning is what an offload deployment carries (the plan's warnings
// for its mode come with every deployment: probe.ModeWarnings).
const (
	relayWarning = "offload mode: items reach the device through the relay, so keep `xdpcache run` running " +
		"(the systemd unit does); without it the device still invalidates but never fills, and every GET goes to memcached"
)

// Deploy loads the programs, attaches them to the interface (falling back
// from mode to mode as allowed) and pins everything so it keeps running after
// this process exits. On failure, whatever this call attached is removed.
// With o.DryRun it returns the plan (Deployment.Plan) and changes nothing.
func Deploy(o Options) (*record.Deployment, error) {
	if _, err := mode.Parse(string(o.Mode)); err != nil {
		return nil, err
	}
	o.Mode = o.Mode.Resolve()
	if o.Settings.Shadow && o.Mode == mode.Offload {
		return nil, errors.New(shadowOffload + ": deploy in native or generic mode (or auto) for shadow mode")
	}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	if err := o.Settings.Validate(); err != nil {
		return nil, err
	}
	lk, err := netdev.ByName(o.Iface)
	if err != nil {
		return nil, err
	}
	listed, err := listedIfaces(&o)
	if err != nil {
		return nil, err
	}
	o.socks, err = listeners.Find(o.Settings.Ports)
	if err != nil {
		o.logf("memcached's listening sockets: %v (each port is taken for one instance, every interface for one it listens on)", err)
	}
	if o.paths, err = probe.WritePaths(listed, o.ListedOnly, probe.ListenAddrs(o.socks)); err != nil {
		return nil, err
	}
	unlock, err := lockAll(append(listed, probe.Watched(o.paths)...))
	if err != nil {
		return nil, err
	}
	defer unlock()
	p, err := newPlan(&o, lk)
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		return p.dryRun()
	}
	return p.execute()
}

// step is one thing deploying does; do says it as --dry-run prints it.
type step struct {
	do  string
	run func(x *execution) error
}

// plan is what deploying on one interface takes, worked out before anything
// changes: the steps in order. Deploy runs them; --dry-run prints them.
type plan struct {
	steps   []step
	o       *Options
	lk      netlink.Link
	root    string // the resolved pin root
	pinDir  string
	report  *probe.Report
	members []*member // the other interfaces (members.go)
	joins   bool      // XDP joins a libxdp dispatcher (share.go)
}

func (p *plan) add(run func(x *execution) error, format string, args ...any) {
	p.steps = append(p.steps, step{do: fmt.Sprintf(format, args...), run: run})
}

// describe lists the steps' descriptions.
func (p *plan) describe() []string {
	out := make([]string, len(p.steps))
	for i, s := range p.steps {
		out[i] = s.do
	}
	return out
}

// newPlan works out the steps of deploying o on lk: it probes the interface
// (the mode plan), reads the current deployment and what is attached. It
// changes nothing. The caller holds the interface's lock.
func newPlan(o *Options, lk netlink.Link) (*plan, error) {
	root, rerr := record.Resolve(o.PinRoot)
	if rerr != nil && !errors.Is(rerr, record.ErrNoBPFFS) {
		return nil, rerr
	}
	p := &plan{o: o, lk: lk, root: root, pinDir: record.Dir(root, o.Iface)}
	modes, skipped, rep, err := planModesOn(o, o.Iface, root)
	if err != nil {
		return nil, err
	}
	if err := p.planMembers(); err != nil {
		return nil, err
	}
	p.report = rep
	if o.Settings.Instances == nil {
		if o.Settings.Instances = listeners.Instances(o.socks); len(o.Settings.Instances) > 0 {
			o.logf("memcached instances share a port: entries are kept apart by instance (%d listening sockets)", len(o.Settings.Instances))
		}
	}
	if modes, skipped, err = p.withoutOffload(modes, skipped); err != nil {
		return nil, err
	}
	for _, m := range rep.Memcached.Instances {
		if (m.Protocol == "ascii" || m.Protocol == "binary") && o.Settings.Protocol == "" {
			// read every connection as memcached does (its -B)
			o.Settings.Protocol = m.Protocol
			o.logf("memcached reads every connection as %s (-B %s): so does the cache", m.Protocol, m.Protocol)
		}
	}
	for _, l := range p.serveLinks() {
		name := l.Attrs().Name
		if mtu := l.Attrs().MTU; mtu >= 576 && uint32(mtu) < o.Settings.MTU {
			// a reply larger than the link's MTU would be lost
			o.logf("%s has MTU %d: replies are kept within it (asked for %d)", name, mtu, o.Settings.MTU)
			o.Settings.MTU = uint32(mtu)
		}
		if o.Settings.VerifyUDPCsum && partialChecksums(l) {
			o.Settings.VerifyUDPCsum = false
			o.logf("%s is a veth: local senders leave UDP checksums to offload, so requests' UDP checksums are not verified", name)
		}
	}
	if rerr != nil {
		dir := filepath.Dir(root)
		p.add(func(*execution) error { _, err := record.Ensure(o.PinRoot); return err },
			"mount a BPF filesystem at %s to pin into (none is there)", dir)
	}
	prev, perr := record.Read(root, o.Iface)
	if rerr != nil || perr != nil {
		prev = nil
	}
	if prev != nil && prev.MemberOf != "" {
		return nil, &MemberConflictError{Iface: o.Iface, Owner: prev.MemberOf}
	}
	join, err := planJoin(o, lk.Attrs().Index, prev, modes)
	if err != nil {
		return nil, err
	}
	p.joins = join != nil
	if prev != nil {
		switch {
		case sameDeployment(prev, o) && sameShare(prev, o, p.joins) && p.sameMembers(prev) && stillAttached(prev) && membersAttached(prev):
			p.add(func(x *execution) error { return x.keep(prev) },
				"keep the current deployment (%s mode, same programs and settings): nothing to do", prev.Mode)
			return p, nil
		case onlyShadowDiffers(prev, o) && sameShare(prev, o, p.joins) && p.sameMembers(prev) && stillAttached(prev) && membersAttached(prev):
			to := "turn shadow mode off (go live)"
			if o.Settings.Shadow {
				to = "turn shadow mode on"
			}
			p.add(func(x *execution) error { return x.reconfigure(prev) },
				"%s in the pinned config of the %s-mode deployment: programs and cache stay", to, prev.Mode)
			return p, nil
		case !p.joins && canUpgradeInPlace(prev, o) && p.sameMembers(prev) && membersLinked(prev) && membersAttached(prev) && pinsOpen(root, prev, o):
			p.add(func(x *execution) error { return x.upgrade(prev) },
				"swap new programs into the pinned links of the %s-mode deployment (no moment without a program)", prev.Mode)
			return p, nil
		default:
			p.add(func(x *execution) error { return x.replace(prev) }, "remove the current %s-mode deployment", prev.Mode)
		}
	} else if xs := lk.Attrs().Xdp; xs != nil && xs.Attached && !p.joins && !besideDispatcher(o, xs.ProgId) {
		if !o.Force {
			return nil, &ForeignProgramError{Iface: o.Iface, ProgID: xs.ProgId}
		}
		p.add(func(x *execution) error { x.removeForeign(xs.ProgId); return nil }, "remove the foreign XDP program %d (--force)", xs.ProgId)
	}
	for _, a := range skipped {
		p.add(func(x *execution) error { x.attempts = append(x.attempts, a); return nil }, "skip %s mode: %s", a.Mode, a.Why)
	}
	if join != nil {
		modes = nil
		p.add(func(x *execution) error { return x.join(join) }, "%s", join.do)
	}
	for i, m := range modes {
		last := i == len(modes)-1
		run := func(x *execution) error { return x.attach(m, last) }
		if i == 0 {
			p.add(run, "attach XDP in %s mode", m)
		} else {
			p.add(run, "if that fails, attach XDP in %s mode", m)
		}
	}
	p.add((*execution).attachTC, "attach the TC egress filler (TCX on kernels 6.6+, else clsact + cls_bpf)")
	p.addMemberSteps()
	p.add((*execution).finish, "pin programs, maps and links under %s", p.pinDir)
	return p, nil
}

// withoutOffload drops offload mode from a deployment with members (the
// card's cache can be invalidated by nothing but the card's own program, so
// writes through another interface, lo included, would leave it serving
// the old value) or with memcached instances that are not one per port (the
// card keys entries by port). An explicit --mode offload is then an error.
func (p *plan) withoutOffload(modes []mode.Mode, skipped []record.Attempt) ([]mode.Mode, []record.Attempt, error) {
	var why string
	switch {
	case len(p.members) > 0:
		var names []string
		for _, m := range p.members {
			names = append(names, m.name)
		}
		why = fmt.Sprintf("offload mode cannot see writes through %s (only the card's program can invalidate the card's cache): "+
			"it needs one --iface and --listed-only", strings.Join(names, ", "))
	case len(p.o.Settings.Instances) > 0:
		// on the card an instance is a port (offload.md)
		why = "memcached's instances are not one per port (several on one port, or one on several ports): the card tells instances apart by port only"
	default:
		return modes, skipped, nil
	}
	if p.o.Mode == mode.Offload {
		return nil, nil, &NoModeError{Iface: p.o.Iface, Reasons: []string{why}}
	}
	var out []mode.Mode
	for _, m := range modes {
		if m == mode.Offload {
			skipped = append(skipped, record.Attempt{Mode: m, Why: why})
			continue
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, nil, &NoModeError{Iface: p.o.Iface, Reasons: []string{why}}
	}
	return out, skipped, nil
}

// planModes asks the probe which modes to try, in order. With auto, modes the
// plan rules out are recorded with the reason and not tried (a veth whose peer
// runs no XDP would swallow native-mode replies, for one). An explicit mode is
// always tried — the kernel has the last word — unless the plan says the
// device cannot do it at all; it never falls back.
func planModesOn(o *Options, iface, root string) ([]mode.Mode, []record.Attempt, *probe.Report, error) {
	rep, err := probe.Run(iface, probe.Options{Ports: o.Settings.Ports, PinRoot: root},
		probe.DecideOptions{Requested: o.Mode, NoGeneric: o.NoGeneric, Force: o.Force || o.Share.Adopt != "", Entries: o.Settings.Entries,
			RequireLocal: o.Settings.RequireLocal, Allow: len(o.Allow)})
	if err != nil {
		return nil, nil, nil, err
	}
	var modes []mode.Mode
	var skipped []record.Attempt
	for _, s := range rep.Plan.Steps {
		switch {
		case o.Settings.Shadow && s.Mode == mode.Offload:
			skipped = append(skipped, record.Attempt{Mode: s.Mode, Why: shadowOffload})
		case s.Usable:
			modes = append(modes, s.Mode)
		case !o.Mode.IsAuto() && s.Mode != mode.Offload && !s.Final:
			// The probe may be wrong (an old nicdb entry, a driver that
			// reports less than it does): try what was asked for.
			modes = append(modes, s.Mode)
			o.logf("probe warns about %s mode: %s (trying it as asked)", s.Mode, s.Reason)
		default:
			skipped = append(skipped, record.Attempt{Mode: s.Mode, Why: s.Reason})
		}
	}
	if len(modes) == 0 {
		e := &NoModeError{Iface: iface}
		for _, a := range skipped {
			e.Reasons = append(e.Reasons, fmt.Sprintf("%s: %s", a.Mode, a.Why))
		}
		return nil, nil, nil, e
	}
	return modes, skipped, rep, nil
}

// dryRun is the plan as a deployment record that changes nothing.
func (p *plan) dryRun() (*record.Deployment, error) {
	d := &record.Deployment{Iface: p.o.Iface, Ifindex: p.lk.Attrs().Index, PinDir: p.pinDir, Settings: p.o.Settings, Allow: p.o.Allow,
		ListedOnly: p.o.ListedOnly, Coverage: p.o.paths}
	if len(d.Allow) == 0 {
		var err error
		if d.Allow, err = connectedPrefixesOf(p.serveLinks()); err != nil {
			return nil, err
		}
	}
	for _, m := range p.members {
		d.Members = append(d.Members, record.Member{Iface: m.name, Ifindex: m.lk.Attrs().Index, Role: m.role, Mode: m.modes[0],
			PinDir: m.dir})
	}
	d.Plan = p.describe()
	return d, nil
}

// execution is a plan being run: the flavor loaded so far, what it
// attached (rolled back unless the plan completes), the attempts.
type execution struct {
	p        *plan
	ifindex  int
	flavor   bpf.Flavor
	offload  bool // flavor is the offload flavor
	allow    []netip.Prefix
	att      *attempt
	mode     mode.Mode // attached in
	xdpHow   record.XDPAttach
	tcHow    record.TCAttach
	attempts []record.Attempt
	ext      *bpf.Extension         // load XDP as a dispatcher's component (share.go)
	member   *record.DispatcherSlot // how it runs in the dispatcher
	result   *record.Deployment     // set when the plan is complete
	// restore: offloads to turn back on at undeploy (record.Deployment),
	// read before anything was attached or carried over from the
	// deployment this one replaces.
	restore []string
}

// execute runs the steps until one fails or the plan is complete.
func (p *plan) execute() (*record.Deployment, error) {
	x := &execution{p: p, ifindex: p.lk.Attrs().Index}
	if on, err := netdev.OffloadsOn(p.o.Iface, netdev.XDPDisabledOffloads); err == nil {
		x.restore = on
	}
	defer x.dropFlavor()
	for _, s := range p.steps {
		if err := s.run(x); err != nil {
			return nil, err
		}
		if x.result != nil {
			return x.result, nil
		}
	}
	return nil, fmt.Errorf("deploy on %s: the plan ended without a deployment", p.o.Iface)
}

func (x *execution) keep(prev *record.Deployment) error {
	x.p.o.logf("already deployed on %s with these settings (%s mode): nothing to do", x.p.o.Iface, prev.Mode)
	x.result = prev
	return nil
}

func (x *execution) upgrade(prev *record.Deployment) error {
	x.p.o.logf("upgrading the deployment on %s in place", x.p.o.Iface)
	d, err := upgradeInPlace(prev, x.p)
	if err != nil {
		return err
	}
	x.result = d
	return nil
}

// shadowOffload is why shadow mode never uses offload mode.
const shadowOffload = "shadow mode needs the host flavor: the offloaded program on the device cannot hand " +
	"its would-be answers to the host, where TC compares them with memcached's"

// reconfigure switches shadow mode on or off by rewriting the pinned config:
// the programs and every map, the cache among them, stay as they are.
func (x *execution) reconfigure(prev *record.Deployment) error {
	o := x.p.o
	f, err := record.Open(x.p.root, prev)
	if err != nil {
		return err
	}
	defer f.Close()
	c, ok := f.(*bpf.Cache)
	if !ok {
		return fmt.Errorf("the deployment on %s is not the host flavor: shadow mode cannot be switched", o.Iface)
	}
	cur, seed, err := c.Config()
	if err != nil {
		return err
	}
	cur.Seed = seed // the items in the cache are hashed with it
	cur.Shadow = o.Settings.Shadow
	if err := c.Configure(cur); err != nil {
		return err
	}
	o.logf("shadow mode %s on %s; the cache is kept", map[bool]string{true: "on", false: "off"}[cur.Shadow], o.Iface)
	d := *prev
	d.Settings.Shadow = o.Settings.Shadow
	d.Attempts = []record.Attempt{{Mode: prev.Mode, OK: true, Why: "config rewritten in place"}}
	if err := writeRecord(x.p.root, &d); err != nil {
		return err
	}
	x.result = &d
	return nil
}

// replace removes the previous deployment; what is attached afterwards is
// someone else's (removed with --force only).
func (x *execution) replace(prev *record.Deployment) error {
	o := x.p.o
	o.logf("replacing the deployment on %s", o.Iface)
	for _, f := range prev.RestoreOffloads {
		if !slices.Contains(x.restore, f) {
			x.restore = append(x.restore, f)
		}
	}
	if err := undeployLocked(o.Iface, x.p.root); err != nil {
		return fmt.Errorf("remove the previous deployment: %w", err)
	}
	lk, err := netdev.ByName(o.Iface)
	if err != nil {
		return err
	}
	x.p.lk = lk
	if xs := lk.Attrs().Xdp; xs != nil && xs.Attached && !x.p.joins {
		if !o.Force {
			return &ForeignProgramError{Iface: o.Iface, ProgID: xs.ProgId}
		}
		x.removeForeign(xs.ProgId)
	}
	return nil
}

func (x *execution) removeForeign(id uint32) {
	x.p.o.logf("--force: removing the XDP program %d from %s", id, x.p.o.Iface)
	for _, f := range []uint32{unix.XDP_FLAGS_DRV_MODE, unix.XDP_FLAGS_SKB_MODE} {
		_ = netdev.SetXDP(x.ifindex, -1, f)
	}
}

// attach is one attach step: unless an earlier mode is attached, it tries m.
// A failure is recorded and the next step tries the next mode; when m was
// the last, no mode is left.
func (x *execution) attach(m mode.Mode, last bool) error {
	if x.mode != "" {
		return nil
	}
	err := x.tryMode(m)
	if err == nil {
		x.attempts = append(x.attempts, record.Attempt{Mode: m, OK: true, Why: "attached"})
		return nil
	}
	var hard *hardError
	if errors.As(err, &hard) {
		return hard.err
	}
	x.attempts = append(x.attempts, record.Attempt{Mode: m, Why: err.Error()})
	x.p.o.logf("%s mode failed: %v", m, err)
	if !last {
		return nil
	}
	e := &NoModeError{Iface: x.p.o.Iface, Err: err}
	for _, a := range x.attempts {
		e.Reasons = append(e.Reasons, a.Why)
	}
	return e
}

// hardError ends the deployment instead of falling back to the next mode.
type hardError struct{ err error }

func (e *hardError) Error() string { return e.err.Error() }

// tryMode loads the flavor m needs (unless loaded), pins it and attaches
// its XDP program in mode m.
func (x *execution) tryMode(m mode.Mode) error {
	offload := m == mode.Offload
	if x.flavor != nil && x.offload != offload {
		x.dropFlavor()
	}
	if x.flavor == nil {
		if err := x.loadFlavor(offload); err != nil {
			if offload {
				return err
			}
			return &hardError{err}
		}
	}
	xdp, _ := x.flavor.Programs()
	how, err := attachXDP(x.ifindex, xdp, m, x.p.pinDir)
	if err != nil {
		if offload {
			x.dropFlavor()
		}
		return err
	}
	x.att.attached = m
	got, gerr := attachedMode(x.ifindex)
	if offload && (gerr != nil || got != m) {
		x.dropFlavor()
		return fmt.Errorf("asked for offload mode but the kernel reports %q (%v)", got, gerr)
	}
	if gerr == nil && got != m {
		return &hardError{fmt.Errorf("asked for %s mode but the kernel reports %s", m, got)}
	}
	x.mode, x.xdpHow = m, how
	return nil
}

// loadFlavor loads the host or the offload flavor, fills its allow-list and
// local addresses, and pins it under the pin directory.
func (x *execution) loadFlavor(offload bool) error {
	o := x.p.o
	var f bpf.Flavor
	var err error
	if offload {
		var maxEntries uint32
		if r := x.p.report; r != nil && r.Offload != nil {
			maxEntries = r.Offload.MaxEntries
		}
		f, err = bpf.LoadOffload(o.Settings, bpf.OffloadOptions{Ifindex: x.ifindex, NewDeviceMap: netdev.NewDeviceMap, MaxEntries: maxEntries})
	} else {
		f, err = bpf.LoadExtension(o.Settings, x.ext)
	}
	if err != nil {
		return err
	}
	allow, err := prepareFlavor(f, o, x.p.serveLinks())
	if err != nil {
		f.Close()
		return err
	}
	att, err := beginAttempt(x.ifindex, x.p.root, x.p.pinDir)
	if err != nil {
		f.Close()
		return err
	}
	x.flavor, x.offload, x.allow, x.att = f, offload, allow, att
	if err := f.Pin(x.p.pinDir); err != nil {
		x.dropFlavor()
		return err
	}
	return nil
}

// dropFlavor removes what the loaded flavor attached and pinned (unless the
// deployment is complete) and closes it.
func (x *execution) dropFlavor() {
	if x.att != nil {
		x.att.rollback()
		x.att = nil
	}
	if x.flavor != nil {
		x.flavor.Close()
		x.flavor = nil
	}
	x.mode = ""
}

func (x *execution) attachTC() error {
	o := x.p.o
	if o.attachTC == nil {
		o.attachTC = attachTC
	}
	_, tc := x.flavor.Programs()
	how, err := o.attachTC(x.ifindex, tc, x.p.pinDir)
	if err != nil {
		return err
	}
	x.tcHow = how
	return nil
}

// finish writes the deployment's record next to its pins.
func (x *execution) finish() error {
	o := x.p.o
	xdp, tc := x.flavor.Programs()
	d := &record.Deployment{Iface: o.Iface, Ifindex: x.ifindex, Mode: x.mode, XDPAttach: x.xdpHow, TCAttach: x.tcHow,
		XDPProgID: progID(xdp), TCProgID: progID(tc), PinDir: x.p.pinDir, Settings: o.Settings, Allow: x.allow, Attempts: x.attempts,
		RestoreOffloads: x.restore, ListedOnly: o.ListedOnly, Coverage: o.paths, Dispatcher: x.member}
	switch x.mode {
	case mode.Offload:
		d.Settings.Seed = uint64(x.flavor.(*bpf.OffloadCache).Seed) // the relay hashes keys with it
		d.Warnings = append(d.Warnings, relayWarning)
	}
	var checks []probe.Check
	if x.p.report != nil {
		checks = x.p.report.Checks
	}
	d.Warnings = append(d.Warnings, probe.ModeWarnings(x.mode, checks)...)
	if err := x.finishMembers(d); err != nil {
		return err
	}
	if err := writeRecord(x.p.root, d); err != nil {
		return err
	}
	x.att.done()
	x.result = d
	return nil
}

// attempt is one deployment in progress: unless done is called, rollback
// removes whatever it attached (XDP in mode attached, if any; TC) and pinned.
type attempt struct {
	ifindex  int
	root     string
	pinDir   string
	attached mode.Mode // set once XDP is on: a netlink attachment has no pin to drop
	members  []*memberAttempt
	pointers []string // members whose own records were written
	leave    func()   // takes XDP out of the dispatcher it joined
	ok       bool
}

func beginAttempt(ifindex int, root, pinDir string) (*attempt, error) {
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", pinDir, err)
	}
	return &attempt{ifindex: ifindex, root: root, pinDir: pinDir}, nil
}

func (a *attempt) done() { a.ok = true }

func (a *attempt) rollback() {
	if a.ok {
		return
	}
	if a.leave != nil {
		a.leave()
	}
	a.rollbackMembers(a.root)
	detachXDP(a.ifindex, a.pinDir, a.attached)
	detachTC(a.ifindex, a.pinDir)
	bpf.Unpin(a.pinDir)
	os.Remove(filepath.Join(a.pinDir, record.PinMeta))
	os.Remove(a.pinDir)
}

// partialChecksums: frames from local senders on this kind of device carry
// UDP checksums that only the pseudo-header sum is in (checksum offload).
func partialChecksums(lk netlink.Link) bool {
	return lk.Type() == "veth"
}

// prepareFlavor fills the allow-list (o.Allow, or the interface's own
// subnets) and, with RequireLocal, the local addresses; it returns the
// allow-list used.
func prepareFlavor(f bpf.Flavor, o *Options, links []netlink.Link) ([]netip.Prefix, error) {
	allow := o.Allow
	if len(allow) == 0 {
		var err error
		if allow, err = connectedPrefixesOf(links); err != nil {
			return nil, err
		}
	}
	if err := f.AllowPrefixes(allow, 0); err != nil {
		return nil, err
	}
	if o.Settings.RequireLocal {
		addrs, err := netdev.LocalAddrs()
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if err := f.AddLocal(a); err != nil {
				return nil, err
			}
		}
	}
	return allow, nil
}

// writeRecord stamps d with this build's program tags and the time and
// writes its record.
func writeRecord(root string, d *record.Deployment) error {
	if tags, err := bpf.ProgramTags(); err == nil {
		d.ProgTags = tags
	}
	d.DeployedAt = time.Now().UTC().Truncate(time.Second)
	return record.Write(root, d)
}

// upgradeAllowed: the previous deployment's attachments are bpf_links
// (which can swap their program atomically) and the mode stays: the one
// asked for, or with auto the one deployed (unless --no-generic rules out
// the generic deployment).
func upgradeAllowed(prev *record.Deployment, o *Options) bool {
	if prev.Mode == mode.Offload || prev.XDPAttach != record.XDPLink || prev.TCAttach != record.TCX {
		return false
	}
	if o.Mode.IsAuto() {
		return !(o.NoGeneric && prev.Mode == mode.Generic)
	}
	return o.Mode == prev.Mode
}

// canUpgradeInPlace: upgradeAllowed, and our program is still attached.
// pinsOpen: this build can open the pinned maps of prev (a build whose maps
// differ cannot swap its programs in: the deployment is replaced instead).
func pinsOpen(root string, prev *record.Deployment, o *Options) bool {
	old, err := record.Open(root, prev)
	var other *bpf.IncompatiblePinsError
	switch {
	case errors.As(err, &other):
		o.logf("the deployment on %s is another xdpcache version's (map %s: %s): it is replaced, and the cache starts empty",
			o.Iface, other.Map, other.Why)
		return false
	case err != nil:
		o.logf("the pinned deployment on %s cannot be upgraded in place (%v): it is replaced", o.Iface, err)
		return false
	}
	old.Close()
	return true
}

func canUpgradeInPlace(prev *record.Deployment, o *Options) bool {
	return upgradeAllowed(prev, o) && stillAttached(prev)
}

// upgradeInPlace swaps new programs (with new maps) into the pinned links:
// the interface is never without a program. The old cache's contents are
// dropped with its maps. On failure the old programs and pins come back.
func upgradeInPlace(prev *record.Deployment, p *plan) (*record.Deployment, error) {
	pinDir := p.pinDir
	xl, err := loadPinnedLink(filepath.Join(pinDir, record.PinXDPLink), "XDP")
	if err != nil {
		return nil, err
	}
	defer xl.Close()
	tl, err := loadPinnedLink(filepath.Join(pinDir, record.PinTCLink), "TC")
	if err != nil {
		return nil, err
	}
	defer tl.Close()
	d := *prev
	d.Members = slices.Clone(prev.Members)
	mls, closeMembers, err := openMemberLinks(p.root, &d)
	if err != nil {
		return nil, err
	}
	defer closeMembers()
	old, err := record.Open(p.root, prev)
	if err != nil {
		return nil, err
	}
	defer old.Close()
	cache, err := bpf.Load(p.o.Settings)
	if err != nil {
		return nil, err
	}
	defer cache.Close()
	if hasWatch(prev) {
		if err := cache.LoadWatch(); err != nil {
			return nil, err
		}
	}
	allow, err := prepareFlavor(cache, p.o, p.serveLinks())
	if err != nil {
		return nil, err
	}
	oldXDP, oldTC := old.Programs()
	restorePins := func() {
		bpf.Unpin(pinDir)
		old.Pin(pinDir)
	}
	if err := bpf.Unpin(pinDir); err != nil {
		return nil, fmt.Errorf("unpin the old programs: %w", err)
	}
	if err := cache.Pin(pinDir); err != nil {
		restorePins()
		return nil, err
	}
	if err := xl.Update(cache.XDP); err != nil {
		restorePins()
		return nil, fmt.Errorf("swap the XDP program: %w", err)
	}
	if err := tl.Update(cache.TC); err != nil {
		xl.Update(oldXDP)
		restorePins()
		return nil, fmt.Errorf("swap the TC program: %w", err)
	}
	if err := swapMembers(mls, cache); err != nil {
		if oc, ok := old.(*bpf.Cache); ok {
			swapMembers(mls, oc)
		}
		xl.Update(oldXDP)
		tl.Update(oldTC)
		restorePins()
		return nil, err
	}
	d.PinDir = pinDir
	d.Settings, d.Allow, d.Warnings = p.o.Settings, allow, prev.Warnings
	d.ListedOnly, d.Coverage = p.o.ListedOnly, p.o.paths
	d.Attempts = []record.Attempt{{Mode: prev.Mode, OK: true, Why: "programs swapped in place"}}
	d.XDPProgID, d.TCProgID = progID(cache.XDP), progID(cache.TC)
	if err := rewriteMemberRecords(p.root, &d); err != nil {
		return nil, err
	}
	if err := writeRecord(p.root, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Undeploy removes everything xdpcache attached to and pinned for iface,
// and nothing else. An interface without a deployment is not an error.
func Undeploy(iface, pinRoot string) error {
	root, err := record.Resolve(pinRoot)
	if err != nil && !errors.Is(err, record.ErrNoBPFFS) {
		return err
	} // no bpffs: no pins, but a cls_bpf filter of ours may still be there
	if err := checkPrivileges(); err != nil {
		return err
	}
	if d, err := record.Read(root, iface); err == nil && d.MemberOf != "" {
		iface = d.MemberOf // a member: the whole deployment goes
	}
	names := []string{iface}
	if d, err := record.Read(root, iface); err == nil {
		names = d.Ifaces()
	}
	unlock, err := lockAll(names)
	if err != nil {
		return err
	}
	defer unlock()
	return undeployLocked(iface, root)
}

func undeployLocked(iface, root string) error {
	pinDir := record.Dir(root, iface)
	d, derr := record.Read(root, iface)
	if derr == nil && d.MemberOf != "" {
		return undeployLocked(d.MemberOf, root)
	}
	var errs []error
	if derr == nil {
		errs = append(errs, undeployMembers(root, d))
	}
	ifindex := 0
	if lk, err := netlink.LinkByName(iface); err == nil {
		ifindex = lk.Attrs().Index
	}
	var m mode.Mode
	if derr == nil {
		m = d.Mode
		if d.XDPAttach == record.XDPNetlink && ifindex != 0 && !ourXDPAttached(ifindex, d) {
			m = "" // someone else's program is there now: leave it
		}
		if d.XDPAttach == record.XDPDispatcher {
			m = "" // no netlink attachment of ours: the dispatcher's
			if ifindex != 0 {
				errs = append(errs, leaveDispatcher(ifindex, d, dispatch.Options{}))
			}
		}
	}
	if ifindex != 0 {
		errs = append(errs, detachXDP(ifindex, pinDir, m), detachTC(ifindex, pinDir))
	} else {
		// interface gone: unpinning the links is all that is left
		errs = append(errs, detachXDP(0, pinDir, ""), detachTC(0, pinDir))
	}
	if derr == nil && ifindex != 0 && len(d.RestoreOffloads) > 0 && !xdpAttached(ifindex) {
		if _, err := netdev.TurnOn(iface, d.RestoreOffloads); err != nil {
			errs = append(errs, fmt.Errorf("put back the offloads XDP turned off: %w", err))
		}
	}
	errs = append(errs, bpf.Unpin(pinDir))
	if err := os.Remove(filepath.Join(pinDir, record.PinMeta)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := os.Remove(pinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove %s: %w", pinDir, err))
	}
	return errors.Join(errs...)
}

// xdpAttached: any XDP program is on the interface.
func xdpAttached(ifindex int) bool {
	lk, err := netlink.LinkByIndex(ifindex)
	return err == nil && lk.Attrs().Xdp != nil && lk.Attrs().Xdp.Attached
}

func ourXDPAttached(ifindex int, d *record.Deployment) bool {
	lk, err := netlink.LinkByIndex(ifindex)
	if err != nil || lk.Attrs().Xdp == nil {
		return false
	}
	return lk.Attrs().Xdp.ProgId == d.XDPProgID
}

func stillAttached(d *record.Deployment) bool {
	if d.XDPAttach == record.XDPDispatcher {
		return DispatcherOf(d) != nil
	}
	lk, err := netlink.LinkByName(d.Iface)
	return err == nil && lk.Attrs().Index == d.Ifindex && lk.Attrs().Xdp != nil && lk.Attrs().Xdp.ProgId == d.XDPProgID
}

// sameDeployment: d is what o asks for, by this build.
func sameDeployment(d *record.Deployment, o *Options) bool {
	if !o.Mode.IsAuto() && o.Mode != d.Mode {
		return false
	}
	if tags, err := bpf.ProgramTags(); err != nil || d.ProgTags != tags {
		return false // another build: upgrade
	}
	a, b := d.Settings, o.Settings
	a.Seed, b.Seed = 0, 0
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	if string(aj) != string(bj) {
		return false
	}
	if len(o.Allow) > 0 {
		oj, _ := json.Marshal(o.Allow)
		dj, _ := json.Marshal(d.Allow)
		return string(oj) == string(dj)
	}
	return true
}

// onlyShadowDiffers: d is what o asks for, by this build, but for shadow
// mode, which a config write switches.
func onlyShadowDiffers(d *record.Deployment, o *Options) bool {
	if d.Settings.Shadow == o.Settings.Shadow || d.Mode == mode.Offload {
		return false
	}
	oo := *o
	oo.Settings.Shadow = d.Settings.Shadow
	return sameDeployment(d, &oo)
}

// attachedMode reads back the mode the kernel actually used.
func attachedMode(ifindex int) (mode.Mode, error) {
	st, err := netdev.QueryXDP(ifindex)
	if err != nil {
		return "", err
	}
	if !st.Any() {
		return "", errors.New("no XDP program attached")
	}
	m, ok := st.Mode()
	if !ok {
		return "", fmt.Errorf("XDP attached as %q", st.Attached)
	}
	return m, nil
}

func progID(p *ebpf.Program) uint32 {
	info, err := p.Info()
	if err != nil {
		return 0
	}
	id, _ := info.ID()
	return uint32(id)
}

// connectedPrefixesOf is netdev.ConnectedPrefixes of every link, in order, each
// prefix once.
func connectedPrefixesOf(links []netlink.Link) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, lk := range links {
		ps, err := netdev.ConnectedPrefixes(lk)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}
