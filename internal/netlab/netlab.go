// Package netlab builds throw-away network labs for xdpcache's demo and
// tests: two network namespaces joined by a veth pair, addressed from the
// benchmarking ranges (198.18.0.0/15, 2001:db8::/32), with helpers to run
// programs and open sockets inside them. Everything it creates is removed
// by Close.
package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NS is one network namespace of a lab.
type NS struct {
	Name  string     // as in /run/netns
	Iface string     // its end of the veth pair
	Addr  netip.Addr // IPv4 address of Iface
	Addr6 netip.Addr // IPv6 address of Iface
}

// Lab is a server and a client namespace joined by a veth pair, and
// optionally more client namespaces joined to the server by veth pairs of
// their own (AddLink).
type Lab struct {
	Server NS
	Client NS
	Links  []Link // AddLink's
	procs  []*exec.Cmd
}

// Link is one more client namespace: Server is the server namespace seen
// through the link's server end (its Iface and addresses), Client the new
// namespace.
type Link struct {
	Server NS
	Client NS
}

// Options tune a lab.
type Options struct {
	Tag    string // short name part; random when empty
	Subnet int    // third octet of 198.18.X.0/24 and the 2001:db8:X::/64 block
	// Queues is each veth end's receive and transmit queue count (0: 1).
	// veth hands a frame sent with ndo_xdp_xmit (XDP_TX, live frames) to
	// the receive queue of the sending CPU, so with one queue per CPU each
	// CPU runs its own NAPI, as with a multi-queue NIC and RSS.
	Queues int
}

func randomTag() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// canBuild says why this process cannot build labs, nil if it can.
func canBuild() error {
	if os.Geteuid() != 0 {
		return errors.New("network labs need root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the ip command (iproute2) is missing")
	}
	return nil
}

