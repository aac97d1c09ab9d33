package bpf

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// bmcObjectEnv names, for development, an object built from BMC's kernel
// program (bmc/bmc_kern.c of Orange-OpenSource/bmc-cache, the NSDI'21
// system issue #16 measures us against). Set, BenchmarkReport measures it
// on the same frames as our rows, in the same rounds, and prints our row
// over its row. This repository holds none of BMC's code and no recipe for
// building it: the object comes from outside.
const bmcObjectEnv = "XDPCACHE_BENCH_BMC"

// bmcPrefix starts the name of every BMC row.
const bmcPrefix = "BMC: "

// BMC's tail-call slots, as its bmc_common.h numbers them and its loader
// (bmc_user.c) fills them: the XDP entry program (section bmc_rx_filter)
// jumps through map_progs_xdp, the TC one (bmc_tx_filter) through
// map_progs_tc.
var (
	bmcXDPSlots = map[string]uint32{
		"bmc_hash_keys":        0,
		"bmc_prepare_packet":   1,
		"bmc_write_reply":      2,
		"bmc_invalidate_cache": 3,
	}
	bmcTCSlots = map[string]uint32{
		"bmc_update_cache": 0,
	}
)

// bmcCache is BMC's programs, loaded and wired as its loader does.
type bmcCache struct {
	coll *ebpf.Collection
	rx   *ebpf.Program // XDP entry: answers UDP GETs, sees TCP SETs
	tx   *ebpf.Program // TC egress entry: fills from memcached's replies
}

func (c *bmcCache) Close() { c.coll.Close() }

