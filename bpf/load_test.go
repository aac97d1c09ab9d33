package bpf

import (
	"os"
	"testing"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs")
	}
}

func TestLoad(t *testing.T) {
	requireRoot(t)
	c, err := Load(DefaultSettings())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer c.Close()
}
