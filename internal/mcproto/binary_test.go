package mcproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestBinHeaderWireFormat(t *testing.T) {
	h := BinHeader{Magic: 0x81, Opcode: 0x0c, KeyLen: 0x0102, ExtLen: 4, DataType: 0, Status: 0x0001,
		BodyLen: 0x0a0b0c0d, Opaque: 0xdeadbeef, CAS: 0x0102030405060708}
	want := []byte{0x81, 0x0c, 0x01, 0x02, 0x04, 0x00, 0x00, 0x01,
		0x0a, 0x0b, 0x0c, 0x0d, 0xde, 0xad, 0xbe, 0xef,
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}
	got := h.Append(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	back, err := ParseBinHeader(got)
	if err != nil || back != h {
		t.Fatalf("parsed %+v, %v", back, err)
	}
}

func TestAppendBinRequests(t *testing.T) {
	t.Run("get", func(t *testing.T) {
		b := AppendBinGet(nil, OpGetK, "foo", 42)
		want := append(BinHeader{Magic: 0x80, Opcode: OpGetK, KeyLen: 3, BodyLen: 3, Opaque: 42}.Append(nil), "foo"...)
		if !bytes.Equal(b, want) {
			t.Fatalf("got % x\nwant % x", b, want)
		}
	})
	t.Run("set", func(t *testing.T) {
		b := AppendBinSet(nil, OpSetQ, "k", []byte("v\r\n"), 0xdeadbeef, 60, 7, 9)
		p, rest, err := ParseBinPacket(b)
		if err != nil || len(rest) != 0 {
			t.Fatal(err)
		}
		h := p.Header
		if h.Magic != MagicRequest || h.Opcode != OpSetQ || h.ExtLen != 8 || h.KeyLen != 1 || h.BodyLen != 12 || h.CAS != 7 || h.Opaque != 9 {
			t.Fatalf("header %+v", h)
		}
		if binary.BigEndian.Uint32(p.Extras[:4]) != 0xdeadbeef || binary.BigEndian.Uint32(p.Extras[4:]) != 60 ||
			string(p.Key) != "k" || string(p.Value) != "v\r\n" {
			t.Fatalf("packet %+v", p)
		}
	})
	t.Run("delete", func(t *testing.T) {
		p, _, err := ParseBinPacket(AppendBinDelete(nil, OpDeleteQ, "gone", 5, 1))
		if err != nil || p.Header.Opcode != OpDeleteQ || string(p.Key) != "gone" || p.Header.CAS != 5 || len(p.Extras) != 0 || len(p.Value) != 0 {
			t.Fatalf("%+v %v", p, err)
		}
	})
	t.Run("lengths overridden", func(t *testing.T) {
		b := AppendBinRequest(nil, BinHeader{Magic: MagicResponse, KeyLen: 99, ExtLen: 99, BodyLen: 99}, []byte{0, 0, 0, 1}, nil, []byte("val"))
		p, _, err := ParseBinPacket(b)
		if err != nil || p.Header.Magic != MagicResponse || p.Header.KeyLen != 0 || p.Header.ExtLen != 4 || p.Header.BodyLen != 7 {
			t.Fatalf("%+v %v", p.Header, err)
		}
		if f, err := p.Flags(); err != nil || f != 1 {
			t.Fatalf("flags %d %v", f, err)
		}
	})
}

func TestParseBinPacket(t *testing.T) {
	valid := AppendBinRequest(nil, BinHeader{Magic: MagicResponse, Opcode: OpGetK, Opaque: 3},
		[]byte{1, 2, 3, 4}, []byte("key"), []byte("value"))
	withLens := func(ext uint8, key uint16, body uint32) []byte {
		b := bytes.Clone(valid)
		binary.BigEndian.PutUint16(b[2:4], key)
		b[4] = ext
		binary.BigEndian.PutUint32(b[8:12], body)
		return b
	}
	for _, tt := range []struct {
		name    string
		in      []byte
		err     error
		ext     string
		key     string
		val     string
		restLen int
	}{
		{"valid", valid, nil, "\x01\x02\x03\x04", "key", "value", 0},
		{"valid with rest", append(bytes.Clone(valid), 0x80, 0x00), nil, "\x01\x02\x03\x04", "key", "value", 2},
		{"header only", BinHeader{Magic: MagicRequest, Opcode: OpNoop}.Append(nil), nil, "", "", "", 0},
		{"all value", withLens(0, 0, 12), nil, "", "", "\x01\x02\x03\x04keyvalue", 0},
		{"all extras", withLens(12, 0, 12), nil, "\x01\x02\x03\x04keyvalue", "", "", 0},
		{"ext+key == body", withLens(4, 8, 12), nil, "\x01\x02\x03\x04", "keyvalue", "", 0},
		{"shorter body leaves rest", withLens(4, 3, 8), nil, "\x01\x02\x03\x04", "key", "v", 4},
		{"empty", nil, ErrTruncated, "", "", "", 0},
		{"short header", valid[:23], ErrTruncated, "", "", "", 0},
		{"short body", valid[:len(valid)-1], ErrTruncated, "", "", "", 0},
		{"body beyond input", withLens(4, 3, 13), ErrTruncated, "", "", "", 0},
		{"huge body", withLens(4, 3, 0xffffffff), ErrTruncated, "", "", "", 0},
		{"bad magic", append([]byte{0x82}, valid[1:]...), ErrMalformed, "", "", "", 0},
		{"zero magic", make([]byte, 24), ErrMalformed, "", "", "", 0},
		{"ext+key > body", withLens(4, 9, 12), ErrMalformed, "", "", "", 0},
		{"ext > body", withLens(13, 0, 12), ErrMalformed, "", "", "", 0},
		{"key > body", withLens(0, 0xffff, 12), ErrMalformed, "", "", "", 0},
		{"ext+key > body, truncated", withLens(255, 0xffff, 100), ErrMalformed, "", "", "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, rest, err := ParseBinPacket(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(p.Extras) != tt.ext || string(p.Key) != tt.key || string(p.Value) != tt.val || len(rest) != tt.restLen {
				t.Fatalf("extras %q key %q value %q rest %d", p.Extras, p.Key, p.Value, len(rest))
			}
		})
	}
}

