package metrics

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/offload/deploy"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/record"
)

// statuses feeds fixed deployment statuses through the collector's own
// per-deployment code, as Collect does with the statuses it reads from the pins.
type statuses struct {
	c   *Collector
	sts []*deploy.Status
}

func (s statuses) Describe(ch chan<- *prometheus.Desc) { s.c.Describe(ch) }

func (s statuses) Collect(ch chan<- prometheus.Metric) {
	s.c.collectBuildInfo(ch)
	for _, st := range s.sts {
		s.c.collect(ch, st)
	}
}

// allStats is the number of counters this build knows.
const allStats = bpf.NumStats

// status is a deployment on iface whose counters are set; n is the length of
// its Stats (an older deployment may have fewer counters), 0 for all.
func status(iface string, n int, set map[bpf.Stat]uint64) *deploy.Status {
	if n == 0 {
		n = allStats
	}
	st := make(bpf.Stats, n)
	for id, v := range set {
		if int(id) < n {
			st[id] = v
		}
	}
	return &deploy.Status{
		Deployment: record.Deployment{Iface: iface, Mode: mode.Native, Settings: bpf.DefaultSettings()},
		Attached:   true,
		Stats:      st,
		Counters:   st.Named(),
	}
}

const mcHeader = `# HELP memcached_commands_total Requests answered by xdpcache in the kernel that memcached never saw, by command and status, as memcached_exporter counts them (add to memcached's own to get the total).
# TYPE memcached_commands_total counter
`

func mcLine(iface string, v uint64) string {
	return fmt.Sprintf("memcached_commands_total{command=\"get\",iface=%q,source=\"xdpcache\",status=\"hit\"} %d\n", iface, v)
}

func TestMemcachedCommands(t *testing.T) {
	for _, tc := range []struct {
		name string
		sts  []*deploy.Status
		want string // exposition of memcached_commands_total
	}{
		{
			name: "fresh deployment",
			sts:  []*deploy.Status{status("eth0", 0, nil)},
			want: mcLine("eth0", 0),
		},
		{
			name: "single-key GETs: the hits are memcached's get_hits it never saw",
			sts: []*deploy.Status{status("eth0", 0, map[bpf.Stat]uint64{
				bpf.StatGetReqs: 5, bpf.StatHits: 4, bpf.StatHitKeys: 4, bpf.StatMissAbsent: 1, bpf.StatFills: 1,
			})},
			want: mcLine("eth0", 4),
		},
		{
			name: "multi-key GETs count every key, as get_hits does",
			sts: []*deploy.Status{status("eth0", 0, map[bpf.Stat]uint64{
				bpf.StatGetReqs: 3, bpf.StatHits: 2, bpf.StatHitKeys: 7, bpf.StatMissExpired: 1,
			})},
			want: mcLine("eth0", 7),
		},
		{
			name: "misses, passes, mutations, flushes and fills stay memcached's to count",
			sts: []*deploy.Status{status("eth0", 0, map[bpf.Stat]uint64{
				bpf.StatGetReqs: 100, bpf.StatMissAbsent: 40, bpf.StatMissExpired: 5, bpf.StatMissNoCAS: 6,
				bpf.StatMissTooBig: 7, bpf.StatMissNoRoom: 8, bpf.StatPassNotAllowed: 9, bpf.StatPassOther: 10,
				bpf.StatPassTooManyKeys: 11, bpf.StatInvalidations: 12, bpf.StatAckInvalidations: 13,
				bpf.StatFlushes: 3, bpf.StatFlushUnreadable: 1, bpf.StatAckFlushes: 2, bpf.StatFills: 50,
				bpf.StatFillStale: 2, bpf.StatFillTooBig: 1,
			})},
			want: mcLine("eth0", 0),
		},
		{
			name: "one series per interface",
			sts: []*deploy.Status{
				status("eth0", 0, map[bpf.Stat]uint64{bpf.StatHits: 3, bpf.StatHitKeys: 3}),
				status("eth1", 0, map[bpf.Stat]uint64{bpf.StatHits: 2, bpf.StatHitKeys: 5}),
			},
			want: mcLine("eth0", 3) + mcLine("eth1", 5),
		},
		{
			name: "older deployment without hit_keys",
			sts:  []*deploy.Status{status("eth0", int(bpf.StatHitKeys), map[bpf.Stat]uint64{bpf.StatHits: 9})},
			want: mcLine("eth0", 0),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := statuses{New("", "test"), tc.sts}
			if err := testutil.CollectAndCompare(col, strings.NewReader(mcHeader+tc.want), "memcached_commands_total"); err != nil {
				t.Error(err)
			}
			if problems, err := testutil.CollectAndLint(col); err != nil || len(problems) > 0 {
				t.Errorf("lint: %v %v", err, problems)
			}
		})
	}
}

