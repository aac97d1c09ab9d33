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

var checkOps = flag.Int("ops", 100000, "operations per mode and settings for TestConsistencyUnderLoad (make check-long: 1M)")

// TestConsistencyUnderLoad runs the checker against memcached with xdpcache
// deployed, in native and generic mode: 0 stale reads, 0 invented values.
// "default" runs the default settings with every kind of writer: TCP (ASCII
// and binary, pipelined, noreply), UDP (ASCII and binary, acknowledged).
// "no hold" runs without the write hold and only acknowledged writers:
// rule A (invalidate again as the acknowledgement leaves) alone must keep
// every read fresh, however long memcached takes to apply a write.
func TestConsistencyUnderLoad(t *testing.T) {
	ops := *checkOps
	if testing.Short() {
		ops = min(ops, 20000)
	}
	for _, xdpMode := range []mode.Mode{mode.Native, mode.Generic} {
		for _, run := range []struct {
			name       string
			hold       time.Duration
			noreply    bool
			flushEvery int
		}{
			// a flush holds the whole cache for the write hold: rare enough
			// here that reads are still served from the cache
			{"default", bpf.DefaultSettings().WriteHold, true, 3000},
			{"no hold", 0, false, 500},
		} {
			t.Run(string(xdpMode)+"/"+run.name, func(t *testing.T) {
				consistencyRun(t, xdpMode, ops, run.hold, run.noreply, run.flushEvery)
			})
		}
	}
}

func consistencyRun(t *testing.T, xdpMode mode.Mode, ops int, hold time.Duration, noreply bool, flushEvery int) {
	lab, m := labtest.Start(t, "-t", "4")
	labtest.PassOnClient(t, lab)
	root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-test-check-%d-%s", os.Getpid(), xdpMode))
	defer os.RemoveAll(root)
	s := bpf.DefaultSettings()
	s.Entries = 4096
	s.WriteHold = hold
	if err := lab.Server.Do(func() error {
		_, err := deploy.Deploy(deploy.Options{Iface: lab.Server.Iface, Mode: xdpMode, Settings: s, PinRoot: root})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer lab.Server.Do(func() error { return deploy.Undeploy(lab.Server.Iface, root) })

	addr := netip.AddrPortFrom(m.Addr, m.Port)
	w := Workload{
		Keys: 100, Writers: 4, UDPWriters: 2, Noreply: noreply, Readers: 8, Ops: ops,
		Duration: time.Duration(ops/2000+60) * time.Second, FlushEvery: flushEvery,
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
	t.Logf("%s, write hold %v: %s; reads served by XDP %d; fills %d, refused as stale %d / held %d; flushes %d; "+
		"mutations logged for their acknowledgement %d, held %d; invalidated again on acknowledgement %d keys, "+
		"%d flushes; mutations acknowledged after more than 20ms %d",
		xdpMode, hold, res.Summary(), served, st.Stats.Get(bpf.StatFills), st.Stats.Get(bpf.StatFillStale),
		st.Stats.Get(bpf.StatFillHeld), st.Stats.Get(bpf.StatFlushes), st.Stats.Get(bpf.StatAckExact),
		st.Stats.Get(bpf.StatAckHeld), st.Stats.Get(bpf.StatAckInvalidations), st.Stats.Get(bpf.StatAckFlushes),
		h.SlowerThan(20*time.Millisecond))
	for _, v := range res.Violations {
		t.Error(v)
	}
	if res.Ops < ops {
		t.Errorf("only %d operations ran", res.Ops)
	}
	if served == 0 {
		t.Errorf("no read was served from the cache: the check proves nothing about it")
	}
	if st.Stats.Get(bpf.StatAckExact) == 0 {
		t.Errorf("no mutation was logged for its acknowledgement: rule A was not exercised")
	}
}
