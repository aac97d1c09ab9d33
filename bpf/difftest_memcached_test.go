package bpf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/internal/netlab"
)

// mcProc is a private memcached for one stream of the differential harness:
// one worker thread (-t 1), so that the UDP socket is read by one connection
// and every connection's events are processed in the order they arrive, and
// no yielding to other connections (-R).
type mcProc struct {
	cmd    *exec.Cmd
	exited chan error
	port   int
	addr   string
	ctl    *countConn // oracle connection: stats, mg, never part of a stream
	ctlR   *bufio.Reader
	// bytes of the one-shot connections (compareReply), which memcached
	// counts too
	xsent, xrecv uint64
}

// countConn counts the bytes of the oracle connection: memcached's
// bytes_read and bytes_written include them.
type countConn struct {
	net.Conn
	sent, recv uint64
}

func (c *countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.recv += uint64(max(n, 0))
	return n, err
}

func (c *countConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.sent += uint64(max(n, 0))
	return n, err
}

func memcachedBinary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/memcached"); serr != nil {
			t.Skipf("memcached binary not found (%v): run .ci/deps", err)
		}
		bin = "/usr/bin/memcached"
	}
	return bin
}

func startMC(t testing.TB) *mcProc {
	t.Helper()
	bin := memcachedBinary(t)
	for attempt := 0; ; attempt++ {
		port := diffFreePort(t)
		p := strconv.Itoa(port)
		cmd := exec.Command(bin, "-U", p, "-p", p, "-l", "127.0.0.1", "-u", "root", "-t", "1", "-R", "1000000", "-m", "64")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		m := &mcProc{cmd: cmd, exited: make(chan error, 1), port: port, addr: net.JoinHostPort("127.0.0.1", p)}
		go func() { m.exited <- cmd.Wait() }()
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", m.addr, 200*time.Millisecond)
			if err == nil {
				m.ctl = &countConn{Conn: c}
				m.ctlR = bufio.NewReader(m.ctl)
				return m
			}
			exitedEarly := false
			select {
			case <-m.exited:
				exitedEarly = true
			case <-time.After(5 * time.Millisecond):
			}
			if exitedEarly {
				if attempt < 5 { // the port was taken meanwhile
					break
				}
				t.Fatalf("memcached exited early: %s", stderr.String())
			}
			if time.Now().After(deadline) {
				m.stop()
				t.Fatalf("memcached did not accept TCP on %s within 5s: %v", m.addr, err)
			}
		}
	}
}

func (m *mcProc) stop() {
	if m.ctl != nil {
		m.ctl.Close()
	}
	_ = m.cmd.Process.Kill()
	<-m.exited
}

