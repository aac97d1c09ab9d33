package consistency

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/offload/deploy"
	"github.com/xdpcache/xdpcache/offload/mode"
)

var checkOps = flag.Int("ops", 200000, "operations per mode for TestConsistencyUnderLoad (make check-long: 10M)")

// TestConsistencyUnderLoad runs the checker against memcached with xdpcache
// deployed, in native and generic mode: 0 stale reads, 0 invented values.
func TestConsistencyUnderLoad(t *testing.T) {
	ops := *checkOps
	if testing.Short() {
		ops = min(ops, 20000)
	}
	for _, xdpMode := range []mode.Mode{mode.Native, mode.Generic} {
		t.Run(string(xdpMode), func(t *testing.T) {
			lab, m := labtest.Start(t, "-t", "4")
			labtest.PassOnClient(t, lab)
			root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-test-check-%d-%s", os.Getpid(), xdpMode))
			defer os.RemoveAll(root)
			s := bpf.DefaultSettings()
			s.Entries = 4096
			// Short, so hot keys get cached between writes. Every write this
			// workload acknowledges goes over TCP, where rule A (invalidate
			// again when memcached's reply leaves) covers race (b) however
			// long memcached takes: on a loaded machine many writes take
			// longer than this hold (see the log line), which before rule A
			// let stale reads through (docs/consistency.md).
			s.WriteHold = 20 * time.Millisecond
			if err := lab.Server.Do(func() error {
				_, err := deploy.Deploy(deploy.Options{Iface: lab.Server.Iface, Mode: xdpMode, Settings: s, PinRoot: root})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer lab.Server.Do(func() error { return deploy.Undeploy(lab.Server.Iface, root) })

			addr := netip.AddrPortFrom(m.Addr, m.Port)
			w := Workload{
				Keys: 100, Writers: 4, Readers: 8, Ops: ops, Duration: time.Duration(ops/2000+60) * time.Second, FlushEvery: 500,
				WritePause: 2 * time.Millisecond, Seed: uint64(time.Now().UnixNano()),
				DialTCP: func() (net.Conn, error) { return lab.Client.DialTCP(addr, 2*time.Second) },
				DialUDP: func() (*net.UDPConn, error) { return lab.Client.DialUDP(addr) },
			}
			h, err := w.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			res := h.Check()
			var st *deploy.Status
			lab.Server.Do(func() error { st, err = deploy.ReadStatus(root, lab.Server.Iface); return err })
			if err != nil {
				t.Fatal(err)
			}
			served := st.Stats.Get(bpf.StatHitKeys)
			t.Logf("%s: %s; reads served by XDP %d; fills %d, refused as stale %d / held %d; flushes %d; "+
				"invalidated again on acknowledgement %d keys, %d flushes; mutations acknowledged after more than the write hold %d",
				xdpMode, res.Summary(), served, st.Stats.Get(bpf.StatFills), st.Stats.Get(bpf.StatFillStale),
				st.Stats.Get(bpf.StatFillHeld), st.Stats.Get(bpf.StatFlushes),
				st.Stats.Get(bpf.StatAckInvalidations), st.Stats.Get(bpf.StatAckFlushes), h.SlowerThan(s.WriteHold))
			for _, v := range res.Violations {
				t.Error(v)
			}
			if res.Ops < ops {
				t.Errorf("only %d operations ran", res.Ops)
			}
			if served == 0 {
				t.Errorf("no read was served from the cache: the check proves nothing about it")
			}
		})
	}
}
