package consistency

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/offload/deploy"
	"github.com/xdpcache/xdpcache/offload/mode"
)

// TestConsistencyOnEveryPath runs the checker with writers on two
// interfaces and over loopback (a client on memcached's own host), readers
// on both interfaces, and two memcached instances holding different values
// under the same keys, xdpcache deployed on both interfaces (lo watched by
// default): 0 stale reads, and no read answered with the other instance's
// value (it would be a value nobody wrote to this instance: invented).
func TestConsistencyOnEveryPath(t *testing.T) {
	ops := *checkOps / 2
	if testing.Short() {
		ops = min(ops, 20000)
	}
	for _, tc := range []struct {
		xdpMode mode.Mode
		layout  string // how the second instance is told apart
	}{
		{mode.Native, "another address"},
		{mode.Generic, "another port"},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.xdpMode, tc.layout), func(t *testing.T) {
			lab, a := labtest.StartLinks(t, 1, "-t", "4")
			second := lab.Links[0]
			labtest.PassOnClient(t, lab)
			if err := second.Client.AttachXDPPass(); err != nil {
				t.Fatal(err)
			}
			// instance b: on a third address of the first link, same port;
			// or on another port at a's addresses
			bAddrs, bPort := []netip.Addr{lab.Server.Addr, second.Server.Addr}, uint16(11212)
			ports := []uint16{11211, 11212}
			if tc.layout == "another address" {
				third := lab.Server.Addr.Next().Next()
				labtest.IP(t, lab.Server, "addr", "add", third.String()+"/24", "dev", lab.Server.Iface)
				bAddrs, bPort, ports = []netip.Addr{third}, 11211, []uint16{11211}
			}
			b, err := lab.StartMemcachedAt(bPort, bAddrs, "-t", "2")
			if err != nil {
				t.Fatal(err)
			}
			root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-test-paths-%d-%s", os.Getpid(), tc.xdpMode))
			defer os.RemoveAll(root)
			s := bpf.DefaultSettings()
			s.Entries = 4096
			s.Ports = ports
			s.WriteHold = 20 * time.Millisecond // as TestConsistencyUnderLoad
			var d *deployRecord
			if err := lab.Server.Do(func() error {
				r, err := deploy.Deploy(deploy.Options{Iface: lab.Server.Iface, More: []string{second.Server.Iface}, Mode: tc.xdpMode,
					Settings: s, PinRoot: root})
				if err == nil {
					d = &deployRecord{members: len(r.Members), instances: len(r.Settings.Instances)}
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer lab.Server.Do(func() error { return deploy.Undeploy(lab.Server.Iface, root) })
			if d.members != 2 || (tc.layout == "another address") != (d.instances > 0) {
				t.Fatalf("deployed with %d members (want the second link and lo) and %d instance listeners", d.members, d.instances)
			}

			tcpVia := func(ns netlab.NS, to netip.AddrPort) func() (net.Conn, error) {
				return func() (net.Conn, error) { return ns.DialTCP(to, 2*time.Second) }
			}
			udpVia := func(ns netlab.NS, to netip.AddrPort) func() (*net.UDPConn, error) {
				return func() (*net.UDPConn, error) { return ns.DialUDP(to) }
			}
			aFirst, aSecond := netip.AddrPortFrom(a.Addr, a.Port), netip.AddrPortFrom(second.Server.Addr, a.Port)
			bFirst := netip.AddrPortFrom(bAddrs[0], bPort)
			seed := uint64(time.Now().UnixNano())
			workloads := []Workload{
				{Name: "a", Writers: 6, Readers: 8,
					WriteVia: []func() (net.Conn, error){tcpVia(lab.Client, aFirst), tcpVia(second.Client, aSecond), tcpVia(lab.Server, aFirst)},
					ReadVia:  []func() (*net.UDPConn, error){udpVia(lab.Client, aFirst), udpVia(second.Client, aSecond)}},
				{Name: "b", Writers: 4, Readers: 4,
					WriteVia: []func() (net.Conn, error){tcpVia(lab.Client, bFirst), tcpVia(lab.Server, bFirst)},
					ReadVia:  []func() (*net.UDPConn, error){udpVia(lab.Client, bFirst)}},
			}
			if tc.layout == "another port" {
				bSecond := netip.AddrPortFrom(second.Server.Addr, bPort)
				workloads[1].WriteVia = append(workloads[1].WriteVia, tcpVia(second.Client, bSecond))
				workloads[1].ReadVia = append(workloads[1].ReadVia, udpVia(second.Client, bSecond))
			}
			var wg sync.WaitGroup
			results := make([]Result, len(workloads))
			errs := make([]error, len(workloads))
			for i := range workloads {
				w := &workloads[i]
				w.Keys, w.Ops, w.Duration, w.FlushEvery = 100, ops/len(workloads), time.Duration(ops/2000+60)*time.Second, 500
				w.WritePause, w.Seed = 2*time.Millisecond, seed+uint64(i)
				wg.Add(1)
				go func() {
					defer wg.Done()
					h, err := w.Run(context.Background())
					if err == nil {
						results[i] = h.Check()
					}
					errs[i] = err
				}()
			}
			wg.Wait()
			var st *deploy.Status
			var serr error
			lab.Server.Do(func() error { st, serr = deploy.ReadStatus(root, lab.Server.Iface); return serr })
			if serr != nil {
				t.Fatal(serr)
			}
			served := st.Stats.Get(bpf.StatHitKeys)
			for i, res := range results {
				if errs[i] != nil {
					t.Fatalf("instance %s: %v", workloads[i].Name, errs[i])
				}
				t.Logf("instance %s: %s", workloads[i].Name, res.Summary())
				for _, v := range res.Violations {
					t.Errorf("instance %s: %v", workloads[i].Name, v)
				}
				if res.Ops < workloads[i].Ops {
					t.Errorf("instance %s: only %d operations ran", workloads[i].Name, res.Ops)
				}
			}
			t.Logf("reads served by XDP %d; fills %d, refused as stale %d / held %d; flushes %d (of which unsynced %d); invalidated again on acknowledgement %d",
				served, st.Stats.Get(bpf.StatFills), st.Stats.Get(bpf.StatFillStale), st.Stats.Get(bpf.StatFillHeld),
				st.Stats.Get(bpf.StatFlushes), st.Stats.Get(bpf.StatFlushUnsynced), st.Stats.Get(bpf.StatAckInvalidations))
			if served == 0 {
				t.Errorf("no read was served from the cache: the check proves nothing about it")
			}
			b.Stop()
		})
	}
}

type deployRecord struct{ members, instances int }