// loadBMC loads the object at path. Its sections have BMC's own names, not
// the ones loaders infer a type from, so each program gets its type here as
// bmc_user.c sets it: the two bmc_tx_filter/bmc_update_cache programs are
// TC classifiers, the rest XDP.
func loadBMC(path string) (*bmcCache, error) {
	spec, err := ebpf.LoadCollectionSpec(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	sections := map[string]string{} // section -> program name in spec
	for name, p := range spec.Programs {
		switch p.SectionName {
		case "bmc_tx_filter", "bmc_update_cache":
			p.Type = ebpf.SchedCLS
		default:
			p.Type = ebpf.XDP
		}
		sections[p.SectionName] = name
	}
	for _, sec := range []string{"bmc_rx_filter", "bmc_tx_filter", "bmc_hash_keys", "bmc_prepare_packet", "bmc_write_reply", "bmc_invalidate_cache", "bmc_update_cache"} {
		if _, ok := sections[sec]; !ok {
			return nil, fmt.Errorf("%s: no program in section %s: not BMC's bmc_kern.c?", path, sec)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{LogSizeStart: 1 << 20},
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, VerifierSummary(err))
	}
	wire := func(array string, slots map[string]uint32) error {
		m := coll.Maps[array]
		if m == nil {
			return fmt.Errorf("no map %s", array)
		}
		for sec, slot := range slots {
			if err := m.Put(slot, coll.Programs[sections[sec]]); err != nil {
				return fmt.Errorf("%s[%d] = %s: %w", array, slot, sec, err)
			}
		}
		return nil
	}
	if err := wire("map_progs_xdp", bmcXDPSlots); err != nil {
		coll.Close()
		return nil, err
	}
	if err := wire("map_progs_tc", bmcTCSlots); err != nil {
		coll.Close()
		return nil, err
	}
	return &bmcCache{coll: coll, rx: coll.Programs[sections["bmc_rx_filter"]], tx: coll.Programs[sections["bmc_tx_filter"]]}, nil
}

// bmcFromEnv loads the object bmcObjectEnv names; nil when it is unset.
func bmcFromEnv(tb testing.TB) *bmcCache {
	path := os.Getenv(bmcObjectEnv)
	if path == "" {
		return nil
	}
	requireRoot(tb)
	c, err := loadBMC(path)
	if err != nil {
		tb.Fatalf("BMC object (%s): %v", bmcObjectEnv, err)
	}
	tb.Cleanup(c.Close)
	return c
}

// fill sends memcached's GET reply for key through BMC's TC program, the
// way BMC fills its cache on a live system.
func (c *bmcCache) fill(tb testing.TB, f flow, key string, value []byte) {
	tb.Helper()
	pkt := f.udpToClient(tb, frame(1, append(asciiItem(key, 0, value, nil), "END\r\n"...)))
	ret, _, err := runProg(c.tx, pkt)
	if err != nil {
		tb.Fatalf("BMC fill %s: %v", key, err)
	}
	if ret != 0 { // TC_ACT_OK: BMC lets every reply go
		tb.Fatalf("BMC fill %s: TC verdict %d, want 0", key, ret)
	}
}

// bmcCheckReply checks that BMC answered req with want (the memcached
// payload after the frame header): BMC swaps MACs, addresses and ports,
// keeps the request's frame header, sets the IPv4 length and checksum and
// leaves the UDP checksum 0 (allowed over IPv4).
func bmcCheckReply(tb testing.TB, f flow, req []byte, ret uint32, out []byte, want []byte) {
	tb.Helper()
	if ret != xdpTX {
		tb.Fatalf("BMC verdict %d, want XDP_TX", ret)
	}
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		tb.Fatalf("BMC reply does not decode: %v", el.Error())
	}
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || ip == nil || udp == nil {
		tb.Fatalf("BMC reply is not Ethernet/IPv4/UDP: % x", out)
	}
	if eth.SrcMAC.String() != serverMAC.String() || eth.DstMAC.String() != clientMAC.String() {
		tb.Errorf("MACs not swapped: src %s dst %s", eth.SrcMAC, eth.DstMAC)
	}
	if !net.IP(ip.SrcIP).Equal(f.server.AsSlice()) || !net.IP(ip.DstIP).Equal(f.client.AsSlice()) {
		tb.Errorf("addresses not swapped: %s -> %s", ip.SrcIP, ip.DstIP)
	}
	if int(udp.SrcPort) != int(f.sport) || int(udp.DstPort) != int(f.cport) {
		tb.Errorf("ports not swapped: %d -> %d", udp.SrcPort, udp.DstPort)
	}
	if int(ip.Length) != len(out)-14 || int(udp.Length) != len(out)-14-20 {
		tb.Errorf("lengths: frame %d, IPv4 total %d, UDP %d", len(out), ip.Length, udp.Length)
	}
	if got := onesSum(ip.Contents); got != 0xffff {
		tb.Errorf("IPv4 header checksum wrong (sum %#x)", got)
	}
	if udp.Checksum != 0 {
		tb.Errorf("UDP checksum %#04x, BMC leaves 0", udp.Checksum)
	}
	reqHdr := req[14+20+8 : 14+20+8+8]
	if len(udp.Payload) < 8 || !bytes.Equal(udp.Payload[:8], reqHdr) {
		tb.Fatalf("frame header % x, want the request's % x", udp.Payload[:min(8, len(udp.Payload))], reqHdr)
	}
	if got := udp.Payload[8:]; !bytes.Equal(got, want) {
		tb.Errorf("BMC payload\n%q\nwant\n%q", got, want)
	}
}

// bmcRow is one of our GET rows as BMC sees it: the frame, and the
// memcached payload BMC must answer it with (nil: BMC must pass the frame on
// to memcached unchanged).
type bmcRow struct {
	name string
	pkt  []byte
	want []byte
}

// bmcRows fills BMC's cache with the keys and values of our GET rows,
// through its own TC program, and returns the rows' frames.
func bmcRows(tb testing.TB, c *bmcCache) []bmcRow {
	f := v4flow()
	key16 := "0123456789abcdef"
	v32 := bytes.Repeat([]byte("v"), 32)
	m32 := bytes.Repeat([]byte("m"), 32)
	multi := []string{"multi:0000000000", "multi:0000000001"}
	c.fill(tb, f, key16, v32)
	for _, k := range multi {
		c.fill(tb, f, k, m32)
	}
	return []bmcRow{
		{"GET hit, 16 B key, 32 B value", f.udpToServer(tb, frame(7, getLine("get", key16))),
			append(asciiItem(key16, 0, v32, nil), "END\r\n"...)},
		{"GET miss", f.udpToServer(tb, frame(7, getLine("get", "absent:01234567"))), nil},
		{"2-key multi-get, all hit", f.udpToServer(tb, frame(7, getLine("get", multi...))),
			append(append(asciiItem(multi[0], 0, m32, nil), asciiItem(multi[1], 0, m32, nil)...), "END\r\n"...)},
	}
}

