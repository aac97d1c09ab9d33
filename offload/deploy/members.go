package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/netdev"
	"github.com/xdpcache/xdpcache/offload/probe"
	"github.com/xdpcache/xdpcache/offload/record"
)

// A deployment on several interfaces is one set of maps with programs on
// each: its first interface (Options.Iface) holds the pins and the record
// as a deployment on one interface does (<root>/<first>/); every other
// one, a member, has its links pinned under <root>/<first>/members/<iface>/
// and a record of its own, <root>/<iface>/meta, saying which deployment it
// belongs to (record.Deployment.MemberOf), so that status, undeploy and a
// later deploy find the deployment from any of its interfaces. Listed
// members (Options.More) run the same programs as the first interface;
// watched ones (every other interface that is up, lo included, unless
// Options.ListedOnly) run the watch-only XDP program in generic mode and
// the TC program: writes arriving there invalidate what every listed
// interface serves, and their acknowledgements repeat it.

// member is one more interface of the deployment being planned.
type member struct {
	name    string
	lk      netlink.Link
	role    record.Role
	modes   []mode.Mode // serve: the modes to try, in order; watch: generic
	dir     string      // its links' pins
	foreign uint32      // an XDP program that is not ours is attached (replaced with --force)
}

// MemberConflictError: an interface the deployment needs belongs to
// another deployment.
type MemberConflictError struct {
	Iface string
	Owner string // the first interface of the deployment it belongs to
}

func (e *MemberConflictError) Error() string {
	hint := "deploy them as one (--iface " + e.Owner + " --iface ...), or --listed-only if writes never come through " + e.Iface
	if e.Owner == e.Iface {
		return fmt.Sprintf("%s has a deployment of its own: undeploy it first (xdpcache undeploy --iface %s) and %s", e.Iface, e.Iface, hint)
	}
	return fmt.Sprintf("%s belongs to the deployment on %s: %s", e.Iface, e.Owner, hint)
}

// listedIfaces are the interfaces o serves, the first first; a name given
// twice is an error (a repeated --iface is never silently dropped).
func listedIfaces(o *Options) ([]string, error) {
	listed := append([]string{o.Iface}, o.More...)
	seen := map[string]bool{}
	for _, n := range listed {
		if n == "" {
			return nil, errors.New("an empty interface name")
		}
		if seen[n] {
			return nil, fmt.Errorf("--iface %s is given twice", n)
		}
		seen[n] = true
	}
	return listed, nil
}

// lockAll takes the locks of every interface in names, in name order (two
// deploys sharing interfaces never wait on each other in a circle: the
// second fails at once).
func lockAll(names []string) (func(), error) {
	sorted := slices.Clone(names)
	sort.Strings(sorted)
	var unlocks []func()
	release := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for _, n := range slices.Compact(sorted) {
		u, err := lockIface(n)
		if err != nil {
			release()
			return nil, err
		}
		unlocks = append(unlocks, u)
	}
	return release, nil
}

// planMembers works out the members of the deployment o asks for: the
// further listed interfaces and the watched ones (o.paths). An interface
// of another deployment is an error; one with someone else's XDP program
// too, unless --force.
func (p *plan) planMembers() error {
	o := p.o
	add := func(name string, role record.Role) error {
		lk, err := netdev.ByName(name)
		if err != nil {
			return err
		}
		m := &member{name: name, lk: lk, role: role, dir: record.MemberDir(p.root, o.Iface, name)}
		ours := false
		if rec, err := record.Read(p.root, name); err == nil && p.root != "" {
			owner := rec.MemberOf
			if owner == "" {
				owner = name
			}
			if owner != o.Iface {
				return &MemberConflictError{Iface: name, Owner: owner}
			}
			ours = true // the current deployment's: replaced with it
		}
		if xs := lk.Attrs().Xdp; xs != nil && xs.Attached && !ours {
			if !o.Force && role == record.RoleWatch {
				return fmt.Errorf("%w (%s is watched for writes by default: --listed-only if writes never reach memcached through it)",
					&ForeignProgramError{Iface: name, ProgID: xs.ProgId}, name)
			}
			if !o.Force {
				return &ForeignProgramError{Iface: name, ProgID: xs.ProgId}
			}
			m.foreign = xs.ProgId
		}
		if role == record.RoleWatch {
			m.modes = []mode.Mode{mode.Generic}
		} else {
			modes, _, _, err := planModesOn(o, name, p.root)
			if err != nil {
				return err
			}
			for _, md := range modes {
				if md != mode.Offload {
					m.modes = append(m.modes, md)
				}
			}
			if len(m.modes) == 0 {
				return &NoModeError{Iface: name, Reasons: []string{"offload mode serves one interface only"}}
			}
		}
		p.members = append(p.members, m)
		return nil
	}
	for _, n := range o.More {
		if err := add(n, record.RoleServe); err != nil {
			return err
		}
	}
	for _, n := range probe.Watched(o.paths) {
		if err := add(n, record.RoleWatch); err != nil {
			return err
		}
	}
	return nil
}

