package offload

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/bpf"
)

// DefaultPinRoot holds one directory of pins per deployed interface.
const DefaultPinRoot = "/sys/fs/bpf/xdpcache"

// DeployOptions say what to deploy where.
type DeployOptions struct {
	Iface     string
	Mode      string // auto, offload, native or generic
	NoGeneric bool   // auto stops at native
	Settings  bpf.Settings
	Allow     []netip.Prefix // sources served; empty: the interface's own subnets
	Force     bool           // replace a foreign XDP program
	DryRun    bool           // work out and return the plan; change nothing
	PinRoot   string         // default DefaultPinRoot
	Log       func(format string, args ...any)

	attachTC func(ifindex int, prog *ebpf.Program, pinDir string) (string, error) // tests inject failures
}

// Deployment describes what is attached to one interface. It is kept as JSON
// in a pinned map next to the other pins (bpffs holds no plain files).
type Deployment struct {
	Iface      string         `json:"iface"`
	Ifindex    int            `json:"ifindex"`
	Mode       Mode           `json:"mode"`
	XDPAttach  string         `json:"xdp_attach"` // link or netlink
	TCAttach   string         `json:"tc_attach"`  // tcx or clsact
	XDPProgID  uint32         `json:"xdp_prog_id"`
	TCProgID   uint32         `json:"tc_prog_id"`
	ProgTags   string         `json:"prog_tags"` // this build's program tags (xdp/tc/offload xdp/relay tc)
	PinDir     string         `json:"pin_dir"`
	DeployedAt time.Time      `json:"deployed_at"`
	Settings   bpf.Settings   `json:"settings"`
	Allow      []netip.Prefix `json:"allow"`
	Attempts   []Attempt      `json:"attempts"`       // each mode tried, in order, with the reason it failed
	Plan       []string       `json:"plan,omitempty"` // --dry-run: what deploy would do
	Warnings   []string       `json:"warnings,omitempty"`
}

// Attempt is one step of the mode fallback.
type Attempt struct {
	Mode Mode   `json:"mode"`
	OK   bool   `json:"ok"`
	Why  string `json:"why"`
}

func (o *DeployOptions) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

// validateMode rejects unknown modes before anything is looked at.
func validateMode(o *DeployOptions) error {
	switch o.Mode {
	case "", "auto", string(ModeOffload), string(ModeNative), string(ModeGeneric):
		return nil
	}
	return fmt.Errorf("unknown mode %q: use auto, offload, native or generic", o.Mode)
}

// planModes asks the probe which modes to try, in order. With auto, modes the
// plan rules out are recorded with the reason and not tried (a veth whose peer
// runs no XDP would swallow native-mode replies, for one). An explicit mode is
// always tried — the kernel has the last word — unless the plan says the
// device cannot do it at all; it never falls back.
func planModes(o *DeployOptions) ([]Mode, []Attempt, *Report, error) {
	rep, err := ProbeInterface(o.Iface, ProbeOptions{Ports: o.Settings.Ports, PinRoot: o.PinRoot},
		DecideOptions{Requested: o.Mode, NoGeneric: o.NoGeneric, Force: o.Force, Entries: o.Settings.Entries})
	if err != nil {
		return nil, nil, nil, err
	}
	var modes []Mode
	var skipped []Attempt
	explicit := o.Mode != "" && o.Mode != "auto"
	for _, s := range rep.Plan.Steps {
		switch {
		case s.Usable:
			modes = append(modes, s.Mode)
		case explicit && s.Mode != ModeOffload && !s.Final:
			// The probe may be wrong (an old nicdb entry, a driver that
			// reports less than it does): try what was asked for.
			modes = append(modes, s.Mode)
			o.logf("probe warns about %s mode: %s (trying it as asked)", s.Mode, s.Reason)
		default:
			skipped = append(skipped, Attempt{Mode: s.Mode, Why: s.Reason})
		}
	}
	if len(modes) == 0 {
		var why []string
		for _, a := range skipped {
			why = append(why, fmt.Sprintf("%s: %s", a.Mode, a.Why))
		}
		return nil, skipped, rep, fmt.Errorf("could not attach XDP to %s: %s", o.Iface, strings.Join(why, "; "))
	}
	return modes, skipped, rep, nil
}

