package offload

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/internal/mclient"
	"github.com/xdpcache/xdpcache/internal/netlab"
)

var labSubnet atomic.Int32

// newLab makes a namespace pair with memcached in the server namespace, or
// skips when the machine cannot (not root, no memcached).
func newLab(t *testing.T) (*netlab.Lab, *netlab.Memcached) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and attaches BPF programs")
	}
	if _, err := exec.LookPath("memcached"); err != nil {
		t.Skip("memcached is not installed (apt-get install memcached)")
	}
	lab, err := netlab.New(netlab.Options{Subnet: 100 + int(labSubnet.Add(1))%100})
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
	})
	mc, err := lab.StartMemcached(11211)
	if err != nil {
		t.Fatal(err)
	}
	return lab, mc
}

// testPinRoot keeps test deployments apart from real ones.
func testPinRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	t.Cleanup(func() { os.RemoveAll(root) })
	return root
}

// attachPass gives the client's veth end an XDP_PASS program: veth delivers
// frames sent with XDP_TX by its peer only to an end that runs XDP itself.
func attachPass(t *testing.T, ns netlab.NS) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	err = ns.Do(func() error {
		lk, err := netlink.LinkByName(ns.Iface)
		if err != nil {
			return err
		}
		return netlink.LinkSetXdpFdWithFlags(lk, prog.FD(), unix.XDP_FLAGS_DRV_MODE)
	})
	if err != nil {
		t.Fatalf("attach XDP_PASS to %s: %v", ns.Iface, err)
	}
}

// mc wraps mclient for tests: failures end the test.
type mc struct {
	t *testing.T
	c *mclient.Client
}

func dialMC(t *testing.T, lab *netlab.Lab, m *netlab.Memcached) *mc {
	t.Helper()
	addr := netip.AddrPortFrom(m.Addr, m.Port)
	tc, err := lab.Client.DialTCP(addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := lab.Client.DialUDP(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close(); uc.Close() })
	return &mc{t: t, c: mclient.New(tc, uc)}
}

func (c *mc) set(key, value string) {
	c.t.Helper()
	if err := c.c.Set(key, value, 0); err != nil {
		c.t.Fatal(err)
	}
}

func (c *mc) tcpGet(key string) string {
	c.t.Helper()
	v, _, err := c.c.TCPGet(key)
	if err != nil {
		c.t.Fatal(err)
	}
	return v
}

func (c *mc) stats() map[string]string {
	c.t.Helper()
	s, err := c.c.Stats()
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

func (c *mc) get(key string) (string, bool) {
	c.t.Helper()
	v, ok, err := c.c.Get(key)
	if err != nil {
		c.t.Fatal(err)
	}
	return v, ok
}
