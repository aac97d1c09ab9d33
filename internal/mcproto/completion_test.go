package mcproto

import (
	"bytes"
	"testing"
)

func TestRawCompletion(t *testing.T) {
	getK := AppendBinGet(nil, OpGetK, "k", 1)
	getKQ := AppendBinGet(nil, OpGetKQ, "k", 1)
	noop := AppendBinRequest(nil, BinHeader{Opcode: OpNoop}, nil, nil, nil)
	respGetKQ := AppendBinRequest(nil, BinHeader{Magic: MagicResponse, Opcode: OpGetKQ}, nil, []byte("k"), nil)
	respNoop := AppendBinRequest(nil, BinHeader{Magic: MagicResponse, Opcode: OpNoop}, nil, nil, nil)
	for _, tt := range []struct {
		name    string
		req     []byte
		nilFunc bool
		data    []byte
		done    bool
	}{
		{"get partial", []byte("get a b\r\n"), false, []byte("VALUE a 0 1\r\nA\r\n"), false},
		{"get done", []byte("gets a\r\n"), false, []byte("END\r\n"), true},
		{"get error ends", []byte("get a\r\n"), false, []byte("ERROR\r\n"), true},
		{"set", []byte("set a 0 0 1\r\nA\r\n"), false, []byte("STORED\r\n"), true},
		{"set partial", []byte("set a 0 0 1\r\nA\r\n"), false, []byte("STOR"), false},
		{"stats", []byte("stats\r\n"), false, []byte("STAT a 1\r\nEND\r\n"), true},
		{"noreply waits", []byte("delete a noreply\r\n"), true, nil, false},
		{"two commands wait", []byte("get a\r\nget b\r\n"), true, nil, false},
		{"unterminated waits", []byte("get a"), true, nil, false},
		{"unknown waits", []byte("mg a v\r\n"), true, nil, false},
		{"binary getk", getK, false, AppendBinRequest(nil, BinHeader{Magic: MagicResponse, Opcode: OpGetK}, nil, nil, nil), true},
		{"binary getk partial", getK, false, respNoop[:10], false},
		{"binary quiet only waits", getKQ, true, nil, false},
		{"binary quiet+noop, hit only", append(bytes.Clone(getKQ), noop...), false, respGetKQ, false},
		{"binary quiet+noop, hit+noop", append(bytes.Clone(getKQ), noop...), false, append(bytes.Clone(respGetKQ), respNoop...), true},
		{"binary garbage waits", []byte{0x80, 1, 2}, true, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := rawCompletion(tt.req)
			if (f == nil) != tt.nilFunc {
				t.Fatalf("completion func nil = %v", f == nil)
			}
			if f == nil {
				return
			}
			if done, err := f(tt.data); done != tt.done || err != nil {
				t.Fatalf("done %v err %v", done, err)
			}
		})
	}
}
