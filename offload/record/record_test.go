package record

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNotDeployedIs(t *testing.T) {
	err := error(&NotDeployedError{Iface: "eth9"})
	for _, target := range []error{ErrNotDeployed, os.ErrNotExist} {
		if !errors.Is(err, target) {
			t.Errorf("%v is not %v", err, target)
		}
	}
	if err.Error() != "xdpcache is not deployed on eth9" {
		t.Errorf("message %q", err)
	}
}

// A pin root whose parent is no bpffs, here or through an ancestor's root,
// is an error that says so, not an empty list.
func TestResolveWithoutBPFFS(t *testing.T) {
	root := filepath.Join(t.TempDir(), "pins")
	got, err := Resolve(root)
	if !errors.Is(err, ErrNoBPFFS) {
		t.Fatalf("Resolve(%s) = %q, %v; want ErrNoBPFFS", root, got, err)
	}
	for _, want := range []string{filepath.Dir(root), "ip netns exec", "nsenter"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestDeployedOfMissingRootIsEmpty(t *testing.T) {
	got, err := Deployed(filepath.Join(t.TempDir(), "none"))
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("Deployed of a missing root = %#v, %v; want an empty list", got, err)
	}
}

func TestAncestorsEndAtInit(t *testing.T) {
	as := ancestors()
	if len(as) == 0 || as[0] != os.Getppid() {
		t.Fatalf("ancestors() = %v, want to start with the parent %d", as, os.Getppid())
	}
	for _, pid := range as {
		if pid <= 1 {
			t.Errorf("ancestors() = %v holds pid %d", as, pid)
		}
	}
}
