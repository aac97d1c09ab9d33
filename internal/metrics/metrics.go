// Package metrics exposes xdpcache's counters to Prometheus. The counters
// live in per-CPU BPF maps; they are read and summed on every scrape.
//
// Besides the xdpcache_* series it exports what the kernel answered under
// prometheus/memcached_exporter's names (see MemcachedSeries), so that
// memcached's own dashboards can add the requests memcached never saw.
package metrics

import (
	"runtime"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/offload/deploy"
	"github.com/xdpcache/xdpcache/offload/mode"
)

// Collector reads every deployment under a pin root on each scrape.
type Collector struct {
	pinRoot string
	version string

	gets, hits, fills, refused, invalidations, flushes, passes, packets *prometheus.Desc
	evictions, secondWayHits                                            *prometheus.Desc
	mode, entries, attached, hitRatio, buildInfo                        *prometheus.Desc
	mcCommands                                                          *prometheus.Desc
	shadow, shadowWould, shadowWouldKeys, shadowMatched, shadowMismatch *prometheus.Desc
}

// Source is the value of the constant "source" label on the series exported
// under memcached_exporter's names. memcached_exporter's own series carry no
// such label, so {source=""} selects memcached's share and
// {source="xdpcache"} the kernel's, and a sum over both counts every request
// once: xdpcache only exports what memcached did not see.
const Source = "xdpcache"

// MemcachedCommand is one memcached_commands_total{command,status} series of
// memcached_exporter that a counter of the kernel adds to.
type MemcachedCommand struct {
	Command, Status string
	Stat            bpf.Stat
	Why             string // why the meaning is the same
}

// MemcachedSeries are the kernel's counters that mean what a
// memcached_commands_total series of memcached_exporter means.
// memcached_exporter counts get_hits, memcached's per-key count (every key of
// get, gets, binary GET); the kernel answers a request only when every key
// hits, and such a request never reaches memcached, so each of its keys is one
// get_hits memcached did not count: hit_keys. Nothing else the kernel counts is
// missing from memcached's own counters: requests it passes (miss_*, pass_*)
// and mutations and flushes it sees (invalidations, flushes) all reach
// memcached, which counts them itself; fills are memcached's own replies.
var MemcachedSeries = []MemcachedCommand{
	{Command: "get", Status: "hit", Stat: bpf.StatHitKeys,
		Why: "keys answered in the kernel: memcached's get_hits never sees them"},
}

// New returns a collector for the deployments under pinRoot.
func New(pinRoot, version string) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("xdpcache_"+name, help, labels, nil)
	}
	return &Collector{
		pinRoot:         pinRoot,
		version:         version,
		gets:            d("gets_total", "GET requests seen by the XDP program, by result (hit: answered in the kernel).", "iface", "result"),
		hits:            d("hits_total", "Keys answered from the cache.", "iface"),
		fills:           d("fills_total", "Entries written from memcached's replies.", "iface"),
		refused:         d("fills_refused_total", "Replies not written to the cache, by reason.", "iface", "reason"),
		invalidations:   d("invalidations_total", "Keys invalidated by mutating commands.", "iface"),
		evictions:       d("evictions_total", "Fills that replaced another key's live entry (both ways of its set in use): keys a larger cache (--entries) would have kept.", "iface"),
		secondWayHits:   d("second_way_hits_total", "Keys found in their set's second way (the first held another key): conflicts the 2-way sets absorbed.", "iface"),
		flushes:         d("flushes_total", "Whole-cache flushes, by cause (command: flush_all and the like; unreadable: a mutation whose key could not be read).", "iface", "cause"),
		passes:          d("passes_total", "GET requests left to memcached, by reason.", "iface", "reason"),
		packets:         d("packets_total", "Packets seen by the programs.", "iface", "hook"),
		mode:            d("mode", "XDP mode of the deployment (1 for the mode in use).", "iface", "mode"),
		entries:         d("entries", "Estimated cache entries that can be served now (sampled).", "iface"),
		attached:        d("attached", "1 while xdpcache's XDP program is attached to the interface.", "iface"),
		hitRatio:        d("hit_ratio", "Share of GET requests answered in the kernel since deployment.", "iface"),
		buildInfo:       d("build_info", "Build information.", "version", "goversion"),
		shadow:          d("shadow", "1 while the deployment is in shadow mode (answers nothing, compares memcached's replies with what it would have answered).", "iface"),
		shadowWould:     d("shadow_would_answer_total", "Shadow mode: GET requests the kernel would have answered (memcached answered them).", "iface"),
		shadowWouldKeys: d("shadow_would_answer_keys_total", "Shadow mode: keys of those requests.", "iface"),
		shadowMatched:   d("shadow_matched_total", "Shadow mode: keys memcached answered as the kernel would have.", "iface"),
		shadowMismatch:  d("shadow_mismatches_total", "Shadow mode: keys memcached answered differently, by reason (value, flags, cas, absent: memcached missed).", "iface", "reason"),
		mcCommands: prometheus.NewDesc("memcached_commands_total",
			"Requests answered by xdpcache in the kernel that memcached never saw, by command and status, "+
				"as memcached_exporter counts them (add to memcached's own to get the total).",
			[]string{"iface", "command", "status"}, prometheus.Labels{"source": Source}),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.gets, c.hits, c.fills, c.refused, c.invalidations, c.flushes, c.evictions, c.secondWayHits,
		c.passes, c.packets, c.mode, c.entries, c.attached, c.hitRatio, c.buildInfo, c.mcCommands,
		c.shadow, c.shadowWould, c.shadowWouldKeys, c.shadowMatched, c.shadowMismatch} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.collectBuildInfo(ch)
	ifaces, _ := deploy.List(c.pinRoot)
	for _, iface := range ifaces {
		st, err := deploy.ReadStatus(c.pinRoot, iface)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.gets, err)
			continue
		}
		c.collect(ch, st)
	}
}

