package deploy

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/xdpcache/xdpcache/bpf"
	caslap "github.com/xdpcache/xdpcache/internal/memcaslap"
	"github.com/xdpcache/xdpcache/offload/mode"
)

// TestMemcaslapOrdinaryMix runs memcaslap's ordinary mix over UDP (10% sets,
// every GET verified) through xdpcache with default settings: memcaslap
// finds no value other than the one it wrote last. How many GETs the kernel
// answers is a measurement (logged; `make bench` and docs/performance.md),
// not asserted beyond some: the sets are acknowledged, so rule A, not the
// write hold, keeps them fresh and their keys cacheable.
func TestMemcaslapOrdinaryMix(t *testing.T) {
	if _, err := exec.LookPath("memcaslap"); err != nil {
		t.Skip("memcaslap not installed (libmemcached-tools)")
	}
	for _, want := range []mode.Mode{mode.Native, mode.Generic} {
		t.Run(string(want), func(t *testing.T) {
			lab, m := newLab(t)
			attachPass(t, lab.Client)
			root := testPinRoot(t)
			if _, err := deployIn(t, lab.Server, Options{Iface: lab.Server.Iface, Mode: want, Settings: bpf.DefaultSettings(), PinRoot: root}); err != nil {
				t.Fatalf("deploy: %v", err)
			}
			defer lab.Server.Do(func() error { return Undeploy(lab.Server.Iface, root) })
			r, err := caslap.Ordinary().Run(t.Context(), lab.Client.Command, fmt.Sprintf("%s:%d", m.Addr, m.Port), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			st := statusIn(t, lab.Server, root).Stats
			gets, hits := st.Get(bpf.StatGetReqs), st.Get(bpf.StatHits)
			t.Logf("%s: memcaslap %d gets, %d sets, %d verify failures, %d verify misses, %d dropped, %d timeouts; "+
				"XDP answered %d of %d GETs (%.1f%%); fills %d, held %d, stale %d; mutations logged for their "+
				"acknowledgement %d, held %d", want, r.Gets, r.Sets, r.VerifyFailed, r.VerifyMisses, r.PacketDrop,
				r.UDPTimeouts, hits, gets, 100*float64(hits)/float64(max(gets, 1)), st.Get(bpf.StatFills),
				st.Get(bpf.StatFillHeld), st.Get(bpf.StatFillStale), st.Get(bpf.StatAckExact), st.Get(bpf.StatAckHeld))
			if r.VerifyFailed != 0 {
				t.Errorf("memcaslap: %d GETs returned another value than the one it wrote last", r.VerifyFailed)
			}
			if r.Gets == 0 || r.Sets == 0 {
				t.Fatalf("memcaslap ran no gets or sets:\n%s", r.Output)
			}
			if hits == 0 {
				t.Errorf("no GET was answered from the cache: the run proves nothing about it")
			}
		})
	}
}
