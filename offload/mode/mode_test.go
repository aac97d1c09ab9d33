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

func TestAutoAndValid(t *testing.T) {
	for _, tc := range []struct {
		m           Mode
		auto, valid bool
	}{
		{"", true, true},
		{Auto, true, true},
		{Native, false, true},
		{Mode("turbo"), false, false},
	} {
		if tc.m.IsAuto() != tc.auto || tc.m.Valid() != tc.valid {
			t.Errorf("%q: IsAuto %v Valid %v, want %v %v", tc.m, tc.m.IsAuto(), tc.m.Valid(), tc.auto, tc.valid)
		}
	}
	if got := List(); got != "auto, offload, native or generic" {
		t.Errorf("List() = %q", got)
	}
}
