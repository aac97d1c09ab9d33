package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/internal/replytap"
)

func TestFramesSequence(t *testing.T) {
	for _, c := range []struct {
		keys int
		zipf float64
	}{{1000, 0.99}, {100000, 0.90}, {50, 0}} {
		cfg := Config{Keys: c.keys, KeySize: 16, Zipf: c.zipf, Seed: 7}
		keys, seq := FramesSequence(cfg, 200000)
		if len(keys) != c.keys || len(seq) != 200000 {
			t.Fatalf("%d keys, %d draws", len(keys), len(seq))
		}
		for k, s := range keys {
			if s != Key(k, 16) {
				t.Fatalf("key %d is %q, want %q", k, s, Key(k, 16))
			}
		}
		// the draws follow the socket client's distribution: the top
		// tenth of the keys gets its share
		top := c.keys / 10
		n := 0
		for _, r := range seq {
			if int(r) >= c.keys {
				t.Fatalf("draw %d of %d keys", r, c.keys)
			}
			if int(r) < top {
				n++
			}
		}
		want := NewZipf(c.keys, c.zipf).TopShare(top)
		if got := float64(n) / float64(len(seq)); got < want-0.01 || got > want+0.01 {
			t.Errorf("%d keys, zipf %g: top %d keys drawn %.3f of the time, want %.3f", c.keys, c.zipf, top, got, want)
		}
	}
}

func TestRunFramesNeeds(t *testing.T) {
	base := Config{Keys: 10, KeySize: 16, Sockets: 1, Window: 1, Duration: time.Millisecond}
	for _, c := range []struct {
		name   string
		tap    *replytap.Tap
		frames *Frames
		want   string
	}{
		{"no tap", nil, &Frames{Ports: []uint16{1}, Do: func(f func() error) error { return f() }}, "reply tap"},
		{"no generator", &replytap.Tap{}, &Frames{Ports: []uint16{1}, Do: func(f func() error) error { return f() }}, "generator"},
		{"no ports", &replytap.Tap{}, &Frames{Do: func(f func() error) error { return f() }}, "ports"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			cfg.Tap, cfg.Frames = c.tap, c.frames
			_, err := Run(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Run: %v, want an error about %q", err, c.want)
			}
		})
	}
}