func diffFreePort(t testing.TB) int {
	t.Helper()
	port, err := netlab.FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// ctlCmd sends one command on the oracle connection and reads the reply up
// to and including a line equal to one of ends.
func (m *mcProc) ctlCmd(cmd string, ends ...string) ([]byte, error) {
	m.ctl.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := m.ctl.Write([]byte(cmd)); err != nil {
		return nil, err
	}
	var out []byte
	for {
		line, err := m.ctlR.ReadBytes('\n')
		out = append(out, line...)
		if err != nil {
			return out, err
		}
		for _, e := range ends {
			if string(line) == e {
				return out, nil
			}
		}
	}
}

// mcItem is what memcached holds for a key, read with a meta get.
type mcItem struct {
	exists bool
	value  []byte
	flags  uint32
	ttl    int // remaining seconds, -1: never expires
	cas    uint64
}

func (it mcItem) String() string {
	if !it.exists {
		return "absent"
	}
	return fmt.Sprintf("%q flags %d ttl %d cas %d", it.value, it.flags, it.ttl, it.cas)
}

// read reads a key's state without changing it (no T/N flags: mg does not
// bump anything memcached's answers depend on).
func (m *mcProc) read(key string) (mcItem, error) {
	m.ctl.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(m.ctl, "mg %s s v f t c\r\n", key); err != nil {
		return mcItem{}, err
	}
	line, err := m.ctlR.ReadString('\n')
	if err != nil {
		return mcItem{}, err
	}
	if line == "EN\r\n" {
		return mcItem{}, nil
	}
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "VA" {
		return mcItem{}, fmt.Errorf("mg %q: %q", key, line)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return mcItem{}, fmt.Errorf("mg %q: %q", key, line)
	}
	it := mcItem{exists: true}
	for _, fl := range f[2:] {
		v := fl[1:]
		switch fl[0] {
		case 'f':
			x, _ := strconv.ParseUint(v, 10, 32)
			it.flags = uint32(x)
		case 't':
			it.ttl, _ = strconv.Atoi(v)
		case 'c':
			it.cas, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	buf := make([]byte, n+2)
	if _, err := readFull(m.ctlR, buf); err != nil {
		return mcItem{}, err
	}
	it.value = buf[:n]
	return it, nil
}

func readFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// connStates returns memcached's state of each connection ("stats conns"),
// by the client's port ("UDP" for the UDP connection).
func (m *mcProc) connStates() (map[string]string, error) {
	out, err := m.ctlCmd("stats conns\r\n", "END\r\n")
	if err != nil {
		return nil, err
	}
	addr := map[string]string{} // fd -> peer port or UDP
	states := map[string]string{}
	for _, line := range strings.Split(string(out), "\r\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "STAT" {
			continue
		}
		fd, what, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		switch what {
		case "UDP":
			addr[fd] = "UDP"
		case "addr":
			if addr[fd] == "" {
				if i := strings.LastIndexByte(f[2], ':'); i >= 0 {
					addr[fd] = f[2][i+1:]
				}
			}
		case "state":
			states[addr[fd]] = f[2]
		}
	}
	return states, nil
}

// blockedState: memcached is waiting for bytes on the connection, i.e. it
// processed everything it has read. A new connection waits in conn_new_cmd;
// so does one that yielded after -R requests in one event, which -R 1000000
// rules out.
func blockedState(s string) bool {
	switch s {
	case "conn_new_cmd", "conn_read", "conn_waiting", "conn_nread", "conn_swallow", "conn_closed", "conn_closing", "":
		return true
	}
	return false
}

// mcClient is the stream's side of the real connections.
type mcClient struct {
	m       *mcProc
	tcp     []*net.TCPConn
	closed  []bool   // memcached closed the connection
	replies [][]byte // bytes each TCP connection received and the XDP side has not yet seen
	udp     *net.UDPConn
	dgrams  [][]byte // UDP datagrams received and not yet handed on

	// Byte accounting for barrier: memcached's bytes_read must reach what
	// was sent, its bytes_written what was received.
	credited  uint64 // stream bytes memcached had read at the last barrier
	pending   uint64 // stream bytes sent since (a UDP datagram counts 1: it may be read in part)
	recvd     uint64 // stream bytes received (TCP payload, whole UDP datagrams)
	lastStats uint64 // length of the last "stats" reply
	sentSince []bool // per connection: bytes written since the last barrier
}

func (m *mcProc) client(nconn int) (*mcClient, error) {
	c := &mcClient{m: m, closed: make([]bool, nconn), replies: make([][]byte, nconn), sentSince: make([]bool, nconn)}
	for range nconn {
		conn, err := net.Dial("tcp", m.addr)
		if err != nil {
			c.close()
			return nil, err
		}
		tc := conn.(*net.TCPConn)
		tc.SetNoDelay(true)
		c.tcp = append(c.tcp, tc)
	}
	u, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: m.port})
	if err != nil {
		c.close()
		return nil, err
	}
	c.udp = u
	// memcached has accepted every connection: barrier takes one that "stats
	// conns" does not list for one memcached closed, so one still waiting in
	// the accept queue (a busy machine) must not be taken for that (it was:
	// the barrier then returned before memcached read the stream's bytes on
	// it, and the oracle answered from before them)
	if err := c.awaitAccepted(); err != nil {
		c.close()
		return nil, err
	}
	// start from memcached's counters as they are now
	if _, _, err := c.counters(); err != nil {
		c.close()
		return nil, err
	}
	r, _, err := c.counters()
	if err != nil {
		c.close()
		return nil, err
	}
	c.credited = r - c.m.ctl.sent - c.m.xsent
	return c, nil
}

