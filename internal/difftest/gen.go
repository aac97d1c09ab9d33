package difftest

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
)

// MaxSegment is the largest TCP segment or UDP datagram payload generated
// (one frame through BPF_PROG_TEST_RUN).
const MaxSegment = 1400

// Binary protocol opcodes (protocol_binary.h).
const (
	BinGet      = 0x00
	BinSet      = 0x01
	BinAdd      = 0x02
	BinReplace  = 0x03
	BinDelete   = 0x04
	BinIncr     = 0x05
	BinDecr     = 0x06
	BinQuit     = 0x07
	BinFlush    = 0x08
	BinGetQ     = 0x09
	BinNoop     = 0x0a
	BinVersion  = 0x0b
	BinGetK     = 0x0c
	BinGetKQ    = 0x0d
	BinAppend   = 0x0e
	BinPrepend  = 0x0f
	BinSetQ     = 0x11
	BinAddQ     = 0x12
	BinReplaceQ = 0x13
	BinDeleteQ  = 0x14
	BinIncrQ    = 0x15
	BinDecrQ    = 0x16
	BinFlushQ   = 0x18
	BinAppendQ  = 0x19
	BinPrependQ = 0x1a
	BinTouch    = 0x1c
	BinGAT      = 0x1d
	BinGATQ     = 0x1e
	BinGATK     = 0x23
	BinGATKQ    = 0x24
)

// BinReq builds a binary-protocol request.
func BinReq(op byte, key string, extras, value []byte, opaque uint32) []byte {
	h := make([]byte, 24, 24+len(extras)+len(key)+len(value))
	h[0] = 0x80
	h[1] = op
	binary.BigEndian.PutUint16(h[2:], uint16(len(key)))
	h[4] = byte(len(extras))
	binary.BigEndian.PutUint32(h[8:], uint32(len(extras)+len(key)+len(value)))
	binary.BigEndian.PutUint32(h[12:], opaque)
	b := append(h, extras...)
	b = append(b, key...)
	return append(b, value...)
}

// Frame is memcached's 8-byte UDP frame header.
func Frame(reqID, seq, total uint16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b[0:], reqID)
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint16(b[4:], total)
	return b
}

// Gen generates streams from a seeded PRNG: the same seed, the same streams.
type Gen struct {
	r    *rand.Rand
	keys []string // this stream's universe
}

// NewGen seeds a generator.
func NewGen(seed uint64) *Gen {
	return &Gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *Gen) n(n int) int           { return g.r.IntN(n) }
func (g *Gen) chance(p float64) bool { return g.r.Float64() < p }

func pick[T any](g *Gen, xs ...T) T { return xs[g.r.IntN(len(xs))] }

// keyPool: short, long (the 250-byte limit, a 251-byte one is in the
// invalid lines), bytes above 0x7f, words memcached and XDP know.
var keyPool = []string{
	"k", "a", "key1", "foo", "user:42", "VALUE", "set", "delete", "mg", "END", "x\x80y", "\x80k", "ключ",
	"a-b_c.d", "T30", "noreply", strings.Repeat("L", 250), strings.Repeat("m", 64) + "z", "0", "-1",
}

// valuePool: values that look like protocol.
var valuePool = [][]byte{
	[]byte("v"), []byte(""), []byte("0"), []byte("42"), []byte("18446744073709551615"),
	[]byte("hello world"), {0x80, 0x01, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09},
	{0x80}, {0x00}, []byte("\r\n"), []byte("\n"), []byte("\r"), []byte("VALUE k 0 1\r\nx\r\nEND\r\n"),
	[]byte("delete k\r\n"), []byte("set z 0 0 100\r\n"), []byte("get k\r\n"), []byte("mg foo v T30\r\n"),
	[]byte("\r\nflush_all\r\n"), []byte("END\r\n"), []byte("ms k 1\r\nx\r\n"),
}

func (g *Gen) value() []byte {
	switch g.n(6) {
	case 0, 1, 2:
		return append([]byte(nil), pick(g, valuePool...)...)
	case 3: // random bytes, often starting with 0x80
		b := make([]byte, 1+g.n(40))
		for i := range b {
			b[i] = byte(g.n(256))
		}
		if g.chance(0.5) {
			b[0] = 0x80
		}
		return b
	case 4: // long: crosses 512-byte windows and segments
		n := 100 + g.n(700)
		b := make([]byte, n)
		for i := range b {
			b[i] = "abc\r\n \x80"[g.n(7)]
		}
		if g.chance(0.5) {
			copy(b[g.n(n-10):], "\ndelete k\r\n")
		}
		return b
	default: // a protocol-looking value padded
		return []byte(fmt.Sprintf("%s%s", pick(g, valuePool...), pick(g, valuePool...)))
	}
}