// Deploy loads the programs, attaches them to the interface (falling back
// from mode to mode as allowed) and pins everything so it keeps running after
// this process exits. On failure, whatever this call attached is removed.
func Deploy(o DeployOptions) (*Deployment, error) {
	if o.PinRoot == "" {
		o.PinRoot = DefaultPinRoot
	}
	o.PinRoot = resolvePinRoot(o.PinRoot)
	if err := validateMode(&o); err != nil {
		return nil, err
	}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	if err := o.Settings.Validate(); err != nil {
		return nil, err
	}
	lk, err := netlink.LinkByName(o.Iface)
	if err != nil {
		return nil, fmt.Errorf("interface %q not found in this network namespace (ip link show lists them)", o.Iface)
	}
	unlock, err := lockIface(o.Iface)
	if err != nil {
		return nil, err
	}
	defer unlock()
	modes, skipped, rep, err := planModes(&o)
	if err != nil {
		return nil, err
	}
	ifindex := lk.Attrs().Index
	if o.Settings.VerifyUDPCsum && partialChecksums(lk) {
		o.Settings.VerifyUDPCsum = false
		o.logf("%s is a veth: local senders leave UDP checksums to offload, so requests' UDP checksums are not verified", o.Iface)
	}
	if err := ensureBPFFS(filepath.Dir(o.PinRoot)); err != nil {
		return nil, err
	}
	pinDir := filepath.Join(o.PinRoot, o.Iface)
	if o.DryRun {
		return dryRun(&o, lk, modes, skipped, pinDir)
	}
	if prev, err := ReadDeployment(o.PinRoot, o.Iface); err == nil {
		if sameDeployment(prev, &o) && stillAttached(prev) {
			o.logf("already deployed on %s with these settings (%s mode): nothing to do", o.Iface, prev.Mode)
			return prev, nil
		}
		if canUpgradeInPlace(prev, &o) {
			o.logf("upgrading the deployment on %s in place", o.Iface)
			return upgradeInPlace(prev, &o, lk)
		}
		o.logf("replacing the deployment on %s", o.Iface)
		if err := undeployLocked(o.Iface, o.PinRoot); err != nil {
			return nil, fmt.Errorf("remove the previous deployment: %w", err)
		}
		if lk, err = netlink.LinkByName(o.Iface); err != nil {
			return nil, fmt.Errorf("interface %q: %w", o.Iface, err)
		}
	}
	if lk.Attrs().Xdp != nil && lk.Attrs().Xdp.Attached {
		if !o.Force {
			return nil, fmt.Errorf("%s already has an XDP program (id %d) that xdpcache did not attach; use --force to replace it",
				o.Iface, lk.Attrs().Xdp.ProgId)
		}
		o.logf("--force: removing the XDP program %d from %s", lk.Attrs().Xdp.ProgId, o.Iface)
		for _, f := range []uint32{unix.XDP_FLAGS_DRV_MODE, unix.XDP_FLAGS_SKB_MODE} {
			_ = netlinkAttachXDP(ifindex, -1, f)
		}
	}

	if modes[0] == ModeOffload {
		d, err := deployOffload(&o, lk, rep, pinDir)
		if err == nil {
			d.Attempts = append(skipped, d.Attempts...)
			return d, nil
		}
		o.logf("offload mode failed: %v", err)
		skipped = append(skipped, Attempt{Mode: ModeOffload, Why: err.Error()})
		if modes = modes[1:]; len(modes) == 0 {
			return nil, fmt.Errorf("could not attach XDP to %s: %w", o.Iface, err)
		}
	}
	cache, allow, err := prepareCache(&o, lk)
	if err != nil {
		return nil, err
	}
	defer cache.Close()
	att, err := beginAttempt(ifindex, pinDir)
	if err != nil {
		return nil, err
	}
	defer att.rollback()
	if err := cache.Pin(pinDir); err != nil {
		return nil, err
	}

	d := &Deployment{Iface: o.Iface, Ifindex: ifindex, PinDir: pinDir, Settings: o.Settings, Allow: allow, Attempts: skipped}
	for _, m := range modes {
		how, err := attachXDP(ifindex, cache.XDP, m, pinDir)
		if err != nil {
			d.Attempts = append(d.Attempts, Attempt{Mode: m, Why: err.Error()})
			o.logf("%s mode failed: %v", m, err)
			continue
		}
		d.Mode, d.XDPAttach, att.attached = m, how, m
		d.Attempts = append(d.Attempts, Attempt{Mode: m, OK: true, Why: "attached"})
		break
	}
	if d.Mode == "" {
		var why []string
		for _, a := range d.Attempts {
			why = append(why, a.Why)
		}
		return nil, fmt.Errorf("could not attach XDP to %s: %s", o.Iface, strings.Join(why, "; "))
	}
	if got, err := attachedMode(ifindex); err == nil && got != d.Mode {
		return nil, fmt.Errorf("asked for %s mode but the kernel reports %s", d.Mode, got)
	}
	if d.Mode == ModeGeneric {
		d.Warnings = append(d.Warnings, "generic (skb) mode: XDP runs after the kernel built an skb, which costs most of the speed-up; native mode needs a driver with XDP support")
	}
	if o.attachTC == nil {
		o.attachTC = attachTC
	}
	how, err := o.attachTC(ifindex, cache.TC, pinDir)
	if err != nil {
		return nil, err
	}
	d.TCAttach = how
	if err := finishRecord(o.PinRoot, d, cache); err != nil {
		return nil, err
	}
	att.done()
	return d, nil
}

