// Package labtest starts network labs for tests: it skips, with the reason,
// where the machine cannot run them, and cleans up after the test.
package labtest

import (
	"net/netip"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/internal/netlab"
)

var subnet atomic.Int32

// RequireRoot skips the test unless it runs as root; why says what for
// (e.g. "creates network namespaces").
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

// NS creates a bare network namespace ("<prefix>-<random>", lo up) that is
// deleted when the test ends; it skips without root or iproute2.
func NS(t testing.TB, prefix string) netlab.NS {
	t.Helper()
	RequireRoot(t, "creates network namespaces and attaches XDP programs")
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the ip command (iproute2) is missing")
	}
	ns, err := netlab.NewNS(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Error(err)
		}
	})
	return ns
}

// IP runs `ip -n NS args...` and fails the test if it fails.
func IP(t testing.TB, ns netlab.NS, args ...string) {
	t.Helper()
	if err := ns.IP(args...); err != nil {
		t.Fatal(err)
	}
}

// Ifindex is iface's index inside ns; it fails the test if there is none.
func Ifindex(t testing.TB, ns netlab.NS, iface string) int {
	t.Helper()
	idx, err := ns.Ifindex(iface)
	if err != nil {
		t.Fatalf("%s in %s: %v", iface, ns.Name, err)
	}
	return idx
}

// PassProgram loads an XDP_PASS program named name, closed when the test ends.
func PassProgram(t testing.TB, name string) *ebpf.Program {
	t.Helper()
	p, err := netlab.PassProgram(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// ProgID is p's kernel id.
func ProgID(t testing.TB, p *ebpf.Program) uint32 {
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

// Start builds a lab with memcached (UDP on, port 11211) in the server
// namespace. Each lab in a process gets its own 198.18.X.0/24.
func Start(t testing.TB, memcachedArgs ...string) (*netlab.Lab, *netlab.Memcached) {
	t.Helper()
	return StartQueues(t, 1, memcachedArgs...)
}

// StartQueues is Start with queues receive and transmit queues on each veth
// end (netlab.Options.Queues).
func StartQueues(t testing.TB, queues int, memcachedArgs ...string) (*netlab.Lab, *netlab.Memcached) {
	t.Helper()
	RequireRoot(t, "creates network namespaces and attaches BPF programs")
	if _, err := exec.LookPath("memcached"); err != nil {
		t.Skip("memcached is not installed (apt-get install memcached)")
	}
	lab, err := netlab.New(netlab.Options{Subnet: 100 + int(subnet.Add(1))%150, Queues: queues})
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
	})
	m, err := lab.StartMemcached(11211, memcachedArgs...)
	if err != nil {
		t.Fatal(err)
	}
	return lab, m
}

// StartLinks builds a lab with links more client namespaces (each joined to
// the server namespace by a veth pair of its own, on a subnet of its own)
// and memcached (UDP on, port 11211) listening on the server's addresses of
// every link.
func StartLinks(t testing.TB, links int, memcachedArgs ...string) (*netlab.Lab, *netlab.Memcached) {
	t.Helper()
	RequireRoot(t, "creates network namespaces and attaches BPF programs")
	if _, err := exec.LookPath("memcached"); err != nil {
		t.Skip("memcached is not installed (apt-get install memcached)")
	}
	lab := newLab(t)
	addrs := []netip.Addr{lab.Server.Addr, lab.Server.Addr6}
	for range links {
		k, err := lab.AddLink(100 + int(subnet.Add(1))%150)
		if err != nil {
			t.Fatalf("lab link: %v", err)
		}
		addrs = append(addrs, k.Server.Addr, k.Server.Addr6)
	}
	m, err := lab.StartMemcachedAt(11211, addrs, memcachedArgs...)
	if err != nil {
		t.Fatal(err)
	}
	return lab, m
}

func newLab(t testing.TB) *netlab.Lab {
	t.Helper()
	lab, err := netlab.New(netlab.Options{Subnet: 100 + int(subnet.Add(1))%150})
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
	})
	return lab
}

// PassOnClient attaches an XDP_PASS program to the client's veth end.
func PassOnClient(t testing.TB, lab *netlab.Lab) {
	t.Helper()
	if err := lab.Client.AttachXDPPass(); err != nil {
		t.Fatal(err)
	}
}

// Client talks to the lab's memcached from the client namespace: ASCII
// over TCP (sets, stats) and over UDP (gets the cache may answer).
type Client struct {
	TCP *mcproto.TCPClient
	UDP *mcproto.UDPClient
}

// Dial opens a memcached client (TCP and UDP) from the client namespace.
func Dial(t testing.TB, lab *netlab.Lab, m *netlab.Memcached) Client {
	t.Helper()
	const timeout = 2 * time.Second
	addr := netip.AddrPortFrom(m.Addr, m.Port)
	tc, err := lab.Client.DialTCP(addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := lab.Client.DialUDP(addr)
	if err != nil {
		tc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close(); uc.Close() })
	return Client{TCP: mcproto.NewTCPClient(tc, timeout), UDP: mcproto.NewUDPClient(uc, timeout)}
}