// check runs r's frame through BMC's XDP program once and checks the answer.
func (c *bmcCache) check(tb testing.TB, r bmcRow) {
	tb.Helper()
	ret, out, err := runProg(c.rx, r.pkt)
	if err != nil {
		tb.Fatalf("%s: %v", r.name, err)
	}
	if r.want == nil {
		if ret != xdpPass || !bytes.Equal(out, r.pkt) {
			tb.Fatalf("%s: BMC verdict %d, frame changed %v; want XDP_PASS, unchanged", r.name, ret, !bytes.Equal(out, r.pkt))
		}
		return
	}
	bmcCheckReply(tb, v4flow(), r.pkt, ret, out, r.want)
}

// bmcCases are BMC's rows for BenchmarkReport, each checked once first; none
// when c is nil.
func bmcCases(tb testing.TB, c *bmcCache) []benchCase {
	if c == nil {
		return nil
	}
	prog := func(*harness) *ebpf.Program { return c.rx }
	var cases []benchCase
	for _, r := range bmcRows(tb, c) {
		c.check(tb, r)
		cases = append(cases, benchCase{bmcPrefix + r.name, prog, func(*harness) []byte { return r.pkt }, r.want != nil})
	}
	return cases
}

// bmcRatios returns, for each BMC row whose namesake of ours was measured,
// a line with the median over the rounds of our time over BMC's in the same
// round. ns holds each case's times in round order.
func bmcRatios(cases []benchCase, ns [][]float64) []string {
	idx := map[string]int{}
	for i, c := range cases {
		idx[c.name] = i
	}
	var lines []string
	for i, c := range cases {
		ours, ok := idx[strings.TrimPrefix(c.name, bmcPrefix)]
		if !strings.HasPrefix(c.name, bmcPrefix) || !ok {
			continue
		}
		var r []float64
		for k := range ns[i] {
			if ns[i][k] > 0 {
				r = append(r, ns[ours][k]/ns[i][k])
			}
		}
		if len(r) == 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("%-38s %10.2f", "x BMC: "+cases[ours].name, median(r)))
	}
	return lines
}

// TestBMCObjectAnswers checks that the object bmcObjectEnv names, loaded
// and filled as the benchmark does it, answers the benchmark's hit and
// 2-key frames from its cache (payload byte by byte) and passes the miss on
// untouched: BMC's rows time real answers.
func TestBMCObjectAnswers(t *testing.T) {
	if os.Getenv(bmcObjectEnv) == "" {
		t.Skipf("%s is unset: no BMC object to check", bmcObjectEnv)
	}
	c := bmcFromEnv(t)
	for _, r := range bmcRows(t, c) {
		t.Run(r.name, func(t *testing.T) { c.check(t, r) })
	}
}

// bmcRatios pairs each BMC row with our row of the same name and takes the
// median of the per-round ratios (not the ratio of the medians); rows
// without a partner, and rounds where BMC's time is 0, give nothing.
func TestBMCRatios(t *testing.T) {
	row := func(name string) benchCase { return benchCase{name: name} }
	for _, tc := range []struct {
		name  string
		cases []benchCase
		ns    [][]float64
		want  []string
	}{
		{"no BMC rows", []benchCase{row("GET miss")}, [][]float64{{10}}, nil},
		{"paired, median of per-round ratios",
			[]benchCase{row("GET miss"), row(bmcPrefix + "GET miss")},
			// per round 10/20, 30/10, 40/10: ratios 0.5, 3, 4 (ratio of medians would be 3)
			[][]float64{{10, 30, 40}, {20, 10, 10}},
			[]string{fmt.Sprintf("%-38s %10.2f", "x BMC: GET miss", 3.0)}},
		{"a round where BMC's time is 0 is left out",
			[]benchCase{row(bmcPrefix + "GET miss"), row("GET miss")},
			[][]float64{{0, 10}, {5, 20}},
			[]string{fmt.Sprintf("%-38s %10.2f", "x BMC: GET miss", 2.0)}},
		{"BMC row whose partner was filtered out", []benchCase{row(bmcPrefix + "GET miss")}, [][]float64{{10}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := bmcRatios(tc.cases, tc.ns)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
