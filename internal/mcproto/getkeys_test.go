package mcproto

import (
	"errors"
	"testing"
)

func TestMatchItemKeys(t *testing.T) {
	items := func(keys ...string) []Item {
		var out []Item
		for _, k := range keys {
			out = append(out, Item{Key: k})
		}
		return out
	}
	for _, tt := range []struct {
		name  string
		asked []string
		got   []Item
		ok    bool
	}{
		{"all hit", []string{"a", "b", "c"}, items("a", "b", "c"), true},
		{"all miss", []string{"a", "b"}, nil, true},
		{"some miss", []string{"a", "b", "c"}, items("a", "c"), true},
		{"asked twice, hit twice", []string{"a", "b", "a"}, items("a", "b", "a"), true},
		{"asked twice, hit once", []string{"a", "a"}, items("a"), true},
		{"not asked", []string{"a"}, items("x"), false},
		{"out of order", []string{"a", "b"}, items("b", "a"), false},
		{"asked once, answered twice", []string{"a", "b"}, items("a", "a"), false},
		{"nothing asked", nil, items("a"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := matchItemKeys(tt.got, tt.asked)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrUnexpectedReply)) {
				t.Fatalf("matchItemKeys = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
