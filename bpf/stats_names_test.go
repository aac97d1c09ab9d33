package bpf

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// TestStatNamesMatchBTF keeps the Go names in step with enum stat_id.
func TestStatNamesMatchBTF(t *testing.T) {
	spec, err := loadXdp()
	if err != nil {
		t.Fatal(err)
	}
	var e *btf.Enum
	if err := spec.Types.TypeByName("stat_id", &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Values) != numStats+1 { // + STAT_MAX
		t.Fatalf("enum has %d values, Go knows %d counters", len(e.Values)-1, numStats)
	}
	for _, v := range e.Values {
		if v.Name == "STAT_MAX" {
			continue
		}
		if got, want := StatName(Stat(v.Value)), strings.ToLower(strings.TrimPrefix(v.Name, "STAT_")); got != want {
			t.Errorf("counter %d: Go name %q, C name %q", v.Value, got, want)
		}
	}
}
