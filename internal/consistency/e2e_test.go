package consistency

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/offload"
)

var checkOps = flag.Int("ops", 200000, "operations per mode for TestConsistencyUnderLoad (make check-long: 10M)")

// TestConsistencyUnderLoad runs the checker against memcached with xdpcache
// deployed, in native and generic mode: 0 stale reads, 0 invented values.
func TestConsistencyUnderLoad(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and BPF")
	}
	if _, err := exec.LookPath("memcached"); err != nil {
		t.Skip("memcached not installed")
	}
	ops := *checkOps
	if testing.Short() {
		ops = min(ops, 20000)
	}
	for i, mode := range []string{"native", "generic"} {
		t.Run(mode, func(t *testing.T) {
			lab, err := netlab.New(netlab.Options{Subnet: 230 + i})
			if err != nil {
				t.Fatal(err)
			}
			defer lab.Close()
			m, err := lab.StartMemcached(11211, "-t", "4")
			if err != nil {
				t.Fatal(err)
			}
			passOnPeer(t, lab.Client)
			root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-test-check-%d-%s", os.Getpid(), mode))
			defer os.RemoveAll(root)
			s := bpf.DefaultSettings()
			s.Entries = 4096
			s.WriteHold = 20 * time.Millisecond
			if err := lab.Server.Do(func() error {
				_, err := offload.Deploy(offload.DeployOptions{Iface: lab.Server.Iface, Mode: mode, Settings: s, PinRoot: root})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer lab.Server.Do(func() error { return offload.Undeploy(lab.Server.Iface, root) })

			addr := netip.AddrPortFrom(m.Addr, m.Port)
			w := Workload{
				Keys: 100, Writers: 4, Readers: 8, Ops: ops, Duration: time.Duration(ops/2000+60) * time.Second, FlushEvery: 500,
				WritePause: 2 * time.Millisecond, Seed: uint64(time.Now().UnixNano()),
				DialTCP: func() (net.Conn, error) { return lab.Client.DialTCP(addr, 2*time.Second) },
				DialUDP: func() (net.Conn, error) { return lab.Client.DialUDP(addr) },
			}
			h, err := w.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			res := h.Check()
			var st *offload.Status
			lab.Server.Do(func() error { st, err = offload.ReadStatus(root, lab.Server.Iface); return err })
			if err != nil {
				t.Fatal(err)
			}
			served := st.Stats.Get(bpf.StatHitKeys)
			t.Logf("%s: %s; reads served by XDP %d; fills %d, refused as stale %d / held %d; flushes %d",
				mode, res.Summary(), served, st.Stats.Get(bpf.StatFills), st.Stats.Get(bpf.StatFillStale),
				st.Stats.Get(bpf.StatFillHeld), st.Stats.Get(bpf.StatFlushes))
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

// passOnPeer: veth hands XDP_TX frames only to a peer that runs XDP.
func passOnPeer(t *testing.T, ns netlab.NS) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	if err := ns.Do(func() error {
		lk, err := netlink.LinkByName(ns.Iface)
		if err != nil {
			return err
		}
		return netlink.LinkSetXdpFdWithFlags(lk, prog.FD(), unix.XDP_FLAGS_DRV_MODE)
	}); err != nil {
		t.Fatal(err)
	}
}
