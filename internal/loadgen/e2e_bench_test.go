package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/internal/replytap"
	"github.com/xdpcache/xdpcache/offload/deploy"
	"github.com/xdpcache/xdpcache/offload/mode"
)

// endToEndResult is one row of the end-to-end comparison.
type endToEndResult struct {
	Workload     string  `json:"workload"`
	Config       string  `json:"config"`
	Source       string  `json:"request_source"` // the socket client, or the XDP request generator (live frames)
	Client       string  `json:"client_receives_via"`
	Zipf         float64 `json:"zipf"`
	Keys         int     `json:"keys"`
	Buckets      uint32  `json:"cache_buckets"`
	Rate         float64 `json:"offered_rate,omitempty"` // fixed-rate (latency) rows: requests/s offered
	Report       Report  `json:"report"`
	XDPHitRatio  float64 `json:"xdp_hit_ratio"` // over the measured window only
	MemcachedCPU float64 `json:"memcached_cpu_ns_per_reply"`
	BPFCPU       float64 `json:"bpf_cpu_ns_per_reply"` // time inside the XDP and TC programs
	ServerCPU    float64 `json:"server_cpu_ns_per_reply"`
	MachineCPU   float64 `json:"machine_cpu_ns_per_reply"`
}

// workload is a key population and a cache size.
type workload struct {
	name    string
	keys    int
	zipf    float64
	buckets uint32
}

