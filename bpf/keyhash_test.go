package bpf

import (
	"strings"
	"testing"
)

// TestKeyHashMatchesPrograms fills keys through the real programs and checks
// that each lands in the bucket KeyHash names, holding the hash KeyHash gives.
func TestKeyHashMatchesPrograms(t *testing.T) {
	h := newHarness(t, nil)
	s, _, err := h.c.Config()
	if err != nil {
		t.Fatal(err)
	}
	f := v4flow()
	for _, key := range []string{"k", "key:01", "exactly8", "nine-char", strings.Repeat("x", 33), strings.Repeat("long", 62)} {
		h.fillASCII(f, key, 0, []byte("v"), nil)
		var it xdpItem
		if err := h.c.Maps.CacheMap.Lookup(BucketOf([]byte(key), s.Seed, s.Entries), &it); err != nil {
			t.Fatal(err)
		}
		if it.Valid == 0 || it.Hash != KeyHash([]byte(key), s.Seed) || int(it.KeyLen) != len(key) {
			t.Errorf("%d-byte key: bucket %d holds valid=%d hash %#x len %d, want hash %#x",
				len(key), BucketOf([]byte(key), s.Seed, s.Entries), it.Valid, it.Hash, it.KeyLen, KeyHash([]byte(key), s.Seed))
		}
	}
}