// addMemberSteps adds attaching each member to the plan.
func (p *plan) addMemberSteps() {
	for _, m := range p.members {
		if m.foreign != 0 {
			p.add(func(x *execution) error { x.removeForeignOn(m.lk.Attrs().Index, m.name, m.foreign); return nil },
				"remove the foreign XDP program %d from %s (--force)", m.foreign, m.name)
		}
		if m.role == record.RoleWatch {
			p.add(func(x *execution) error { return x.attachMember(m) },
				"attach the watch-only XDP program to %s in generic mode and the TC egress program (writes arriving on %s invalidate; their acknowledgements repeat it)",
				m.name, m.name)
			continue
		}
		var modes []string
		for _, md := range m.modes {
			modes = append(modes, string(md))
		}
		p.add(func(x *execution) error { return x.attachMember(m) },
			"attach XDP to %s (%s mode, on the same maps) and the TC egress filler", m.name, strings.Join(modes, ", else "))
	}
}

// memberAttempt is a member attached so far: rolled back with the attempt.
type memberAttempt struct {
	ifindex int
	dir     string
	mode    mode.Mode // "" until XDP is on
	rec     record.Member
}

func (x *execution) removeForeignOn(ifindex int, name string, id uint32) {
	x.p.o.logf("--force: removing the XDP program %d from %s", id, name)
	for _, m := range []mode.Mode{mode.Native, mode.Generic} {
		_, f, _ := xdpFlags(m)
		_ = netdev.SetXDP(ifindex, -1, f)
	}
}

// attachMember attaches a member's XDP program (the serving one, in the
// first of its modes that works; the watch-only one in generic mode) and
// the TC program, pinning their links under the member's directory.
func (x *execution) attachMember(m *member) error {
	cache, ok := x.flavor.(*bpf.Cache)
	if !ok {
		return fmt.Errorf("%s: only the host flavor runs on several interfaces", m.name)
	}
	prog := cache.XDP
	if m.role == record.RoleWatch {
		if cache.Watch == nil {
			if err := cache.LoadWatch(); err != nil {
				return err
			}
			if err := cache.Watch.Pin(filepath.Join(x.p.pinDir, bpf.PinWatchProg)); err != nil {
				return fmt.Errorf("pin the watch-only XDP program: %w", err)
			}
		}
		prog = cache.Watch
	}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", m.dir, err)
	}
	ifindex := m.lk.Attrs().Index
	ma := &memberAttempt{ifindex: ifindex, dir: m.dir}
	x.att.members = append(x.att.members, ma)
	var reasons []string
	for _, md := range m.modes {
		how, err := attachXDP(ifindex, prog, md, m.dir)
		if err != nil {
			reasons = append(reasons, err.Error())
			x.p.o.logf("%s: %s mode failed: %v", m.name, md, err)
			continue
		}
		ma.mode = md
		ma.rec = record.Member{Iface: m.name, Ifindex: ifindex, Role: m.role, Mode: md, XDPAttach: how,
			XDPProgID: progID(prog), PinDir: m.dir}
		break
	}
	if ma.mode == "" {
		return &NoModeError{Iface: m.name, Reasons: reasons}
	}
	if got, err := attachedMode(ifindex); err == nil && got != ma.mode {
		return fmt.Errorf("%s: asked for %s mode but the kernel reports %s", m.name, ma.mode, got)
	}
	if x.p.o.attachTC == nil {
		x.p.o.attachTC = attachTC
	}
	how, err := x.p.o.attachTC(ifindex, cache.TC, m.dir)
	if err != nil {
		return fmt.Errorf("%s: %w", m.name, err)
	}
	ma.rec.TCAttach, ma.rec.TCProgID = how, progID(cache.TC)
	return nil
}

// finishMembers puts the members into d and writes each one's own record.
func (x *execution) finishMembers(d *record.Deployment) error {
	for _, ma := range x.att.members {
		d.Members = append(d.Members, ma.rec)
	}
	for _, m := range d.Members {
		if err := os.MkdirAll(record.Dir(x.p.root, m.Iface), 0o700); err != nil {
			return fmt.Errorf("create %s: %w", record.Dir(x.p.root, m.Iface), err)
		}
		x.att.pointers = append(x.att.pointers, m.Iface)
	}
	// with its program's ids: probe knows the programs attached there as ours
	return rewriteMemberRecords(x.p.root, d)
}

// rollbackMembers removes what attachMember and finishMembers did.
func (a *attempt) rollbackMembers(root string) {
	for _, ma := range a.members {
		detachXDP(ma.ifindex, ma.dir, ma.mode)
		detachTC(ma.ifindex, ma.dir)
		os.RemoveAll(ma.dir)
	}
	for _, name := range a.pointers {
		removeMemberRecord(root, name)
	}
	os.Remove(filepath.Join(a.pinDir, "members"))
}

