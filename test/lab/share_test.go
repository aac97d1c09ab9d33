package lab

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/offload/dispatch"
)

// Sharing an interface with another XDP program through libxdp's
// dispatcher (docs/coexistence.md), with Debian's own xdp-loader: the
// counting program (offload/dispatch/dispatchtest, XDP_PASS on every
// packet) is loaded first, xdpcache joins it, GET hits and other UDP
// traffic go through both, undeploy takes only xdpcache out.
const (
	xdpLoader     = "/usr/sbin/xdp-loader"
	counterObject = "/tests/lab/counter_bpfel.o" // scripts/lab.sh copies it
)

// counter slots (c/counter.c)
const (
	countAll = iota
	countUDPMemcached
	countUDPOther
)

type counts [3]uint64

func (c counts) minus(o counts) counts {
	for i := range c {
		c[i] -= o[i]
	}
	return c
}

// readCounter finds the counting program in the dispatcher on iface and
// reads its map.
func readCounter(t *testing.T, ifindex int) counts {
	t.Helper()
	st, err := dispatch.Inspect(ifindex, dispatch.Options{})
	if err != nil || st.Dispatcher == nil {
		t.Fatalf("no dispatcher on interface %d: %v", ifindex, err)
	}
	for _, c := range st.Dispatcher.Components {
		if c.Name != "xdp_count" {
			continue
		}
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(c.ProgID))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := info.MapIDs()
		if len(ids) != 1 {
			t.Fatalf("the counting program has %d maps", len(ids))
		}
		m, err := ebpf.NewMapFromID(ids[0])
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		var out counts
		for i := range out {
			if err := m.Lookup(uint32(i), &out[i]); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	t.Fatalf("the dispatcher on interface %d has no xdp_count: %+v", ifindex, st.Dispatcher.Components)
	return counts{}
}

// loaderStatus is xdp-loader status for iface: the program names it
// lists, in its order.
func loaderStatus(t *testing.T, iface string) []string {
	t.Helper()
	out, err := run(xdpLoader, "status", iface)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		// "vsq  xdp_dispatcher native 42 tag" then " => 10  xdp_count 43 tag XDP_PASS"
		if len(f) >= 3 && f[0] == "=>" {
			names = append(names, f[2])
		} else if len(f) >= 2 && f[0] == iface {
			names = append(names, f[1])
		}
	}
	t.Logf("xdp-loader status %s: %v", iface, names)
	return names
}

// libxdpRelinks: per kernel series, whether Debian's libxdp (1.3.1) can
// re-link xdpcache's program when it rebuilds a dispatcher. Kernels with
// the changes_pkt_data check for extensions (6.13; Debian's 6.12 has it
// backported) refuse, because libxdp's slots before 1.5.5 do not change
// packet data and xdpcache does.
var libxdpRelinks = map[string]bool{"6.1": true, "6.12": false}

type shareStatus struct {
	status
	XDPAttach string               `json:"xdp_attach"`
	LibXDP    *dispatch.Dispatcher `json:"libxdp_dispatcher"`
}

