package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/loadgen"
	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/offload/deploy"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/probe"
	"github.com/xdpcache/xdpcache/offload/record"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "self-contained demo: two network namespaces, a real memcached, a UDP client load, xdpcache in between",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "duration", Value: 4 * time.Second, Usage: "how long the client load runs"},
			&cli.StringFlag{Name: "mode", Value: string(mode.Auto), Usage: "XDP mode to deploy with: " + mode.List()},
		},
		Action: func(c *cli.Context) error {
			m, err := modeFlag(c)
			if err != nil {
				return cli.Exit("xdpcache demo: "+err.Error(), exitUsage)
			}
			if err := runDemo(c.Context, c.App.Writer, m, c.Duration("duration")); err != nil {
				return cli.Exit("xdpcache demo: "+err.Error(), exitFailed)
			}
			return nil
		},
	}
}

func runDemo(ctx context.Context, w io.Writer, xdpMode mode.Mode, dur time.Duration) (err error) {
	if dur <= 0 || dur > 10*time.Minute {
		return fmt.Errorf("--duration %s: use 1s..10m", dur)
	}
	for _, bin := range []string{"memcached", "memcaslap", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is missing: run .ci/deps (Debian packages memcached, libmemcached-tools, util-linux)", bin)
		}
	}
	say := func(f string, a ...any) { fmt.Fprintf(w, "\n== "+f+"\n", a...) }

	say("building a lab: two network namespaces joined by a veth pair (198.18.200.0/24)")
	lab, err := netlab.New(netlab.Options{Subnet: 200})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := lab.Close(); cerr != nil && err == nil {
			err = cerr
		}
		fmt.Fprintln(w, "\n== cleaned up: namespaces, memcached and pins removed")
	}()
	fmt.Fprintf(w, "server %s: %s on %s    client %s: %s on %s\n",
		lab.Server.Name, lab.Server.Addr, lab.Server.Iface, lab.Client.Name, lab.Client.Addr, lab.Client.Iface)

	say("starting memcached -U 11211 in the server namespace")
	m, err := lab.StartMemcached(11211)
	if err != nil {
		return err
	}

	say("veth delivers XDP_TX replies only to a peer that runs XDP: attaching an XDP_PASS program to the client end")
	if err := lab.Client.AttachXDPPass(); err != nil {
		return err
	}

	pinRoot := filepath.Join("/sys/fs/bpf", "xdpcache-demo")
	say("xdpcache probe --iface %s (in the server namespace)", lab.Server.Iface)
	if err := lab.Server.Do(func() error {
		r, err := probe.Run(lab.Server.Iface, probe.Options{PinRoot: pinRoot}, probe.DecideOptions{Requested: xdpMode})
		if err != nil {
			return err
		}
		printReport(w, r, false)
		return nil
	}); err != nil {
		return err
	}
	defer os.RemoveAll(pinRoot)
	say("xdpcache deploy --iface %s --mode %s", lab.Server.Iface, xdpMode)
	var d *record.Deployment
	s := bpf.DefaultSettings()
	err = lab.Server.Do(func() error {
		var err error
		d, err = deploy.Deploy(deploy.Options{Iface: lab.Server.Iface, Mode: xdpMode, Settings: s, PinRoot: pinRoot,
			Log: func(f string, a ...any) { fmt.Fprintf(w, f+"\n", a...) }})
		return err
	})
	if err != nil {
		return err
	}
	defer lab.Server.Do(func() error { return deploy.Undeploy(lab.Server.Iface, pinRoot) })
	printDeployment(w, w, d)

	say("client load 1: memcaslap over UDP (it verifies values), 16-byte keys, 32-byte values, 99%% GETs, for %s", dur)
	before, err := memcachedStats(lab, m)
	if err != nil {
		return err
	}
	load, err := runMemcaslap(ctx, lab, m, dur)
	if err != nil {
		return err
	}
	fmt.Fprint(w, load)
	after, err := memcachedStats(lab, m)
	if err != nil {
		return err
	}

	say("client load 2: xdpcache's own load generator (cmd/mcload's engine), 10,000 keys set once, Zipf 0.99 GETs for %s", dur)
	addr := netip.AddrPortFrom(m.Addr, m.Port)
	lcfg := loadgen.Config{Keys: 10000, KeySize: 16, ValueSize: 32, Zipf: 0.99, Sockets: 2, Window: 32, Duration: dur, Seed: 1,
		DialUDP: func() (*net.UDPConn, error) { return lab.Client.DialUDP(addr) },
		DialTCP: func() (net.Conn, error) { return lab.Client.DialTCP(addr, 2*time.Second) }}
	if err := loadgen.Populate(lcfg); err != nil {
		return err
	}
	time.Sleep(s.WriteHold + 100*time.Millisecond) // fills of just-written keys are held (docs/consistency.md)
	readStatus := func() (*deploy.Status, error) {
		var st *deploy.Status
		err := lab.Server.Do(func() error {
			var err error
			st, err = deploy.ReadStatus(pinRoot, lab.Server.Iface)
			return err
		})
		return st, err
	}
	st0, err := readStatus()
	if err != nil {
		return err
	}
	rep, err := loadgen.Run(ctx, lcfg)
	if err != nil {
		return err
	}
	st1, err := readStatus()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  %s\n", rep)
	if gets := st1.Stats.Get(bpf.StatGetReqs) - st0.Stats.Get(bpf.StatGetReqs); gets > 0 {
		fmt.Fprintf(w, "  answered in the kernel during this load: %.1f%% of %d GETs\n",
			100*float64(st1.Stats.Get(bpf.StatHits)-st0.Stats.Get(bpf.StatHits))/float64(gets), gets)
	}
	after, err = memcachedStats(lab, m)
	if err != nil {
		return err
	}

	say("xdpcache status")
	st, err := readStatus()
	if err != nil {
		return err
	}
	printStatus(w, st)

	say("side by side (both loads)")
	gets := st.Stats.Get(bpf.StatGetReqs)
	mcGets := atou(after["cmd_get"]) - atou(before["cmd_get"])
	fmt.Fprintf(w, "  GET requests seen by xdpcache:        %d\n", gets)
	fmt.Fprintf(w, "  answered in the kernel (XDP_TX):      %d (%.1f%%)\n", st.Stats.Get(bpf.StatHits), 100*st.HitRatio)
	fmt.Fprintf(w, "  GETs that reached memcached:          %d (memcached cmd_get)\n", mcGets)
	fmt.Fprintf(w, "  SETs memcached applied:               %d (each invalidated its key first: %d invalidations)\n",
		atou(after["cmd_set"])-atou(before["cmd_set"]), st.Stats.Get(bpf.StatInvalidations))
	if st.Stats.Get(bpf.StatHits) == 0 {
		return errors.New("no GET was answered from the kernel")
	}
	return nil
}