// Universe picks 4-8 keys with their initial contents.
func (g *Gen) Universe() []Key {
	n := 4 + g.n(5)
	perm := g.r.Perm(len(keyPool))
	var ks []Key
	for _, i := range perm[:n] {
		v := pick(g, []byte("v0"), []byte("42"), []byte("old value"), []byte{0x80, 'o', 'l', 'd'}, []byte("7"))
		ks = append(ks, Key{Key: keyPool[i], Flags: pick[uint32](g, 0, 1, 42, 0xffffffff), TTL: pick(g, 0, 0, 1000, 5000), Value: append([]byte(nil), v...)})
	}
	return ks
}

// key is a key of the universe, mostly; sometimes one outside it or an
// invalid one.
func (g *Gen) key() string {
	switch {
	case g.chance(0.85):
		return pick(g, g.keys...)
	case g.chance(0.5):
		return pick(g, keyPool...)
	default:
		return pick(g, strings.Repeat("K", 251), "", "bad key", "k\x00z", "k\tz")
	}
}

func (g *Gen) exptime() string {
	switch g.n(10) {
	case 0, 1, 2, 3:
		return pick(g, "0", "100", "1000", "3000", "9999")
	case 4:
		return pick(g, "-1", "-100", "+100", "0100", " 100")
	case 5: // above int32: memcached keeps the low 32 bits
		return pick(g, "4294967396", "4294968296", "2147483648", "-4294966296")
	case 6: // absolute times (past / far future)
		return pick(g, "2592001", "1000000000", "4102444800")
	case 7:
		return pick(g, "99999999999999999999", "1e3", "10x", "x", "0x10")
	default:
		return fmt.Sprint(30 + g.n(5000))
	}
}

func (g *Gen) flags() string {
	if g.chance(0.85) {
		return pick(g, "0", "1", "42", "4294967295")
	}
	return pick(g, "4294967296", "-1", "+0", "x", "00", "1.5")
}

// sep is the space between tokens: mostly one space.
func (g *Gen) sep() string {
	if g.chance(0.9) {
		return " "
	}
	return pick(g, "  ", "\t", " \t", "   ")
}

func (g *Gen) eol() string {
	if g.chance(0.85) {
		return "\r\n"
	}
	return pick(g, "\n", " \r\n", "\r\r\n", "\t\r\n")
}

// line joins tokens with separators, sometimes with leading spaces.
func (g *Gen) line(tok ...string) string {
	var b strings.Builder
	if g.chance(0.05) {
		b.WriteString(pick(g, " ", "  ", "\t"))
	}
	for i, t := range tok {
		if i > 0 {
			b.WriteString(g.sep())
		}
		b.WriteString(t)
	}
	return b.String() + g.eol()
}

func (g *Gen) noreply(tok []string) []string {
	if g.chance(0.2) {
		return append(tok, pick(g, "noreply", "noreply", "NOREPLY", "noreplyx"))
	}
	return tok
}

// storage builds set/add/replace/append/prepend/cas with its data block,
// valid or almost valid.
func (g *Gen) storage() string {
	verb := pick(g, "set", "set", "add", "replace", "append", "prepend", "cas")
	v := g.value()
	n := fmt.Sprint(len(v))
	if g.chance(0.12) {
		n = pick(g, fmt.Sprint(len(v)+1), fmt.Sprint(max(len(v)-1, 0)), n+"x", "+"+n, "-1", "4294967296", "2147483647", "0"+n, " "+n, "1048577")
	}
	tok := []string{verb, g.key(), g.flags(), g.exptime(), n}
	if verb == "cas" {
		tok = append(tok, pick(g, "1", "2", "3", "100", "abc", "18446744073709551616", "0"))
	}
	tok = g.noreply(tok)
	if g.chance(0.06) {
		tok = append(tok, pick(g, "x", "x y", "noreply x"))
	}
	if g.chance(0.04) { // missing tokens
		tok = tok[:2+g.n(len(tok)-2)]
	}
	data := string(v) + "\r\n"
	if g.chance(0.05) {
		data = string(v) + pick(g, "\n", "", "\r\nX", "xx\r\n")
	}
	return g.line(tok...) + data
}

