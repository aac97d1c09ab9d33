package deploy

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/record"
)

// path is one way a test client reaches the lab's memcached.
type path struct {
	name string
	tcp  *mcproto.TCPClient
	udp  *mcproto.UDPClient
}

func dialPath(t *testing.T, name string, from netlab.NS, to netip.AddrPort) path {
	t.Helper()
	tc, err := from.DialTCP(to, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := from.DialUDP(to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close(); uc.Close() })
	return path{name: name, tcp: mcproto.NewTCPClient(tc, 2*time.Second), udp: mcproto.NewUDPClient(uc, 2*time.Second)}
}

func (p path) set(t *testing.T, key, val string) {
	t.Helper()
	if err := p.tcp.Set(key, 0, 0, []byte(val)); err != nil {
		t.Fatalf("set via %s: %v", p.name, err)
	}
}

func (p path) get(t *testing.T, key string) string {
	t.Helper()
	items, err := p.udp.Get(key)
	if err != nil {
		t.Fatalf("get via %s: %v", p.name, err)
	}
	v, _ := value(items)
	return v
}

// TestDeployOnTwoInterfacesAndLoopback: deploy --iface a --iface b is one
// deployment on shared maps, lo is watched by default; a write through any
// of a, b and lo invalidates what a and b serve; status and undeploy work
// from any of its interfaces, and undeploy leaves nothing anywhere.
func TestDeployOnTwoInterfacesAndLoopback(t *testing.T) {
	lab, m := labtest.StartLinks(t, 1)
	second := lab.Links[0]
	labtest.PassOnClient(t, lab)
	if err := second.Client.AttachXDPPass(); err != nil {
		t.Fatal(err)
	}
	root := testPinRoot(t)
	s := testSettings()
	s.WriteHold = 0 // every write here is acknowledged: rule A covers it, and fills right after it are allowed
	o := Options{Iface: lab.Server.Iface, More: []string{second.Server.Iface}, Mode: mode.Auto, Settings: s, PinRoot: root}

	// the dry run names every interface and what it does there
	dry := o
	dry.DryRun = true
	plan, err := deployIn(t, lab.Server, dry)
	if err != nil {
		t.Fatal(err)
	}
	wantRoles := map[string]record.Role{lab.Server.Iface: record.RoleServe, second.Server.Iface: record.RoleServe, "lo": record.RoleWatch}
	for iface, role := range wantRoles {
		if !slices.ContainsFunc(plan.Coverage, func(p record.Path) bool { return p.Iface == iface && p.Covered && p.Role == role }) {
			t.Errorf("dry-run coverage lacks %s as %s: %+v", iface, role, plan.Coverage)
		}
		if iface != lab.Server.Iface && !slices.ContainsFunc(plan.Plan, func(s string) bool { return strings.Contains(s, " "+iface+" ") }) {
			t.Errorf("dry-run plan never attaches to %s: %q", iface, plan.Plan)
		}
	}

	d, err := deployIn(t, lab.Server, o)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]record.Role{d.Iface: record.RoleServe}
	for _, mb := range d.Members {
		got[mb.Iface] = mb.Role
		if mb.Role == record.RoleWatch && mb.Mode != mode.Generic {
			t.Errorf("%s watched in %s mode, want generic", mb.Iface, mb.Mode)
		}
	}
	for iface, role := range wantRoles {
		if got[iface] != role {
			t.Errorf("%s: role %q, want %q (members %+v)", iface, got[iface], role, d.Members)
		}
	}
	// one deployment, found from any of its interfaces
	for _, iface := range []string{lab.Server.Iface, second.Server.Iface, "lo"} {
		var st *Status
		if err := lab.Server.Do(func() error { st, err = ReadStatus(root, iface); return err }); err != nil {
			t.Fatalf("status of %s: %v", iface, err)
		}
		if st.Iface != lab.Server.Iface || !st.Attached || len(st.Members) != len(d.Members) {
			t.Errorf("status of %s: deployment on %s attached=%v members %d", iface, st.Iface, st.Attached, len(st.Members))
		}
	}
	var listed []string
	lab.Server.Do(func() error { listed, err = List(root); return err })
	if !slices.Equal(listed, []string{lab.Server.Iface}) {
		t.Errorf("List = %v, want only %s", listed, lab.Server.Iface)
	}
	// deploying on a member alone would tear the deployment apart
	var conflict *MemberConflictError
	if _, err := deployIn(t, lab.Server, Options{Iface: "lo", Mode: mode.Generic, Settings: testSettings(), PinRoot: root}); !errors.As(err, &conflict) {
		t.Errorf("deploy on the watched lo alone: %v, want a MemberConflictError", err)
	}
	// the same deployment again changes nothing
	d2, err := deployIn(t, lab.Server, o)
	if err != nil {
		t.Fatal(err)
	}
	if d2.XDPProgID != d.XDPProgID || len(d2.Members) != len(d.Members) {
		t.Errorf("a repeated deploy replaced the programs (%d -> %d)", d.XDPProgID, d2.XDPProgID)
	}

	addr := netip.AddrPortFrom(m.Addr, m.Port)
	first := dialPath(t, "the first interface", lab.Client, addr)
	other := dialPath(t, "the second interface", second.Client, netip.AddrPortFrom(second.Server.Addr, m.Port))
	local := dialPath(t, "loopback", lab.Server, addr)
	readers := []path{first, other}
	cached := func(key, want string) {
		t.Helper()
		// the first GET may fill, the next ones are answered by XDP
		for _, r := range readers {
			for range 3 {
				if v := r.get(t, key); v != want {
					t.Fatalf("get %s via %s = %q, want %q", key, r.name, v, want)
				}
			}
		}
	}
	before := statusIn(t, lab.Server, root).Stats.Get(bpf.StatHits)
	for i, w := range []path{first, other, local, other, first, local} {
		val := "v" + string(rune('A'+i))
		w.set(t, "k", val)
		cached("k", val)
	}
	st := statusIn(t, lab.Server, root)
	if st.Stats.Get(bpf.StatHits) == before {
		t.Errorf("no GET was answered by XDP: the test proves nothing")
	}
	t.Logf("hits %d, invalidations %d, acknowledged again %d", st.Stats.Get(bpf.StatHits)-before,
		st.Stats.Get(bpf.StatInvalidations), st.Stats.Get(bpf.StatAckInvalidations))

	// undeploy through a member removes it all
	if err := lab.Server.Do(func() error { return Undeploy("lo", root) }); err != nil {
		t.Fatal(err)
	}
	for _, iface := range []string{lab.Server.Iface, second.Server.Iface, "lo"} {
		assertClean(t, netlab.NS{Name: lab.Server.Name, Iface: iface}, root)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("pins left under %s: %v", root, ents)
	}
}

