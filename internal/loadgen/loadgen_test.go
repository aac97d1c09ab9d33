package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/internal/replytap"
)

func TestZipf(t *testing.T) {
	z := NewZipf(1000, 0.99)
	r := rand.New(rand.NewPCG(1, 2))
	counts := make([]int, 1000)
	for range 200000 {
		counts[z.Next(r)]++
	}
	if counts[0] < counts[10] || counts[10] < counts[500] {
		t.Errorf("not skewed: %d %d %d", counts[0], counts[10], counts[500])
	}
	share := float64(counts[0]) / 200000
	if want := z.TopShare(1); share < want*0.9 || share > want*1.1 {
		t.Errorf("rank 0 share %.3f, want about %.3f", share, want)
	}
	u := NewZipf(10, 0)
	if s := u.TopShare(5); s < 0.49 || s > 0.51 {
		t.Errorf("uniform top half %.3f", s)
	}
}

// TestAgainstMemcached runs a short load on loopback: every request is
// answered and every key hits after Populate.
func TestAgainstMemcached(t *testing.T) {
	bin, err := exec.LookPath("memcached")
	if err != nil {
		t.Skip("memcached not installed")
	}
	addr := startMemcachedOnLoopback(t, bin)
	for _, tc := range []struct {
		name   string
		binary bool
		rate   float64
	}{
		{"ascii", false, 0},
		{"binary", true, 0},
		// paced: about rate*duration requests, not as many as the window allows
		{"ascii-fixed-rate", false, 2000},
	} {
		cfg := Config{Keys: 500, KeySize: 16, ValueSize: 32, Zipf: 0.99, Binary: tc.binary, Sockets: 2, Window: 32,
			Rate: tc.rate, Duration: time.Second, Seed: 1,
			DialUDP: func() (*net.UDPConn, error) {
				a, _ := net.ResolveUDPAddr("udp", addr)
				return net.DialUDP("udp", nil, a)
			},
			DialTCP: func() (net.Conn, error) { return net.Dial("tcp", addr) }}
		if err := Populate(cfg); err != nil {
			t.Fatal(err)
		}
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s", tc.name, rep)
		if rep.Replies == 0 || rep.HitRatio != 1 || rep.Errors != 0 {
			t.Errorf("%s: %s", tc.name, rep)
		}
		if tc.rate > 0 {
			// Pacing, not speed: the client sends on a schedule, so the
			// count is the schedule's whatever the machine does (it can
			// only fall short, by the requests due after the deadline).
			want := tc.rate * cfg.Duration.Seconds()
			if float64(rep.Requests) > want*1.02 || float64(rep.Requests) < want*0.8 {
				t.Errorf("%s: %d requests, want about %.0f", tc.name, rep.Requests, want)
			}
		}
	}
}

func TestWriteChart(t *testing.T) {
	path := t.TempDir() + "/c.png"
	err := WriteChart(path, []ChartRow{{"alone", "zipf 0.99", 60000, 7}, {"native", "zipf 0.99", 180000, 6}, {"alone", "zipf 0.90", 70000, 5}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
		t.Fatalf("not a PNG: %d bytes, %v", len(b), err)
	}
}

// TestReplyTapMatchesSockets runs the same schedule of GETs (same seed,
// fixed rate) against memcached in a namespace pair twice: receiving through
// the sockets, then through the reply tap on the client's veth end. Half the
// keys are absent, so both hits and misses are classified; the two runs
// must agree, and the tap must lose nothing.
func TestReplyTapMatchesSockets(t *testing.T) {
	lab, m := labtest.Start(t)
	addr := netip.AddrPortFrom(m.Addr, m.Port)
	tap, err := replytap.Load(m.Port)
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	labtest.PassOnClient(t, lab)
	cfg := Config{Keys: 500, KeySize: 16, ValueSize: 32, Zipf: 0.99, Sockets: 2, Window: 32, Seed: 3,
		Rate: 4000, Duration: time.Second,
		DialUDP: func() (*net.UDPConn, error) { return lab.Client.DialUDP(addr) },
		DialTCP: func() (net.Conn, error) { return lab.Client.DialTCP(addr, 2*time.Second) }}
	if err := Populate(cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Keys = 1000 // keys 500..999 are absent
	for _, binary := range []bool{false, true} {
		cfg := cfg
		cfg.Binary = binary
		viaSockets, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := lab.Client.AttachXDP(tap.Program()); err != nil {
			t.Fatal(err)
		}
		cfg.Tap = tap
		viaTap, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		labtest.PassOnClient(t, lab)
		t.Logf("binary=%v sockets: %s", binary, viaSockets)
		t.Logf("binary=%v tap:     %s", binary, viaTap)
		for _, r := range []Report{viaSockets, viaTap} {
			if r.Replies < r.Requests*9/10 || r.Errors != 0 || r.HitRatio <= 0.5 || r.HitRatio >= 1 {
				t.Errorf("binary=%v: %s", binary, r)
			}
		}
		if d := viaTap.HitRatio - viaSockets.HitRatio; d > 0.03 || d < -0.03 {
			t.Errorf("binary=%v: hit ratio %.3f through the tap, %.3f through the sockets", binary, viaTap.HitRatio, viaSockets.HitRatio)
		}
	}
	if lost, err := tap.Lost(); err != nil || lost != 0 {
		t.Errorf("tap lost %d replies (%v)", lost, err)
	}
}

// startMemcachedOnLoopback starts memcached (TCP and UDP on one port) on a
// port free for both, and retries with another when memcached exits (another
// test took the port between the check and memcached's bind).
func startMemcachedOnLoopback(t *testing.T, bin string) string {
	t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := tl.Addr().(*net.TCPAddr).Port
		ul, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		tl.Close()
		if err != nil {
			continue
		}
		ul.Close()
		cmd := exec.Command(bin, "-U", fmt.Sprint(port), "-p", fmt.Sprint(port), "-l", "127.0.0.1", "-u", "root", "-t", "2", "-m", "64")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		for i := 0; i < 250; i++ {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				t.Cleanup(func() { cmd.Process.Kill(); <-exited })
				return addr
			}
			select {
			case <-exited:
				i = 250 // it could not bind: another port
			case <-time.After(20 * time.Millisecond):
			}
		}
		cmd.Process.Kill()
		<-exited
	}
	t.Fatal("memcached did not come up on loopback (5 ports tried)")
	return ""
}
