package bpf

import (
	"fmt"
	"sort"
	"time"
)

// ShadowReason says how memcached's reply differed from the one the cache
// would have sent (SHADOW_* in c/include/common/consts.h).
type ShadowReason uint32

// The reasons, as the C side numbers them.
const (
	ShadowValue  ShadowReason = 1 // value bytes or length
	ShadowFlags  ShadowReason = 2 // client flags
	ShadowCAS    ShadowReason = 3 // CAS (gets, binary GETs)
	ShadowAbsent ShadowReason = 4 // memcached did not have the key
)

func (r ShadowReason) String() string {
	switch r {
	case ShadowValue:
		return "value differs"
	case ShadowFlags:
		return "flags differ"
	case ShadowCAS:
		return "cas differs"
	case ShadowAbsent:
		return "memcached missed"
	}
	return fmt.Sprintf("reason %d", uint32(r))
}

// MarshalText names the reason in JSON.
func (r ShadowReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// ShadowMismatch is one key whose reply from memcached differed from the
// would-be one.
type ShadowMismatch struct {
	KeyHash uint64       `json:"key_hash"` // KeyHash(key, the deployment's seed)
	Reason  ShadowReason `json:"reason"`
	At      time.Time    `json:"at"` // when TC saw memcached's reply
}

// ShadowSummary is what shadow mode found, from the counters.
type ShadowSummary struct {
	WouldAnswer     uint64  `json:"would_answer"`      // requests the cache would have answered
	WouldAnswerKeys uint64  `json:"would_answer_keys"` // their keys
	Matched         uint64  `json:"matched"`           // keys memcached answered the same way
	Mismatches      uint64  `json:"mismatches"`        // keys it answered differently
	WouldAnswerPct  float64 `json:"would_answer_pct"`  // of the GET requests seen
}

// Shadow sums up shadow mode's counters.
func (s Stats) Shadow() ShadowSummary {
	sum := ShadowSummary{
		WouldAnswer:     s.Get(StatShadowHits),
		WouldAnswerKeys: s.Get(StatShadowHitKeys),
		Matched:         s.Get(StatShadowMatched),
		Mismatches: s.Get(StatShadowMismatchVal) + s.Get(StatShadowMismatchFlg) +
			s.Get(StatShadowMismatchCAS) + s.Get(StatShadowMismatchAbs),
	}
	if g := s.Get(StatGetReqs); g > 0 {
		sum.WouldAnswerPct = 100 * float64(sum.WouldAnswer) / float64(g)
	}
	return sum
}

// String is the line status prints.
func (s ShadowSummary) String() string {
	return fmt.Sprintf("would answer %.1f%% in the kernel (%d requests, %d keys), %d matched, %d mismatches",
		s.WouldAnswerPct, s.WouldAnswer, s.WouldAnswerKeys, s.Matched, s.Mismatches)
}

// ShadowMismatches reads the last mismatches TC logged, newest first.
func (c *Cache) ShadowMismatches() ([]ShadowMismatch, error) {
	var l xdpShadowLog
	if err := c.Maps.ShadowLogMap.Lookup(uint32(0), &l); err != nil {
		return nil, fmt.Errorf("read the shadow mismatch log: %w", err)
	}
	mono, err := clockMonotonic()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	n := min(l.Next, uint64(len(l.E)))
	out := make([]ShadowMismatch, 0, n)
	for i := range n {
		e := l.E[(l.Next-1-i)%uint64(len(l.E))]
		if e.Reason == 0 {
			continue // a slot a racing CPU has not written yet
		}
		at := now.Add(-time.Duration(mono - int64(e.AtNs)))
		out = append(out, ShadowMismatch{KeyHash: e.Hash, Reason: ShadowReason(e.Reason), At: at.UTC().Truncate(time.Millisecond)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	return out, nil
}
