package loadgen

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/internal/replytap"
)

func TestFramesSequence(t *testing.T) {
	for _, c := range []struct {
		keys int
		zipf float64
	}{{1000, 0.99}, {100000, 0.90}, {50, 0}} {
		cfg := Config{Keys: c.keys, KeySize: 16, Zipf: c.zipf, Seed: 7}
		keys, seq := FramesSequence(cfg, 200000)
		if len(keys) != c.keys || len(seq) != 200000 {
			t.Fatalf("%d keys, %d draws", len(keys), len(seq))
		}
		for k, s := range keys {
			if s != Key(k, 16) {
				t.Fatalf("key %d is %q, want %q", k, s, Key(k, 16))
			}
		}
		// the draws follow the socket client's distribution: the top
		// tenth of the keys gets its share
		top := c.keys / 10
		n := 0
		for _, r := range seq {
			if int(r) >= c.keys {
				t.Fatalf("draw %d of %d keys", r, c.keys)
			}
			if int(r) < top {
				n++
			}
		}
		want := NewZipf(c.keys, c.zipf).TopShare(top)
		if got := float64(n) / float64(len(seq)); got < want-0.01 || got > want+0.01 {
			t.Errorf("%d keys, zipf %g: top %d keys drawn %.3f of the time, want %.3f", c.keys, c.zipf, top, got, want)
		}
	}
}

func TestRunFramesNeeds(t *testing.T) {
	base := Config{Keys: 10, KeySize: 16, Sockets: 1, Window: 1, Duration: time.Millisecond}
	for _, c := range []struct {
		name   string
		tap    *replytap.Tap
		frames *Frames
		want   string
	}{
		{"no tap", nil, &Frames{Ports: []uint16{1}, Do: func(f func() error) error { return f() }}, "reply tap"},
		{"no generator", &replytap.Tap{}, &Frames{Ports: []uint16{1}, Do: func(f func() error) error { return f() }}, "generator"},
		{"no ports", &replytap.Tap{}, &Frames{Do: func(f func() error) error { return f() }}, "ports"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			cfg.Tap, cfg.Frames = c.tap, c.frames
			_, err := Run(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Run: %v, want an error about %q", err, c.want)
			}
		})
	}
}

// TestRunFramesAgainstMemcached drives the frames source at a fixed rate
// from two threads on a veth pair with two queues per end, against plain
// memcached whose keys are half absent, and checks the tap's in-kernel
// counts against memcached's own statistics: every reply counted once, the
// hits memcached reports, nothing else. (memcached's socket drops some of
// the bursts: a live frame becomes a 4 KiB skb there, and its default
// receive buffer holds about 50.)
func TestRunFramesAgainstMemcached(t *testing.T) {
	lab, m := labtest.StartQueues(t, 2)
	addr := netip.AddrPortFrom(m.Addr, m.Port)
	tap, err := replytap.Load(m.Port)
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	cfg := Config{Keys: 200, KeySize: 16, ValueSize: 32, Zipf: 0.9, Sockets: 2, Window: 1, Seed: 5,
		Rate: 2000, Duration: time.Second, Timeout: time.Second,
		DialUDP: func() (*net.UDPConn, error) { return lab.Client.DialUDP(addr) },
		DialTCP: func() (net.Conn, error) { return lab.Client.DialTCP(addr, 2*time.Second) }}
	if err := Populate(cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Keys = 400 // keys 200..399 are absent
	gen := newFrameSource(t, lab, m, cfg.Sockets)
	if gen.err != nil {
		t.Skipf("no live frames here: %v", gen.err)
	}
	if err := lab.Client.AttachXDP(tap.Program()); err != nil {
		t.Fatal(err)
	}
	cfg.Tap = tap
	cfg.Frames = gen.forWorkload(t, cfg, 2)
	defer gen.release()
	conn, err := lab.Client.DialTCP(addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mc := mcproto.NewTCPClient(conn, 5*time.Second)
	stat := func() (gets, hits uint64) {
		st, err := mc.Stats()
		if err != nil {
			t.Fatal(err)
		}
		g, err1 := strconv.ParseUint(st["cmd_get"], 10, 64)
		h, err2 := strconv.ParseUint(st["get_hits"], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("memcached stats: %v %v", err1, err2)
		}
		return g, h
	}
	g0, h0 := stat()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	g1, h1 := stat()
	t.Logf("%s; memcached: %d gets, %d hits", rep, g1-g0, h1-h0)
	// A live-frames run has a fixed cost (20 ms and more here), so the paced
	// runs of 10 requests fall behind the rate; they must not overshoot it.
	if rep.Requests < 50 || rep.Requests > 2200 {
		t.Errorf("%d requests sent in 1 s at 2,000/s", rep.Requests)
	}
	if uint64(rep.Replies) != g1-g0 || uint64(rep.Hits) != h1-h0 || rep.Errors != 0 {
		t.Errorf("tap counted %d replies, %d hits, %d errors; memcached answered %d gets, %d hits", rep.Replies, rep.Hits, rep.Errors, g1-g0, h1-h0)
	}
	if rep.Replies < rep.Requests/4 || rep.Replies > rep.Requests || rep.HitRatio <= 0.3 || rep.HitRatio >= 1 {
		t.Errorf("report %s: memcached answers most, a share of them hits", rep)
	}
	if lost, err := tap.Lost(); err != nil || lost != 0 {
		t.Errorf("tap lost %d (%v)", lost, err)
	}
	if t.Failed() {
		for _, ns := range []string{lab.Server.Name, lab.Client.Name} {
			out, _ := exec.Command("ip", "netns", "exec", ns, "sh", "-c", "ip -s link; nstat -az | grep -E 'Udp|Drop|Err' | grep -v ' 0 '; ethtool -S "+map[string]string{lab.Server.Name: lab.Server.Iface, lab.Client.Name: lab.Client.Iface}[ns]).CombinedOutput()
			t.Logf("%s:\n%s", ns, out)
		}
	}
}
