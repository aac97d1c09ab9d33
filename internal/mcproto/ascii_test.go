package mcproto

import (
	"errors"
	"strings"
	"testing"
)

func TestAppendGet(t *testing.T) {
	for _, tt := range []struct {
		cas  bool
		keys []string
		want string
	}{
		{false, []string{"a"}, "get a\r\n"},
		{false, []string{"k1", "k2"}, "get k1 k2\r\n"},
		{true, []string{"k1", "k2", "k3"}, "gets k1 k2 k3\r\n"},
		{true, nil, "gets\r\n"},
	} {
		if got := string(AppendGet([]byte(">"), tt.cas, tt.keys...)); got != ">"+tt.want {
			t.Errorf("AppendGet(%v, %q) = %q, want %q", tt.cas, tt.keys, got, ">"+tt.want)
		}
	}
}

func TestAppendStorage(t *testing.T) {
	for _, tt := range []struct {
		cmd     string
		flags   uint32
		exp     int64
		value   string
		cas     uint64
		noreply bool
		want    string
	}{
		{"set", 0, 0, "abc", 0, false, "set k 0 0 3\r\nabc\r\n"},
		{"add", 4294967295, -1, "", 0, false, "add k 4294967295 -1 0\r\n\r\n"},
		{"replace", 1, 60, "a\r\nb", 0, true, "replace k 1 60 4 noreply\r\na\r\nb\r\n"},
		{"append", 0, 0, "x", 99, false, "append k 0 0 1\r\nx\r\n"},
		{"prepend", 0, 0, "x", 0, false, "prepend k 0 0 1\r\nx\r\n"},
		{"cas", 2, 3, "yy", 18446744073709551615, false, "cas k 2 3 2 18446744073709551615\r\nyy\r\n"},
		{"cas", 2, 3, "yy", 5, true, "cas k 2 3 2 5 noreply\r\nyy\r\n"},
	} {
		got := string(AppendStorage(nil, tt.cmd, "k", tt.flags, tt.exp, []byte(tt.value), tt.cas, tt.noreply))
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.cmd, got, tt.want)
		}
	}
}

