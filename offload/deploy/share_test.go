package deploy

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/offload/dispatch"
	"github.com/xdpcache/xdpcache/offload/mode"
)

// The counting program xdp-loader loads (offload/dispatch/dispatchtest):
// its map's slots.
var counterObject, _ = filepath.Abs("../dispatch/dispatchtest/counter_bpfel.o")

const (
	countUDPMemcached = 1
	countUDPOther     = 2
)

// requireXDPLoader skips unless this kernel runs dispatcher components and
// Debian's xdp-loader is installed.
func requireXDPLoader(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("xdp-loader"); err != nil {
		t.Skip("xdp-loader is not installed (apt-get install xdp-tools)")
	}
	if err := dispatch.Supported(); err != nil {
		t.Skipf("this kernel cannot run programs under a dispatcher (make test-lab runs TestShare in Debian's kernels): %v", err)
	}
}

func xdpLoader(t *testing.T, ns netlab.NS, args ...string) string {
	t.Helper()
	out, err := ns.Command(context.Background(), "xdp-loader", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("xdp-loader %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inspectIn reads the dispatcher on the namespace's interface.
func inspectIn(t *testing.T, ns netlab.NS) *dispatch.State {
	t.Helper()
	var st *dispatch.State
	if err := ns.Do(func() error {
		lk, err := net.InterfaceByName(ns.Iface)
		if err != nil {
			return err
		}
		st, err = dispatch.Inspect(lk.Index, dispatch.Options{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

// names lists a dispatcher's programs in run order.
func names(st *dispatch.State) string {
	if st.Dispatcher == nil {
		return "(no dispatcher: " + st.ProgName + ")"
	}
	var out []string
	for _, c := range st.Dispatcher.Components {
		out = append(out, c.Name)
	}
	return strings.Join(out, " ")
}

// counted reads the counting program's slots.
func counted(t *testing.T, st *dispatch.State) [3]uint64 {
	t.Helper()
	var out [3]uint64
	for _, c := range st.Dispatcher.Components {
		if c.Name != "xdp_count" {
			continue
		}
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(c.ProgID))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		info, _ := p.Info()
		ids, _ := info.MapIDs()
		m, err := ebpf.NewMapFromID(ids[0])
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		for i := range out {
			if err := m.Lookup(uint32(i), &out[i]); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	t.Fatalf("no xdp_count in the dispatcher: %s", names(st))
	return out
}

// Debian's xdp-loader loads a counting XDP_PASS program first; deploy joins
// its dispatcher; GETs and other UDP go through both; undeploy leaves the
// counter running (the lab's TestShare does the same through real drivers).
func TestDeployJoinsXDPLoadersDispatcher(t *testing.T) {
	requireXDPLoader(t)
	for _, tc := range []struct {
		loaderMode string
		want       mode.Mode
		prio       string
		before     bool // the counter runs before xdpcache (priority 60)
	}{
		{"native", mode.Native, "10", true},
		{"skb", mode.Generic, "100", false},
	} {
		t.Run(string(tc.want), func(t *testing.T) {
			lab, m := newLab(t)
			attachPass(t, lab.Client)
			root := testPinRoot(t)
			iface := lab.Server.Iface
			xdpLoader(t, lab.Server, "load", "-m", tc.loaderMode, "-P", tc.prio, iface, counterObject)
			t.Cleanup(func() { lab.Server.Command(context.Background(), "xdp-loader", "unload", iface, "--all").Run() })

			d, err := deployIn(t, lab.Server, Options{Iface: iface, Settings: testSettings(), PinRoot: root})
			if err != nil {
				t.Fatalf("deploy beside xdp-loader's program: %v", err)
			}
			want := "xdp_count xdpcache_xdp"
			if !tc.before {
				want = "xdpcache_xdp xdp_count"
			}
			st := inspectIn(t, lab.Server)
			if d.Mode != tc.want || d.Dispatcher == nil || names(st) != want || st.Mode != tc.want {
				t.Fatalf("deployed in %s (%+v); the dispatcher runs %q in %s, want %q in %s", d.Mode, d.Dispatcher, names(st), st.Mode, want, tc.want)
			}
			if out := xdpLoader(t, lab.Server, "status", iface); !strings.Contains(out, "xdpcache_xdp") || !strings.Contains(out, "xdp_count") {
				t.Errorf("xdp-loader status does not list both programs:\n%s", out)
			}
			if s := statusIn(t, lab.Server, root); !s.Attached || s.LibXDP == nil || len(s.LibXDP.Components) != 2 {
				t.Errorf("status: attached %v, dispatcher %+v", s.Attached, s.LibXDP)
			}

			c := dialMC(t, lab, m)
			c.set("share", "shared")
			time.Sleep(100 * time.Millisecond) // past the write hold
			var other *net.UDPConn
			if err := lab.Client.Do(func() (err error) { other, err = net.ListenUDP("udp4", nil); return err }); err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			discard := net.UDPAddrFromAddrPort(netip.AddrPortFrom(m.Addr, 9))
			c0, s0 := counted(t, st), statusIn(t, lab.Server, root).Counters
			const nGets, nOther = 20, 15
			for range nGets {
				if v, ok := c.get("share"); !ok || v != "shared" {
					t.Fatalf("UDP get: %q %v", v, ok)
				}
			}
			for range nOther {
				if _, err := other.WriteToUDP([]byte("not memcached"), discard); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(100 * time.Millisecond) // the other datagrams get no reply to wait for
			c1, s1 := counted(t, inspectIn(t, lab.Server)), statusIn(t, lab.Server, root).Counters
			hits := s1["hits"] - s0["hits"]
			if hits < nGets-2 || s1["get_reqs"]-s0["get_reqs"] != nGets {
				t.Errorf("xdpcache answered %d and saw %d of %d GETs", hits, s1["get_reqs"]-s0["get_reqs"], nGets)
			}
			wantMC := uint64(nGets)
			if !tc.before {
				wantMC = nGets - hits // XDP_TX ends the chain
			}
			if got := c1[countUDPMemcached] - c0[countUDPMemcached]; got != wantMC {
				t.Errorf("the counter saw %d memcached packets, want %d", got, wantMC)
			}
			if got := c1[countUDPOther] - c0[countUDPOther]; got != nOther {
				t.Errorf("the counter saw %d other UDP packets, want %d", got, nOther)
			}

			if err := lab.Server.Do(func() error { return Undeploy(iface, root) }); err != nil {
				t.Fatal(err)
			}
			st = inspectIn(t, lab.Server)
			if names(st) != "xdp_count" {
				t.Fatalf("after undeploy the dispatcher runs %q, want the counter alone", names(st))
			}
			c2 := counted(t, st)
			for range 3 {
				other.WriteToUDP([]byte("still there?"), discard)
			}
			time.Sleep(100 * time.Millisecond)
			if got := counted(t, inspectIn(t, lab.Server))[countUDPOther] - c2[countUDPOther]; got != 3 {
				t.Errorf("after undeploy the counter saw %d of 3 packets", got)
			}
		})
	}
}
