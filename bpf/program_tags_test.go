package bpf

import (
	"strings"
	"testing"
)

// ProgramTags covers both flavors, so a build that changes only the offload
// programs is an upgrade, not "nothing to do".
func TestProgramTagsCoverBothFlavors(t *testing.T) {
	tags, err := ProgramTags()
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tags, "/")
	if len(parts) != 4 {
		t.Fatalf("ProgramTags() = %q, want four tags (xdp, tc, offload xdp, relay tc)", tags)
	}
	for i, p := range parts {
		if len(p) != 16 {
			t.Errorf("tag %d is %q, want 16 hex digits", i, p)
		}
	}
}