// BenchmarkEndToEnd compares, in one run and on one veth pair, plain
// memcached with memcached behind xdpcache in native and in generic mode:
// throughput for several hit ratios, from two request sources (the socket
// client with as many requests in flight as it keeps, and the XDP request
// generator, internal/xdpgen, as fast as the kernel makes frames), then
// latency at one fixed request rate that plain memcached sustains, from the
// socket client. It prints the tables with ratios to plain memcached's best
// row (from either source) and writes results/end-to-end.json and
// results/end-to-end.png. XDPCACHE_BENCH_ONLY=<text> keeps the workloads
// whose name holds text.
func BenchmarkEndToEnd(b *testing.B) {
	dur := 5 * time.Second
	if s := os.Getenv("XDPCACHE_BENCH_SECONDS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			dur = time.Duration(n) * time.Second
		}
	}
	// One veth queue per CPU, as a multi-queue NIC with RSS has: each CPU
	// receives what it sends (netlab.Options.Queues), and the request
	// generator runs one thread per CPU. memcached keeps one worker thread.
	cpus := runtime.NumCPU()
	lab, m := labtest.StartQueues(b, cpus, "-t", "1")
	addr := netip.AddrPortFrom(m.Addr, m.Port)
	base := Config{Keys: 100000, KeySize: 16, ValueSize: 32, Sockets: 4, Window: 64, Duration: dur, Seed: 7,
		DialUDP: func() (*net.UDPConn, error) { return lab.Client.DialUDP(addr) },
		DialTCP: func() (net.Conn, error) { return lab.Client.DialTCP(addr, 2*time.Second) }}
	// Two ways for the client to receive. Through its sockets: veth needs an
	// XDP program on the client's end to deliver frames sent back with
	// XDP_TX, so that end gets an XDP_PASS one. Through the reply tap: an XDP
	// program on the client's end records each reply on a ring buffer and
	// drops it, so the client's receive stack (skb, IP, UDP, socket queue,
	// recvmmsg) does not eat the two cores the server shares with it.
	tap, err := replytap.Load(m.Port)
	if err != nil {
		b.Fatal(err)
	}
	defer tap.Close()
	receiveVia := func(client string) *replytap.Tap {
		if client == viaTap {
			if err := lab.Client.AttachXDP(tap.Program()); err != nil {
				b.Fatal(err)
			}
			return tap
		}
		if err := lab.Client.AttachXDPPass(); err != nil {
			b.Fatal(err)
		}
		return nil
	}
	receiveVia(viaSockets)
	if err := Populate(base); err != nil { // every workload's keys are among these
		b.Fatal(err)
	}
	gen := newFrameSource(b, lab, m, base.Sockets)
	// Kernel statistics of BPF programs' run time (kernel.bpf_stats_enabled)
	// while the benchmark runs: the cache's own CPU cost.
	if st, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME); err == nil {
		defer st.Close()
	}
	root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-bench-%d", os.Getpid()))
	defer os.RemoveAll(root)
	run := func(w workload, config, source, client string, rate float64) endToEndResult {
		cfg := base
		cfg.Keys, cfg.Zipf, cfg.Rate = w.keys, w.zipf, rate
		cfg.Tap = receiveVia(client)
		if source == fromFrames || source == fromFrames1 {
			threads := cpus
			if source == fromFrames1 {
				threads = 1
			}
			cfg.Frames = gen.forWorkload(b, cfg, threads)
			defer gen.release()
		}
		row := endToEndResult{Workload: w.name, Config: config, Source: source, Client: client, Zipf: w.zipf, Keys: w.keys, Buckets: w.buckets, Rate: rate}
		var meter *cacheMeter
		if config != alone {
			s := bpf.DefaultSettings()
			s.Entries = w.buckets
			if err := lab.Server.Do(func() error {
				_, err := deploy.Deploy(deploy.Options{Iface: lab.Server.Iface, Mode: mode.Mode(config), Settings: s, PinRoot: root})
				return err
			}); err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := lab.Server.Do(func() error { return deploy.Undeploy(lab.Server.Iface, root) }); err != nil {
					b.Fatal(err)
				}
			}()
			// Warm the cache, as a long-running deployment would be: the
			// first GET of every key misses.
			warm := cfg
			warm.Duration, warm.Rate = dur/2, 0
			if _, err := Run(context.Background(), warm); err != nil {
				b.Fatal(err)
			}
			meter = &cacheMeter{lab: lab, root: root}
		}
		mc0, _ := procCPU(m.Pid())
		sys0 := machineBusy()
		c0 := meter.read(b)
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		mc1, _ := procCPU(m.Pid())
		sys1 := machineBusy()
		c1 := meter.read(b)
		row.Report = rep
		if rep.Replies > 0 {
			n := float64(rep.Replies)
			row.MemcachedCPU = float64(mc1-mc0) / n
			row.BPFCPU = float64(c1.bpfTime-c0.bpfTime) / n
			row.ServerCPU = row.MemcachedCPU + row.BPFCPU
			row.MachineCPU = float64(sys1-sys0) / n
		}
		if gets := c1.gets - c0.gets; gets > 0 {
			row.XDPHitRatio = float64(c1.hits-c0.hits) / float64(gets)
		}
		return row
	}
	// Throughput from the socket client: plain memcached with both client
	// receive paths, the better of the two being the baseline (the tap makes
	// memcached's own thread pay for ring buffer wake-ups); xdpcache with
	// the tap. From the request generator (when the kernel runs live
	// frames): all three with the tap.
	throughput := []struct{ mode, source, client string }{
		{alone, fromSockets, viaSockets}, {alone, fromSockets, viaTap}, {"native", fromSockets, viaTap}, {"generic", fromSockets, viaTap},
	}
	if gen.err == nil {
		throughput = append(throughput, []struct{ mode, source, client string }{
			{alone, fromFrames1, viaTap}, {alone, fromFrames, viaTap},
			{"native", fromFrames, viaTap}, {"generic", fromFrames, viaTap}}...)
	} else {
		fmt.Printf("request generator: not used, throughput from the socket client only: %v\n", gen.err)
	}
	workloads := []workload{
		{"zipf 0.99, 100k keys, 2^18 buckets", 100000, 0.99, 1 << 18},
		{"zipf 0.99, 100k keys, 2^17 buckets", 100000, 0.99, 1 << 17},
		{"zipf 0.99, 100k keys, 2^14 buckets", 100000, 0.99, 1 << 14},
		{"zipf 0.90, 100k keys, 2^18 buckets", 100000, 0.90, 1 << 18},
		{"zipf 0.99, 1k keys (all cached)", 1000, 0.99, 1 << 18},
	}
	if only := os.Getenv("XDPCACHE_BENCH_ONLY"); only != "" {
		workloads = slices.DeleteFunc(workloads, func(w workload) bool { return !strings.Contains(w.name, only) })
		if len(workloads) == 0 {
			b.Fatalf("XDPCACHE_BENCH_ONLY=%q matches no workload", only)
		}
	}
	// XDPCACHE_BENCH_ROWS=<text> keeps the throughput rows whose
	// "config/source" holds text (e.g. "native/xdp-gen", to profile one row).
	if only := os.Getenv("XDPCACHE_BENCH_ROWS"); only != "" {
		throughput = slices.DeleteFunc(throughput, func(c struct{ mode, source, client string }) bool {
			return !strings.Contains(c.mode+"/"+c.source, only)
		})
		if len(throughput) == 0 {
			b.Fatalf("XDPCACHE_BENCH_ROWS=%q matches no row", only)
		}
	}
	var rows []endToEndResult
	for _, w := range workloads {
		for _, c := range throughput {
			rows = append(rows, run(w, c.mode, c.source, c.client, 0))
		}
	}
	// Latency at the same offered load for all three, receiving through the
	// sockets as a real client does (the tap's ring buffer wakes the client
	// through an inter-processor interrupt per reply at low rates, which
	// costs memcached more than a socket wake-up): half of what plain
	// memcached managed on the first workload, so none of them saturates.
	rate := math.Round(baseline(rows, rows[0]).Report.PerSecond/2/1000) * 1000
	var latency []endToEndResult
	if rate > 0 {
		for _, config := range []string{alone, "native", "generic"} {
			latency = append(latency, run(workloads[0], config, fromSockets, viaSockets, rate))
		}
	}
	printTable(rows, base.Sockets, base.Window)
	printLatency(latency)
	if err := os.MkdirAll("../../results", 0o755); err != nil {
		b.Fatal(err)
	}
	j, err := json.MarshalIndent(struct {
		Throughput []endToEndResult `json:"throughput"`
		Latency    []endToEndResult `json:"latency_at_fixed_rate"`
	}{rows, latency}, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile("../../results/end-to-end.json", j, 0o644); err != nil {
		b.Fatal(err)
	}
	var chart []ChartRow
	for _, r := range rows {
		if r.Config == alone && r != baseline(rows, r) {
			continue // one plain memcached bar per workload: its best
		}
		chart = append(chart, ChartRow{Config: r.Config, Series: r.Workload + ", " + r.Source, PerSec: r.Report.PerSecond})
	}
	for _, r := range latency {
		chart = append(chart, ChartRow{Config: r.Config, Series: fmt.Sprintf("%s, %.0f req/s", r.Workload, r.Rate),
			P99ms: float64(r.Report.P99.Microseconds()) / 1000})
	}
	if err := WriteChart("../../results/end-to-end.png", chart); err != nil {
		b.Fatal(err)
	}
	fmt.Println("results: results/end-to-end.json, results/end-to-end.png")
}

