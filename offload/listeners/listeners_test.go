package listeners

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/bpf"
)

func TestParseHexAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		addr string
		port uint16
	}{
		{"0100007F:2BCB", "127.0.0.1", 11211},
		{"00000000:2BCC", "0.0.0.0", 11212},
		{"00000000000000000000000000000000:2BCB", "::", 11211},
		{"B80D0120000000000000000001000000:2BCB", "2001:db8::1", 11211},
		{"0000000000000000FFFF00000112C6C6:0050", "198.198.18.1", 80},
	} {
		a, p, err := parseHexAddr(tc.in)
		if err != nil || a != netip.MustParseAddr(tc.addr) || p != tc.port {
			t.Errorf("%s: %v %d %v, want %s %d", tc.in, a, p, err, tc.addr, tc.port)
		}
	}
	for _, bad := range []string{"", "0100007F", "01007F:2BCB", "zz00007F:2BCB", "0100007F:zz"} {
		if _, _, err := parseHexAddr(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// L is a listener, short.
func L(a netip.Addr, port uint16, inst uint32) bpf.Listener {
	return bpf.Listener{Addr: a, Port: port, Instance: inst}
}

func TestInstances(t *testing.T) {
	a1, a2 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.3")
	for _, tc := range []struct {
		name  string
		socks []Socket
		want  []bpf.Listener
	}{
		{"none", nil, nil},
		{"one process per port", []Socket{{a1, 11211, "tcp", 10}, {a1, 11211, "udp", 10}, {a2, 11212, "udp", 11}}, nil},
		{"one process on two addresses", []Socket{{a1, 11211, "tcp", 10}, {a2, 11211, "udp", 10}}, nil},
		{"two processes on one port", []Socket{{a1, 11211, "tcp", 10}, {a1, 11211, "udp", 10}, {a2, 11211, "udp", 11}},
			[]bpf.Listener{L(a1, 11211, 1), L(a2, 11211, 2)}},
		{"one process on two ports", []Socket{{a1, 11211, "tcp", 10}, {a1, 11212, "udp", 10}},
			[]bpf.Listener{L(a1, 11211, 1), L(a1, 11212, 1)}},
		{"unknown processes are apart", []Socket{{a1, 11211, "udp", 0}, {a2, 11211, "udp", 0}},
			[]bpf.Listener{L(a1, 11211, 1), L(a2, 11211, 2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Instances(tc.socks); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestFindMemcached starts memcached on loopback and finds its sockets and
// process.
func TestFindMemcached(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: reads other processes' file descriptors")
	}
	bin, err := exec.LookPath("memcached")
	if err != nil {
		t.Skip("memcached is not installed")
	}
	const port = 21733
	cmd := exec.CommandContext(context.Background(), bin, "-U", "21733", "-p", "21733", "-l", "127.0.0.1", "-u", "root", "-m", "8")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var socks []Socket
	for range 50 {
		if socks, err = Find([]uint16{port}); err == nil && len(socks) >= 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	protos := map[string]bool{}
	for _, s := range socks {
		if s.Addr != netip.MustParseAddr("127.0.0.1") || s.Port != port || s.Pid != cmd.Process.Pid {
			t.Errorf("socket %+v, want 127.0.0.1:%d of pid %d", s, port, cmd.Process.Pid)
		}
		protos[s.Proto] = true
	}
	if !protos["tcp"] || !protos["udp"] {
		t.Errorf("sockets %+v: want TCP and UDP", socks)
	}
}
