package relay

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeMemcached answers "stats" with the STAT lines stats() returns at the
// time of the request; it is closed when the test ends.
func fakeMemcached(t *testing.T, stats func() string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				rd := bufio.NewReader(c)
				for {
					line, err := rd.ReadString('\n')
					if err != nil {
						return
					}
					if strings.TrimSpace(line) == "stats" {
						fmt.Fprint(c, stats()+"END\r\n")
					}
				}
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

func TestMemcachedIdentity(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stats   string
		pid     int
		started int64
		err     bool
	}{
		{"pid and start", "STAT pid 42\r\nSTAT uptime 10\r\nSTAT time 1000\r\nSTAT version 1.6.18\r\n", 42, 990, false},
		{"no pid", "STAT uptime 10\r\nSTAT time 1000\r\n", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := fakeMemcached(t, func() string { return tc.stats })
			pid, started, err := memcachedIdentity(a)
			if (err != nil) != tc.err || pid != tc.pid || started != tc.started {
				t.Errorf("memcachedIdentity = %d, %d, %v; want %d, %d, error %v", pid, started, err, tc.pid, tc.started, tc.err)
			}
		})
	}
}

// Check reports a restart when the pid or the start time changes, not on
// the first answer and not when only the clock moves.
func TestRestartWatcherCheck(t *testing.T) {
	var pid, now, uptime atomic.Int64
	pid.Store(7)
	now.Store(1000)
	uptime.Store(100)
	a := fakeMemcached(t, func() string {
		return fmt.Sprintf("STAT pid %d\r\nSTAT uptime %d\r\nSTAT time %d\r\n", pid.Load(), uptime.Load(), now.Load())
	})
	w := &RestartWatcher{addrs: []netip.AddrPort{a}}
	for _, step := range []struct {
		name      string
		change    func()
		restarted bool
	}{
		{"first answer", func() {}, false},
		{"time passes", func() { now.Add(5); uptime.Add(5) }, false},
		{"new pid", func() { pid.Store(8) }, true},
		{"same process", func() {}, false},
		{"restarted with the same pid", func() { uptime.Store(1) }, true},
	} {
		step.change()
		got, err := w.Check()
		if err != nil || got != step.restarted {
			t.Errorf("%s: Check() = %v, %v; want %v", step.name, got, err, step.restarted)
		}
	}
	dead := &RestartWatcher{addrs: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}}
	if _, err := dead.Check(); err == nil || !strings.Contains(err.Error(), "memcached unreachable") {
		t.Errorf("unreachable memcached: %v", err)
	}
}