func atou(s string) uint64 {
	var n uint64
	fmt.Sscan(s, &n)
	return n
}

func memcachedStats(lab *netlab.Lab, m *netlab.Memcached) (map[string]string, error) {
	c, err := lab.Client.DialTCP(netip.AddrPortFrom(m.Addr, m.Port), 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect to memcached: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprint(c, "stats\r\n")
	out := map[string]string{}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "END" {
			return out, nil
		}
		if f := strings.Fields(l); len(f) == 3 {
			out[f[1]] = f[2]
		}
	}
	return nil, fmt.Errorf("memcached stats: %v", sc.Err())
}

func runMemcaslap(ctx context.Context, lab *netlab.Lab, m *netlab.Memcached, dur time.Duration) (string, error) {
	dir, err := os.MkdirTemp("", "xdpcache-demo")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "memcaslap.cnf")
	if err := os.WriteFile(cfg, []byte("key\n16 16 1\nvalue\n32 32 1\ncmd\n0 0.01\n1 0.99\n"), 0o644); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	out, err := lab.Client.Command(ctx, "memcaslap", "-s", fmt.Sprintf("%s:%d", m.Addr, m.Port), "-U",
		"-t", fmt.Sprintf("%ds", int(dur.Seconds()+0.5)), "-c", "8", "-T", "1", "-v", "0.1", "-F", cfg, "-w", "1k").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("memcaslap: %v\n%s", err, out)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		for _, p := range []string{"cmd_get", "cmd_set", "verify_failed", "packet_drop", "udp_timeout", "Run time"} {
			if strings.HasPrefix(l, p) {
				keep = append(keep, "  "+l)
			}
		}
	}
	return strings.Join(keep, "\n") + "\n", nil
}
