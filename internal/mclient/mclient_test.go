package mclient

import "testing"

func TestParseSingle(t *testing.T) {
	for _, tc := range []struct {
		in    string
		v     string
		found bool
		err   bool
	}{
		{"END\r\n", "", false, false},
		{"VALUE k 0 3\r\nabc\r\nEND\r\n", "abc", true, false},
		{"VALUE k 0 5\r\na\r\nbc\r\nEND\r\n", "a\r\nbc", true, false},
		{"VALUE x 0 3\r\nabc\r\nEND\r\n", "", false, true},
		{"VALUE k 0 4\r\nabc\r\nEND\r\n", "", false, true},
		{"VALUE k 0 3\r\nabc", "", false, true},
	} {
		v, found, err := parseSingle("k", []byte(tc.in))
		if v != tc.v || found != tc.found || (err != nil) != tc.err {
			t.Errorf("%q: got %q %v %v", tc.in, v, found, err)
		}
	}
}