// attempt is one deployment in progress: unless done is called, rollback
// removes whatever it attached (XDP in mode attached, if any; TC) and pinned.
type attempt struct {
	ifindex  int
	pinDir   string
	attached Mode // set once XDP is on: a netlink attachment has no pin to drop
	ok       bool
}

func beginAttempt(ifindex int, pinDir string) (*attempt, error) {
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", pinDir, err)
	}
	return &attempt{ifindex: ifindex, pinDir: pinDir}, nil
}

func (a *attempt) done() { a.ok = true }

func (a *attempt) rollback() {
	if a.ok {
		return
	}
	detachXDP(a.ifindex, a.pinDir, a.attached)
	detachTC(a.ifindex, a.pinDir)
	bpf.Unpin(a.pinDir)
	os.Remove(filepath.Join(a.pinDir, pinMeta))
	os.Remove(a.pinDir)
}

// dryRun says what Deploy would do, changing nothing.
func dryRun(o *DeployOptions, lk netlink.Link, modes []Mode, skipped []Attempt, pinDir string) (*Deployment, error) {
	d := &Deployment{Iface: o.Iface, Ifindex: lk.Attrs().Index, PinDir: pinDir, Settings: o.Settings, Allow: o.Allow}
	if len(d.Allow) == 0 {
		var err error
		if d.Allow, err = connectedPrefixes(lk); err != nil {
			return nil, err
		}
	}
	say := func(f string, a ...any) { d.Plan = append(d.Plan, fmt.Sprintf(f, a...)) }
	if prev, err := ReadDeployment(o.PinRoot, o.Iface); err == nil {
		switch {
		case sameDeployment(prev, o) && stillAttached(prev):
			say("keep the current deployment (%s mode, same programs and settings): nothing to do", prev.Mode)
			return d, nil
		case canUpgradeInPlace(prev, o):
			say("swap new programs into the pinned links of the %s-mode deployment (no moment without a program)", prev.Mode)
			return d, nil
		default:
			say("remove the current %s-mode deployment", prev.Mode)
		}
	} else if x := lk.Attrs().Xdp; x != nil && x.Attached {
		if !o.Force {
			return nil, fmt.Errorf("%s already has an XDP program (id %d) that xdpcache did not attach; use --force to replace it", o.Iface, x.ProgId)
		}
		say("remove the foreign XDP program %d (--force)", x.ProgId)
	}
	for _, a := range skipped {
		say("skip %s mode: %s", a.Mode, a.Why)
	}
	for i, m := range modes {
		if i == 0 {
			say("attach XDP in %s mode", m)
		} else {
			say("if that fails, attach XDP in %s mode", m)
		}
	}
	say("attach the TC egress filler (TCX on kernels 6.6+, else clsact + cls_bpf)")
	say("pin programs, maps and links under %s", pinDir)
	return d, nil
}

