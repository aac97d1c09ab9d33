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

	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/internal/netlab"
)

var subnet atomic.Int32

// Start builds a lab with memcached (UDP on, port 11211) in the server
// namespace. Each lab in a process gets its own 198.18.X.0/24.
func Start(t testing.TB, memcachedArgs ...string) (*netlab.Lab, *netlab.Memcached) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and attaches BPF programs")
	}
	if _, err := exec.LookPath("memcached"); err != nil {
		t.Skip("memcached is not installed (apt-get install memcached)")
	}
	lab, err := netlab.New(netlab.Options{Subnet: 100 + int(subnet.Add(1))%150})
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