func TestAppendCommands(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{string(AppendCommand(nil, "delete", "k", false)), "delete k\r\n"},
		{string(AppendCommand(nil, "delete", "k", true)), "delete k noreply\r\n"},
		{string(AppendCommand(nil, "stats", "", false, "slabs")), "stats slabs\r\n"},
		{string(AppendDelete(nil, "k", true)), "delete k noreply\r\n"},
		{string(AppendIncr(nil, "k", 18446744073709551615, false)), "incr k 18446744073709551615\r\n"},
		{string(AppendDecr(nil, "k", 2, true)), "decr k 2 noreply\r\n"},
		{string(AppendTouch(nil, "k", -1, false)), "touch k -1\r\n"},
		{string(AppendFlushAll(nil, 0, false)), "flush_all\r\n"},
		{string(AppendFlushAll(nil, 10, true)), "flush_all 10 noreply\r\n"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestValidKey(t *testing.T) {
	for _, tt := range []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"key:with/punct-uation_ü", true},
		{strings.Repeat("k", MaxKeyLen), true},
		{strings.Repeat("k", MaxKeyLen+1), false},
		{"", false},
		{"a b", false},
		{"a\r\n", false},
		{"a\x00", false},
		{"a\x7f", false},
		{"a\tb", false},
	} {
		if err := ValidKey(tt.key); (err == nil) != tt.ok {
			t.Errorf("ValidKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
		}
	}
}

func TestParseGetReply(t *testing.T) {
	type result struct {
		items    []Item
		complete bool
	}
	it := func(key string, flags uint32, value string) Item {
		return Item{Key: key, Flags: flags, Value: []byte(value)}
	}
	itc := func(key string, flags uint32, value string, cas uint64) Item {
		return Item{Key: key, Flags: flags, Value: []byte(value), CAS: cas, HasCAS: true}
	}
	for _, tt := range []struct {
		name    string
		in      string
		want    result
		wantErr error // nil: success; else errors.Is target (or *ServerError check below)
	}{
		{"empty input", "", result{}, nil},
		{"miss", "END\r\n", result{complete: true}, nil},
		{"one", "VALUE k 5 3\r\nabc\r\nEND\r\n", result{[]Item{it("k", 5, "abc")}, true}, nil},
		{"crlf inside value", "VALUE k 0 8\r\na\r\nEND\r\n\r\nEND\r\n", result{[]Item{it("k", 0, "a\r\nEND\r\n")}, true}, nil},
		{"value is crlf", "VALUE k 0 2\r\n\r\n\r\nEND\r\n", result{[]Item{it("k", 0, "\r\n")}, true}, nil},
		{"zero length", "VALUE k 0 0\r\n\r\nEND\r\n", result{[]Item{it("k", 0, "")}, true}, nil},
		{"binary bytes", "VALUE k 0 3\r\n\x00\xff\n\r\nEND\r\n", result{[]Item{it("k", 0, "\x00\xff\n")}, true}, nil},
		{"max flags", "VALUE k 4294967295 1\r\nx\r\nEND\r\n", result{[]Item{it("k", 4294967295, "x")}, true}, nil},
		{"cas", "VALUE k 1 2 18446744073709551615\r\nab\r\nEND\r\n", result{[]Item{itc("k", 1, "ab", 18446744073709551615)}, true}, nil},
		{"cas zero", "VALUE k 1 2 0\r\nab\r\nEND\r\n", result{[]Item{itc("k", 1, "ab", 0)}, true}, nil},
		{"multi", "VALUE a 0 1\r\nA\r\nVALUE b 2 2 7\r\nBB\r\nEND\r\n", result{[]Item{it("a", 0, "A"), itc("b", 2, "BB", 7)}, true}, nil},

		// Partial input: items so far, not complete, no error.
		{"partial END", "VALUE a 0 1\r\nA\r\nEN", result{[]Item{it("a", 0, "A")}, false}, nil},
		{"partial END CR", "END\r", result{}, nil},
		{"partial header", "VALUE a 0", result{}, nil},
		{"partial header CR", "VALUE a 0 1\r", result{}, nil},
		{"partial data", "VALUE a 0 5\r\nab", result{}, nil},
		{"partial data full, no crlf", "VALUE a 0 2\r\nab", result{}, nil},
		{"partial data CR", "VALUE a 0 2\r\nab\r", result{}, nil},
		{"partial second", "VALUE a 0 1\r\nA\r\nVALUE b 0 3\r\nB", result{[]Item{it("a", 0, "A")}, false}, nil},
		{"partial V", "V", result{}, nil},
		{"partial server error", "SERVER_ERROR out of", result{}, nil},

		// Malformed.
		{"bytes after END", "END\r\nx", result{}, ErrMalformed},
		{"END twice", "END\r\nEND\r\n", result{}, ErrMalformed},
		{"bare LF END", "END\n", result{}, ErrMalformed},
		{"lowercase end", "end\r\n", result{}, ErrMalformed},
		{"garbage partial", "HELLO", result{}, ErrMalformed},
		{"too long partial", "VALUE " + strings.Repeat("k", 2000), result{}, ErrMalformed},
		{"value too long for bytes", "VALUE a 0 1\r\nAB\r\nEND\r\n", result{}, ErrMalformed},
		{"value too short for bytes", "VALUE a 0 3\r\nA\r\nEND\r\n", result{}, ErrMalformed},
		{"data trailer LF only", "VALUE a 0 1\r\nA\nEND\r\n", result{}, ErrMalformed},
		{"data trailer wrong partial", "VALUE a 0 1\r\nAx", result{}, ErrMalformed},
		{"missing bytes", "VALUE a 0\r\n\r\nEND\r\n", result{}, ErrMalformed},
		{"too many fields", "VALUE a 0 1 2 3\r\nA\r\nEND\r\n", result{}, ErrMalformed},
		{"double space", "VALUE a  0 1\r\nA\r\nEND\r\n", result{}, ErrMalformed},
		{"trailing space", "VALUE a 0 1 \r\nA\r\nEND\r\n", result{}, ErrMalformed},
		{"negative flags", "VALUE a -1 1\r\nA\r\nEND\r\n", result{}, ErrMalformed},
		{"flags overflow", "VALUE a 4294967296 1\r\nA\r\nEND\r\n", result{}, ErrMalformed},
		{"plus bytes", "VALUE a 0 +1\r\nA\r\nEND\r\n", result{}, ErrMalformed},
		{"huge bytes", "VALUE a 0 99999999999999999999\r\n", result{}, ErrMalformed},
		{"bytes above max", "VALUE a 0 1073741825\r\n", result{}, ErrMalformed},
		{"bad cas", "VALUE a 0 1 x\r\nA\r\nEND\r\n", result{}, ErrMalformed},
		{"cas overflow", "VALUE a 0 1 18446744073709551616\r\nA\r\nEND\r\n", result{}, ErrMalformed},
		{"control char key", "VALUE a\x01 0 1\r\nA\r\nEND\r\n", result{}, ErrMalformed},
		{"long key", "VALUE " + strings.Repeat("k", 251) + " 0 1\r\nA\r\nEND\r\n", result{}, ErrMalformed},
		{"item then garbage", "VALUE a 0 1\r\nA\r\nBOGUS\r\n", result{[]Item{it("a", 0, "A")}, false}, ErrMalformed},
		{"stored line", "STORED\r\n", result{}, ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			items, complete, err := ParseGetReply([]byte(tt.in))
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if complete != tt.want.complete {
				t.Errorf("complete = %v, want %v", complete, tt.want.complete)
			}
			if len(items) != len(tt.want.items) {
				t.Fatalf("items = %+v, want %+v", items, tt.want.items)
			}
			for i := range items {
				if !itemEqual(items[i], tt.want.items[i]) || items[i].Value == nil {
					t.Errorf("item %d = %+v, want %+v", i, items[i], tt.want.items[i])
				}
			}
		})
	}
}

