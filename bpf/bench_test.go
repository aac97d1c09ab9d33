package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// benchCase is one packet shape pushed through a program.
type benchCase struct {
	name     string
	prog     func(*harness) *ebpf.Program
	pkt      func(*harness) []byte
	rewrites bool // the program turns the packet into a reply
}

// kernelNs is the kernel's mean time per run of prog on pkt. A program that
// leaves the packet alone runs n times in one BPF_PROG_TEST_RUN call. One
// that rewrites it (a hit becomes a reply) must see the original every time:
// it runs once per call, n calls, and the per-call cost of the test harness,
// measured the same way with a program that only returns, is subtracted.
func kernelNs(tb testing.TB, prog *ebpf.Program, pkt []byte, n int, rewrites bool, empty *ebpf.Program) float64 {
	if !rewrites {
		_, d, err := prog.Benchmark(pkt, n, nil)
		if err != nil {
			tb.Fatalf("test run: %v", err)
		}
		return float64(d.Nanoseconds())
	}
	once := func(p *ebpf.Program) float64 {
		var total time.Duration
		for range n {
			_, d, err := p.Benchmark(pkt, 1, nil)
			if err != nil {
				tb.Fatalf("test run: %v", err)
			}
			total += d
		}
		return float64(total.Nanoseconds()) / float64(n)
	}
	return max(once(prog)-once(empty), 0)
}

