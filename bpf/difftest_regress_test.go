package bpf

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/xdpcache/xdpcache/internal/difftest"
)

// diffKeys is the universe of the regression cases: k holds a number (for
// incr/decr) with a TTL of 1000 s, n never expires, o is a bystander.
func diffKeys() []difftest.Key {
	return []difftest.Key{
		{Key: "k", Flags: 1, TTL: 1000, Value: []byte("42")},
		{Key: "n", Flags: 0, TTL: 0, Value: []byte("v0")},
		{Key: "o", Flags: 7, TTL: 5000, Value: []byte("old value")},
	}
}

// tcpStream is one ASCII or binary connection carrying segs in order.
func tcpStream(segs ...string) difftest.Stream {
	s := difftest.Stream{Keys: diffKeys(), Conns: []difftest.Conn{{}}}
	for _, g := range segs {
		s.Events = append(s.Events, difftest.Event{Conn: 0, Data: []byte(g)})
	}
	return s
}

// interleaved is a store's line and the start of its data on connection
// 0, another connection's bytes, then the rest of the data on connection 0.
func interleaved(first string, other []byte, rest string) difftest.Stream {
	return difftest.Stream{Keys: diffKeys(), Conns: []difftest.Conn{{}, {}}, Events: []difftest.Event{
		{Conn: 0, Data: []byte(first)}, {Conn: 1, Data: other}, {Conn: 0, Data: []byte(rest)}}}
}

func udpStream(v6 bool, datagrams ...[]byte) difftest.Stream {
	s := difftest.Stream{Keys: diffKeys()}
	for _, d := range datagrams {
		s.Events = append(s.Events, difftest.Event{Conn: difftest.UDP, V6: v6, Data: d})
	}
	return s
}

func wrap(s difftest.Stream, w string) difftest.Stream {
	for i := range s.Events {
		s.Events[i].Wrap = w
	}
	return s
}

func v6(s difftest.Stream) difftest.Stream {
	for i := range s.Conns {
		s.Conns[i].V6 = true
	}
	return s
}

// binGetLike is a 24-byte binary GET header for a 1-byte key whose body
// claims 1024 bytes: what an ASCII value starting with 0x80 can look like.
func binGetLike() string {
	h := make([]byte, 24)
	h[0] = 0x80
	binary.BigEndian.PutUint16(h[2:], 1)
	binary.BigEndian.PutUint32(h[8:], 1024)
	return string(h)
}

func binArith(op byte, key string, delta, initial uint64, exptime uint32) string {
	ex := make([]byte, 20)
	binary.BigEndian.PutUint64(ex, delta)
	binary.BigEndian.PutUint64(ex[8:], initial)
	binary.BigEndian.PutUint32(ex[16:], exptime)
	return string(difftest.BinReq(op, key, ex, nil, 1))
}

func binSet(op byte, key string, exptime uint32, value string) string {
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex[4:], exptime)
	return string(difftest.BinReq(op, key, ex, []byte(value), 2))
}

// diffRegression is one known defect of issue 13 driven through the oracle.
// knownFail, when set, says why today's datapath fails it: the case is then
// reported as skipped while it fails, and fails once it passes (drop the mark
// with the fix). -diff.strict runs every case as an ordinary one.
type diffRegression struct {
	name      string
	stream    difftest.Stream
	knownFail string
	guards    string // the defect the case was written for, now fixed
	wantTX    bool   // the case is about a reply: XDP must answer from the cache
}