func TestParseGetReplyServerErrors(t *testing.T) {
	for _, tt := range []struct {
		in, kind, msg string
		nItems        int
	}{
		{"ERROR\r\n", "ERROR", "", 0},
		{"CLIENT_ERROR bad command line format\r\n", "CLIENT_ERROR", "bad command line format", 0},
		{"VALUE a 0 1\r\nA\r\nSERVER_ERROR out of memory\r\n", "SERVER_ERROR", "out of memory", 1},
	} {
		items, complete, err := ParseGetReply([]byte(tt.in))
		var se *ServerError
		if !errors.As(err, &se) || se.Kind != tt.kind || se.Msg != tt.msg || complete || len(items) != tt.nItems {
			t.Errorf("%q: items %d complete %v err %v", tt.in, len(items), complete, err)
		}
	}
}

func TestParseGetReplyCopiesValues(t *testing.T) {
	in := []byte("VALUE a 0 3\r\nabc\r\nEND\r\n")
	items, _, err := ParseGetReply(in)
	if err != nil {
		t.Fatal(err)
	}
	copy(in, strings.Repeat("z", len(in)))
	if string(items[0].Value) != "abc" {
		t.Fatalf("value aliases the input: %q", items[0].Value)
	}
}

// Every prefix of a valid reply is partial (no error, not complete) and
// yields a prefix of the final items.
func TestParseGetReplyPrefixes(t *testing.T) {
	full := AppendGetReply(nil,
		Item{Key: "a", Flags: 1, Value: []byte("x\r\nEND\r\n")},
		Item{Key: "b", Value: []byte{}, CAS: 9, HasCAS: true},
		Item{Key: "c", Flags: 3, Value: []byte("\r\n\r\n")},
	)
	for n := range len(full) {
		items, complete, err := ParseGetReply(full[:n])
		if err != nil || complete || len(items) > 3 {
			t.Fatalf("prefix %q: %d items, complete %v, err %v", full[:n], len(items), complete, err)
		}
	}
	items, complete, err := ParseGetReply(full)
	if err != nil || !complete || len(items) != 3 {
		t.Fatalf("full: %d items, complete %v, err %v", len(items), complete, err)
	}
}