func (g *Gen) metaFlags(cmd string) []string {
	all := map[string][]string{
		"mg": {"v", "f", "t", "c", "s", "k", "O123", "q", "h", "l", "u", "T30", "T0", "T-1", "N30", "N0", "R30", "E99", "T4294967396", "b", "v v"},
		"ms": {"T0", "T30", "T9999", "T-1", "F7", "F4294967295", "C1", "C999", "E5", "I", "q", "k", "O9", "c", "MA", "MP", "MS", "ME", "MR", "Ma", "MX", "N30", "b", "T4294967396"},
		"md": {"q", "I", "T30", "T0", "C1", "k", "O7", "x", "E2"},
		"ma": {"N30", "N0", "J13", "D5", "T30", "T0", "T-1", "MI", "M+", "MD", "M-", "q", "t", "c", "v", "C1", "k", "E3"},
	}[cmd]
	var fl []string
	for range g.n(4) {
		fl = append(fl, pick(g, all...))
	}
	return fl
}

// metaKey is a key for a meta command and its flags: sometimes the key in
// base64 with the b flag (memcached acts on the decoded key).
func (g *Gen) metaKey(cmd string) (string, []string) {
	fl := g.metaFlags(cmd)
	if g.chance(0.15) {
		return base64.StdEncoding.EncodeToString([]byte(g.key())), append(fl, "b")
	}
	return g.key(), fl
}

func (g *Gen) meta() string {
	switch pick(g, "mg", "mg", "ms", "ms", "md", "ma", "mn", "me") {
	case "mg":
		k, fl := g.metaKey("mg")
		return g.line(append([]string{"mg", k}, fl...)...)
	case "ms":
		v := g.value()
		n := fmt.Sprint(len(v))
		if g.chance(0.1) {
			n = pick(g, n+"x", "S"+n, "-1", fmt.Sprint(len(v)+1))
		}
		k, fl := g.metaKey("ms")
		return g.line(append([]string{"ms", k, n}, fl...)...) + string(v) + "\r\n"
	case "md":
		k, fl := g.metaKey("md")
		return g.line(append([]string{"md", k}, fl...)...)
	case "ma":
		k, fl := g.metaKey("ma")
		return g.line(append([]string{"ma", k}, fl...)...)
	case "me":
		return g.line("me", g.key())
	default:
		return "mn\r\n"
	}
}

// ASCIICommand is one command (with its data block, if any).
func (g *Gen) ASCIICommand() string {
	switch g.n(20) {
	case 0, 1, 2, 3, 4, 5:
		return g.storage()
	case 6:
		return g.line(g.noreply([]string{"delete", g.key()})...)
	case 7:
		return g.line(g.noreply([]string{pick(g, "incr", "decr"), g.key(), pick(g, "1", "5", "0", "18446744073709551615", "-1", "x", "18446744073709551616")})...)
	case 8:
		return g.line(g.noreply([]string{"touch", g.key(), g.exptime()})...)
	case 9:
		tok := []string{pick(g, "gat", "gats"), g.exptime()}
		for range 1 + g.n(3) {
			tok = append(tok, g.key())
		}
		return g.line(tok...)
	case 10:
		tok := []string{pick(g, "get", "gets")}
		for range 1 + g.n(3) {
			tok = append(tok, g.key())
		}
		return g.line(tok...)
	case 11, 12, 13, 14, 15:
		return g.meta()
	case 16:
		if g.chance(0.3) {
			return g.line(g.noreply(append([]string{"flush_all"}, pick(g, []string{}, []string{"0"}, []string{"100"}, []string{"-1"})...))...)
		}
		return g.line(pick(g, "version", "stats", "verbosity", "bogus", "GET", "sett"))
	case 17: // almost-valid lines from issue 13
		return pick(g,
			"set "+g.key()+" 0 0 10 x y\r\n",
			"set "+g.key()+" 0 0 10x\r\n0123456789\r\n",
			"set "+g.key()+" +0 0 12\r\ndelete "+g.key()+"\r\n",
			"cas "+g.key()+" 0 0 3 abc\r\nabc\r\n",
			"set "+strings.Repeat("K", 251)+" 0 0 1\r\nx\r\n",
			"set "+g.key()+" 0 0 -1\r\n",
		)
	case 18: // line without the data, or garbage
		return pick(g, "\r\n", "\n", " \r\n", "\x80\r\n", "delete\r\n", "set\r\n", string(g.value())+"\r\n")
	default:
		return g.meta()
	}
}