// cacheMeter reads a deployment's counters; a nil meter reads zeros.
type cacheMeter struct {
	lab  *netlab.Lab
	root string
}

type cacheCounters struct {
	bpfTime    time.Duration // inside the XDP and TC programs
	gets, hits uint64
}

func (cm *cacheMeter) read(b *testing.B) cacheCounters {
	var c cacheCounters
	if cm == nil {
		return c
	}
	pinned, err := bpf.LoadPinned(filepath.Join(cm.root, cm.lab.Server.Iface))
	if err != nil {
		b.Fatal(err)
	}
	defer pinned.Close()
	for _, p := range []*ebpf.Program{pinned.XDP, pinned.TC} {
		if s, err := p.Stats(); err == nil {
			c.bpfTime += s.Runtime
		}
	}
	st, err := pinned.Stats()
	if err != nil {
		b.Fatal(err)
	}
	c.gets, c.hits = st.Get(bpf.StatGetReqs), st.Get(bpf.StatHits)
	return c
}

const (
	alone       = "memcached alone"
	viaSockets  = "sockets"
	viaTap      = "reply tap"
	fromSockets = "sockets"
	fromFrames  = "xdp-gen"   // one sending thread per CPU (and veth queue)
	fromFrames1 = "xdp-gen/1" // one sending thread: plain memcached's best generator row (more starve its thread)
)

// bestAlone is the best of plain memcached's rows for of's workload by
// better, whatever their request source (the zero row if there is none):
// plain memcached serves fewer requests and spends more CPU per reply when
// the generator floods its socket buffer than the socket client does, and
// the comparison takes its better showing.
func bestAlone(rows []endToEndResult, of endToEndResult, better func(a, b endToEndResult) bool) endToEndResult {
	var best endToEndResult
	found := false
	for _, r := range rows {
		if r.Workload == of.Workload && r.Config == alone && (!found || better(r, best)) {
			best, found = r, true
		}
	}
	return best
}