func diffRegressions() []diffRegression {
	gatEdge := "gat 100 " + strings.Repeat("A", 250) + "   " + strings.Repeat("B", 250) + " k\r\n" // "k" at byte 512
	return []diffRegression{
		// found by the random run: a GET answered between a set's line and
		// its data block (memcached applies the store when the block is in)
		{name: "get-between-set-line-and-data", stream: difftest.Stream{
			Keys:  []difftest.Key{{Key: "k", Flags: 1, TTL: 0, Value: []byte("old value")}},
			Conns: []difftest.Conn{{}},
			Events: []difftest.Event{
				{Conn: 0, Data: []byte("get e\nset k 2 0 11\n")},
				{Conn: difftest.UDP, Data: []byte("$\xfe\x00\x00\x00\x01\x00\x00get k\n")},
				{Conn: 0, Data: []byte("hello world\r\n")},
			}},
			guards: "rule I at the store's data block: the reply to a GET between the line and the data is old, and must not fill"},
		// found by the random run: N0 (vivify without expiry) with T3 (a
		// 3 s TTL): the item expires in 3 s, "0" is not the earlier one
		{name: "mg-N0-and-T3", stream: tcpStream("mg k N0 T3\n"),
			guards: "#9: the earlier of two exptimes, 0 meaning never"},
		// found by the random run: a mode token of length 1 is refused
		// (CLIENT_ERROR incorrect length for M token), the data swallowed
		{name: "ms-bad-mode-token", stream: tcpStream("ms k 7 M\nget k\r\n\r\n"),
			guards: "#9: an ms memcached refuses recorded its (absent) exptime as the key's"},
		// 1: the protocol is judged per segment
		{name: "ascii-value-segment-starts-0x80", stream: tcpStream(
			"set big 0 0 30\r\n", binGetLike()+"xxxxxx\r\n", "delete k\r\n"),
			guards: "#1: segment 2 is value bytes starting 0x80; XDP takes them for a binary GET header claiming a 1024-byte body, marks the flow binary, and skips segment 3 as that body, so `delete k` is never seen"},
		{name: "ascii-value-segment-starts-0x80-v6", stream: v6(tcpStream(
			"set big 0 0 30\r\n", binGetLike()+"xxxxxx\r\n", "delete k\r\n")),
			guards: "#1, over IPv6"},
		{name: "no-syn-binary-value-then-ascii-looking", stream: func() difftest.Stream {
			// a binary connection XDP joins mid-stream, inside a value
			// that reads like ASCII commands
			s := tcpStream(binSet(difftest.BinSet, "o", 0, "xx\r\ndelete k\r\n"))
			s.Conns[0].NoSYN = true
			return s
		}()},
		{name: "no-syn-ascii-value-segment-starts-0x80", stream: func() difftest.Stream {
			s := tcpStream("set big 0 0 30\r\n", binGetLike()+"xxxxxx\r\n", "delete k\r\n")
			s.Conns[0].NoSYN = true
			s.Events[0].Unseen = true // XDP attached after the set line
			return s
		}(), guards: "#1: XDP joins the connection inside a value starting 0x80 (its start unseen) and takes it for a binary header: the `delete k` after it is skipped"},
		// 5: line boundaries drift from memcached's
		{name: "set-extra-tokens", stream: tcpStream("set o 0 0 10 x y\r\ndelete k\r\nmn\r\n"),
			guards: "#5: memcached answers ERROR (too many tokens) and swallows no data; XDP reads bytes=10 and skips the 12 bytes `delete k\\r\\nmn`"},
		{name: "set-bytes-10x", stream: tcpStream("set o 0 0 10x\r\ndelete k\r\nmn\r\n"),
			guards: "#5: safe_strtol rejects `10x` (CLIENT_ERROR, no data swallowed); XDP's parse_num reads 10 and skips `delete k\\r\\nmn`"},
		{name: "cas-unique-abc", stream: tcpStream("cas o 0 0 10 abc\r\ndelete k\r\nmn\r\n"),
			guards: "#5: safe_strtoull rejects the CAS `abc` (CLIENT_ERROR, no data); XDP skips 12 bytes"},
		{name: "set-flags-plus0", stream: tcpStream("set o +0 0 14\r\nset z 0 0 20\r\n\r\ndelete k\r\n"),
			guards: "#5: strtoul accepts `+0`, memcached stores 14 bytes `set z 0 0 20\\r\\n`; XDP cannot read `+0`, skips no data, reads the data as `set z 0 0 20` and skips 22 bytes over `delete k`"},
		{name: "set-bytes-plus", stream: tcpStream("set o 0 0 +14\r\nset z 0 0 20\r\n\r\ndelete k\r\n"),
			guards: "#5: strtol accepts `+14`; XDP does not, and reads the data block as a command"},
		{name: "cas-too-few-tokens", stream: tcpStream("cas o 0 4 0\r\ndelete k\r\n"),
			guards: "#5: `cas o 0 4 0` has no CAS token: memcached answers ERROR and reads no data; XDP takes bytes=0, skips 2 bytes and reads `lete k`"},
		{name: "ms-datalen-10x", stream: tcpStream("ms o 10x\r\ndelete k\r\nmn\r\n"),
			guards: "#5: `10x` is no datalen (CLIENT_ERROR bad command line format, no data); XDP skips 12 bytes over `delete k`"},
		{name: "nul-ends-the-line", stream: tcpStream("set o\x00 0 0 8\r\ndelete k\r\n"),
			guards: "#5 (new): tokenize_command uses strlen, so a NUL ends memcached's command line: `set o` is an ERROR and no data follows; XDP reads the key `o\\x00`, bytes=8 and skips `delete k`"},
		{name: "set-lf-only-in-data-then-delete", stream: tcpStream("set o 0 0 3\nabc\r\ndelete k\n")},
		// which key memcached changes: meta commands with base64 keys
		{name: "md-base64-key", stream: tcpStream("md aw== b\r\n"),
			guards: "new: with the b flag memcached decodes the key (`aw==` is k) and deletes k; XDP invalidates the key `aw==`"},
		{name: "ms-base64-key", stream: tcpStream("ms bw== 3 b\r\nnew\r\n"),
			guards: "new: as md, `bw==` is o"},
		// 10: window edge and split meta flags
		{name: "gat-key-at-window-edge", stream: tcpStream(gatEdge),
			guards: "#10: the gat key `k` starts at byte 512, the end of XDP's first window; the key loop returns (not at the payload's end: no flush) and k's new TTL (100 s) is missed"},
		{name: "mg-touch-flag-split", stream: tcpStream("mg k v", " T30\r\n"),
			guards: "#10: segment 1 ends inside the flags of `mg k v`: no T/N/E flag seen yet, no flush; segment 2 ` T30` is not a command line"},
		{name: "mg-touch-split-after-key", stream: tcpStream("mg k ", "T30 v\r\n"),
			guards: "#10: segment 1 ends after the key of mg, no flag seen, no flush"},
		// 9: expiry guessed too long
		{name: "failed-add-keeps-ttl", stream: tcpStream("add k 0 5000 1\r\nx\r\n"),
			guards: "#9: add fails (NOT_STORED) and memcached keeps k's TTL of 1000 s; XDP records exptime 5000 and a refilled k outlives memcached's"},
		{name: "failed-cas-keeps-ttl", stream: tcpStream("cas k 0 5000 1 999999\r\nx\r\n"),
			guards: "#9: cas fails (EXISTS); XDP records exptime 5000"},
		{name: "failed-replace-keeps-ttl", stream: tcpStream("replace absent 0 0 1\r\nx\r\nreplace k 0 5000 1 noreply\r\nx\r\n"),
			knownFail: ""},
		{name: "ms-append-mode-keeps-ttl", stream: tcpStream("ms k 1 MA T5000\r\nx\r\n"),
			guards: "#9: ms in append mode keeps the item's TTL; XDP records T5000"},
		{name: "ms-prepend-no-T", stream: tcpStream("ms k 1 MP\r\nx\r\n"),
			guards: "#9: ms in prepend mode keeps the TTL (1000 s); XDP records `no exptime` (0) and a refill lives max_age"},
		{name: "mg-vivify-on-hit", stream: tcpStream("mg k v N5000\r\n"),
			guards: "#9: N<ttl> applies only when mg creates the item; k exists, memcached keeps 1000 s, XDP records 5000"},
		{name: "bin-incr-existing-keeps-ttl", stream: tcpStream(binArith(difftest.BinIncr, "k", 1, 0, 5000)),
			guards: "#9: binary INCR's exptime applies only to an item it creates; XDP records 5000"},
		{name: "bin-decrq-existing-keeps-ttl", stream: tcpStream(binArith(difftest.BinDecrQ, "k", 1, 0, 5000) + string(difftest.BinReq(difftest.BinNoop, "", nil, nil, 9))),
			guards: "#9: as INCR, quiet DECR"},
		{name: "touch-exptime-above-int32", stream: tcpStream("touch k 4294967396\r\n"),
			guards: "#9: memcached keeps the low 32 bits of 4294967396 (100 s); XDP takes it for an absolute time in 2106"},
		{name: "set-exptime-above-int32", stream: tcpStream("set k 0 4294967396 1\r\nx\r\n"),
			guards: "#9: as touch"},
		{name: "ms-T-above-int32", stream: tcpStream("ms k 1 T4294967396\r\nx\r\n"),
			guards: "#9: as touch, meta T flag"},
		{name: "ma-T-changes-ttl", stream: tcpStream("ma k T30\r\n"),
			guards: "#9: ma with T sets the TTL to 30 s; XDP keeps the old record (1000 s)"},
		{name: "md-I-T-changes-ttl", stream: tcpStream("md k I T30\r\n"),
			guards: "#9: md with I marks k stale and sets its TTL to 30 s; XDP keeps the old record"},
		{name: "bin-touch", stream: tcpStream(string(difftest.BinReq(difftest.BinTouch, "k", []byte{0, 0, 0, 30}, nil, 3)))},
		{name: "bin-setq-then-delete", stream: tcpStream(binSet(difftest.BinSetQ, "o", 0, "\x80\x00\x00\x01") + string(difftest.BinReq(difftest.BinDelete, "k", nil, nil, 4)))},
		// found by the harness
		{name: "udp-frame-seq-nonzero", stream: udpStream(false, append(difftest.Frame(7, 1, 1), "delete k\r\n"...)),
			guards: "new: memcached checks only the frame's total (bytes 4-5 == 1) and ignores the sequence number; XDP passes seq != 0 as multi-frame (pass_multi_frame) without looking for mutations"},
		{name: "udp-frame-seq-nonzero-v6-ma", stream: udpStream(true, append(difftest.Frame(7, 4, 1), "ma k MD\r\n"...)),
			guards: "new: as above, IPv6, ma decrements k"},
		// 2: binary UDP GET tickets do not carry the key
		{name: "bin-udp-get-same-id-opaque", stream: func() difftest.Stream {
			s := tcpStream("set k 0 0 2\r\nK1\r\nset o 0 0 2\r\nO1\r\n")
			s.Events = append(s.Events,
				difftest.Event{Conn: difftest.UDP, Hold: true, Data: append(difftest.Frame(5, 0, 1), difftest.BinReq(difftest.BinGet, "k", nil, nil, 9)...)},
				difftest.Event{Conn: difftest.UDP, Data: append(difftest.Frame(5, 0, 1), difftest.BinReq(difftest.BinGet, "o", nil, nil, 9)...)})
			return s
		}(), guards: "#2: both GETs leave a ticket (request id 5, opaque 9, hash 0): the second overwrites the first, and memcached's answer to GET k (K1) fills o's bucket"},
		// 6 and item 3: replies byte-identical, whatever the encapsulation
		{name: "reply-ipv6-destopts", stream: wrap(udpStream(true, append(difftest.Frame(11, 0, 1), "get k o\r\n"...)), "ipopts"), wantTX: true,
			guards: "#6: the reply to a GET behind an IPv6 destination-options header keeps the header but its payload length leaves it out (8 bytes short)"},
		{name: "reply-ipv4-options", stream: wrap(udpStream(false, append(difftest.Frame(12, 0, 1), "gets k\r\n"...)), "ipopts"), wantTX: true},
		{name: "reply-qinq-v6", stream: wrap(udpStream(true, append(difftest.Frame(13, 0, 1), "get o\r\n"...)), "qinq"), wantTX: true},
		{name: "reply-vlan-binary-getk", stream: wrap(udpStream(false, append(difftest.Frame(14, 0, 1), difftest.BinReq(difftest.BinGetK, "o", nil, nil, 77)...)), "vlan"), wantTX: true},
		{name: "reply-bigopts-qinq-v6", stream: wrap(udpStream(true, append(difftest.Frame(15, 0, 1), "get k\r\n"...)), "bigopts")}, // XDP passes it today (headers of 158 bytes): fine, a reply must be right
		// 8: fragments whose first one is too short for the TCP header
		{name: "tcp-v4-short-first-fragment", stream: wrap(tcpStream("delete k\r\n"), "frag"),
			guards: "#8: the first fragment carries 8 bytes of the TCP header: parse_pkt fails and the frame passes with no flush; the kernel reassembles `delete k` for memcached"},
		{name: "tcp-v6-short-first-fragment", stream: wrap(v6(tcpStream("delete k\r\n")), "frag"),
			guards: "#8, over IPv6 too: the first fragment (behind a fragment header) carries 8 bytes of the TCP header and passes with no flush"},
		{name: "udp-v4-fragments", stream: wrap(udpStream(false, append(difftest.Frame(16, 0, 1), "delete k\r\n"...)), "frag")},
		{name: "udp-v6-fragments", stream: wrap(udpStream(true, append(difftest.Frame(16, 0, 1), "delete k\r\n"...)), "frag")},
		{name: "udp-incomplete-touch", stream: udpStream(false, append(difftest.Frame(17, 0, 1), "touch k 0"...)),
			guards: "new (#9): a datagram ending inside `touch k 0` (no line end: memcached never runs it) records `no exptime` for k"},
		// 4: a fill trusts the client's ACK number
		{name: "tcp-fill-at-forged-ack", stream: func() difftest.Stream {
			evil := "VALUE k 1 4\r\nEVIL\r\nEND\r\n"
			s := tcpStream(fmt.Sprintf("set x 0 0 %d\r\n%s\r\n", len(evil), evil), "get x\r\n")
			s.Events[1].Hold = true
			// memcached answers "VALUE x 0 25\r\n" + evil...: the client
			// acknowledges up to evil and asks for k
			s.Events = append(s.Events, difftest.Event{Conn: 0, Data: []byte("get k\r\n"), Ack: len(fmt.Sprintf("VALUE x 0 %d\r\n", len(evil)))})
			return s
		}(), guards: "#4: the ticket of `get k` takes the client's ACK number as the start of the reply; the server's segment starting there is the value of x, `VALUE k 1 4\\r\\nEVIL...`, and fills k"},
		{name: "udp-delete", stream: udpStream(false, append(difftest.Frame(8, 0, 1), "delete k\r\n"...))},
		{name: "incomplete-add-keeps-ttl", stream: tcpStream("add k 1 4117"),
			guards: "new: a line cut by the segment end (memcached waits for the rest, changes nothing) records exptime 4117 for k"},
		{name: "incomplete-set-no-exptime", stream: tcpStream("set k 0 0"),
			guards: "new: the cut line records `no exptime` for k: a refill lives max_age, memcached's k expires in 1000 s"},
		{name: "flush-forgets-no-expiry", stream: tcpStream("replace n", " 0 30 1\r\nx\r\n"),
			guards: "new: the cut `replace n` flushes (right), but the expiry record of n (none) stays; memcached's n now expires in 30 s, a refill lives max_age"},
		{name: "replace-around-another-set", stream: interleaved("replace n 2 1 5\r\nab", []byte("set n 0 0 2\r\nzz\r\n"), "cde\r\n"),
			guards: "new (hunt, seed 144554): the replace's line records its exptime only as EXP_MAYBE, the other connection's set records `never`, and the replace applies when its data is in, with exptime 1: a refill lived max_age"},
		{name: "replace-around-another-binary-set", stream: interleaved("replace n 2 1 5\r\nab",
			difftest.BinReq(difftest.BinSet, "n", make([]byte, 8), []byte("zz"), 7), "cde\r\n")},
		{name: "add-around-another-set", stream: interleaved("add n 2 1 5\r\nab", []byte("set n 0 0 2\r\nzz\r\n"), "cde\r\n")},
		{name: "gat-tab-plus-exptime", stream: tcpStream("gat \t+30 n\r\n"),
			guards: "new: strtol skips the tab and reads +30; XDP cannot read the exptime and flushes, but keeps n's expiry record (none)"},
	}
}