// TestMemcachedSeriesMeaning keeps the mapping to what memcached cannot have
// counted: the kernel's answers, never what it passed on or merely watched.
func TestMemcachedSeriesMeaning(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range MemcachedSeries {
		key := m.Command + "/" + m.Status
		if seen[key] {
			t.Errorf("%s mapped twice", key)
		}
		seen[key] = true
		if _, ok := memcachedExporterCommands[m.Command][m.Status]; !ok {
			t.Errorf("%s is not a memcached_commands_total series of memcached_exporter", key)
		}
		name := bpf.StatName(m.Stat)
		for _, p := range []string{"miss_", "pass_", "fill", "flush", "invalidations", "ack_"} {
			if strings.HasPrefix(name, p) {
				t.Errorf("%s from %s: memcached counts those itself", key, name)
			}
		}
		if m.Why == "" {
			t.Errorf("%s: no reason given", key)
		}
	}
}

// exposition is what a scrape of col returns in the text format.
func exposition(t *testing.T, col prometheus.Collector) []byte {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s %v\n%s", resp.Status, err, body)
	}
	return body
}

func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus; .ci/deps installs it)")
	}
	busy := map[bpf.Stat]uint64{}
	for i := range allStats {
		busy[bpf.Stat(i)] = uint64(1000 + i)
	}
	for _, tc := range []struct {
		name string
		sts  []*deploy.Status
	}{
		{"no deployment", nil},
		{"fresh deployment", []*deploy.Status{status("eth0", 0, nil)}},
		{"every counter set", []*deploy.Status{status("eth0", 0, busy)}},
		{"two interfaces", []*deploy.Status{status("eth0", 0, busy), status("ens1f0", 0, busy)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := exposition(t, statuses{New("", "test"), tc.sts})
			if len(tc.sts) > 0 && !bytes.Contains(body, []byte("memcached_commands_total{")) {
				t.Fatalf("no memcached_commands_total in\n%s", body)
			}
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = bytes.NewReader(body)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool check metrics: %v\n%s\non\n%s", err, out, body)
			}
		})
	}
}

// memcached_exporter's documented series (v0.16.0: metrics.md and
// pkg/exporter of github.com/prometheus/memcached_exporter), as far as a
// dashboard beside xdpcache's uses them: name → label names (besides the
// target's instance and job).
var memcachedExporterSeries = map[string][]string{
	"memcached_up":             nil,
	"memcached_commands_total": {"command", "status"},
}

// memcachedExporterCommands are the command/status pairs of its
// memcached_commands_total (from get_hits, get_misses, ..., cas_badval,
// cmd_flush and cmd_set).
var memcachedExporterCommands = map[string]map[string]struct{}{
	"get":    {"hit": {}, "miss": {}},
	"delete": {"hit": {}, "miss": {}},
	"incr":   {"hit": {}, "miss": {}},
	"decr":   {"hit": {}, "miss": {}},
	"cas":    {"hit": {}, "miss": {}, "badval": {}},
	"touch":  {"hit": {}, "miss": {}},
	"flush":  {"hit": {}},
	"set":    {"hit": {}},
}

// TestFleetDocMapping keeps docs/fleet.md's table in step: every counter is
// placed (by name or as miss_*, pass_*, fill_*), and every exported series
// is marked as such.
func TestFleetDocMapping(t *testing.T) {
	b, err := os.ReadFile("../../docs/fleet.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "memcached_exporter's series:\n")
	if !ok {
		t.Fatal("docs/fleet.md has no mapping table")
	}
	table, _, _ = strings.Cut(table, "\n\n**")
	var rows []string
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "| ") {
			rows = append(rows, line)
		}
	}
	first := func(row string) string { return strings.SplitN(row, "|", 3)[1] }
	for i := range allStats {
		name := bpf.StatName(bpf.Stat(i))
		found := false
		for _, row := range rows {
			cell := first(row)
			if strings.Contains(cell, "`"+name+"`") {
				found = true
			}
			if p, _, ok := strings.Cut(name, "_"); ok && strings.Contains(cell, "`"+p+"_*`") {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/fleet.md: counter %s is not in the mapping table (does memcached see what it counts?)", name)
		}
	}
	for _, m := range MemcachedSeries {
		want := fmt.Sprintf("**yes**, `{command=%q,status=%q}`", m.Command, m.Status)
		found := false
		for _, row := range rows {
			if strings.Contains(first(row), "`"+bpf.StatName(m.Stat)+"`") && strings.Contains(row, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/fleet.md: no row for %s with %s", bpf.StatName(m.Stat), want)
		}
	}
	if n := strings.Count(table, "**yes**"); n != len(MemcachedSeries) {
		t.Errorf("docs/fleet.md marks %d exported rows, the collector exports %d", n, len(MemcachedSeries))
	}
}
