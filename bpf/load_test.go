package bpf

import (
	"testing"

	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
)

// requireRoot is labtest.RequireRoot for this package's tests.
func requireRoot(t testing.TB) {
	t.Helper()
	labtest.RequireRoot(t, "loads BPF programs")
}

func TestLoad(t *testing.T) {
	requireRoot(t)
	c, err := Load(DefaultSettings())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer c.Close()
}