// New creates the namespaces, the veth pair, addresses and routes.
func New(opts Options) (*Lab, error) {
	if err := canBuild(); err != nil {
		return nil, err
	}
	tag := opts.Tag
	if tag == "" {
		tag = randomTag()
	}
	sub := opts.Subnet
	if sub < 0 || sub > 255 {
		return nil, fmt.Errorf("subnet %d is outside 0..255", sub)
	}
	l := &Lab{
		Server: NS{Name: "xc-" + tag + "-s", Iface: "xcs" + tag,
			Addr:  netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", sub)),
			Addr6: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::1", sub))},
		Client: NS{Name: "xc-" + tag + "-c", Iface: "xcc" + tag,
			Addr:  netip.MustParseAddr(fmt.Sprintf("198.18.%d.2", sub)),
			Addr6: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::2", sub))},
	}
	if opts.Queues < 0 || opts.Queues > 64 {
		return nil, fmt.Errorf("%d queues: outside 0..64", opts.Queues)
	}
	q := strconv.Itoa(max(1, opts.Queues))
	steps := [][]string{
		{"netns", "add", l.Server.Name},
		{"netns", "add", l.Client.Name},
		{"link", "add", l.Server.Iface, "numtxqueues", q, "numrxqueues", q, "netns", l.Server.Name, "type", "veth",
			"peer", "name", l.Client.Iface, "numtxqueues", q, "numrxqueues", q, "netns", l.Client.Name},
	}
	for _, ns := range []NS{l.Server, l.Client} {
		steps = append(steps,
			[]string{"-n", ns.Name, "link", "set", "lo", "up"},
			[]string{"-n", ns.Name, "addr", "add", ns.Addr.String() + "/24", "dev", ns.Iface},
			[]string{"-n", ns.Name, "addr", "add", ns.Addr6.String() + "/64", "dev", ns.Iface, "nodad"},
			[]string{"-n", ns.Name, "link", "set", ns.Iface, "up"},
		)
	}
	if err := runIP(steps); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func runIP(steps [][]string) error {
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// AddLink adds a client namespace joined to the server namespace by a veth
// pair of its own, on 198.18.<subnet>.0/24 and 2001:db8:<subnet>::/64
// (server .1, client .2). Close deletes it with the lab.
func (l *Lab) AddLink(subnet int) (Link, error) {
	if subnet < 0 || subnet > 255 {
		return Link{}, fmt.Errorf("subnet %d is outside 0..255", subnet)
	}
	tag := strings.TrimPrefix(l.Server.Iface, "xcs") + strconv.Itoa(len(l.Links)+1)
	k := Link{
		Server: NS{Name: l.Server.Name, Iface: "xcs" + tag,
			Addr:  netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", subnet)),
			Addr6: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::1", subnet))},
		Client: NS{Name: "xc-" + tag + "-c", Iface: "xcc" + tag,
			Addr:  netip.MustParseAddr(fmt.Sprintf("198.18.%d.2", subnet)),
			Addr6: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::2", subnet))},
	}
	steps := [][]string{
		{"netns", "add", k.Client.Name},
		{"link", "add", k.Server.Iface, "netns", k.Server.Name, "type", "veth", "peer", "name", k.Client.Iface, "netns", k.Client.Name},
	}
	for _, ns := range []NS{k.Server, k.Client} {
		steps = append(steps,
			[]string{"-n", ns.Name, "link", "set", "lo", "up"},
			[]string{"-n", ns.Name, "addr", "add", ns.Addr.String() + "/24", "dev", ns.Iface},
			[]string{"-n", ns.Name, "addr", "add", ns.Addr6.String() + "/64", "dev", ns.Iface, "nodad"},
			[]string{"-n", ns.Name, "link", "set", ns.Iface, "up"},
		)
	}
	l.Links = append(l.Links, k) // Close deletes the namespace, made or not
	if err := runIP(steps); err != nil {
		return Link{}, err
	}
	return k, nil
}

// Close stops what the lab started and deletes its namespaces (the veth
// pair goes with them).
func (l *Lab) Close() error {
	for _, p := range l.procs {
		if p.Process != nil {
			p.Process.Kill()
			p.Wait()
		}
	}
	l.procs = nil
	var errs []error
	all := []NS{l.Server, l.Client}
	for _, k := range l.Links {
		all = append(all, k.Client)
	}
	for _, ns := range all {
		if _, err := os.Stat("/run/netns/" + ns.Name); err != nil {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("delete netns %s: %v: %s", ns.Name, err, out))
		}
	}
	return errors.Join(errs...)
}

// Command runs a program inside the namespace. It enters only the network
// namespace (nsenter --net), unlike `ip netns exec`, which also remounts
// /sys and so hides /sys/fs/bpf and its pins.
func (ns NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	a := append([]string{"--net=/run/netns/" + ns.Name, "--", name}, args...)
	return exec.CommandContext(ctx, "nsenter", a...)
}

// Do runs fn on an OS thread switched into the namespace.
func (ns NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is left locked (and so discarded when the goroutine
		// ends) if switching back fails.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns.Name)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns.Name, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns.Name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave netns %s: %w", ns.Name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// DialUDP opens a UDP socket inside the namespace, connected to addr.
func (ns NS) DialUDP(addr netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
		return err
	})
	return c, err
}

// DialTCP opens a TCP connection from inside the namespace.
func (ns NS) DialTCP(addr netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr.String(), timeout)
		return err
	})
	return c, err
}

// Memcached is a memcached server running in the lab's server namespace.
type Memcached struct {
	Port uint16
	Addr netip.Addr
	cmd  *exec.Cmd
}

// StartMemcached starts memcached with UDP on (-U: UDP is off by default
// since 1.5.6) in the server namespace and waits until it accepts TCP.
func (l *Lab) StartMemcached(port uint16, extra ...string) (*Memcached, error) {
	return l.StartMemcachedAt(port, []netip.Addr{l.Server.Addr, l.Server.Addr6}, extra...)
}

// StartMemcachedAt is StartMemcached listening at addrs (the first one
// IPv4 and reachable from the client namespace).
func (l *Lab) StartMemcachedAt(port uint16, addrs []netip.Addr, extra ...string) (*Memcached, error) {
	bin, err := exec.LookPath("memcached")
	if err != nil {
		return nil, errors.New("memcached is not installed (apt-get install memcached)")
	}
	p := fmt.Sprint(port)
	var listen []string
	for _, a := range addrs {
		if a.Is6() {
			listen = append(listen, "["+a.String()+"]")
		} else {
			listen = append(listen, a.String())
		}
	}
	args := append([]string{"-U", p, "-p", p, "-l", strings.Join(listen, ","),
		"-u", "root", "-t", "2", "-m", "64"}, extra...)
	cmd := l.Server.Command(context.Background(), bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start memcached: %w", err)
	}
	l.procs = append(l.procs, cmd)
	m := &Memcached{Port: port, Addr: addrs[0], cmd: cmd}
	deadline := time.Now().Add(5 * time.Second)
	for {
		from := l.Client
		if addrs[0] != l.Server.Addr {
			from = l.Server // over loopback
		}
		c, err := from.DialTCP(netip.AddrPortFrom(addrs[0], port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("memcached did not come up on %s:%d: %v %s", addrs[0], port, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid is the memcached process's id (nsenter execs it in place).
func (m *Memcached) Pid() int { return m.cmd.Process.Pid }

// Stop stops this memcached.
func (m *Memcached) Stop() {
	if m.cmd.Process != nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
	}
}

// NewNS creates a bare network namespace "<prefix>-<random>" with only lo,
// up. Delete removes it.
func NewNS(prefix string) (NS, error) {
	if err := canBuild(); err != nil {
		return NS{}, err
	}
	ns := NS{Name: prefix + "-" + randomTag()}
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		return NS{}, fmt.Errorf("ip netns add %s: %v: %s", ns.Name, err, strings.TrimSpace(string(out)))
	}
	if err := ns.IP("link", "set", "lo", "up"); err != nil {
		ns.Delete()
		return NS{}, err
	}
	return ns, nil
}

// Delete removes the namespace (and the devices in it).
func (ns NS) Delete() error {
	if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %v: %s", ns.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// IP runs `ip -n NS args...`.
func (ns NS) IP(args ...string) error {
	a := append([]string{"-n", ns.Name}, args...)
	if out, err := exec.Command("ip", a...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(a, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Ifindex is the index of iface inside the namespace.
func (ns NS) Ifindex(iface string) (int, error) {
	var idx int
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(iface)
		if err == nil {
			idx = l.Attrs().Index
		}
		return err
	})
	return idx, err
}

// SetXDP attaches the program fd to iface inside the namespace with
// XDP_FLAGS_* flags over netlink; fd -1 detaches.
func (ns NS) SetXDP(iface string, fd, flags int) error {
	return ns.Do(func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		return netlink.LinkSetXdpFdWithFlags(l, fd, flags)
	})
}

// PassProgram loads an XDP program that only returns XDP_PASS; name is its
// kernel-visible name ("" for none).
func PassProgram(name string) (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()}})
	if err != nil {
		return nil, fmt.Errorf("load an XDP_PASS program: %w", err)
	}
	return prog, nil
}

// AttachXDPPass attaches a program that only returns XDP_PASS to the
// namespace's veth end, in native mode. veth delivers frames its peer sends
// back with XDP_TX only to an end that runs XDP itself; clients on the far
// end of a veth need this (or another XDP program, see AttachXDP) to receive
// replies from a native-mode xdpcache.
func (ns NS) AttachXDPPass() error {
	prog, err := PassProgram("")
	if err != nil {
		return err
	}
	defer prog.Close() // the attachment holds its own reference
	return ns.AttachXDP(prog)
}

// AttachXDP attaches prog to the namespace's veth end in native mode,
// replacing what is there.
func (ns NS) AttachXDP(prog *ebpf.Program) error {
	return ns.Do(func() error {
		lk, err := netlink.LinkByName(ns.Iface)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetXdpFdWithFlags(lk, prog.FD(), unix.XDP_FLAGS_DRV_MODE); err != nil {
			return fmt.Errorf("attach XDP to %s: %w", ns.Iface, err)
		}
		return nil
	})
}