func TestShare(t *testing.T) {
	requireLab(t)
	if _, err := os.Stat(xdpLoader); err != nil {
		t.Fatalf("xdp-loader is not in the guest (scripts/lab.sh copies it from xdp-tools): %v", err)
	}
	// The kernel check behind libxdpRelinks, seen directly.
	if checks, err := dispatch.ChecksPacketChanges(); err != nil {
		t.Fatal(err)
	} else if checks == libxdpRelinks[kernel] {
		t.Errorf("on %s the kernel checks extensions for changing packet data: %v; libxdpRelinks says libxdp 1.3.1 re-links xdpcache: %v", kernel, checks, libxdpRelinks[kernel])
	}
	n := nics[0] // virtio-net: native and generic XDP, a client on its hub
	iface := n.name
	lk, err := netlabIfindex(iface)
	if err != nil {
		t.Fatal(err)
	}
	server := netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", n.subnet))
	client := netlab.NS{Name: clientNS(n), Iface: n.client}
	for _, tc := range []struct {
		name       string
		loaderMode string // xdp-loader -m
		mode       string // the mode xdpcache must join in
		prio       string // the counter's priority (xdpcache runs at 60)
		before     bool   // the counter runs before xdpcache
	}{
		{"native-counter-first", "native", "native", "10", true},
		{"generic-counter-after", "skb", "generic", "100", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() {
				exec.Command(xdpcache, "undeploy", "--iface", iface).Run()
				exec.Command(xdpLoader, "unload", iface, "--all").Run()
			})
			if _, err := run(xdpLoader, "load", "-m", tc.loaderMode, "-P", tc.prio, iface, counterObject); err != nil {
				t.Fatal(err)
			}
			if got := loaderStatus(t, iface); len(got) != 2 || got[0] != "xdp_dispatcher" || got[1] != "xdp_count" {
				t.Fatalf("xdp-loader did not load the counter under its dispatcher: %v", got)
			}

			// probe reports the dispatcher and that deploy joins it
			out, err := run(xdpcache, "probe", "--json", "--iface", iface)
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				LibXDP struct {
					Supported bool            `json:"supported"`
					State     *dispatch.State `json:"state"`
				} `json:"libxdp"`
				Plan struct {
					Mode string `json:"mode"`
				} `json:"plan"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatal(err)
			}
			if !rep.LibXDP.Supported || rep.LibXDP.State == nil || rep.LibXDP.State.Dispatcher == nil ||
				len(rep.LibXDP.State.Dispatcher.Components) != 1 || rep.Plan.Mode != tc.mode {
				t.Fatalf("probe: libxdp %+v, plan mode %q (want %s)", rep.LibXDP, rep.Plan.Mode, tc.mode)
			}

			res := deploy(t, iface, "--mode", "auto")
			if res.Mode != tc.mode || res.Error != "" {
				t.Fatalf("deploy: mode %q (%s), want %s", res.Mode, res.Error, tc.mode)
			}
			names := loaderStatus(t, iface)
			want := []string{"xdp_dispatcher", "xdp_count", "xdpcache_xdp"}
			if !tc.before {
				want = []string{"xdp_dispatcher", "xdpcache_xdp", "xdp_count"}
			}
			if strings.Join(names, " ") != strings.Join(want, " ") {
				t.Fatalf("xdp-loader status after deploy: %v, want %v", names, want)
			}
			st := readShareStatus(t, iface)
			if st.XDPAttach != "dispatcher" || !st.Attached || st.LibXDP == nil || len(st.LibXDP.Components) != 2 {
				t.Fatalf("status: attach %q attached %v dispatcher %+v", st.XDPAttach, st.Attached, st.LibXDP)
			}

			// traffic: GETs (hits once the cache is filled) and UDP to
			// another port, which xdpcache passes on
			tconn, err := client.DialTCP(netip.AddrPortFrom(server, 11211), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer tconn.Close()
			tcp := mcproto.NewTCPClient(tconn, 5*time.Second)
			uconn, err := client.DialUDP(netip.AddrPortFrom(server, 11211))
			if err != nil {
				t.Fatal(err)
			}
			defer uconn.Close()
			udp := mcproto.NewUDPClient(uconn, 2*time.Second)
			// unconnected: the port-unreachable replies must not fail the writes
			var other *net.UDPConn
			if err := client.Do(func() (err error) {
				other, err = net.ListenUDP("udp4", nil)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			discard := net.UDPAddrFromAddrPort(netip.AddrPortFrom(server, 9))
			key := "share:" + tc.name
			if err := tcp.Set(key, 0, 0, []byte("v-"+tc.name)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // the write hold
			sendOther := func(k int) {
				for i := 0; i < k; i++ {
					if _, err := other.WriteToUDP([]byte("not memcached"), discard); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(200 * time.Millisecond) // they have no reply to wait for
			}
			gets := func(k int) {
				for i := 0; i < k; i++ {
					items, err := udp.Get(key)
					if err != nil || len(items) != 1 || string(items[0].Value) != "v-"+tc.name {
						t.Fatalf("UDP get %d: %+v %v", i, items, err)
					}
				}
			}
			c0 := readCounter(t, lk)
			s0 := readShareStatus(t, iface).Counters
			const nGets, nOther = 20, 15
			gets(nGets)
			sendOther(nOther)
			dc := readCounter(t, lk).minus(c0)
			s1 := readShareStatus(t, iface).Counters
			hits := s1["hits"] - s0["hits"]
			t.Logf("%d GETs, %d other: xdpcache answered %d, saw %d GETs; the counter saw %d memcached and %d other UDP packets",
				nGets, nOther, hits, s1["get_reqs"]-s0["get_reqs"], dc[countUDPMemcached], dc[countUDPOther])
			if g := s1["get_reqs"] - s0["get_reqs"]; g != nGets {
				t.Errorf("xdpcache saw %d GETs of %d", g, nGets)
			}
			if hits < nGets-2 {
				t.Errorf("xdpcache answered %d of %d GETs", hits, nGets)
			}
			if dc[countUDPOther] != nOther {
				t.Errorf("the counter saw %d of the %d other UDP packets", dc[countUDPOther], nOther)
			}
			if s1["xdp_packets"]-s0["xdp_packets"] < nGets+nOther {
				t.Errorf("xdpcache ran on %d packets, fewer than the %d sent", s1["xdp_packets"]-s0["xdp_packets"], nGets+nOther)
			}
			// Before xdpcache the counter sees every GET; after it, only
			// those xdpcache passed on (XDP_TX ends the chain).
			wantMC := uint64(nGets)
			if !tc.before {
				wantMC = nGets - hits
			}
			if dc[countUDPMemcached] != wantMC {
				t.Errorf("the counter saw %d memcached packets, want %d", dc[countUDPMemcached], wantMC)
			}

			// undeploy takes only xdpcache out; the counter keeps running
			if _, err := run(xdpcache, "undeploy", "--iface", iface); err != nil {
				t.Fatal(err)
			}
			if got := loaderStatus(t, iface); strings.Join(got, " ") != "xdp_dispatcher xdp_count" {
				t.Fatalf("xdp-loader status after undeploy: %v", got)
			}
			c1 := readCounter(t, lk)
			sendOther(nOther)
			gets(5)
			dc = readCounter(t, lk).minus(c1)
			if dc[countUDPOther] != nOther || dc[countUDPMemcached] != 5 {
				t.Errorf("after undeploy the counter saw %d other and %d memcached packets, want %d and 5", dc[countUDPOther], dc[countUDPMemcached], nOther)
			}
			if _, err := run(xdpLoader, "unload", iface, "--all"); err != nil {
				t.Errorf("xdp-loader cannot unload the dispatcher xdpcache left: %v", err)
			}
		})
	}
	// --dispatcher on an empty interface: xdpcache alone in a dispatcher;
	// xdp-loader then adds the counter beside it (libxdp rebuilds the
	// dispatcher with its own object and re-links xdpcache's program).
	t.Run("own-dispatcher-then-xdp-loader", func(t *testing.T) {
		t.Cleanup(func() {
			exec.Command(xdpcache, "undeploy", "--iface", iface).Run()
			exec.Command(xdpLoader, "unload", iface, "--all").Run()
		})
		// alone in its dispatcher, undeploy removes the dispatcher too
		res := deploy(t, iface, "--mode", "native", "--dispatcher")
		if res.Mode != "native" || res.Error != "" {
			t.Fatalf("deploy --dispatcher: mode %q (%s)", res.Mode, res.Error)
		}
		if _, err := run(xdpcache, "undeploy", "--iface", iface); err != nil {
			t.Fatal(err)
		}
		if out, _ := run(ipCmd, "link", "show", "dev", iface); strings.Contains(out, "prog/xdp") {
			t.Fatalf("undeploy of xdpcache alone in a dispatcher left XDP on %s: %s", iface, out)
		}
		if left, _ := filepath.Glob(fmt.Sprintf("/sys/fs/bpf/xdp/dispatch-%d-*", lk)); len(left) > 0 {
			t.Fatalf("undeploy left the dispatcher's pins: %v", left)
		}
		res = deploy(t, iface, "--mode", "native", "--dispatcher")
		if res.Mode != "native" || res.Error != "" {
			t.Fatalf("deploy --dispatcher: mode %q (%s)", res.Mode, res.Error)
		}
		if got := loaderStatus(t, iface); strings.Join(got, " ") != "xdp_dispatcher xdpcache_xdp" {
			t.Fatalf("xdp-loader status after deploy --dispatcher: %v", got)
		}
		_, err := run(xdpLoader, "load", "-m", "native", "-P", "10", iface, counterObject)
		if !libxdpRelinks[kernel] {
			// The kernel refuses to let xdpcache (which changes packet data)
			// replace a slot of libxdp 1.3.1's dispatcher (which does not):
			// xdp-loader fails and leaves xdpcache's dispatcher as it was.
			if err == nil {
				t.Fatalf("xdp-loader re-linked xdpcache on %s: the kernel lacks the changes_pkt_data check after all (update libxdpRelinks and docs/coexistence.md)", kernel)
			}
			t.Logf("as expected on %s with libxdp 1.3.1: %v", kernel, err)
			if got := loaderStatus(t, iface); strings.Join(got, " ") != "xdp_dispatcher xdpcache_xdp" {
				t.Fatalf("xdp-loader's failed load changed the dispatcher: %v", got)
			}
			if st := readShareStatus(t, iface); !st.Attached || st.LibXDP == nil || len(st.LibXDP.Components) != 1 {
				t.Fatalf("status after xdp-loader's failed load: attached %v, %+v", st.Attached, st.LibXDP)
			}
			if _, err := run(xdpcache, "undeploy", "--iface", iface); err != nil {
				t.Fatal(err)
			}
			if out, _ := run(ipCmd, "link", "show", "dev", iface); strings.Contains(out, "prog/xdp") {
				t.Fatalf("undeploy left XDP on %s: %s", iface, out)
			}
			return
		}
		if err != nil {
			t.Fatalf("xdp-loader cannot add a program beside xdpcache: %v", err)
		}
		if got := loaderStatus(t, iface); strings.Join(got, " ") != "xdp_dispatcher xdp_count xdpcache_xdp" {
			t.Fatalf("xdp-loader status after adding the counter: %v", got)
		}
		st := readShareStatus(t, iface)
		if !st.Attached || st.LibXDP == nil || len(st.LibXDP.Components) != 2 {
			t.Fatalf("status after xdp-loader rebuilt the dispatcher: attached %v, %+v", st.Attached, st.LibXDP)
		}
		tconn, err := client.DialTCP(netip.AddrPortFrom(server, 11211), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer tconn.Close()
		tcp := mcproto.NewTCPClient(tconn, 5*time.Second)
		uconn, err := client.DialUDP(netip.AddrPortFrom(server, 11211))
		if err != nil {
			t.Fatal(err)
		}
		defer uconn.Close()
		udp := mcproto.NewUDPClient(uconn, 2*time.Second)
		if err := tcp.Set("share:own", 0, 0, []byte("own")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		c0 := readCounter(t, lk)
		h0 := st.Counters["hits"]
		for i := 0; i < 10; i++ {
			if items, err := udp.Get("share:own"); err != nil || len(items) != 1 || string(items[0].Value) != "own" {
				t.Fatalf("UDP get %d: %+v %v", i, items, err)
			}
		}
		dc := readCounter(t, lk).minus(c0)
		hits := readShareStatus(t, iface).Counters["hits"] - h0
		if hits < 8 || dc[countUDPMemcached] != 10 {
			t.Errorf("in libxdp's dispatcher: xdpcache answered %d of 10 GETs, the counter (first) saw %d", hits, dc[countUDPMemcached])
		}
		if _, err := run(xdpcache, "undeploy", "--iface", iface); err != nil {
			t.Fatal(err)
		}
		if got := loaderStatus(t, iface); strings.Join(got, " ") != "xdp_dispatcher xdp_count" {
			t.Fatalf("xdp-loader status after undeploy: %v", got)
		}
	})
	t.Run("lone-program", func(t *testing.T) {
		t.Cleanup(func() {
			exec.Command(xdpcache, "undeploy", "--iface", iface).Run()
			exec.Command(xdpLoader, "unload", iface, "--all").Run()
			exec.Command(ipCmd, "link", "set", "dev", iface, "xdp", "off").Run()
		})
		if _, err := run(ipCmd, "link", "set", "dev", iface, "xdpdrv", "obj", counterObject, "sec", "xdp"); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{}, {"--dispatcher"}} {
			out, err := exec.Command(xdpcache, append([]string{"deploy", "--iface", iface}, args...)...).CombinedOutput()
			if err == nil {
				t.Fatalf("deploy %v beside a program running alone succeeded: %s", args, out)
			}
			if !strings.Contains(string(out), "--adopt") || !strings.Contains(string(out), "--force") {
				t.Errorf("deploy %v: the refusal does not say how to share or replace: %s", args, out)
			}
		}
		// --adopt: the lone counter moves into a dispatcher, keeping its map
		mapBefore := counterMapID(t, iface)
		res := deploy(t, iface, "--adopt", counterObject)
		if res.Mode != "native" || res.Error != "" {
			t.Fatalf("deploy --adopt: mode %q (%s)", res.Mode, res.Error)
		}
		if got := loaderStatus(t, iface); strings.Join(got, " ") != "xdp_dispatcher xdp_count xdpcache_xdp" {
			t.Fatalf("xdp-loader status after --adopt: %v", got)
		}
		st, err := dispatch.Inspect(lk, dispatch.Options{})
		if err != nil || st.Dispatcher == nil || st.Dispatcher.Components[0].Priority != 10 {
			t.Fatalf("after --adopt: %+v %v (the counter's XDP_RUN_CONFIG says priority 10)", st, err)
		}
		if after := counterMapID(t, iface); after != mapBefore {
			t.Errorf("the adopted counter uses map %d, it used %d: its state was not kept", after, mapBefore)
		}
		if _, err := run(xdpcache, "undeploy", "--iface", iface); err != nil {
			t.Fatal(err)
		}
		if got := loaderStatus(t, iface); strings.Join(got, " ") != "xdp_dispatcher xdp_count" {
			t.Fatalf("xdp-loader status after undeploy: %v", got)
		}
		if _, err := run(xdpLoader, "unload", iface, "--all"); err != nil {
			t.Error(err)
		}
	})
}

// counterMapID is the map id of the counting program on iface, alone or
// in a dispatcher.
func counterMapID(t *testing.T, iface string) ebpf.MapID {
	t.Helper()
	ifindex, err := netlabIfindex(iface)
	if err != nil {
		t.Fatal(err)
	}
	st, err := dispatch.Inspect(ifindex, dispatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := st.ProgID
	if st.Dispatcher != nil {
		for _, c := range st.Dispatcher.Components {
			if c.Name == "xdp_count" {
				id = c.ProgID
			}
		}
	}
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := info.MapIDs()
	if len(ids) != 1 {
		t.Fatalf("program %d (%s) has %d maps", id, info.Name, len(ids))
	}
	return ids[0]
}

func readShareStatus(t *testing.T, iface string) shareStatus {
	t.Helper()
	out, err := run(xdpcache, "status", "--json", "--iface", iface)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var st []shareStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
		t.Fatalf("status --json: %v: %s", err, out)
	}
	return st[0]
}

func netlabIfindex(iface string) (int, error) {
	b, err := os.ReadFile("/sys/class/net/" + iface + "/ifindex")
	if err != nil {
		return 0, err
	}
	var i int
	_, err = fmt.Sscan(strings.TrimSpace(string(b)), &i)
	return i, err
}
