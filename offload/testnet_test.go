package offload

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testNS is a throw-away network namespace ("xcp-<random>") for probe tests,
// removed when the test ends. Addresses come from 198.18.0.0/15 only.
type testNS struct {
	t    *testing.T
	Name string
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and attaches XDP programs")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the ip command (iproute2) is missing")
	}
}

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	needRoot(t)
	var b [4]byte
	rand.Read(b[:])
	n := &testNS{t: t, Name: "xcp-" + hex.EncodeToString(b[:])}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v %s", n.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v %s", n.Name, err, out)
		}
	})
	n.ip("link", "set", "lo", "up")
	return n
}

// ip runs `ip -n NS args...`.
func (n *testNS) ip(args ...string) {
	n.t.Helper()
	a := append([]string{"-n", n.Name}, args...)
	if out, err := exec.Command("ip", a...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %v: %v %s", a, err, out)
	}
}

// do runs fn on an OS thread switched into the namespace and switches back.
func (n *testNS) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // left locked (the thread dies) if switching back fails
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(n.Name)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", n.Name, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave netns %s: %w (after %v)", n.Name, err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// probe runs ProbeInterface inside the namespace.
func (n *testNS) probe(iface string, dopts DecideOptions) *Report {
	n.t.Helper()
	var r *Report
	if err := n.do(func() error {
		var err error
		r, err = ProbeInterface(iface, ProbeOptions{PinRoot: n.t.TempDir()}, dopts)
		return err
	}); err != nil {
		n.t.Fatalf("probe %s in %s: %v", iface, n.Name, err)
	}
	return r
}

// ifindex of iface inside the namespace.
func (n *testNS) ifindex(iface string) int {
	n.t.Helper()
	var idx int
	if err := n.do(func() error {
		l, err := netlink.LinkByName(iface)
		if err == nil {
			idx = l.Attrs().Index
		}
		return err
	}); err != nil {
		n.t.Fatal(err)
	}
	return idx
}

// attachXDP attaches prog to iface with XDP_FLAGS_* flags (-1 fd detaches).
func (n *testNS) attachXDP(iface string, fd int, flags int) error {
	return n.do(func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		return netlink.LinkSetXdpFdWithFlags(l, fd, flags)
	})
}

// passProgram loads an XDP program that returns XDP_PASS; name is its
// kernel-visible name.
func passProgram(t *testing.T, name string) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()}})
	if err != nil {
		t.Fatalf("load an XDP_PASS program: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func testProgID(t *testing.T, p *ebpf.Program) uint32 {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("program info has no id")
	}
	return uint32(id)
}

const (
	xdpSKB = unix.XDP_FLAGS_SKB_MODE
	xdpDRV = unix.XDP_FLAGS_DRV_MODE
)
