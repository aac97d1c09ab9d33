package bpf

import "fmt"

// Stat names a counter of stats_map (enum stat_id in c/include/common/consts.h).
type Stat = xdpStatId

// Counters, named as in the C enum without the STAT_ prefix.
const (
	StatXDPPackets        = xdpStatIdSTAT_XDP_PACKETS
	StatMCPackets         = xdpStatIdSTAT_MC_PACKETS
	StatGetReqs           = xdpStatIdSTAT_GET_REQS
	StatHits              = xdpStatIdSTAT_HITS
	StatHitKeys           = xdpStatIdSTAT_HIT_KEYS
	StatMissAbsent        = xdpStatIdSTAT_MISS_ABSENT
	StatMissExpired       = xdpStatIdSTAT_MISS_EXPIRED
	StatMissNoCAS         = xdpStatIdSTAT_MISS_NO_CAS
	StatMissTooBig        = xdpStatIdSTAT_MISS_TOO_BIG
	StatPassNotAllowed    = xdpStatIdSTAT_PASS_NOT_ALLOWED
	StatPassNotLocal      = xdpStatIdSTAT_PASS_NOT_LOCAL
	StatPassAmplification = xdpStatIdSTAT_PASS_AMPLIFICATION
	StatPassMultiFrame    = xdpStatIdSTAT_PASS_MULTI_FRAME
	StatPassMalformed     = xdpStatIdSTAT_PASS_MALFORMED
	StatPassTooManyKeys   = xdpStatIdSTAT_PASS_TOO_MANY_KEYS
	StatPassOther         = xdpStatIdSTAT_PASS_OTHER
	StatInvalidations     = xdpStatIdSTAT_INVALIDATIONS
	StatFlushes           = xdpStatIdSTAT_FLUSHES
	StatFlushUnreadable   = xdpStatIdSTAT_FLUSH_UNREADABLE
	StatTCPSegments       = xdpStatIdSTAT_TCP_SEGMENTS
	StatFills             = xdpStatIdSTAT_FILLS
	StatFillStale         = xdpStatIdSTAT_FILL_STALE
	StatFillNoTicket      = xdpStatIdSTAT_FILL_NO_TICKET
	StatFillTooBig        = xdpStatIdSTAT_FILL_TOO_BIG
	StatFillMalformed     = xdpStatIdSTAT_FILL_MALFORMED
	StatTCPackets         = xdpStatIdSTAT_TC_PACKETS
	StatMissNoRoom        = xdpStatIdSTAT_MISS_NO_ROOM
	StatFillHeld          = xdpStatIdSTAT_FILL_HELD
	StatFillExpired       = xdpStatIdSTAT_FILL_EXPIRED
	StatFillBusy          = xdpStatIdSTAT_FILL_BUSY
	StatPassBadCsum       = xdpStatIdSTAT_PASS_BAD_CSUM
	StatAckInvalidations  = xdpStatIdSTAT_ACK_INVALIDATIONS
	StatAckFlushes        = xdpStatIdSTAT_ACK_FLUSHES
	StatFlowsNew          = xdpStatIdSTAT_FLOWS_NEW
	StatFlowsUnsynced     = xdpStatIdSTAT_FLOWS_UNSYNCED
	StatFlushUnsynced     = xdpStatIdSTAT_FLUSH_UNSYNCED
	StatFillAmbiguous     = xdpStatIdSTAT_FILL_AMBIGUOUS
	StatStreamUntracked   = xdpStatIdSTAT_STREAM_UNTRACKED
	StatStreamLost        = xdpStatIdSTAT_STREAM_LOST
	StatShadowHits        = xdpStatIdSTAT_SHADOW_HITS
	StatShadowHitKeys     = xdpStatIdSTAT_SHADOW_HIT_KEYS
	StatShadowMatched     = xdpStatIdSTAT_SHADOW_MATCHED
	StatShadowMismatchVal = xdpStatIdSTAT_SHADOW_MISMATCH_VALUE
	StatShadowMismatchFlg = xdpStatIdSTAT_SHADOW_MISMATCH_FLAGS
	StatShadowMismatchCAS = xdpStatIdSTAT_SHADOW_MISMATCH_CAS
	StatShadowMismatchAbs = xdpStatIdSTAT_SHADOW_MISMATCH_ABSENT
	StatAckExact          = xdpStatIdSTAT_ACK_EXACT
	StatAckHeld           = xdpStatIdSTAT_ACK_HELD
	StatFillSlotBusy      = xdpStatIdSTAT_FILL_SLOT_BUSY
	StatEvictions         = xdpStatIdSTAT_EVICTIONS
	StatHitWay1           = xdpStatIdSTAT_HIT_WAY1
	numStats              = int(xdpStatIdSTAT_MAX)
)

