package offload

import (
	"go/build"
	"slices"
	"strings"
	"testing"
)

// The subpackages' imports point one way: each may import only the ones
// before it in this list (as the package doc says).
func TestDependenciesPointOneWay(t *testing.T) {
	order := []string{"mode", "listeners", "netdev", "dispatch", "record", "probe", "deploy", "relay"}
	const prefix = "github.com/xdpcache/xdpcache/offload/"
	for i, name := range order {
		pkg, err := build.ImportDir(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			dep, ok := strings.CutPrefix(imp, prefix)
			if !ok {
				continue
			}
			if j := slices.Index(order, dep); j < 0 || j >= i {
				t.Errorf("offload/%s imports offload/%s, which does not come before it", name, dep)
			}
		}
	}
}