// TestDeployInterfaceChoices: a repeated interface is an error, and
// --listed-only watches nothing (its coverage says what is not seen).
func TestDeployInterfaceChoices(t *testing.T) {
	lab, _ := newLab(t)
	labtest.PassOnClient(t, lab)
	root := testPinRoot(t)
	for _, tc := range []struct {
		name       string
		more       []string
		listedOnly bool
		err        string
		watched    []string
	}{
		{"repeated interface", []string{lab.Server.Iface}, false, "given twice", nil},
		{"default watches lo", nil, false, "", []string{"lo"}},
		{"listed only", nil, true, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := deployIn(t, lab.Server, Options{Iface: lab.Server.Iface, More: tc.more, ListedOnly: tc.listedOnly,
				Settings: testSettings(), PinRoot: root, DryRun: true})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var watched []string
			for _, mb := range d.Members {
				watched = append(watched, mb.Iface)
			}
			if !slices.Equal(watched, tc.watched) {
				t.Errorf("watched %v, want %v", watched, tc.watched)
			}
			lo := slices.IndexFunc(d.Coverage, func(p record.Path) bool { return p.Iface == "lo" })
			if lo < 0 || d.Coverage[lo].Covered == tc.listedOnly {
				t.Errorf("coverage of lo: %+v", d.Coverage)
			}
		})
	}
	assertClean(t, lab.Server, root)
	if _, err := os.Stat(filepath.Join(root, "lo")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run left %s", filepath.Join(root, "lo"))
	}
}

// TestLoopbackLargeWrites: a client on memcached's host writes batches of
// pipelined sets over loopback, whose segments are up to 64 KiB (lo's MTU,
// no segmentation) and reach generic XDP whole. Every key cached before a
// batch is read afterwards with the batch's value, however many commands a
// segment holds; the counters show what it cost (a segment with more
// commands than XDP reads in one go is read conservatively, flushing).
func TestLoopbackLargeWrites(t *testing.T) {
	lab, m := newLab(t)
	labtest.PassOnClient(t, lab)
	root := testPinRoot(t)
	s := testSettings()
	s.WriteHold = 0
	if _, err := deployIn(t, lab.Server, Options{Iface: lab.Server.Iface, Mode: mode.Native, Settings: s, PinRoot: root}); err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(m.Addr, m.Port)
	remote := dialPath(t, "the interface", lab.Client, addr)
	local := dialPath(t, "loopback", lab.Server, addr)
	for _, tc := range []struct {
		name  string
		batch int
		size  int // value bytes
	}{
		{"10 small sets", 10, 16},
		{"300 small sets", 300, 16},
		{"2000 small sets", 2000, 16},
		{"60 sets of 1000 bytes", 60, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := []string{"lk:first", "lk:middle", "lk:last"}
			for _, k := range keys {
				remote.set(t, k, "old")
				for range 2 {
					remote.get(t, k) // fill, then hit
				}
			}
			before := statusIn(t, lab.Server, root).Stats
			val := strings.Repeat("n", tc.size)
			var reqs [][]byte
			for i := range tc.batch {
				k := "lk:" + strconv.Itoa(i)
				switch i {
				case 0:
					k = keys[0]
				case tc.batch / 2:
					k = keys[1]
				case tc.batch - 1:
					k = keys[2]
				}
				reqs = append(reqs, mcproto.AppendStorage(nil, "set", k, 0, 0, []byte(val), 0, false))
			}
			if _, err := local.tcp.Pipeline(reqs...); err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if v := remote.get(t, k); v != val {
					t.Errorf("%s after the batch over loopback: %q, want the batch's value", k, v)
				}
			}
			after := statusIn(t, lab.Server, root).Stats
			d := func(s bpf.Stat) uint64 { return after.Get(s) - before.Get(s) }
			t.Logf("%d sets (%d bytes) over lo: %d TCP segments read, %d invalidations, %d flushes (%d: segment not read exactly)",
				tc.batch, len(bytes.Join(reqs, nil)), d(bpf.StatTCPSegments), d(bpf.StatInvalidations), d(bpf.StatFlushes), d(bpf.StatFlushUnsynced))
		})
	}
}