func emptyXDP(tb testing.TB) *ebpf.Program {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func benchCases(tb testing.TB) (*harness, []benchCase) {
	h := newHarness(tb, func(s *Settings) { s.MaxValue = MaxValueCap })
	f := v4flow()
	key16 := "0123456789abcdef"
	h.fillASCII(f, key16, 0, bytes.Repeat([]byte("v"), 32), nil)
	big := "big:0123456789ab"
	h.fillASCII(f, big, 0, bytes.Repeat([]byte("b"), 1024), nil)
	var keys []string
	for i := range 10 {
		k := fmt.Sprintf("multi:%010d", i)
		keys = append(keys, k)
		h.fillASCII(f, k, 0, bytes.Repeat([]byte("m"), 32), nil)
	}
	// binary GETK hit
	id := h.nextID()
	h.xdp(f.udpToServer(tb, frame(id, binReq(0x0c, "bin:0123456789ab", nil, nil, 9))))
	h.tc(f.udpToClient(tb, frame(id, binResp(0x0c, "bin:0123456789ab", 0, bytes.Repeat([]byte("x"), 32), 9, 1))))

	// the offload flavor, built for the host, on the same request
	oh := newOffHarness(tb, nil)
	oh.fill(f, key16, 0, bytes.Repeat([]byte("v"), 32))
	offXDP := func(*harness) *ebpf.Program { return oh.c.XDP }

	// the floor (c/bench_floor.c) answers the same GET hit with the least work
	floor := floorProgram(tb, bytes.Repeat([]byte("v"), 32), key16)
	floorXDP := func(*harness) *ebpf.Program { return floor }

	xdp := func(h *harness) *ebpf.Program { return h.c.XDP }
	tc := func(h *harness) *ebpf.Program { return h.c.TC }
	web := f
	web.sport = 80
	dns := f
	dns.sport = 53
	arp := func(*harness) []byte { return arpFrame() }
	fill := func(h *harness) []byte {
		return f.udpToClient(tb, frame(1, append(asciiItem("fill:0123456789", 0, bytes.Repeat([]byte("f"), 32), nil), "END\r\n"...)))
	}
	return h, []benchCase{
		{floorCase, floorXDP, func(*harness) []byte { return f.udpToServer(tb, frame(7, getLine("get", key16))) }, true},
		{"unrelated TCP to port 80", xdp, func(*harness) []byte { return web.tcpToServer(tb, 1, []byte("GET / HTTP/1.1\r\n\r\n")) }, false},
		{"unrelated UDP to port 53", xdp, func(*harness) []byte { return dns.udpToServer(tb, []byte("dns query")) }, false},
		{"unrelated ARP", xdp, arp, false},
		{"GET hit, 16 B key, 32 B value", xdp, func(*harness) []byte { return f.udpToServer(tb, frame(7, getLine("get", key16))) }, true},
		{"GET hit, offload flavor on the host", offXDP, func(*harness) []byte { return f.udpToServer(tb, frame(7, getLine("get", key16))) }, true},
		{"GET miss, offload flavor on the host", offXDP, func(*harness) []byte { return f.udpToServer(tb, frame(7, getLine("get", "absent:01234567"))) }, false},
		{"GET hit, 1 KiB value", xdp, func(*harness) []byte { return f.udpToServer(tb, frame(7, getLine("get", big))) }, true},
		{"GET miss", xdp, func(*harness) []byte { return f.udpToServer(tb, frame(7, getLine("get", "absent:01234567"))) }, false},
		{"2-key multi-get, all hit", xdp, func(*harness) []byte { return f.udpToServer(tb, frame(7, getLine("get", keys[:2]...))) }, true},
		{"10-key multi-get, all hit", xdp, func(*harness) []byte { return f.udpToServer(tb, frame(7, getLine("get", keys...))) }, true},
		{"binary GETK hit", xdp, func(*harness) []byte {
			return f.udpToServer(tb, frame(7, binReq(0x0c, "bin:0123456789ab", nil, nil, 1)))
		}, true},
		{"TCP SET invalidation", xdp, func(*harness) []byte {
			// SYN with data (TCP Fast Open): every run starts the
			// connection afresh and reads the command
			return f.tcpSyn(tb, 0, []byte("set other:0123456 0 0 32\r\n"+strings.Repeat("s", 32)+"\r\n"))
		}, false},
		{"TC egress fill (no ticket)", tc, fill, false},
	}
}

// BenchmarkDatapath reports kernel ns per packet for each case.
func BenchmarkDatapath(b *testing.B) {
	h, cases := benchCases(b)
	empty := emptyXDP(b)
	for _, c := range cases {
		b.Run(strings.ReplaceAll(c.name, " ", "_"), func(b *testing.B) {
			b.ReportMetric(kernelNs(b, c.prog(h), c.pkt(h), max(b.N, 1000), c.rewrites, empty), "kns/pkt")
		})
	}
}

// floorCase names the benchmark floor's row; every other row is also read
// as a multiple of it.
const floorCase = "floor: parse, hash, array, reply"

// benchRounds is how many interleaved rounds BenchmarkReport runs
// (XDPCACHE_BENCH_ROUNDS, default 9): the machine is shared and noisy, so
// every case is measured once per round, in a new random order each round,
// and the table shows medians.
func benchRounds() int {
	if n, err := strconv.Atoi(os.Getenv("XDPCACHE_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 9
}

// median of xs (sorted in place).
func median(xs []float64) float64 {
	sort.Float64s(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// BenchmarkReport prints one table: each case's kernel time per packet
// (median of the rounds, and its spread), the median of its ratio to the
// floor measured in the same round, and memcached's CPU time per UDP GET
// measured in the same run.
func BenchmarkReport(b *testing.B) {
	h, cases := benchCases(b)
	if cases[0].name != floorCase {
		b.Fatal("the floor must be the first case")
	}
	cases = append(cases, altCases(b, altCaches(b))...)
	cases = append(cases, bmcCases(b, bmcFromEnv(b))...)
	if only := os.Getenv("XDPCACHE_BENCH_ONLY"); only != "" {
		// development: the floor and the cases whose names contain one of
		// the comma-separated words
		keep := cases[:1]
		for _, c := range cases[1:] {
			for _, w := range strings.Split(only, ",") {
				if strings.Contains(c.name, w) {
					keep = append(keep, c)
					break
				}
			}
		}
		cases = keep
	}
	empty := emptyXDP(b)
	mcNs, mcErr := memcachedNsPerGet(b, 20000)
	runs := 200000 // per round: in one call, or one call each for replies / 10
	if n, err := strconv.Atoi(os.Getenv("XDPCACHE_BENCH_RUNS")); err == nil && n >= 10 {
		runs = n
	}
	rounds := benchRounds()
	ns := make([][]float64, len(cases))
	ratio := make([][]float64, len(cases))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for range rounds {
		round := make([]float64, len(cases))
		for _, i := range rng.Perm(len(cases)) {
			c := cases[i]
			n := runs
			if c.rewrites {
				n = runs / 10
			}
			round[i] = kernelNs(b, c.prog(h), c.pkt(h), n, c.rewrites, empty)
		}
		for i := range cases {
			ns[i] = append(ns[i], round[i])
			ratio[i] = append(ratio[i], round[i]/round[0])
		}
	}
	vsBMC := bmcRatios(cases, ns) // before median sorts ns
	fmt.Printf("\n%-38s %10s %15s %9s %16s\n", "case", "ns/packet", "range", "x floor", "vs memcached GET")
	for i, c := range cases {
		med := median(ns[i])
		vsMc := "n/a"
		if mcErr == nil {
			vsMc = fmt.Sprintf("1/%.0f", mcNs/med)
		}
		fmt.Printf("%-38s %10.1f %15s %9.2f %16s\n", c.name, med,
			fmt.Sprintf("%.0f-%.0f", ns[i][0], ns[i][len(ns[i])-1]), median(ratio[i]), vsMc)
	}
	for _, l := range vsBMC {
		fmt.Println(l)
	}
	_, d, err := empty.Benchmark(cases[0].pkt(h), runs, nil)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("%-38s %10.1f\n", "(an XDP program that only returns)", float64(d.Nanoseconds()))
	if mcErr != nil {
		fmt.Printf("memcached: %v\n", mcErr)
	} else {
		fmt.Printf("%-38s %10.1f %15s %9s %16s\n", "memcached CPU per UDP GET (loopback)", mcNs, "", "", "1")
	}
	fmt.Printf("ns/packet: the kernel's BPF_PROG_TEST_RUN time per run, median of %d interleaved rounds (replies: one run per call, harness cost subtracted)\n", rounds)
	fmt.Println("x floor: median over the rounds of the case's time over the floor's in the same round")
	if len(vsBMC) > 0 {
		fmt.Println("x BMC: median over the rounds of our row's time over BMC's row on the same frame in the same round")
	}
	fmt.Println("memcached: its user+system CPU over 20000 sequential UDP GETs on loopback (includes a wake-up per GET)")
}

// memcachedNsPerGet starts memcached on loopback, sends n sequential UDP
// GETs of a 32-byte value and returns memcached's CPU time per GET.
func memcachedNsPerGet(tb testing.TB, n int) (float64, error) {
	bin, err := exec.LookPath("memcached")
	if err != nil {
		return 0, fmt.Errorf("not installed")
	}
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-U", strconv.Itoa(port), "-p", strconv.Itoa(port), "-l", "127.0.0.1", "-u", "root", "-t", "1", "-m", "64")
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var tc net.Conn
	for i := 0; ; i++ {
		if tc, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			break
		}
		if i > 100 {
			return 0, err
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer tc.Close()
	fmt.Fprintf(tc, "set 0123456789abcdef 0 0 32\r\n%s\r\n", strings.Repeat("v", 32))
	buf := make([]byte, 2048)
	tc.Read(buf)
	uc, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return 0, err
	}
	defer uc.Close()
	req := make([]byte, 8, 64)
	binary.BigEndian.PutUint16(req[4:], 1)
	req = append(req, "get 0123456789abcdef\r\n"...)
	cpu0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	for i := range n {
		binary.BigEndian.PutUint16(req, uint16(i))
		uc.Write(req)
		uc.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := uc.Read(buf); err != nil {
			return 0, fmt.Errorf("GET %d: %w", i, err)
		}
	}
	cpu1, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	return float64(cpu1-cpu0) / float64(n), nil
}

// procCPU is a process's user+system time in ns (from /proc/PID/stat).
func procCPU(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return (ut + st) * int64(time.Second) / 100, nil // USER_HZ is 100 on Linux
}
