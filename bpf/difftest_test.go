package bpf

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/internal/difftest"
)

var (
	diffSeed   = flag.Uint64("diff.seed", 13, "differential harness: first seed (stream i uses seed+i)")
	diffCount  = flag.Int("diff.count", 300, "differential harness: streams to run")
	diffTime   = flag.Duration("diff.time", 0, "differential harness: run streams for this long instead of -diff.count streams")
	diffShrink = flag.Int("diff.shrink", 200, "differential harness: runs spent minimizing a failing stream")
	diffMaxErr = flag.Int("diff.maxfail", 3, "differential harness: stop after this many failing streams")
	diffStrict = flag.Bool("diff.strict", false, "differential harness: run regression cases marked as known failures as ordinary cases")
)

func requireDiff(t *testing.T) {
	t.Helper()
	requireRoot(t)
	memcachedBinary(t)
	if testing.Short() {
		t.Skip("differential harness: not in -short")
	}
}

// TestDiffRandom runs generated streams (seeded: -diff.seed replays them)
// against memcached and the XDP program; a failure prints the stream
// minimized, as a Go literal for diffRegressions.
func TestDiffRandom(t *testing.T) {
	requireDiff(t)
	start := time.Now()
	var total diffResult
	kinds := map[string]int{}
	streams, failed := 0, 0
	for i := 0; ; i++ {
		if *diffTime > 0 && time.Since(start) > *diffTime || *diffTime == 0 && i >= *diffCount {
			break
		}
		seed := *diffSeed + uint64(i)
		s := difftest.NewGen(seed).Stream()
		r := runDiff(t, s)
		streams++
		total.events += r.events
		total.needless += r.needless
		total.served += r.served
		total.changed += r.changed
		total.txInside += r.txInside
		total.notCached += r.notCached
		if r.flushed {
			total.flushed = true
			total.refilled++ // streams with a flush, counted here
		}
		if len(r.failures) == 0 {
			continue
		}
		failed++
		seen := map[string]bool{}
		for _, f := range r.failures {
			if k := diffKind(f); !seen[k] {
				seen[k] = true
				kinds[k]++
			}
		}
		small := difftest.Shrink(s, func(c difftest.Stream) bool { return len(runDiff(t, c).failures) > 0 }, *diffShrink)
		// the stream's own disagreements first: a timing-dependent one may
		// not come back when the shrunk stream runs again
		t.Errorf("seed %d (replay: go test ./bpf/ -run 'TestDiffRandom$' -diff.seed %d -diff.count 1): %d disagreements:\n  - %s\nthe frames of that run:\n    %s\nshrunk, run again:\n%s",
			seed, seed, len(r.failures), strings.Join(r.failures, "\n  - "), strings.Join(r.trace, "\n    "), diffReport(small, runDiff(t, small)))
		if failed >= *diffMaxErr {
			t.Logf("stopping after %d failing streams", failed)
			break
		}
	}
	t.Logf("%d streams (%d events) in %s, %d failing; availability: %d keys changed by memcached, %d still served after the stream, %d needlessly invalidated, %d streams flushed the cache, %d set-up keys not cached, %d stream GETs answered by XDP",
		streams, total.events, time.Since(start).Round(time.Millisecond), failed, total.changed, total.served, total.needless, total.refilled, total.notCached, total.txInside)
	if failed > 0 {
		t.Logf("failing streams by kind: %v", kinds)
	}
}

// diffKind sorts a disagreement for the run's summary.
func diffKind(f string) string {
	switch {
	case strings.Contains(f, "XDP answered"):
		return "wrong or stale answer"
	case strings.Contains(f, "after a refill: XDP may serve"):
		return "expiry record outlives memcached's TTL"
	case strings.Contains(f, "XDP may serve"):
		return "entry outlives memcached's TTL"
	case strings.Contains(f, "reply"):
		return "reply frame"
	}
	return "other"
}
