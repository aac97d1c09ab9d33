package bpf

import "testing"

func TestOffloadLoadsOnHost(t *testing.T) {
	requireRoot(t)
	s := DefaultSettings()
	s.Entries = 1024
	c, err := LoadOffload(s, OffloadOptions{})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	c.Close()
}