func TestDiffRegressions(t *testing.T) {
	requireDiff(t)
	for _, c := range diffRegressions() {
		t.Run(c.name, func(t *testing.T) {
			r := runDiff(t, c.stream)
			if c.wantTX && r.txInside == 0 {
				r.failf("XDP answered none of the stream's GETs: the reply was not checked")
			}
			failed := len(r.failures) > 0
			switch {
			case failed && c.knownFail != "" && !*diffStrict:
				t.Skipf("known failure on today's datapath (issue 13 %s):\n%s", c.knownFail, diffReport(c.stream, r))
			case failed:
				t.Errorf("memcached and XDP disagree:\n%s", diffReport(c.stream, r))
			case c.knownFail != "" && !*diffStrict:
				t.Errorf("marked as a known failure (%s) but memcached and XDP agree now: remove the mark", c.knownFail)
			}
		})
	}
}

// TestDiffOracleSelfCheck: the oracle notices what XDP cannot have seen
// (bytes sent to memcached behind its back), in every way it checks.
func TestDiffOracleSelfCheck(t *testing.T) {
	requireDiff(t)
	behind := func(pre []string, hidden string) difftest.Stream {
		s := tcpStream(pre...)
		s.Events = append(s.Events, difftest.Event{Conn: difftest.Behind, Data: []byte(hidden)})
		return s
	}
	for _, c := range []struct {
		name   string
		stream difftest.Stream
		want   string
	}{
		{"stale-value", behind(nil, "delete k\r\n"), "memcached answers \"END"},
		{"same-value-new-cas", behind(nil, "set k 1 1000 2\r\n42\r\n"), "XDP answered"},
		{"shorter-ttl", behind(nil, "touch k 30\r\n"), "memcached expires it in 30s"},
		{"expiry-record", behind([]string{"set n 0 0 2\r\nv1\r\n"}, "touch n 30\r\n"), "after a refill"},
		{"reply-in-stream", func() difftest.Stream {
			s := behind(nil, "set o 7 5000 3\r\nnew\r\n")
			s.Events = append(s.Events, difftest.Event{Conn: difftest.UDP, Data: append(difftest.Frame(3, 0, 1), "get o\r\n"...)})
			return s
		}(), "event 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runDiff(t, c.stream)
			for _, f := range r.failures {
				if strings.Contains(f, c.want) {
					return
				}
			}
			t.Errorf("the oracle missed a change made behind XDP's back (want a failure with %q):\n%s", c.want, diffReport(c.stream, r))
		})
	}
}