func removeMemberRecord(root, name string) error {
	dir := record.Dir(root, name)
	if err := os.Remove(filepath.Join(dir, record.PinMeta)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// undeployMembers removes every member of d: its attachments (a netlink
// one only while our program is still there), its links' pins and its own
// record.
func undeployMembers(root string, d *record.Deployment) error {
	var errs []error
	for _, m := range d.Members {
		dir := record.MemberDir(root, d.Iface, m.Iface)
		ifindex, md := 0, m.Mode
		if lk, err := netlink.LinkByName(m.Iface); err == nil && lk.Attrs().Index == m.Ifindex {
			ifindex = lk.Attrs().Index
			if m.XDPAttach == record.XDPNetlink && (lk.Attrs().Xdp == nil || lk.Attrs().Xdp.ProgId != m.XDPProgID) {
				md = "" // someone else's program is there now: leave it
			}
		} else {
			md = ""
		}
		errs = append(errs, detachXDP(ifindex, dir, md), detachTC(ifindex, dir))
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
		}
		if own, err := record.Read(root, m.Iface); err == nil && own.MemberOf == d.Iface {
			errs = append(errs, removeMemberRecord(root, m.Iface))
		}
	}
	if err := os.Remove(filepath.Join(root, d.Iface, "members")); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// membersAttached: every member of d still runs our XDP program.
func membersAttached(d *record.Deployment) bool {
	for _, m := range d.Members {
		lk, err := netlink.LinkByName(m.Iface)
		if err != nil || lk.Attrs().Index != m.Ifindex || lk.Attrs().Xdp == nil || lk.Attrs().Xdp.ProgId != m.XDPProgID {
			return false
		}
	}
	return true
}

// sameMembers: d has the members p plans, in the same roles.
func (p *plan) sameMembers(d *record.Deployment) bool {
	if len(d.Members) != len(p.members) || d.ListedOnly != p.o.ListedOnly {
		return false
	}
	for i, m := range p.members {
		if d.Members[i].Iface != m.name || d.Members[i].Role != m.role {
			return false
		}
	}
	return true
}

// serveLinks are the links of every listed interface, the first first.
func (p *plan) serveLinks() []netlink.Link {
	out := []netlink.Link{p.lk}
	for _, m := range p.members {
		if m.role == record.RoleServe {
			out = append(out, m.lk)
		}
	}
	return out
}

// membersLinked: every member of d is attached through bpf_links (XDP link
// and TCX), whose programs can be swapped in place.
func membersLinked(d *record.Deployment) bool {
	for _, m := range d.Members {
		if m.XDPAttach != record.XDPLink || m.TCAttach != record.TCX {
			return false
		}
	}
	return true
}

// memberLinks are the pinned links of one member.
type memberLinks struct {
	m      *record.Member
	xl, tl link.Link
}

// openMemberLinks opens the pinned links of every member of d.
func openMemberLinks(root string, d *record.Deployment) ([]memberLinks, func(), error) {
	var out []memberLinks
	closeAll := func() {
		for _, ml := range out {
			ml.xl.Close()
			ml.tl.Close()
		}
	}
	for i := range d.Members {
		m := &d.Members[i]
		dir := record.MemberDir(root, d.Iface, m.Iface)
		xl, err := loadPinnedLink(filepath.Join(dir, record.PinXDPLink), m.Iface+" XDP")
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		tl, err := loadPinnedLink(filepath.Join(dir, record.PinTCLink), m.Iface+" TC")
		if err != nil {
			xl.Close()
			closeAll()
			return nil, nil, err
		}
		out = append(out, memberLinks{m: m, xl: xl, tl: tl})
	}
	return out, closeAll, nil
}

// swapMembers puts c's programs into the members' links (the watch-only
// one for watched members) and notes their ids in the records.
func swapMembers(mls []memberLinks, c *bpf.Cache) error {
	for _, ml := range mls {
		xdp := c.XDP
		if ml.m.Role == record.RoleWatch {
			xdp = c.Watch
		}
		if xdp == nil {
			return fmt.Errorf("%s: no watch-only program to swap in", ml.m.Iface)
		}
		if err := ml.xl.Update(xdp); err != nil {
			return fmt.Errorf("swap the XDP program of %s: %w", ml.m.Iface, err)
		}
		if err := ml.tl.Update(c.TC); err != nil {
			return fmt.Errorf("swap the TC program of %s: %w", ml.m.Iface, err)
		}
		ml.m.XDPProgID, ml.m.TCProgID = progID(xdp), progID(c.TC)
	}
	return nil
}

// rewriteMemberRecords writes each member's own record again (its program
// ids changed).
func rewriteMemberRecords(root string, d *record.Deployment) error {
	for _, m := range d.Members {
		if err := record.Write(root, &record.Deployment{Iface: m.Iface, Ifindex: m.Ifindex, MemberOf: d.Iface,
			Mode: m.Mode, XDPAttach: m.XDPAttach, TCAttach: m.TCAttach, XDPProgID: m.XDPProgID, TCProgID: m.TCProgID,
			PinDir: m.PinDir, DeployedAt: d.DeployedAt}); err != nil {
			return err
		}
	}
	return nil
}

func hasWatch(d *record.Deployment) bool {
	return slices.ContainsFunc(d.Members, func(m record.Member) bool { return m.Role == record.RoleWatch })
}