func TestParseLine(t *testing.T) {
	for _, tt := range []struct {
		in, line, rest string
		err            error
	}{
		{"STORED\r\n", "STORED", "", nil},
		{"A\r\nB\r\n", "A", "B\r\n", nil},
		{"\r\n", "", "", nil},
		{"STORED", "", "STORED", ErrTruncated},
		{"STORED\r", "", "STORED\r", ErrTruncated},
		{"STORED\n", "", "STORED\n", ErrMalformed},
		{"A\nB\r\n", "", "A\nB\r\n", ErrMalformed},
	} {
		line, rest, err := ParseLine([]byte(tt.in))
		if string(line) != tt.line || string(rest) != tt.rest || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("%q: got %q %q %v", tt.in, line, rest, err)
		}
	}
}

func TestParseStatusLine(t *testing.T) {
	var se *ServerError
	for _, tt := range []struct {
		line, want string
		check      func(error) bool
	}{
		{"STORED", "STORED", func(err error) bool { return err == nil }},
		{"DELETED", "DELETED", func(err error) bool { return err == nil }},
		{"NOT_FOUND", "DELETED", func(err error) bool { return errors.Is(err, ErrNotFound) }},
		{"NOT_STORED", "STORED", func(err error) bool { return errors.Is(err, ErrNotStored) }},
		{"EXISTS", "STORED", func(err error) bool { return errors.Is(err, ErrExists) }},
		{"SERVER_ERROR out of memory", "STORED", func(err error) bool { return errors.As(err, &se) && se.Kind == "SERVER_ERROR" }},
		{"ERROR", "OK", func(err error) bool { return errors.As(err, &se) && se.Kind == "ERROR" }},
		{"TOUCHED", "STORED", func(err error) bool { return errors.Is(err, ErrUnexpectedReply) }},
	} {
		if err := ParseStatusLine(tt.line, tt.want); !tt.check(err) {
			t.Errorf("ParseStatusLine(%q, %q) = %v", tt.line, tt.want, err)
		}
	}
}

func TestParseCounterLine(t *testing.T) {
	for _, tt := range []struct {
		line string
		want uint64
		err  error
	}{
		{"0", 0, nil},
		{"18446744073709551615", 18446744073709551615, nil},
		{"18446744073709551616", 0, ErrMalformed},
		{"12 ", 0, ErrMalformed},
		{"NOT_FOUND", 0, ErrNotFound},
		{"", 0, ErrUnexpectedReply},
		{"STORED", 0, ErrUnexpectedReply},
	} {
		v, err := ParseCounterLine(tt.line)
		if v != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("%q: got %d, %v", tt.line, v, err)
		}
	}
	var se *ServerError
	if _, err := ParseCounterLine("CLIENT_ERROR cannot increment or decrement non-numeric value"); !errors.As(err, &se) {
		t.Errorf("client error: %v", err)
	}
}

func TestParseStats(t *testing.T) {
	for _, tt := range []struct {
		name     string
		in       string
		want     map[string]string
		complete bool
		err      bool
	}{
		{"full", "STAT pid 1\r\nSTAT version 1.6.18\r\nSTAT note two words\r\nEND\r\n",
			map[string]string{"pid": "1", "version": "1.6.18", "note": "two words"}, true, false},
		{"empty", "END\r\n", map[string]string{}, true, false},
		{"partial", "STAT pid 1\r\nSTAT ver", map[string]string{"pid": "1"}, false, false},
		{"after END", "END\r\nSTAT x 1\r\n", map[string]string{}, false, true},
		{"bad line", "STATS x 1\r\nEND\r\n", map[string]string{}, false, true},
		{"empty name", "STAT  1\r\nEND\r\n", map[string]string{}, false, true},
		{"bare LF", "STAT x 1\nEND\r\n", map[string]string{}, false, true},
		{"error", "ERROR\r\n", map[string]string{}, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, complete, err := ParseStats([]byte(tt.in))
			if (err != nil) != tt.err || complete != tt.complete || len(got) != len(tt.want) {
				t.Fatalf("got %v complete %v err %v", got, complete, err)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}