// NumStats is the number of counters this build has.
const NumStats = numStats

// Stats are the counters summed over CPUs, indexed by Stat.
type Stats []uint64

// Get returns one counter.
func (s Stats) Get(id Stat) uint64 {
	if int(id) >= len(s) {
		return 0
	}
	return s[id]
}

// Named returns the counters by their snake_case names (hits, miss_absent, ...).
func (s Stats) Named() map[string]uint64 {
	out := make(map[string]uint64, len(s))
	for i, v := range s {
		out[StatName(Stat(i))] = v
	}
	return out
}

// statNames follow enum stat_id; TestStatNamesMatchBTF keeps them in step.
var statNames = [...]string{
	"xdp_packets", "mc_packets", "get_reqs", "hits", "hit_keys",
	"miss_absent", "miss_expired", "miss_no_cas", "miss_too_big",
	"pass_not_allowed", "pass_not_local", "pass_amplification", "pass_multi_frame",
	"pass_malformed", "pass_too_many_keys", "pass_other",
	"invalidations", "flushes", "flush_unreadable", "tcp_segments",
	"fills", "fill_stale", "fill_no_ticket", "fill_too_big", "fill_malformed", "tc_packets", "miss_no_room",
	"fill_held", "fill_expired", "fill_busy", "pass_bad_csum", "ack_invalidations", "ack_flushes",
	"flows_new", "flows_unsynced", "flush_unsynced",
	"fill_ambiguous", "stream_untracked", "stream_lost",
	"shadow_hits", "shadow_hit_keys", "shadow_matched",
	"shadow_mismatch_value", "shadow_mismatch_flags", "shadow_mismatch_cas", "shadow_mismatch_absent",
	"ack_exact", "ack_held", "fill_slot_busy", "evictions", "hit_way1",
}

// StatName is the counter's name as status and metrics show it.
func StatName(id Stat) string {
	if int(id) < len(statNames) {
		return statNames[id]
	}
	return fmt.Sprintf("stat_%d", int(id))
}

// Stats reads every counter, summing the per-CPU values.
func (c *Cache) Stats() (Stats, error) {
	n := min(numStats, int(c.Maps.StatsMap.MaxEntries())) // an older deployment may have fewer
	out := make(Stats, numStats)
	var vals []uint64
	for i := range n {
		if err := c.Maps.StatsMap.Lookup(uint32(i), &vals); err != nil {
			return nil, fmt.Errorf("read counter %s: %w", StatName(Stat(i)), err)
		}
		for _, v := range vals {
			out[i] += v
		}
	}
	return out, nil
}

// Occupancy estimates the share of buckets holding a servable entry by
// reading up to samples buckets spread over the map (reading every bucket of a
// large cache would copy hundreds of megabytes).
func (c *Cache) Occupancy(samples int) (float64, error) {
	n := int(c.Maps.CacheMap.MaxEntries())
	if samples <= 0 || samples > n {
		samples = n
	}
	var g xdpGlobalState
	if err := c.Maps.GlobalMap.Lookup(uint32(0), &g); err != nil {
		return 0, fmt.Errorf("read global state: %w", err)
	}
	now, err := clockMonotonic()
	if err != nil {
		return 0, err
	}
	var it xdpItem
	used := 0
	for i := range samples {
		idx := uint32(i * n / samples)
		if err := c.Maps.CacheMap.Lookup(idx, &it); err != nil {
			return 0, fmt.Errorf("read bucket %d: %w", idx, err)
		}
		if it.Valid != 0 && it.Epoch == instEpochOf(&g, it.Inst) && it.ExpiresNs > uint64(now) {
			used++
		}
	}
	return float64(used) / float64(samples), nil
}

// instSlot is inst_slot (c/include/host/cache.h): the slot of instance
// inst's flush epoch in the global state.
func instSlot(inst uint32) uint32 { return (inst ^ inst>>16) & (instSlots - 1) }

// instSlots is INST_SLOTS (c/include/common/consts.h).
const instSlots = 64

// instEpochOf is inst_epoch_of: the epoch instance inst's entries are
// filled under (the global epoch plus the instance's own).
func instEpochOf(g *xdpGlobalState, inst uint32) uint64 {
	return g.Epoch + g.InstEpoch[instSlot(inst)]
}
