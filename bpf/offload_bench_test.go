package bpf

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
)

// BenchmarkOffloadRelayFill measures what the relay does per fill (ticket
// check, generation and epoch reads, chunk and entry writes, the replaced
// item's chunks deleted) against host maps. On a SmartNIC every one of
// these map operations is a control message to the card instead of a
// syscall, so the relay's rate there is this count over the card's
// control-message latency; docs/offload.md has the arithmetic.
func BenchmarkOffloadRelayFill(b *testing.B) {
	for _, size := range []int{32, 300} {
		b.Run(fmt.Sprintf("value=%d", size), func(b *testing.B) {
			h := newOffHarness(b, nil)
			f := v4flow()
			val := make([]byte, size)
			payload := itemReply("key-0123456789ab", 0, val)
			hash := OffloadKeyHash([]byte("key-0123456789ab"), OffloadInstanceSeed(h.c.Seed, f.sport))
			rec := FillRecord{Addr: f.client.As16(), Port: htons(f.cport), MCPort: htons(f.sport), Payload: payload}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rec.ReqID = uint16(i)
				tk := OffloadTicketKey{Addr: rec.Addr, Port: rec.Port, ReqId: rec.ReqID, Hash: hash}
				if err := h.c.Maps.OticketMap.Update(&tk, &OffloadTicket{}, ebpf.UpdateAny); err != nil {
					b.Fatal(err)
				}
				if res, _, err := h.store.Fill(rec); err != nil || res != Filled {
					b.Fatalf("fill: %v %v", res, err)
				}
			}
			b.ReportMetric(float64(relayMapOps(len(payload))), "map-ops/fill")
		})
	}
}

// relayMapOps counts the map operations of one successful fill that
// replaces an item of the same size (see OffloadStore.Fill).
func relayMapOps(n int) int {
	const fixed = 7              // ticket lookup + delete, ttl, gen, epoch, old entry lookups; entry update
	return fixed + 2*chunksOf(n) // new chunks written, old chunks deleted
}