// partialChecksums: frames from local senders on this kind of device carry
// UDP checksums that only the pseudo-header sum is in (checksum offload).
func partialChecksums(lk netlink.Link) bool {
	return lk.Type() == "veth"
}

// prepareCache loads the programs and fills the allow-list and local addresses.
func prepareCache(o *DeployOptions, lk netlink.Link) (*bpf.Cache, []netip.Prefix, error) {
	cache, err := bpf.Load(o.Settings)
	if err != nil {
		return nil, nil, err
	}
	allow := o.Allow
	if len(allow) == 0 {
		if allow, err = connectedPrefixes(lk); err != nil {
			cache.Close()
			return nil, nil, err
		}
	}
	for _, p := range allow {
		if err := cache.Allow(p, 0); err != nil {
			cache.Close()
			return nil, nil, err
		}
	}
	if o.Settings.RequireLocal {
		if err := addLocalAddrs(cache); err != nil {
			cache.Close()
			return nil, nil, err
		}
	}
	return cache, allow, nil
}

func finishRecord(pinRoot string, d *Deployment, cache *bpf.Cache) error {
	d.XDPProgID = progID(cache.XDP)
	d.TCProgID = progID(cache.TC)
	return finishRecordIDs(pinRoot, d)
}

// finishRecordIDs writes the record of d, whose program ids are set.
func finishRecordIDs(pinRoot string, d *Deployment) error {
	if tags, err := bpf.ProgramTags(); err == nil {
		d.ProgTags = tags
	}
	d.DeployedAt = time.Now().UTC().Truncate(time.Second)
	os.Remove(filepath.Join(pinRoot, d.Iface, pinMeta))
	return writeDeployment(pinRoot, d)
}

// canUpgradeInPlace: both attachments are bpf_links (which can swap their
// program atomically) and the mode stays.
func canUpgradeInPlace(prev *Deployment, o *DeployOptions) bool {
	if prev.Mode == ModeOffload || prev.XDPAttach != "link" || prev.TCAttach != "tcx" || !stillAttached(prev) {
		return false
	}
	return o.Mode == "" || o.Mode == "auto" && !(o.NoGeneric && prev.Mode == ModeGeneric) || Mode(o.Mode) == prev.Mode
}

// upgradeInPlace swaps new programs (with new maps) into the pinned links:
// the interface is never without a program. The old cache's contents are
// dropped with its maps. On failure the old programs and pins come back.
func upgradeInPlace(prev *Deployment, o *DeployOptions, lk netlink.Link) (*Deployment, error) {
	pinDir := filepath.Join(o.PinRoot, o.Iface)
	xl, err := link.LoadPinnedLink(filepath.Join(pinDir, pinXDPLink), nil)
	if err != nil {
		return nil, fmt.Errorf("open pinned XDP link: %w", err)
	}
	defer xl.Close()
	tl, err := link.LoadPinnedLink(filepath.Join(pinDir, pinTCLink), nil)
	if err != nil {
		return nil, fmt.Errorf("open pinned TC link: %w", err)
	}
	defer tl.Close()
	old, err := bpf.LoadPinned(pinDir)
	if err != nil {
		return nil, err
	}
	defer old.Close()
	cache, allow, err := prepareCache(o, lk)
	if err != nil {
		return nil, err
	}
	defer cache.Close()

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
		xl.Update(old.XDP)
		restorePins()
		return nil, fmt.Errorf("swap the TC program: %w", err)
	}
	d := *prev
	d.PinDir = pinDir
	d.Settings, d.Allow, d.Warnings = o.Settings, allow, prev.Warnings
	d.Attempts = []Attempt{{Mode: prev.Mode, OK: true, Why: "programs swapped in place"}}
	if err := finishRecord(o.PinRoot, &d, cache); err != nil {
		return nil, err
	}
	return &d, nil
}

