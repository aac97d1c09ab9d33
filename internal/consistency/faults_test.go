package consistency

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/offload/deploy"
	"github.com/xdpcache/xdpcache/offload/mode"
)

// TestDeployUndeployUnderLoad: deploying and undeploying over and over while
// clients read and write never yields a wrong or malformed reply; misses
// simply go to memcached.
func TestDeployUndeployUnderLoad(t *testing.T) {
	lab, m := labtest.Start(t, "-t", "4")
	labtest.PassOnClient(t, lab)
	root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-test-churn-%d", os.Getpid()))
	defer os.RemoveAll(root)
	s := bpf.DefaultSettings()
	s.Entries = 4096
	s.WriteHold = 20 * time.Millisecond

	// The load runs as long as the churn (however fast the clients are),
	// capped by the workload's duration.
	const wantCycles = 5
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var cycles, served atomic.Int64
	churn := make(chan error, 1)
	go func() {
		defer stopLoad()
		for i := range wantCycles {
			m := []mode.Mode{mode.Native, mode.Generic}[i%2]
			err := lab.Server.Do(func() error {
				if _, err := deploy.Deploy(deploy.Options{Iface: lab.Server.Iface, Mode: m, Settings: s, PinRoot: root}); err != nil {
					return err
				}
				time.Sleep(150 * time.Millisecond)
				if st, err := deploy.ReadStatus(root, lab.Server.Iface); err == nil {
					served.Add(int64(st.Stats.Get(bpf.StatHitKeys)))
				}
				return deploy.Undeploy(lab.Server.Iface, root)
			})
			if err != nil {
				churn <- err
				return
			}
			cycles.Add(1)
			time.Sleep(50 * time.Millisecond)
		}
		churn <- nil
	}()
	addr := netip.AddrPortFrom(m.Addr, m.Port)
	w := Workload{Keys: 50, Writers: 2, Readers: 6, Duration: time.Minute, FlushEvery: 0,
		WritePause: 2 * time.Millisecond, Seed: 42,
		DialTCP: func() (net.Conn, error) { return lab.Client.DialTCP(addr, 2*time.Second) },
		DialUDP: func() (*net.UDPConn, error) { return lab.Client.DialUDP(addr) }}
	h, err := w.Run(ctx)
	if cerr := <-churn; cerr != nil {
		t.Fatalf("deploy/undeploy: %v", cerr)
	}
	if err != nil {
		t.Fatalf("clients: %v", err)
	}
	res := h.Check()
	t.Logf("%s; %d deploy/undeploy cycles; reads served by XDP during them %d", res.Summary(), cycles.Load(), served.Load())
	for _, v := range res.Violations {
		t.Error(v)
	}
	if cycles.Load() < wantCycles || served.Load() == 0 {
		t.Errorf("the churn did not exercise the cache: %d cycles, %d served", cycles.Load(), served.Load())
	}
}
