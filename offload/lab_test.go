package offload

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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

// mc is a tiny memcached client for the end-to-end tests.
type mc struct {
	t   *testing.T
	tcp net.Conn
	rd  *bufio.Reader
	udp *net.UDPConn
	id  uint16
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
	return &mc{t: t, tcp: tc, rd: bufio.NewReader(tc), udp: uc}
}

func (c *mc) line() string {
	c.t.Helper()
	c.tcp.SetReadDeadline(time.Now().Add(3 * time.Second))
	l, err := c.rd.ReadString('\n')
	if err != nil {
		c.t.Fatalf("memcached TCP read: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

func (c *mc) set(key, value string) {
	c.t.Helper()
	fmt.Fprintf(c.tcp, "set %s 0 0 %d\r\n%s\r\n", key, len(value), value)
	if l := c.line(); l != "STORED" {
		c.t.Fatalf("set %s: %q", key, l)
	}
}

// tcpGet reads one key over TCP.
func (c *mc) tcpGet(key string) string {
	c.t.Helper()
	fmt.Fprintf(c.tcp, "get %s\r\n", key)
	var v string
	for {
		l := c.line()
		if l == "END" {
			return v
		}
		if strings.HasPrefix(l, "VALUE ") {
			v = c.line()
		}
	}
}

func (c *mc) stats() map[string]string {
	c.t.Helper()
	fmt.Fprintf(c.tcp, "stats\r\n")
	out := map[string]string{}
	for {
		l := c.line()
		if l == "END" {
			return out
		}
		if f := strings.Fields(l); len(f) == 3 {
			out[f[1]] = f[2]
		}
	}
}

// get asks over UDP and returns the value ("" and false on a miss).
func (c *mc) get(key string) (string, bool) {
	c.t.Helper()
	c.id++
	var hdr [8]byte
	binary.BigEndian.PutUint16(hdr[0:], c.id)
	binary.BigEndian.PutUint16(hdr[4:], 1)
	if _, err := c.udp.Write(append(hdr[:], "get "+key+"\r\n"...)); err != nil {
		c.t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var reply []byte
	for !bytes.HasSuffix(reply, []byte("END\r\n")) {
		c.udp.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.udp.Read(buf)
		if err != nil {
			c.t.Fatalf("UDP get %s (request %d): %v", key, c.id, err)
		}
		if n < 8 || binary.BigEndian.Uint16(buf) != c.id {
			continue // a late reply to an earlier request
		}
		reply = append(reply, buf[8:n]...)
	}
	if string(reply) == "END\r\n" {
		return "", false
	}
	var k string
	var flags, size int
	if _, err := fmt.Sscanf(string(reply), "VALUE %s %d %d\r\n", &k, &flags, &size); err != nil || k != key {
		c.t.Fatalf("bad reply to get %s: %q", key, reply)
	}
	start := bytes.Index(reply, []byte("\r\n")) + 2
	if start+size+7 != len(reply) || string(reply[start+size:]) != "\r\nEND\r\n" {
		c.t.Fatalf("malformed reply to get %s: %q", key, reply)
	}
	return string(reply[start : start+size]), true
}
