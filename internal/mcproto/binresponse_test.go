package mcproto

import (
	"errors"
	"testing"
)

func TestCheckBinGetResponse(t *testing.T) {
	flags := []byte{0, 0, 0, 7}
	resp := func(h BinHeader, extras []byte, key string) BinPacket {
		h.Magic = MagicResponse
		p, _, err := ParseBinPacket(AppendBinRequest(nil, h, extras, []byte(key), []byte("v")))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name string
		p    BinPacket
		want error // nil, ErrUnexpectedReply or ErrMalformed
	}{
		{"hit", resp(BinHeader{Opcode: OpGetK, Opaque: 9}, flags, "k"), nil},
		{"hit without key", resp(BinHeader{Opcode: OpGetK, Opaque: 9}, flags, ""), nil},
		{"miss", resp(BinHeader{Opcode: OpGetK, Opaque: 9, Status: StatusKeyNotFound}, nil, "k"), nil},
		{"request magic", BinPacket{Header: BinHeader{Magic: MagicRequest, Opcode: OpGetK, Opaque: 9}}, ErrUnexpectedReply},
		{"other opcode", resp(BinHeader{Opcode: OpGet, Opaque: 9}, flags, ""), ErrUnexpectedReply},
		{"other opaque", resp(BinHeader{Opcode: OpGetK, Opaque: 8}, flags, "k"), ErrUnexpectedReply},
		{"other key", resp(BinHeader{Opcode: OpGetK, Opaque: 9}, flags, "x"), ErrUnexpectedReply},
		{"hit without flags", resp(BinHeader{Opcode: OpGetK, Opaque: 9}, nil, "k"), ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkBinGetResponse(tt.p, OpGetK, "k", 9)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}