// awaitAccepted waits until "stats conns" lists every TCP connection.
func (c *mcClient) awaitAccepted() error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		st, err := c.m.connStates()
		if err != nil {
			return err
		}
		missing := 0
		for _, t := range c.tcp {
			if _, ok := st[strconv.Itoa(localPort(t.LocalAddr()))]; !ok {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("memcached did not accept %d of %d connections within 3s", missing, len(c.tcp))
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func (c *mcClient) close() {
	for _, t := range c.tcp {
		t.Close()
	}
	if c.udp != nil {
		c.udp.Close()
	}
}

// sendTCP writes a segment's bytes on connection i.
func (c *mcClient) sendTCP(i int, data []byte) {
	if c.closed[i] {
		return
	}
	if _, err := c.tcp[i].Write(data); err != nil {
		c.closed[i] = true
		return
	}
	c.pending += uint64(len(data))
	c.sentSince[i] = true
}

// sendUDP sends one datagram (frame header included).
func (c *mcClient) sendUDP(data []byte) error {
	if _, err := c.udp.Write(data); err != nil {
		return err
	}
	if len(data) > 8 {
		c.pending++
	}
	return nil
}

func localPort(a net.Addr) int {
	switch x := a.(type) {
	case *net.TCPAddr:
		return x.Port
	case *net.UDPAddr:
		return x.Port
	}
	return 0
}

// drain reads whatever has arrived on every socket without waiting.
func (c *mcClient) drain() {
	buf := make([]byte, 65536)
	for i, t := range c.tcp {
		if c.closed[i] && t == nil {
			continue
		}
		for {
			n, err := readNow(t, buf)
			if n > 0 {
				c.replies[i] = append(c.replies[i], buf[:n]...)
				c.recvd += uint64(n)
			}
			if err != nil || n <= 0 {
				if err == nil || !errors.Is(err, unix.EAGAIN) {
					c.closed[i] = true // EOF or reset
				}
				break
			}
		}
	}
	for {
		n, err := readNow(c.udp, buf)
		if err != nil || n < 0 {
			break
		}
		c.dgrams = append(c.dgrams, append([]byte(nil), buf[:n]...))
		c.recvd += uint64(n)
	}
}

// readNow is one non-blocking read(2): EAGAIN when nothing is there.
func readNow(c syscall.Conn, buf []byte) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), buf)
		return true
	}); err != nil {
		return 0, err
	}
	return n, rerr
}

// counters reads memcached's bytes_read and bytes_written. bytes_read
// includes this "stats" command; bytes_written excludes its reply, which is
// subtracted from the oracle connection's count here.
func (c *mcClient) counters() (read, written uint64, err error) {
	out, err := c.m.ctlCmd("stats\r\n", "END\r\n")
	if err != nil {
		return 0, 0, err
	}
	var r, w uint64
	var haveR, haveW bool
	for _, line := range strings.Split(string(out), "\r\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[1] == "bytes_read" {
			r, err = strconv.ParseUint(f[2], 10, 64)
			haveR = err == nil
		}
		if len(f) == 3 && f[1] == "bytes_written" {
			w, err = strconv.ParseUint(f[2], 10, 64)
			haveW = err == nil
		}
	}
	if !haveR || !haveW {
		return 0, 0, fmt.Errorf("stats without byte counters: %q", out)
	}
	c.lastStats = uint64(len(out))
	return r, w, nil
}

