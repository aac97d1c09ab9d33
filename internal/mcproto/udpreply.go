package mcproto

import (
	"bytes"
	"slices"
)

type datagram struct {
	frame   Frame
	payload []byte
}

// udpReply is what one exchange collected.
type udpReply struct {
	id       uint16
	payloads [][]byte // ordered
	complete bool     // false: the deadline passed first
}

func (r udpReply) data() []byte { return bytes.Join(r.payloads, nil) }

// allSeqs reports whether every seq announced by the largest Total has
// arrived. With Total <= 1 (including memcached 1.6's "0 of 1" on every
// datagram) only the protocol can tell completeness.
func allSeqs(got []datagram) bool {
	total := 0
	for _, d := range got {
		total = max(total, int(d.frame.Total))
	}
	if total <= 1 {
		return true
	}
	seen := make(map[uint16]bool, total)
	for _, d := range got {
		if int(d.frame.Seq) < total {
			seen[d.frame.Seq] = true
		}
	}
	return len(seen) == total
}

// orderPayloads sorts by seq, keeping arrival order among equal seqs.
func orderPayloads(got []datagram) [][]byte {
	sorted := slices.Clone(got)
	slices.SortStableFunc(sorted, func(a, b datagram) int { return int(a.frame.Seq) - int(b.frame.Seq) })
	out := make([][]byte, len(sorted))
	for i, d := range sorted {
		out[i] = d.payload
	}
	return out
}
