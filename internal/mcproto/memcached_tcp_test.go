package mcproto

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestMemcachedBinaryOverTCP(t *testing.T) {
	s := startMemcached(t)
	bin, ascii := s.tcp(t), s.tcp(t)
	const pastExptime = 30*24*3600 + 1 // absolute time in 1970: expired at once
	for _, tt := range []struct {
		name    string
		do      func() error
		wantErr error
		key     string
		want    *Item // what an ASCII get returns afterwards; nil: a miss
	}{
		{"set", func() error { return bin.BinSet("b1", 5, 0, []byte("one")) }, nil,
			"b1", &Item{Key: "b1", Flags: 5, Value: []byte("one")}},
		{"overwrite with reply-like bytes", func() error { return bin.BinSet("b1", 6, 0, []byte("two\r\nEND\r\n")) }, nil,
			"b1", &Item{Key: "b1", Flags: 6, Value: []byte("two\r\nEND\r\n")}},
		{"empty value", func() error { return bin.BinSet("b2", 0, 0, nil) }, nil,
			"b2", &Item{Key: "b2", Value: []byte{}}},
		{"delete", func() error { return bin.BinDelete("b1") }, nil, "b1", nil},
		{"delete missing", func() error { return bin.BinDelete("b1") }, ErrNotFound, "b1", nil},
		{"exptime reaches the server", func() error { return bin.BinSet("b3", 0, pastExptime, []byte("x")) }, nil, "b3", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			items, err := ascii.Get(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == nil && len(items) != 0:
				t.Fatalf("get %s: %+v, want a miss", tt.key, items)
			case tt.want != nil && (len(items) != 1 || !itemEqual(items[0], *tt.want)):
				t.Fatalf("get %s: %+v, want %+v", tt.key, items, *tt.want)
			}
		})
	}
}

func TestMemcachedPipeline(t *testing.T) {
	s := startMemcached(t)
	tc := s.tcp(t)
	big := bytes.Repeat([]byte("v"), 4000)
	var manySets [][]byte
	var manyStored []string
	for i := range 100 { // about 400 KB: more than any one socket buffer
		manySets = append(manySets, AppendStorage(nil, "set", fmt.Sprintf("many-%d", i), 0, 0, big, 0, false))
		manyStored = append(manyStored, "STORED")
	}
	for _, tt := range []struct {
		name string
		reqs [][]byte
		want []string
	}{
		{"mixed", [][]byte{
			AppendStorage(nil, "set", "p", 0, 0, []byte("5"), 0, false),
			AppendStorage(nil, "add", "p", 0, 0, []byte("x"), 0, false),
			AppendIncr(nil, "p", 2, false),
			AppendDelete(nil, "absent", false),
			AppendTouch(nil, "p", 100, false),
			AppendDelete(nil, "p", false),
		}, []string{"STORED", "NOT_STORED", "7", "NOT_FOUND", "TOUCHED", "DELETED"}},
		{"one", [][]byte{AppendFlushAll(nil, 0, false)}, []string{"OK"}},
		{"many large", manySets, manyStored},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tc.Pipeline(tt.reqs...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("replies %q, want %q", got, tt.want)
			}
		})
	}
	items, err := tc.Get("many-0", "many-99")
	if err != nil || len(items) != 2 || !bytes.Equal(items[1].Value, big) {
		t.Fatalf("get after the pipeline: %d items, %v", len(items), err)
	}
}

// TestMemcachedRepeatedKeys: memcached answers a key asked twice twice, in
// the order asked, over TCP and UDP; the clients accept that.
func TestMemcachedRepeatedKeys(t *testing.T) {
	s := startMemcached(t)
	tc, uc := s.tcp(t), s.udp(t, 2*time.Second)
	for _, k := range []string{"a", "b"} {
		if err := tc.Set(k, 0, 0, []byte(k+"-value")); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name string
		get  func(keys ...string) ([]Item, error)
	}{
		{"tcp get", tc.Get}, {"tcp gets", tc.Gets}, {"udp get", uc.Get}, {"udp gets", uc.Gets},
	} {
		t.Run(tt.name, func(t *testing.T) {
			items, err := tt.get("a", "absent", "b", "a")
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, it := range items {
				keys = append(keys, it.Key)
				if string(it.Value) != it.Key+"-value" {
					t.Errorf("item %+v", it)
				}
			}
			if strings.Join(keys, " ") != "a b a" {
				t.Fatalf("keys %q, want a b a", keys)
			}
		})
	}
}
