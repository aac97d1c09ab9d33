package bpf

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// cDefines reads the integer #defines of the C sources under c/ (headers and
// programs, wherever they sit), evaluating the simple forms they use:
// numbers, other defines, and one + - * / between two terms, in parentheses
// or not.
func cDefines(t *testing.T) map[string]int64 {
	t.Helper()
	raw := map[string]string{}
	re := regexp.MustCompile(`^#define\s+([A-Z_][A-Z0-9_]*)\s+([^/]+?)\s*(/\*.*)?$`)
	err := filepath.WalkDir("c", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".h") || strings.HasSuffix(path, ".c")) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if m := re.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				raw[m[1]] = m[2]
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	var eval func(s string, depth int) (int64, bool)
	term := func(s string, depth int) (int64, bool) {
		s = strings.TrimSuffix(strings.TrimSpace(s), "ULL")
		if n, err := strconv.ParseInt(s, 0, 64); err == nil {
			return n, true
		}
		if v, ok := raw[s]; ok && depth < 8 {
			return eval(v, depth+1)
		}
		return 0, false
	}
	eval = func(s string, depth int) (int64, bool) {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, "(") && strings.HasSuffix(s, ")") {
			s = s[1 : len(s)-1]
		}
		for _, op := range []string{" + ", " - ", " * ", " / "} {
			if a, b, ok := strings.Cut(s, op); ok {
				x, ok1 := term(a, depth)
				y, ok2 := term(b, depth)
				if !ok1 || !ok2 {
					return 0, false
				}
				switch op {
				case " + ":
					return x + y, true
				case " - ":
					return x - y, true
				case " * ":
					return x * y, true
				default:
					return x / y, true
				}
			}
		}
		return term(s, depth)
	}
	for name, v := range raw {
		if n, ok := eval(v, 0); ok {
			out[name] = n
		}
	}
	return out
}

// The Go copies of the programs' limits match the C #defines, as
// TestStatNamesMatchBTF does for the counters.
func TestLimitsMatchC(t *testing.T) {
	defs := cDefines(t)
	for _, tc := range []struct {
		c   string
		go_ int64
	}{
		{"KEY_MAX", MaxKey},
		{"VAL_MAX", MaxValueCap},
		{"MAX_PORTS", MaxPorts},
		{"CFG_REQUIRE_LOCAL", cfgRequireLocal},
		{"CFG_VERIFY_UDP_CSUM", cfgVerifyUDPCsum},
		{"OFF_CHUNK", OffloadChunk},
		{"OFF_MAX_CHUNKS", OffloadMaxChunks},
		{"OFF_ITEM_MAX", OffloadItemMax},
		{"OFF_KEY_MAX", OffloadKeyMax},
		{"OFF_ELEM_MAX", OffloadElemMax},
		{"OFF_FILL_SHIFT", offloadFillShift},
	} {
		got, ok := defs[tc.c]
		if !ok {
			t.Errorf("no #define %s under c/", tc.c)
			continue
		}
		if got != tc.go_ {
			t.Errorf("%s is %d in C, %d in Go", tc.c, got, tc.go_)
		}
	}
}

// Limits that the generated types carry as array lengths (from BTF).
func TestLimitsMatchBTFArrays(t *testing.T) {
	for _, tc := range []struct {
		what      string
		got, want int
	}{
		{"config.ports", len(xdpConfig{}.Ports), MaxPorts},
		{"ochunk.b", len(xdpoffOchunk{}.B), OffloadChunk},
		{"ocfg.ports", len(xdpoffOcfg{}.Ports), MaxPorts},
		{"relay_cfg.ports", len(tcrelayRelayCfg{}.Ports), MaxPorts},
		{"ocfg.prefix4", len(xdpoffOcfg{}.Prefix4), offloadPrefixes},
	} {
		if tc.got != tc.want {
			t.Errorf("%s has %d elements in C, Go's limit is %d", tc.what, tc.got, tc.want)
		}
	}
}
