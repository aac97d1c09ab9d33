package mode

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		err  bool
	}{
		{"", Auto, false},
		{"auto", Auto, false},
		{"offload", Offload, false},
		{"native", Native, false},
		{"generic", Generic, false},
		{"turbo", "", true},
		{"Native", "", true},
		{" native", "", true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, ErrUnknown) {
			t.Errorf("Parse(%q): error %v is not ErrUnknown", tc.in, err)
		}
	}
}

func TestAutoAndResolve(t *testing.T) {
	for _, tc := range []struct {
		m        Mode
		auto     bool
		resolved Mode
	}{
		{"", true, Auto},
		{Auto, true, Auto},
		{Native, false, Native},
		{Generic, false, Generic},
	} {
		if tc.m.IsAuto() != tc.auto || tc.m.Resolve() != tc.resolved {
			t.Errorf("%q: IsAuto %v Resolve %q, want %v %q", tc.m, tc.m.IsAuto(), tc.m.Resolve(), tc.auto, tc.resolved)
		}
	}
	if got := List(); got != "auto, offload, native or generic" {
		t.Errorf("List() = %q", got)
	}
}
