package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/offload"
	"golang.org/x/sys/unix"
)

// endToEndResult is one row of the end-to-end comparison.
type endToEndResult struct {
	Config       string  `json:"config"`
	Zipf         float64 `json:"zipf"`
	Report       Report  `json:"report"`
	XDPHitRatio  float64 `json:"xdp_hit_ratio"`
	MemcachedCPU float64 `json:"memcached_cpu_ns_per_reply"`
	BPFCPU       float64 `json:"bpf_cpu_ns_per_reply"` // time inside the XDP and TC programs
	ServerCPU    float64 `json:"server_cpu_ns_per_reply"`
	MachineCPU   float64 `json:"machine_cpu_ns_per_reply"`
}

// BenchmarkEndToEnd compares, in one run and on one veth pair, plain
// memcached with memcached behind xdpcache in native and in generic mode,
// for two key-popularity skews, and prints a table with ratios to plain.
// Results also go to results/end-to-end.json.
func BenchmarkEndToEnd(b *testing.B) {
	dur := 5 * time.Second
	if s := os.Getenv("XDPCACHE_BENCH_SECONDS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			dur = time.Duration(n) * time.Second
		}
	}
	lab, m := labtest.Start(b, "-t", "1")
	labtest.PassOnClient(b, lab)
	addr := netip.AddrPortFrom(m.Addr, m.Port)
	base := Config{Keys: 100000, KeySize: 16, ValueSize: 32, Sockets: 4, Window: 64, Duration: dur, Seed: 7,
		DialUDP: func() (*net.UDPConn, error) { return lab.Client.DialUDP(addr) },
		DialTCP: func() (net.Conn, error) { return lab.Client.DialTCP(addr, 2*time.Second) }}
	if err := Populate(base); err != nil {
		b.Fatal(err)
	}
	// Kernel statistics of BPF programs' run time (kernel.bpf_stats_enabled)
	// while the benchmark runs: the cache's own CPU cost.
	if st, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME); err == nil {
		defer st.Close()
	}
	root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-bench-%d", os.Getpid()))
	bpfTime := func() time.Duration {
		c, err := bpf.LoadPinned(filepath.Join(root, lab.Server.Iface))
		if err != nil {
			return 0
		}
		defer c.Close()
		var total time.Duration
		for _, p := range []*ebpf.Program{c.XDP, c.TC} {
			if s, err := p.Stats(); err == nil {
				total += s.Runtime
			}
		}
		return total
	}
	defer os.RemoveAll(root)
	var rows []endToEndResult
	for _, zipf := range []float64{0.99, 0.9} {
		for _, mode := range []string{"memcached alone", "native", "generic"} {
			cfg := base
			cfg.Zipf = zipf
			if mode != "memcached alone" {
				s := bpf.DefaultSettings()
				s.Entries = 1 << 17
				if err := lab.Server.Do(func() error {
					_, err := offload.Deploy(offload.DeployOptions{Iface: lab.Server.Iface, Mode: mode, Settings: s, PinRoot: root})
					return err
				}); err != nil {
					b.Fatal(err)
				}
				// warm the cache for a moment, as a long-running deployment would be
				warm := cfg
				warm.Duration = dur / 5
				if _, err := Run(context.Background(), warm); err != nil {
					b.Fatal(err)
				}
			}
			mc0, _ := procCPU(m.Pid())
			sys0, bpf0 := machineBusy(), bpfTime()
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			mc1, _ := procCPU(m.Pid())
			sys1, bpf1 := machineBusy(), bpfTime()
			row := endToEndResult{Config: mode, Zipf: zipf, Report: rep}
			if rep.Replies > 0 {
				n := float64(rep.Replies)
				row.MemcachedCPU = float64(mc1-mc0) / n
				row.BPFCPU = float64(bpf1-bpf0) / n
				row.ServerCPU = row.MemcachedCPU + row.BPFCPU
				row.MachineCPU = float64(sys1-sys0) / n
			}
			if mode != "memcached alone" {
				var st *offload.Status
				lab.Server.Do(func() error { st, err = offload.ReadStatus(root, lab.Server.Iface); return err })
				if err == nil && st.Stats.Get(bpf.StatGetReqs) > 0 {
					row.XDPHitRatio = st.HitRatio
				}
				if err := lab.Server.Do(func() error { return offload.Undeploy(lab.Server.Iface, root) }); err != nil {
					b.Fatal(err)
				}
			}
			rows = append(rows, row)
		}
	}
	printTable(rows)
	if err := os.MkdirAll("../../results", 0o755); err != nil {
		b.Fatal(err)
	}
	j, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile("../../results/end-to-end.json", j, 0o644); err != nil {
		b.Fatal(err)
	}
	var chart []ChartRow
	for _, r := range rows {
		chart = append(chart, ChartRow{Config: r.Config, Series: fmt.Sprintf("zipf %.2f", r.Zipf), PerSec: r.Report.PerSecond,
			P99ms: float64(r.Report.P99.Microseconds()) / 1000})
	}
	if err := WriteChart("../../results/end-to-end.png", chart); err != nil {
		b.Fatal(err)
	}
	fmt.Println("results: results/end-to-end.json, results/end-to-end.png")
}

func printTable(rows []endToEndResult) {
	fmt.Printf("\n%-16s %5s %12s %8s %10s %10s %9s %13s %10s %11s %12s\n", "config", "zipf", "replies/s", "vs alone", "p50", "p99", "XDP hits",
		"memcached CPU", "BPF CPU", "server CPU", "machine CPU")
	var alone float64
	for _, r := range rows {
		if r.Config == "memcached alone" {
			alone = r.Report.PerSecond
		}
		ratio := "1.00x"
		if r.Config != "memcached alone" && alone > 0 {
			ratio = fmt.Sprintf("%.2fx", r.Report.PerSecond/alone)
		}
		fmt.Printf("%-16s %5.2f %12.0f %8s %10s %10s %8.1f%% %10.0f ns %7.0f ns %8.0f ns %9.0f ns\n", r.Config, r.Zipf, r.Report.PerSecond, ratio,
			r.Report.P50.Round(time.Microsecond), r.Report.P99.Round(time.Microsecond), 100*r.XDPHitRatio, r.MemcachedCPU, r.BPFCPU, r.ServerCPU, r.MachineCPU)
	}
	fmt.Println("CPU columns, per reply: memcached = its user+system time; BPF = time inside xdpcache's programs (bpf_stats);")
	fmt.Println("server = memcached + BPF; machine = all busy CPU (client and both veth ends included).")
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