// baseline is plain memcached's fastest row for of's workload.
func baseline(rows []endToEndResult, of endToEndResult) endToEndResult {
	return bestAlone(rows, of, func(a, b endToEndResult) bool { return a.Report.PerSecond > b.Report.PerSecond })
}

func printTable(rows []endToEndResult, sockets, window int) {
	fmt.Printf("\nThroughput. source sockets: %d UDP sockets x %d requests in flight, as fast as replies come back;\n", sockets, window)
	fmt.Println("source xdp-gen: the XDP request generator (live frames) as fast as the kernel makes frames, replies through the tap")
	fmt.Printf("%-36s %-16s %-8s %-9s %10s %8s %10s %10s %9s %9s %13s %10s %11s %12s\n", "workload", "config", "source", "client rx", "replies/s", "vs alone",
		"p50", "p99", "answered", "XDP hits", "memcached CPU", "BPF CPU", "server CPU", "machine CPU")
	for _, r := range rows {
		base := baseline(rows, r)
		ratio := "-"
		if base.Report.PerSecond > 0 {
			ratio = fmt.Sprintf("%.2fx", r.Report.PerSecond/base.Report.PerSecond)
		}
		p50, p99 := "-", "-"
		if r.Source == fromSockets {
			p50, p99 = r.Report.P50.Round(time.Microsecond).String(), r.Report.P99.Round(time.Microsecond).String()
		}
		answered := 0.0
		if r.Report.Requests > 0 {
			answered = 100 * float64(r.Report.Replies) / float64(r.Report.Requests)
		}
		fmt.Printf("%-36s %-16s %-8s %-9s %10.0f %8s %10s %10s %8.1f%% %8.1f%% %10.0f ns %7.0f ns %8.0f ns %9.0f ns\n", r.Workload, r.Config, r.Source, r.Client,
			r.Report.PerSecond, ratio, p50, p99, answered, 100*r.XDPHitRatio, r.MemcachedCPU, r.BPFCPU, r.ServerCPU, r.MachineCPU)
	}
	fmt.Println("vs alone: to plain memcached's best row, from either source. client rx: how the client receives replies (see docs/performance.md).")
	fmt.Println("answered: replies / requests sent (the generator offers more than a server takes; the rest is dropped before it).")
	fmt.Println("CPU columns, per reply: memcached = its user+system time; BPF = time inside xdpcache's programs (bpf_stats);")
	fmt.Println("server = memcached + BPF; machine = all busy CPU (client and both veth ends included).")
	fmt.Println("XDP hits: share of GETs answered by XDP during the measured window (after a warm-up).")
	fmt.Println("\nServer CPU per reply, plain memcached (its cheapest row, from either source) / xdpcache:")
	for _, r := range rows {
		if r.Config == alone || r.ServerCPU <= 0 {
			continue
		}
		cheapest := bestAlone(rows, r, func(a, b endToEndResult) bool { return a.ServerCPU < b.ServerCPU })
		fmt.Printf("%-36s %-16s %-8s %5.1fx at %.1f%% XDP hits\n", r.Workload, r.Config, r.Source, cheapest.ServerCPU/r.ServerCPU, 100*r.XDPHitRatio)
	}
}

func printLatency(rows []endToEndResult) {
	if len(rows) == 0 {
		return
	}
	fmt.Printf("\nLatency at a fixed rate of %.0f requests/s (%s), from when each request was due:\n", rows[0].Rate, rows[0].Workload)
	fmt.Printf("%-16s %10s %10s %10s %10s %9s %9s\n", "config", "replies/s", "p50", "p99", "p999", "XDP hits", "timeouts")
	for _, r := range rows {
		fmt.Printf("%-16s %10.0f %10s %10s %10s %8.1f%% %9d\n", r.Config, r.Report.PerSecond, r.Report.P50.Round(time.Microsecond),
			r.Report.P99.Round(time.Microsecond), r.Report.P999.Round(time.Microsecond), 100*r.XDPHitRatio, r.Report.Timeouts)
	}
}

// procCPU is a process's user+system CPU time in ns.
func procCPU(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return (ut + st) * int64(time.Second) / 100, nil
}

// machineBusy is the machine's busy CPU time in ns (/proc/stat, all CPUs).
func machineBusy() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return busy * int64(time.Second) / 100
}
