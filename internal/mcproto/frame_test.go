package mcproto

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range []Frame{
		{},
		{RequestID: 1, Seq: 0, Total: 1},
		{RequestID: 0xffff, Seq: 0x1234, Total: 0xfedc, Reserved: 0xabcd},
	} {
		b := f.Append([]byte("x"))
		if len(b) != 1+FrameHeaderLen {
			t.Fatalf("%+v: encoded to %d bytes", f, len(b))
		}
		got, payload, err := ParseFrame(append(b[1:], "payload"...))
		if err != nil || got != f || string(payload) != "payload" {
			t.Errorf("%+v: parsed %+v %q %v", f, got, payload, err)
		}
	}
}

func TestFrameWireFormat(t *testing.T) {
	want := []byte{0x12, 0x34, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00}
	if got := (Frame{RequestID: 0x1234, Seq: 2, Total: 3}).Append(nil); !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

func TestParseFrameShort(t *testing.T) {
	for n := range FrameHeaderLen {
		if _, _, err := ParseFrame(make([]byte, n)); !errors.Is(err, ErrTruncated) {
			t.Errorf("%d bytes: err %v, want ErrTruncated", n, err)
		}
	}
	if _, p, err := ParseFrame(make([]byte, FrameHeaderLen)); err != nil || len(p) != 0 {
		t.Errorf("header only: %q %v", p, err)
	}
}