// barrier returns once memcached has processed every byte sent so far and
// everything it sent has been read. memcached runs one worker thread, which
// reads a connection and processes what it read before it takes the next
// ready socket: once "stats" on the oracle connection reports bytes_read
// covering every byte sent, memcached is done with them. Then its
// bytes_written is awaited on our side. A connection memcached closed is
// recognised by "stats conns" no longer listing it.
func (c *mcClient) barrier() error {
	deadline := time.Now().Add(3 * time.Second)
	for polls := 0; ; polls++ {
		r, w, err := c.counters()
		if err != nil {
			return err
		}
		need := c.m.ctl.sent + c.m.xsent + c.credited + c.pending
		if r < need && polls >= 3 {
			// a connection memcached closed reads nothing more
			st, err := c.m.connStates()
			if err != nil {
				return err
			}
			for i, t := range c.tcp {
				if _, ok := st[strconv.Itoa(localPort(t.LocalAddr()))]; !ok && c.sentSince[i] {
					c.closed[i] = true
					c.pending = 0
				}
			}
			need = c.m.ctl.sent + c.m.xsent + c.credited + c.pending
		}
		if r >= need {
			for {
				c.drain()
				// bytes_written covers every reply before the last
				// "stats" reply, which the oracle connection has read
				// in full; the stats replies are part of the ctl count.
				if c.recvd+c.m.ctl.recv-c.lastStats+c.m.xrecv >= w {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("memcached's replies did not arrive within 3s: wrote %d, got %d", w, c.recvd+c.m.ctl.recv-c.lastStats+c.m.xrecv)
				}
				time.Sleep(20 * time.Microsecond)
			}
			c.credited = r - c.m.ctl.sent - c.m.xsent
			c.pending = 0
			for i := range c.sentSince {
				c.sentSince[i] = false
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("memcached did not read the stream within 3s: bytes_read %d, want %d", r, need)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// oneShot sends req on a fresh TCP connection and returns memcached's whole
// reply: for ASCII up to the line "END\r\n"; for binary, the replies up to the
// NOOP appended after req.
func (m *mcProc) oneShot(req []byte, binaryProto bool) ([]byte, error) {
	raw, err := net.Dial("tcp", m.addr)
	if err != nil {
		return nil, err
	}
	c := &countConn{Conn: raw}
	defer func() {
		c.Close()
		m.xsent += c.sent
		m.xrecv += c.recv
	}()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if binaryProto {
		noop := make([]byte, 24)
		noop[0], noop[1] = 0x80, 0x0a
		noop[12] = 0xee // opaque
		if _, err := c.Write(append(append([]byte(nil), req...), noop...)); err != nil {
			return nil, err
		}
		r := bufio.NewReader(c)
		var out []byte
		for {
			h := make([]byte, 24)
			if _, err := readFull(r, h); err != nil {
				return out, err
			}
			body := make([]byte, int(h[8])<<24|int(h[9])<<16|int(h[10])<<8|int(h[11]))
			if _, err := readFull(r, body); err != nil {
				return out, err
			}
			if h[1] == 0x0a && h[12] == 0xee {
				return out, nil
			}
			out = append(append(out, h...), body...)
		}
	}
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	var out []byte
	for {
		line, err := r.ReadBytes('\n')
		out = append(out, line...)
		if err != nil {
			return out, err
		}
		if string(line) == "END\r\n" {
			return out, nil
		}
		if bytes.HasPrefix(line, []byte("VALUE ")) {
			f := strings.Fields(string(line))
			if len(f) >= 4 {
				n, _ := strconv.Atoi(f[3])
				data := make([]byte, n+2)
				if _, err := readFull(r, data); err != nil {
					return out, err
				}
				out = append(out, data...)
			}
		} else if !bytes.HasPrefix(line, []byte("VALUE")) {
			return out, nil // an error line
		}
	}
}