func (c *Collector) collectBuildInfo(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, c.version, runtime.Version())
}

// collect exports one deployment's series.
func (c *Collector) collect(ch chan<- prometheus.Metric, st *deploy.Status) {
	i := st.Iface
	s := st.Stats
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{i}, labels...)...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{i}, labels...)...)
	}
	hits, gets := s.Get(bpf.StatHits), s.Get(bpf.StatGetReqs)
	counter(c.gets, hits, "hit")
	counter(c.gets, gets-min(hits, gets), "miss")
	counter(c.hits, s.Get(bpf.StatHitKeys))
	counter(c.fills, s.Get(bpf.StatFills))
	counter(c.invalidations, s.Get(bpf.StatInvalidations))
	counter(c.evictions, s.Get(bpf.StatEvictions))
	counter(c.secondWayHits, s.Get(bpf.StatHitWay1))
	unreadable := s.Get(bpf.StatFlushUnreadable)
	counter(c.flushes, s.Get(bpf.StatFlushes)-min(unreadable, s.Get(bpf.StatFlushes)), "command")
	counter(c.flushes, unreadable, "unreadable")
	counter(c.packets, s.Get(bpf.StatXDPPackets), "xdp")
	counter(c.packets, s.Get(bpf.StatTCPackets), "tc")
	for _, m := range MemcachedSeries {
		counter(c.mcCommands, s.Get(m.Stat), m.Command, m.Status)
	}
	for id, v := range s {
		name := bpf.StatName(bpf.Stat(id))
		switch {
		case strings.HasPrefix(name, "fill_"):
			counter(c.refused, v, strings.TrimPrefix(name, "fill_"))
		case strings.HasPrefix(name, "miss_"), strings.HasPrefix(name, "pass_"):
			counter(c.passes, v, name)
		case strings.HasPrefix(name, "shadow_mismatch_"):
			counter(c.shadowMismatch, v, strings.TrimPrefix(name, "shadow_mismatch_"))
		}
	}
	for _, m := range mode.Attached() {
		v := 0.0
		if st.Mode == m {
			v = 1
		}
		gauge(c.mode, v, string(m))
	}
	gauge(c.entries, st.Occupancy*float64(st.Settings.Entries))
	att := 0.0
	if st.Attached {
		att = 1
	}
	gauge(c.attached, att)
	gauge(c.hitRatio, st.HitRatio)
	shadow := 0.0
	if st.Settings.Shadow {
		shadow = 1
	}
	gauge(c.shadow, shadow)
	counter(c.shadowWould, s.Get(bpf.StatShadowHits))
	counter(c.shadowWouldKeys, s.Get(bpf.StatShadowHitKeys))
	counter(c.shadowMatched, s.Get(bpf.StatShadowMatched))
}