func TestBinPacketSlicesAreClipped(t *testing.T) {
	b := AppendBinRequest(nil, BinHeader{}, []byte("ee"), []byte("kk"), []byte("vv"))
	p, _, err := ParseBinPacket(b)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(p.Extras, 'X')
	_ = append(p.Key, 'X')
	if string(p.Key) != "kk" || string(p.Value) != "vv" {
		t.Fatalf("append to a field overwrote the next: %+v", p)
	}
}

func TestBinPacketFlagsAndErr(t *testing.T) {
	for _, tt := range []struct {
		extras []byte
		flags  uint32
		ok     bool
	}{
		{[]byte{0xde, 0xad, 0xbe, 0xef}, 0xdeadbeef, true},
		{nil, 0, false},
		{[]byte{1, 2, 3}, 0, false},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 0}, 0, false},
	} {
		f, err := BinPacket{Extras: tt.extras}.Flags()
		if f != tt.flags || (err == nil) != tt.ok {
			t.Errorf("extras % x: %d %v", tt.extras, f, err)
		}
	}
	resp := func(status uint16) BinPacket {
		return BinPacket{Header: BinHeader{Magic: MagicResponse, Status: status}, Value: []byte("msg")}
	}
	if err := resp(StatusOK).Err(); err != nil {
		t.Errorf("ok: %v", err)
	}
	if err := resp(StatusKeyNotFound).Err(); !errors.Is(err, ErrNotFound) {
		t.Errorf("not found: %v", err)
	}
	if err := resp(StatusKeyExists).Err(); !errors.Is(err, ErrExists) {
		t.Errorf("exists: %v", err)
	}
	var se *BinStatusError
	if err := resp(StatusUnknownCommand).Err(); !errors.As(err, &se) || se.Status != StatusUnknownCommand || errors.Is(err, ErrNotFound) {
		t.Errorf("unknown command: %v", err)
	}
}

func TestIsQuiet(t *testing.T) {
	quiet := map[uint8]bool{OpGetQ: true, OpGetKQ: true, OpSetQ: true, OpAddQ: true, OpReplaceQ: true,
		OpDeleteQ: true, OpIncrementQ: true, OpDecrementQ: true, OpFlushQ: true, OpAppendQ: true,
		OpPrependQ: true, OpGATQ: true, OpGATKQ: true}
	for op := range 256 {
		if IsQuiet(uint8(op)) != quiet[uint8(op)] {
			t.Errorf("IsQuiet(0x%02x) = %v", op, IsQuiet(uint8(op)))
		}
	}
}