// BinaryCommand is one binary request.
func (g *Gen) BinaryCommand() []byte {
	key := g.key()
	opaque := uint32(g.n(1 << 16))
	ex32 := func() []byte {
		e := make([]byte, 4)
		binary.BigEndian.PutUint32(e, pick[uint32](g, 0, 100, 1000, 5000, 0xffffffff, 0x80000000, 2592001))
		return e
	}
	var b []byte
	switch g.n(14) {
	case 0, 1, 2:
		op := pick[byte](g, BinSet, BinAdd, BinReplace, BinSetQ, BinAddQ, BinReplaceQ)
		ex := make([]byte, 8)
		binary.BigEndian.PutUint32(ex, pick[uint32](g, 0, 1, 0xffffffff))
		copy(ex[4:], ex32())
		b = BinReq(op, key, ex, g.value(), opaque)
	case 3:
		b = BinReq(pick[byte](g, BinAppend, BinPrepend, BinAppendQ, BinPrependQ), key, nil, g.value(), opaque)
	case 4:
		b = BinReq(pick[byte](g, BinDelete, BinDeleteQ), key, nil, nil, opaque)
	case 5:
		ex := make([]byte, 20)
		binary.BigEndian.PutUint64(ex, uint64(g.n(10)))
		binary.BigEndian.PutUint64(ex[8:], uint64(g.n(100)))
		copy(ex[16:], ex32())
		b = BinReq(pick[byte](g, BinIncr, BinDecr, BinIncrQ, BinDecrQ), key, ex, nil, opaque)
	case 6:
		b = BinReq(pick[byte](g, BinTouch, BinGAT, BinGATQ, BinGATK, BinGATKQ), key, ex32(), nil, opaque)
	case 7, 8:
		b = BinReq(pick[byte](g, BinGet, BinGetQ, BinGetK, BinGetKQ), key, nil, nil, opaque)
	case 9:
		b = BinReq(pick[byte](g, BinNoop, BinVersion), "", nil, nil, opaque)
	case 10:
		if g.chance(0.3) {
			b = BinReq(pick[byte](g, BinFlush, BinFlushQ), "", pick(g, []byte(nil), ex32()), nil, opaque)
		} else {
			b = BinReq(BinNoop, "", nil, nil, opaque)
		}
	case 11: // a header whose lengths disagree
		b = BinReq(pick[byte](g, BinSet, BinDelete, BinGet), key, nil, g.value(), opaque)
		binary.BigEndian.PutUint32(b[8:], uint32(g.n(64)))
	case 12: // unknown opcode or bad magic
		b = BinReq(byte(0x40+g.n(0x40)), key, nil, nil, opaque)
		if g.chance(0.3) {
			b[0] = pick[byte](g, 0x81, 0x00, 'g')
		}
	default:
		b = BinReq(BinSet, key, make([]byte, 8), g.value(), opaque)
	}
	return b
}

// segment cuts a connection's commands into segments: all in one, whole
// commands per segment, or cuts anywhere (1-4, up to 64, up to 600 bytes).
func (g *Gen) segment(cmds [][]byte) [][]byte {
	var all []byte
	for _, c := range cmds {
		all = append(all, c...)
	}
	var segs [][]byte
	// mostly whole or at command boundaries: a cut command flushes the
	// cache, and a flushed cache hides stale values from the oracle
	mode := [...]int{0, 0, 0, 1, 1, 1, 2, 3, 3, 4}[g.n(10)]
	if mode == 1 {
		for len(cmds) > 0 {
			n := min(1+g.n(3), len(cmds))
			var seg []byte
			for _, c := range cmds[:n] {
				seg = append(seg, c...)
			}
			cmds = cmds[n:]
			for len(seg) > MaxSegment {
				segs = append(segs, seg[:MaxSegment])
				seg = seg[MaxSegment:]
			}
			segs = append(segs, seg)
		}
		return segs
	}
	for b := all; len(b) > 0; {
		var n int
		switch mode {
		case 0:
			n = len(b)
		case 2:
			n = 1 + g.n(4)
		case 3:
			n = 1 + g.n(64)
		default:
			n = 1 + g.n(600)
		}
		n = min(n, len(b), MaxSegment)
		segs = append(segs, b[:n])
		b = b[n:]
	}
	return segs
}

