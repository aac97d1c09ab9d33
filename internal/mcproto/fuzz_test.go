package mcproto

import (
	"bytes"
	"testing"
)

func FuzzParseGetReply(f *testing.F) {
	for _, s := range []string{
		"", "END\r\n", "VALUE k 0 3\r\nabc\r\nEND\r\n", "VALUE k 1 2 3\r\n\r\n\r\nEND\r\n",
		"VALUE a 0 1\r\nA\r\nVALUE b 0 0\r\n\r\nEND\r\n", "VALUE a 0 5\r\nab", "SERVER_ERROR x\r\n",
		"VALUE a 0 99999999999\r\n", "END\r\nx",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		items, complete, err := ParseGetReply(in)
		if err != nil && complete {
			t.Fatalf("complete with error %v", err)
		}
		if err != nil || !complete {
			return
		}
		// A complete reply re-encodes to one that parses to the same items.
		again, complete2, err := ParseGetReply(AppendGetReply(nil, items...))
		if err != nil || !complete2 || len(again) != len(items) {
			t.Fatalf("re-encoded reply: %d items, complete %v, err %v", len(again), complete2, err)
		}
		for i := range items {
			if !itemEqual(items[i], again[i]) {
				t.Fatalf("item %d: %+v != %+v", i, items[i], again[i])
			}
		}
	})
}

func FuzzParseBinPacket(f *testing.F) {
	f.Add(AppendBinGet(nil, OpGetK, "key", 1))
	f.Add(AppendBinSet(nil, OpSet, "k", []byte("v"), 1, 2, 3, 4))
	f.Add(AppendBinRequest(nil, BinHeader{Magic: MagicResponse}, []byte{0, 0, 0, 1}, []byte("k"), []byte("value")))
	f.Add([]byte{0x81})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, rest, err := ParseBinPacket(in)
		if err != nil {
			if !bytes.Equal(rest, in) {
				t.Fatalf("error %v but rest is not the input", err)
			}
			return
		}
		consumed := in[:len(in)-len(rest)]
		if got := p.Append(nil); !bytes.Equal(got, consumed) {
			t.Fatalf("re-encoded % x, consumed % x", got, consumed)
		}
		_, _ = p.Flags()
		_ = p.Err()
	})
}