// Undeploy removes everything xdpcache attached to and pinned for iface,
// and nothing else. An interface without a deployment is not an error.
func Undeploy(iface, pinRoot string) error {
	if pinRoot == "" {
		pinRoot = DefaultPinRoot
	}
	pinRoot = resolvePinRoot(pinRoot)
	if err := checkPrivileges(); err != nil {
		return err
	}
	unlock, err := lockIface(iface)
	if err != nil {
		return err
	}
	defer unlock()
	return undeployLocked(iface, pinRoot)
}

func undeployLocked(iface, pinRoot string) error {
	pinDir := filepath.Join(pinRoot, iface)
	d, derr := ReadDeployment(pinRoot, iface)
	ifindex := 0
	if lk, err := netlink.LinkByName(iface); err == nil {
		ifindex = lk.Attrs().Index
	}
	var errs []error
	var mode Mode
	if derr == nil {
		mode = d.Mode
		if d.XDPAttach == "netlink" && ifindex != 0 && !ourXDPAttached(ifindex, d) {
			mode = "" // someone else's program is there now: leave it
		}
	}
	if ifindex != 0 {
		errs = append(errs, detachXDP(ifindex, pinDir, mode), detachTC(ifindex, pinDir))
	} else {
		// interface gone: unpinning the links is all that is left
		errs = append(errs, detachXDP(0, pinDir, ""), detachTC(0, pinDir))
	}
	errs = append(errs, bpf.Unpin(pinDir))
	if err := os.Remove(filepath.Join(pinDir, pinMeta)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := os.Remove(pinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove %s: %w", pinDir, err))
	}
	return errors.Join(errs...)
}

func ourXDPAttached(ifindex int, d *Deployment) bool {
	lk, err := netlink.LinkByIndex(ifindex)
	if err != nil || lk.Attrs().Xdp == nil {
		return false
	}
	return lk.Attrs().Xdp.ProgId == d.XDPProgID
}

func stillAttached(d *Deployment) bool {
	lk, err := netlink.LinkByName(d.Iface)
	return err == nil && lk.Attrs().Index == d.Ifindex && lk.Attrs().Xdp != nil && lk.Attrs().Xdp.ProgId == d.XDPProgID
}

func sameDeployment(d *Deployment, o *DeployOptions) bool {
	if o.Mode != "" && o.Mode != "auto" && Mode(o.Mode) != d.Mode {
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

// attachedMode reads back the mode the kernel actually used.
func attachedMode(ifindex int) (Mode, error) {
	lk, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return "", err
	}
	x := lk.Attrs().Xdp
	if x == nil || !x.Attached {
		return "", errors.New("no XDP program attached")
	}
	switch x.AttachMode {
	case nl.XDP_ATTACHED_DRV:
		return ModeNative, nil
	case nl.XDP_ATTACHED_SKB:
		return ModeGeneric, nil
	case nl.XDP_ATTACHED_HW:
		return ModeOffload, nil
	}
	return "", fmt.Errorf("XDP attach mode %d", x.AttachMode)
}

func progID(p *ebpf.Program) uint32 {
	info, err := p.Info()
	if err != nil {
		return 0
	}
	id, _ := info.ID()
	return uint32(id)
}
