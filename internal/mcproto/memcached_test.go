package mcproto

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/internal/netlab"
)

// memcachedServer is a memcached child process listening on 127.0.0.1.
type memcachedServer struct {
	addr string // host:port, same port for TCP and UDP
}

// startMemcached runs a private memcached for the test, or skips the test
// if the binary is not installed.
func startMemcached(t *testing.T) memcachedServer {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/memcached"); serr != nil {
			t.Skipf("memcached binary not found (%v); install memcached to run integration tests", err)
		}
		bin = "/usr/bin/memcached"
	}
	port := freePort(t)
	p := strconv.Itoa(port)
	cmd := exec.Command(bin, "-U", p, "-p", p, "-l", "127.0.0.1", "-u", "root", "-t", "2", "-m", "64")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := net.JoinHostPort("127.0.0.1", p)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return memcachedServer{addr: addr}
		}
		select {
		case werr := <-exited:
			t.Fatalf("memcached exited early: %v", werr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached did not accept TCP on %s within 5s: %v", addr, err)
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	port, err := netlab.FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func (s memcachedServer) tcp(t *testing.T) *TCPClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial tcp %s: %v", s.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return NewTCPClient(c, 2*time.Second)
}

func (s memcachedServer) udp(t *testing.T, timeout time.Duration) *UDPClient {
	t.Helper()
	ra, err := net.ResolveUDPAddr("udp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		t.Fatalf("dial udp %s: %v", s.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return NewUDPClient(c, timeout)
}

func TestMemcachedASCIIOverUDP(t *testing.T) {
	s := startMemcached(t)
	tc := s.tcp(t)
	uc := s.udp(t, 2*time.Second)

	want := map[string]Item{}
	var keys []string
	for i := range 10 {
		k := fmt.Sprintf("key-%d", i)
		v := []byte(fmt.Sprintf("v%d\r\nline2\r\nEND\r\n", i))
		if i == 3 {
			v = []byte{} // zero-length value
		}
		if err := tc.Set(k, uint32(i*7), 0, v); err != nil {
			t.Fatalf("tcp set %s: %v", k, err)
		}
		keys = append(keys, k)
		want[k] = Item{Key: k, Flags: uint32(i * 7), Value: v}
	}

	t.Run("single", func(t *testing.T) {
		items, err := uc.Get("key-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 || !itemEqual(items[0], want["key-1"]) {
			t.Fatalf("got %+v, want %+v", items, want["key-1"])
		}
	})
	t.Run("miss", func(t *testing.T) {
		items, err := uc.Get("absent")
		if err != nil || len(items) != 0 {
			t.Fatalf("got %+v, %v; want no items", items, err)
		}
	})
	t.Run("multi", func(t *testing.T) {
		items, err := uc.Get(append(keys, "absent")...)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != len(keys) {
			t.Fatalf("got %d items, want %d", len(items), len(keys))
		}
		for i, it := range items {
			if !itemEqual(it, want[keys[i]]) {
				t.Errorf("item %d: got %+v, want %+v", i, it, want[keys[i]])
			}
		}
	})
	t.Run("gets", func(t *testing.T) {
		items, err := uc.Gets("key-2")
		if err != nil {
			t.Fatal(err)
		}
		tcpItems, err := tc.Gets("key-2")
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 || !items[0].HasCAS || items[0].CAS == 0 || len(tcpItems) != 1 || tcpItems[0].CAS != items[0].CAS {
			t.Fatalf("udp gets %+v, tcp gets %+v: want one item with the same non-zero CAS", items, tcpItems)
		}
		err = tc.Store("cas", "key-2", 1, 0, []byte("new"), items[0].CAS+1000, false)
		if !errors.Is(err, ErrExists) {
			t.Fatalf("cas with wrong value: %v, want ErrExists", err)
		}
		if err := tc.Store("cas", "key-2", 1, 0, []byte("new"), items[0].CAS, false); err != nil {
			t.Fatalf("cas with right value: %v", err)
		}
	})
	t.Run("raw", func(t *testing.T) {
		payloads, err := uc.Raw(AppendGet(nil, false, "key-0", "key-1"))
		if err != nil {
			t.Fatal(err)
		}
		all := bytes.Join(payloads, nil)
		items, complete, err := ParseGetReply(all)
		if err != nil || !complete || len(items) != 2 {
			t.Fatalf("raw reply (%d datagrams) %q: %d items, complete=%v, err=%v", len(payloads), all, len(items), complete, err)
		}
	})
}

func TestMemcachedBinaryOverUDP(t *testing.T) {
	s := startMemcached(t)
	tc := s.tcp(t)
	uc := s.udp(t, 300*time.Millisecond)
	if err := tc.Set("bk", 0xdeadbeef, 0, []byte("bin\r\nvalue")); err != nil {
		t.Fatal(err)
	}

	for i, tt := range []struct {
		op      uint8
		key     string
		status  uint16
		wantKey string
		noReply bool
	}{
		{op: OpGet, key: "bk", status: StatusOK},
		{op: OpGetK, key: "bk", status: StatusOK, wantKey: "bk"},
		{op: OpGetQ, key: "bk", status: StatusOK},
		{op: OpGetKQ, key: "bk", status: StatusOK, wantKey: "bk"},
		{op: OpGet, key: "nope", status: StatusKeyNotFound},
		{op: OpGetK, key: "nope", status: StatusKeyNotFound, wantKey: "nope"},
		{op: OpGetQ, key: "nope", noReply: true},
		{op: OpGetKQ, key: "nope", noReply: true},
	} {
		t.Run(fmt.Sprintf("op%02x/%s", tt.op, tt.key), func(t *testing.T) {
			p, err := uc.BinGet(tt.op, tt.key, 0xdead0000+uint32(i))
			if tt.noReply {
				if !errors.Is(err, ErrNoReply) {
					t.Fatalf("got %+v, %v; want ErrNoReply", p, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Header.Status != tt.status || string(p.Key) != tt.wantKey {
				t.Fatalf("status 0x%x key %q, want 0x%x %q", p.Header.Status, p.Key, tt.status, tt.wantKey)
			}
			if tt.status != StatusOK {
				if !errors.Is(p.Err(), ErrNotFound) {
					t.Fatalf("Err() = %v, want ErrNotFound", p.Err())
				}
				return
			}
			flags, err := p.Flags()
			if err != nil || flags != 0xdeadbeef || string(p.Value) != "bin\r\nvalue" {
				t.Fatalf("flags 0x%x (%v) value %q", flags, err, p.Value)
			}
		})
	}

	t.Run("quiet miss then noop", func(t *testing.T) {
		req := AppendBinGet(nil, OpGetQ, "nope", 1)
		req = AppendBinRequest(req, BinHeader{Opcode: OpNoop, Opaque: 2}, nil, nil, nil)
		payloads, err := uc.Raw(req)
		if err != nil {
			t.Fatal(err)
		}
		all := bytes.Join(payloads, nil)
		p, rest, err := ParseBinPacket(all)
		if err != nil || len(rest) != 0 || p.Header.Opcode != OpNoop || p.Header.Opaque != 2 {
			t.Fatalf("reply %q: %+v, rest %d, %v; want only the noop response", all, p, len(rest), err)
		}
	})
	t.Run("set over udp", func(t *testing.T) {
		payloads, err := uc.Raw(AppendBinSet(nil, OpSet, "bset", []byte("from-udp"), 42, 0, 0, 7))
		if err != nil {
			t.Fatal(err)
		}
		if len(payloads) != 1 {
			t.Fatalf("got %d reply datagrams, want 1", len(payloads))
		}
		p, rest, err := ParseBinPacket(payloads[0])
		if err != nil || len(rest) != 0 || p.Header.Opcode != OpSet || p.Header.Opaque != 7 || p.Err() != nil || p.Header.CAS == 0 {
			t.Fatalf("set reply %+v rest %d err %v", p, len(rest), err)
		}
		g, err := uc.BinGet(OpGet, "bset", 8)
		if err != nil {
			t.Fatal(err)
		}
		if flags, _ := g.Flags(); flags != 42 || string(g.Value) != "from-udp" || g.Header.CAS != p.Header.CAS {
			t.Fatalf("get after set: %+v", g)
		}
		items, err := tc.Gets("bset")
		if err != nil || len(items) != 1 || string(items[0].Value) != "from-udp" || items[0].CAS != p.Header.CAS {
			t.Fatalf("tcp gets after udp set: %+v, %v", items, err)
		}
	})
}

func TestMemcachedTCPCommands(t *testing.T) {
	s := startMemcached(t)
	tc := s.tcp(t)

	if err := tc.Set("n", 0, 0, []byte("10")); err != nil {
		t.Fatal(err)
	}
	if v, err := tc.Incr("n", 5); err != nil || v != 15 {
		t.Fatalf("incr: %d, %v", v, err)
	}
	// memcached rewrites a shrinking counter in place, space padded:
	// "15" becomes "0 ".
	if v, err := tc.Decr("n", 20); err != nil || v != 0 {
		t.Fatalf("decr: %d, %v", v, err)
	}
	if _, err := tc.Incr("missing", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("incr missing: %v", err)
	}
	if err := tc.Touch("n", 100); err != nil {
		t.Fatalf("touch: %v", err)
	}
	if err := tc.Store("add", "n", 0, 0, []byte("x"), 0, false); !errors.Is(err, ErrNotStored) {
		t.Fatalf("add existing: %v", err)
	}
	if err := tc.Store("append", "n", 0, 0, []byte("!"), 0, false); err != nil {
		t.Fatalf("append: %v", err)
	}
	if err := tc.Store("set", "quiet", 0, 0, []byte("q"), 0, true); err != nil {
		t.Fatalf("set noreply: %v", err)
	}
	if items, err := tc.Get("n", "quiet"); err != nil || len(items) != 2 || string(items[0].Value) != "0 !" || string(items[1].Value) != "q" {
		t.Fatalf("get: %+v, %v", items, err)
	}
	if err := tc.Delete("n"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := tc.Delete("n"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete again: %v", err)
	}
	if reply, err := tc.Do([]byte("version")); err != nil || len(reply) < 9 || reply[:8] != "VERSION " {
		t.Fatalf("version: %q, %v", reply, err)
	}
	if reply, err := tc.Do([]byte("bogus_command\r\n")); err != nil || reply != "ERROR" {
		t.Fatalf("bogus: %q, %v", reply, err)
	}

	before, err := tc.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Get("quiet", "absent"); err != nil {
		t.Fatal(err)
	}
	after, err := tc.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if d := statDelta(t, before, after, "get_hits"); d != 1 {
		t.Errorf("get_hits grew by %d, want 1", d)
	}
	if d := statDelta(t, before, after, "cmd_get"); d != 2 {
		t.Errorf("cmd_get grew by %d, want 2", d)
	}
	if err := tc.FlushAll(); err != nil {
		t.Fatalf("flush_all: %v", err)
	}
	if items, err := tc.Get("quiet"); err != nil || len(items) != 0 {
		t.Fatalf("get after flush_all: %+v, %v", items, err)
	}
}

func statDelta(t *testing.T, before, after map[string]string, name string) int64 {
	t.Helper()
	b, err1 := strconv.ParseInt(before[name], 10, 64)
	a, err2 := strconv.ParseInt(after[name], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("stat %s: before %q after %q", name, before[name], after[name])
	}
	return a - b
}

func itemEqual(a, b Item) bool {
	return a.Key == b.Key && a.Flags == b.Flags && string(a.Value) == string(b.Value) &&
		a.HasCAS == b.HasCAS && (!a.HasCAS || a.CAS == b.CAS)
}