// udpDatagram is a frame header (mostly a single-datagram request) and a
// body of ASCII or binary commands, or noise.
func (g *Gen) udpDatagram() []byte {
	var hdr []byte
	id := uint16(g.n(1 << 16))
	if g.chance(0.5) { // request ids reused within the stream
		id = uint16(1 + g.n(3))
	}
	switch g.n(10) {
	case 0:
		hdr = Frame(id, uint16(g.n(5)), 1) // memcached ignores the sequence number
	case 1:
		hdr = Frame(id, 0, pick[uint16](g, 0, 2, 0x100))
	case 2:
		hdr = Frame(id, 0, 1)
		hdr[6], hdr[7] = byte(g.n(256)), byte(g.n(256))
	default:
		hdr = Frame(id, 0, 1)
	}
	var body []byte
	switch g.n(10) {
	case 0, 1, 2:
		tok := []string{pick(g, "get", "gets")}
		for range 1 + g.n(2) {
			tok = append(tok, g.key())
		}
		body = []byte(g.line(tok...))
	case 3, 4, 5, 6:
		for range 1 + g.n(3) {
			body = append(body, g.ASCIICommand()...)
		}
	case 7, 8:
		for range 1 + g.n(2) {
			body = append(body, g.BinaryCommand()...)
		}
	default:
		body = g.value()
	}
	d := append(hdr, body...)
	if len(d) > MaxSegment {
		d = d[:MaxSegment]
	}
	return d
}

// Stream generates one stream: 1-2 TCP connections (each ASCII or binary,
// rarely switching mid-stream), UDP datagrams, interleaved.
func (g *Gen) Stream() Stream {
	s := Stream{Keys: g.Universe()}
	g.keys = nil
	for _, k := range s.Keys {
		g.keys = append(g.keys, k.Key)
	}
	nconn := 1 + g.n(2)
	var queues [][][]byte
	for range nconn {
		s.Conns = append(s.Conns, Conn{V6: g.chance(0.3), NoSYN: g.chance(0.1)})
		binaryConn := g.chance(0.25)
		var cmds [][]byte
		for range 1 + g.n(8) {
			if binaryConn != g.chance(0.03) { // a few commands of the other protocol
				cmds = append(cmds, g.BinaryCommand())
			} else {
				cmds = append(cmds, []byte(g.ASCIICommand()))
			}
		}
		queues = append(queues, g.segment(cmds))
	}
	var udp [][]byte
	if g.chance(0.6) {
		for range 1 + g.n(4) {
			udp = append(udp, g.udpDatagram())
		}
	}
	// interleave, keeping each connection's order
	for {
		var live []int
		for i, q := range queues {
			if len(q) > 0 {
				live = append(live, i)
			}
		}
		if len(udp) > 0 {
			live = append(live, UDP)
		}
		if len(live) == 0 {
			break
		}
		c := pick(g, live...)
		e := Event{Conn: c, Hold: g.chance(0.1)}
		if g.chance(0.1) {
			e.Wrap = pick(g, Wraps[1:]...)
		}
		if c == UDP {
			e.V6, e.Data = g.chance(0.3), udp[0]
			udp = udp[1:]
		} else {
			e.Data = queues[c][0]
			queues[c] = queues[c][1:]
			if n := len(s.Events); n > 0 && s.Events[n-1].Hold && g.chance(0.3) {
				e.Ack = 1 + g.n(64) // acknowledge into held replies
			}
		}
		s.Events = append(s.Events, e)
	}
	// a connection XDP joined late: its first segment went by before
	seen := map[int]bool{}
	for i, e := range s.Events {
		if e.Conn >= 0 && !seen[e.Conn] {
			seen[e.Conn] = true
			if s.Conns[e.Conn].NoSYN && g.chance(0.5) {
				s.Events[i].Unseen = true
			}
		}
	}
	return s
}
