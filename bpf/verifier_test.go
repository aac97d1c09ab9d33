package bpf

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
)

// TestVerifierHeadroom reports how much of the verifier's budget the programs
// use and fails when they come close to it: older kernels and other
// compilers need margin.
func TestVerifierHeadroom(t *testing.T) {
	requireRoot(t)
	re := regexp.MustCompile(`processed (\d+) insns`)
	for name, load := range map[string]func() (*ebpf.CollectionSpec, error){"xdp": loadXdp, "tc": loadTc} {
		spec, err := load()
		if err != nil {
			t.Fatal(err)
		}
		spec.Maps["cache_map"].MaxEntries = 1024
		coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for pn, p := range coll.Programs {
			m := re.FindStringSubmatch(p.VerifierLog)
			if m == nil {
				t.Fatalf("%s: no statistics in the verifier log", pn)
			}
			n, _ := strconv.Atoi(m[1])
			t.Logf("%s: %d instructions processed of 1000000", pn, n)
			if n > 600000 {
				t.Errorf("%s: the verifier processed %d instructions; keep below 600000 for margin", pn, n)
			}
		}
		coll.Close()
	}
}
