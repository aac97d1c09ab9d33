package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpcache/xdpcache/internal/difftest"
)

// The differential harness (issue 13): every stream runs against a fresh
// memcached and, segment for segment, through the XDP program (and
// memcached's replies through the TC program). memcached is the oracle:
//
//   - a reply XDP builds (XDP_TX) is byte-identical to memcached's own reply
//     to the same request at that point of the stream;
//   - after the stream, a key XDP still serves is served exactly as
//     memcached holds it (value, flags, CAS, existence) and expires no later
//     than memcached's item (TTL read back with mg ... t);
//   - after a refill (a GET through XDP, memcached's reply through TC) the
//     same holds, which catches expiry records the stream left wrong.
//
// Needless invalidations and flushes are counted, not failed.

// diffSettings: no write hold (a fill right after a mutation is legitimate
// here, everything is sequential), a max age far above every TTL used.
func diffSettings() Settings {
	s := DefaultSettings()
	s.Entries = 1024
	s.WriteHold = 0
	s.Seed = 0x5eed
	s.RequireLocal = false
	s.MaxAge = 3 * time.Hour
	return s
}

// The programs are loaded once per test binary (the verifier takes about a
// second) and every map they keep state in is emptied between streams.
var diffLoaded *Cache

func diffCache(t testing.TB) *Cache {
	t.Helper()
	if diffLoaded == nil {
		c, err := Load(diffSettings())
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		for _, p := range []string{"0.0.0.0/0", "::/0"} {
			if err := c.Allow(netip.MustParsePrefix(p), 0); err != nil {
				t.Fatal(err)
			}
		}
		diffLoaded = c
	}
	c := diffLoaded
	maps, err := c.pins()
	if err != nil {
		t.Fatal(err)
	}
	for name, mp := range maps {
		m := *mp
		switch name {
		case "config_map", "allow4_map", "allow6_map", "local_map":
			continue
		}
		if err := diffEmpty(m); err != nil {
			t.Fatalf("reset %s: %v", name, err)
		}
	}
	return c
}

// diffEmpty zeroes an array map's elements and deletes a hash map's keys.
func diffEmpty(m *ebpf.Map) error {
	switch m.Type() {
	case ebpf.Array:
		zero := make([]byte, m.ValueSize())
		for i := uint32(0); i < m.MaxEntries(); i++ {
			if err := m.Put(i, zero); err != nil {
				return err
			}
		}
	case ebpf.PerCPUArray:
		zero := make([][]byte, ebpf.MustPossibleCPU())
		for i := range zero {
			zero[i] = make([]byte, m.ValueSize())
		}
		for i := uint32(0); i < m.MaxEntries(); i++ {
			if err := m.Put(i, zero); err != nil {
				return err
			}
		}
	default:
		var keys [][]byte
		k := make([]byte, m.KeySize())
		var v []byte // ignored (NextKey walk)
		_ = v
		for err := m.NextKey(nil, &k); err == nil; err = m.NextKey(keys[len(keys)-1], &k) {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return err
			}
		}
	}
	return nil
}

// diffResult is one run's verdict and availability figures.
type diffResult struct {
	failures  []string
	trace     []string // every frame through XDP and TC, in order (printed with a failure)
	events    int
	flushed   bool // the global epoch moved during the stream
	needless  int  // keys memcached did not change that XDP no longer serves
	served    int  // keys XDP still served after the stream
	changed   int  // keys memcached changed
	refilled  int
	txInside  int // stream GETs XDP answered
	notCached int // universe keys the set-up could not cache (bucket collision, size)
}

func (r *diffResult) failf(format string, a ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, a...))
}

// recTB records Errorf calls (the packet decoders report through it) as
// failures of the run instead of failing the test at once.
type recTB struct {
	testing.TB
	r *diffResult
}

func (t recTB) Errorf(format string, a ...any) { t.r.failf(format, a...) }
func (t recTB) Error(a ...any)                 { t.r.failf("%s", fmt.Sprint(a...)) }

// diffConn is the XDP side of one TCP connection.
type diffConn struct {
	f              flow
	isn, srvISN    uint32
	sent, received uint32 // payload bytes client->server and server->client so far
	started        bool
	marks          []uint32 // server stream offsets the client acknowledged early: segments start there
}

type diffRunner struct {
	t      testing.TB
	rt     recTB
	c      *Cache
	m      *mcProc
	mc     *mcClient
	conns  []*diffConn
	udp4   flow
	udp6   flow
	lastV6 bool // family of the last UDP request (memcached's UDP replies go back there)
	r      *diffResult
	reqID  uint16
	// replies read from memcached and not yet through TC
	pending []diffReply
	// the expiry epoch when the stream began
	expiryEpoch0 uint64
}

// diffReply is a TCP reply chunk of a connection, or a UDP datagram.
type diffReply struct {
	conn  int // difftest.UDP for a datagram
	v6    bool
	vlans []uint16
	data  []byte
}

// wrapVLANs are the tags an event's encapsulation puts on its frames.
func wrapVLANs(wrap string) []uint16 {
	if wrap == "bigopts" {
		return []uint16{7, 300} // QinQ too: headers past 128 bytes
	}
	switch wrap {
	case "vlan":
		return []uint16{7}
	case "qinq":
		return []uint16{7, 300}
	}
	return nil
}

// wrapped builds the frames of flow f with an event's encapsulation: one
// frame, or two fragments for "frag".
func (d *diffRunner) wrapped(f flow, wrap string, toServer bool, l4 gopacket.SerializableLayer, payload []byte) [][]byte {
	f.vlans = wrapVLANs(wrap)
	if f.client.Is4() {
		switch wrap {
		case "ipopts":
			f.ipOptions = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}} // router alert
		case "bigopts":
			f.ipOptions = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
			for range 36 {
				f.ipOptions = append(f.ipOptions, layers.IPv4Option{OptionType: 1}) // NOP
			}
		}
	}
	pkt := f.build(d.t, toServer, l4, payload)
	l3 := 14 + 4*len(f.vlans)
	if f.client.Is6() {
		switch wrap {
		case "ipopts":
			pkt = insertV6DestOpts(pkt, l3, 8)
		case "bigopts":
			pkt = insertV6DestOpts(pkt, l3, 88)
		}
	}
	if wrap == "frag" {
		if f.client.Is4() {
			return frag4(pkt, l3)
		}
		return frag6(pkt, l3)
	}
	return [][]byte{pkt}
}

// insertV6DestOpts puts a destination-options header of n bytes (a
// multiple of 8) after the IPv6 header at l3.
func insertV6DestOpts(pkt []byte, l3, n int) []byte {
	out := append([]byte{}, pkt[:l3+40]...)
	next := out[l3+6]
	out[l3+6] = 60
	binary.BigEndian.PutUint16(out[l3+4:], binary.BigEndian.Uint16(out[l3+4:])+uint16(n))
	out = append(out, next, byte(n/8-1), 1, byte(n-4)) // PadN filling the header
	out = append(out, make([]byte, n-4)...)
	return append(out, pkt[l3+40:]...)
}

// frag4 cuts an IPv4 frame in two fragments, the first carrying 8 bytes.
func frag4(pkt []byte, l3 int) [][]byte {
	ihl := int(pkt[l3]&0xf) * 4
	data := pkt[l3+ihl:]
	if len(data) <= 8 {
		return [][]byte{pkt}
	}
	mk := func(part []byte, off int, more bool) []byte {
		b := append(append([]byte{}, pkt[:l3+ihl]...), part...)
		ip := b[l3:]
		binary.BigEndian.PutUint16(ip[2:], uint16(ihl+len(part)))
		fo := uint16(off / 8)
		if more {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(ip[6:], fo)
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^onesSum(ip[:ihl]))
		return b
	}
	return [][]byte{mk(data[:8], 0, true), mk(data[8:], 8, false)}
}

// frag6 cuts an IPv6 frame in two fragments (fragment header), the first
// carrying 8 bytes of what follows the IPv6 header.
func frag6(pkt []byte, l3 int) [][]byte {
	data := pkt[l3+40:]
	if len(data) <= 8 {
		return [][]byte{pkt}
	}
	next := pkt[l3+6]
	mk := func(part []byte, off int, more bool) []byte {
		b := append([]byte{}, pkt[:l3+40]...)
		b[l3+6] = 44
		binary.BigEndian.PutUint16(b[l3+4:], uint16(8+len(part)))
		fo := uint16(off/8) << 3
		if more {
			fo |= 1
		}
		fh := []byte{next, 0, byte(fo >> 8), byte(fo), 0, 0, 0x13, 0x13}
		return append(append(b, fh...), part...)
	}
	return [][]byte{mk(data[:8], 0, true), mk(data[8:], 8, false)}
}

// runDiff runs one stream. Infrastructure trouble (memcached not settling,
// BPF_PROG_TEST_RUN errors) fails the test; disagreements go to the result.
func runDiff(t testing.TB, s difftest.Stream) *diffResult {
	t.Helper()
	r := &diffResult{}
	d := &diffRunner{t: t, rt: recTB{TB: t, r: r}, r: r, reqID: 1000}
	d.m = startMC(t)
	defer d.m.stop()
	d.c = diffCache(t)
	d.udp4 = v4flow()
	d.udp4.cport = 41000
	d.udp6 = v6flow()
	d.udp6.cport = 41000
	mc, err := d.m.client(len(s.Conns) + 1) // the last one carries difftest.Behind events

	if err != nil {
		t.Fatalf("connect to memcached: %v", err)
	}
	defer mc.close()
	d.mc = mc
	for i, cn := range s.Conns {
		f := v4flow()
		if cn.V6 {
			f = v6flow()
		}
		f.cport = uint16(40000 + i)
		d.conns = append(d.conns, &diffConn{f: f, isn: 0x10000000 * uint32(i+1), srvISN: 0x70000000 + 0x1000000*uint32(i), started: cn.NoSYN})
	}

	// Segments XDP never saw were sent before it was attached, when the
	// cache was still empty: they reach memcached before the set-up.
	for i, e := range s.Events {
		if e.Conn != difftest.UDP && e.Unseen {
			r.events++
			d.event(i, e)
		}
	}
	before := d.setup(s.Keys)
	cs, _, err := d.c.Config()
	if err != nil {
		d.t.Fatal(err)
	}
	inst := uint32(cs.Ports[0]) // the one memcached instance of a stream
	epoch0 := d.epoch(inst)
	d.expiryEpoch0 = d.expiryEpoch()
	for i, e := range s.Events {
		if e.Conn != difftest.UDP && e.Unseen {
			continue
		}
		r.events++
		d.event(i, e)
	}
	d.settle("", false)
	flushed := d.epoch(inst) != epoch0
	r.flushed = flushed
	d.check(s.Keys, before, flushed)
	return r
}

func (d *diffRunner) nextID() uint16 { d.reqID++; return d.reqID }

// expiryEpoch moves when XDP flushed for a mutation it could not read: the
// TTLs that mutation changed are unknown to it, and entries filled after it
// are bounded by max_age instead (docs/consistency.md).
func (d *diffRunner) expiryEpoch() uint64 {
	var g xdpGlobalState
	if err := d.c.Maps.GlobalMap.Lookup(uint32(0), &g); err != nil {
		d.t.Fatalf("read global state: %v", err)
	}
	return g.ExpiryEpoch
}

// epoch is the epoch entries of instance inst are filled under.
func (d *diffRunner) epoch(inst uint32) uint64 {
	var g xdpGlobalState
	if err := d.c.Maps.GlobalMap.Lookup(uint32(0), &g); err != nil {
		d.t.Fatalf("read global state: %v", err)
	}
	return instEpochOf(&g, inst)
}

func (d *diffRunner) xdp(pkt []byte) (uint32, []byte) {
	ret, out, err := runProg(d.c.XDP, pkt)
	if err != nil {
		d.t.Fatalf("XDP test run: %v", err)
	}
	d.traceFrame("xdp", pkt, fmt.Sprintf("verdict %d", ret))
	if ret == xdpPass && !bytes.Equal(out, pkt) {
		d.r.failf("XDP_PASS but the packet changed")
	}
	return ret, out
}

func (d *diffRunner) tc(pkt []byte) {
	ret, out, err := runProg(d.c.TC, pkt)
	if err != nil {
		d.t.Fatalf("TC test run: %v", err)
	}
	d.traceFrame("tc ", pkt, fmt.Sprintf("fills %d", d.fills()))
	if ret != tcOK || !bytes.Equal(out, pkt) {
		d.r.failf("TC returned %d or changed a reply", ret)
	}
}

// traceFrame notes a frame through a program: a timing-dependent failure
// may not come back in a replay, so a failing stream's report carries the
// frames the programs saw (ports, sequence numbers, the payload's start)
// with their outcome and the clock.
func (d *diffRunner) traceFrame(prog string, pkt []byte, outcome string) {
	p := gopacket.NewPacket(pkt, layers.LayerTypeEthernet, gopacket.Lazy)
	l4 := "?"
	if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		l4 = fmt.Sprintf("udp %d>%d", u.SrcPort, u.DstPort)
	} else if t, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		l4 = fmt.Sprintf("tcp %d>%d seq %d", t.SrcPort, t.DstPort, t.Seq)
	}
	var pl []byte
	if a := p.ApplicationLayer(); a != nil {
		pl = a.Payload()
	}
	now, _ := clockMonotonic()
	d.r.trace = append(d.r.trace, fmt.Sprintf("%d.%06d %s %s %d B %q: %s", now/1e9, now%1e9/1e3, prog, l4, len(pl), pl[:min(len(pl), 72)], outcome))
}

// fills is the cache's fill count so far.
func (d *diffRunner) fills() uint64 {
	st, err := d.c.Stats()
	if err != nil {
		d.t.Fatalf("stats: %v", err)
	}
	return st.Get(StatFills)
}

// settle waits for memcached (barrier) and queues what it sent, tagged
// with the encapsulation of the event that caused it; unless hold, the
// queue then goes through TC.
func (d *diffRunner) settle(wrap string, hold bool) {
	if err := d.mc.barrier(); err != nil {
		d.t.Fatalf("%v", err)
	}
	vl := wrapVLANs(wrap)
	for i, rep := range d.mc.replies {
		if len(rep) > 0 && i < len(d.conns) {
			d.pending = append(d.pending, diffReply{conn: i, vlans: vl, data: rep})
		}
		d.mc.replies[i] = nil
	}
	for _, dg := range d.mc.dgrams {
		d.pending = append(d.pending, diffReply{conn: difftest.UDP, v6: d.lastV6, vlans: vl, data: dg})
	}
	d.mc.dgrams = nil
	if !hold {
		d.handOn()
	}
}

// handOn passes the queued replies through TC as they would leave the host:
// TCP replies as the server's next segments of their connection, datagrams
// to the UDP client.
func (d *diffRunner) handOn() {
	for _, p := range d.pending {
		if p.conn == difftest.UDP {
			f := d.udp4
			if p.v6 {
				f = d.udp6
			}
			f.vlans = p.vlans
			if len(p.data) <= difftest.MaxSegment+100 {
				d.tc(f.udpToClient(d.t, p.data))
			}
			continue
		}
		cn := d.conns[p.conn]
		f := cn.f
		f.vlans = p.vlans
		for rep := p.data; len(rep) > 0; {
			n := min(len(rep), difftest.MaxSegment)
			for _, m := range cn.marks {
				if m > cn.received && m-cn.received < uint32(n) {
					n = int(m - cn.received)
				}
			}
			d.tc(f.build(d.t, false, &layers.TCP{SrcPort: layers.TCPPort(f.sport), DstPort: layers.TCPPort(f.cport),
				Seq: cn.srvISN + 1 + cn.received, Ack: cn.isn + 1 + cn.sent, ACK: true, PSH: true, Window: 65535}, rep[:n]))
			cn.received += uint32(n)
			rep = rep[n:]
		}
		var keep []uint32
		for _, m := range cn.marks {
			if m > cn.received {
				keep = append(keep, m)
			}
		}
		cn.marks = keep
	}
	d.pending = nil
}

// tcpSegment is the client's next segment on a connection; the first one is
// preceded by the handshake (SYN through XDP, SYN-ACK through TC).
func (d *diffRunner) tcpSegment(i int, data []byte, wrap string, early int) {
	cn := d.conns[i]
	ack := cn.srvISN + 1 + cn.received
	if early > 0 {
		ack += uint32(early)
		cn.marks = append(cn.marks, cn.received+uint32(early))
	}
	if !cn.started {
		cn.started = true
		d.xdp(cn.f.build(d.t, true, &layers.TCP{SrcPort: layers.TCPPort(cn.f.cport), DstPort: layers.TCPPort(cn.f.sport),
			Seq: cn.isn, SYN: true, Window: 65535}, nil))
		d.tc(cn.f.build(d.t, false, &layers.TCP{SrcPort: layers.TCPPort(cn.f.sport), DstPort: layers.TCPPort(cn.f.cport),
			Seq: cn.srvISN, Ack: cn.isn + 1, SYN: true, ACK: true, Window: 65535}, nil))
	}
	for _, pkt := range d.wrapped(cn.f, wrap, true, &layers.TCP{SrcPort: layers.TCPPort(cn.f.cport), DstPort: layers.TCPPort(cn.f.sport),
		Seq: cn.isn + 1 + cn.sent, Ack: ack, ACK: true, PSH: true, Window: 65535}, data) {
		if ret, _ := d.xdp(pkt); ret != xdpPass {
			d.r.failf("TCP segment %q: verdict %d, want XDP_PASS", data, ret)
		}
	}
	cn.sent += uint32(len(data))
	d.mc.sendTCP(i, data)
}

// event runs one event on both sides.
func (d *diffRunner) event(i int, e difftest.Event) {
	if e.Conn == difftest.Behind {
		d.mc.sendTCP(len(d.conns), e.Data)
		d.settle("", e.Hold)
		return
	}
	if e.Conn != difftest.UDP && e.Unseen {
		d.conns[e.Conn].sent += uint32(len(e.Data))
		d.mc.sendTCP(e.Conn, e.Data)
		d.settle(e.Wrap, e.Hold)
		return
	}
	if e.Conn != difftest.UDP {
		d.tcpSegment(e.Conn, e.Data, e.Wrap, e.Ack)
		d.settle(e.Wrap, e.Hold)
		return
	}
	f := d.udp4
	if e.V6 {
		f = d.udp6
	}
	frames := d.wrapped(f, e.Wrap, true, &layers.UDP{SrcPort: layers.UDPPort(f.cport), DstPort: layers.UDPPort(f.sport)}, e.Data)
	if len(frames) > 1 { // fragments: never answered
		for _, pkt := range frames {
			if ret, _ := d.xdp(pkt); ret != xdpPass {
				d.r.failf("event %d: fragment of %q got verdict %d", i, e.Data, ret)
			}
		}
		d.lastV6 = e.V6
		if err := d.mc.sendUDP(e.Data); err != nil {
			d.t.Fatalf("UDP write: %v", err)
		}
		d.settle(e.Wrap, e.Hold)
		return
	}
	ret, out := d.xdp(frames[0])
	switch ret {
	case xdpPass:
		d.lastV6 = e.V6
		if err := d.mc.sendUDP(e.Data); err != nil {
			d.t.Fatalf("UDP write: %v", err)
		}
		d.settle(e.Wrap, e.Hold)
	case xdpTX:
		// memcached never sees this datagram; its answer to the same
		// request now is what XDP had to send.
		d.r.txInside++
		d.compareReply(fmt.Sprintf("event %d (%q)", i, e.Data), f, e.Wrap, e.Data, out)
		d.handOn()
	default:
		d.r.failf("event %d: UDP datagram %q got verdict %d", i, e.Data, ret)
	}
}

// compareReply checks an XDP_TX frame against memcached's reply to req (a
// UDP payload, frame header first), asked over a fresh TCP connection: the
// frame must be the request's turned around (same tags, lengths that add
// up) and the payload memcached's, byte for byte.
func (d *diffRunner) compareReply(what string, f flow, wrap string, req, out []byte) {
	l3 := 14 + 4*len(wrapVLANs(wrap))
	if len(out) < l3+48 {
		d.r.failf("%s: XDP reply of %d bytes", what, len(out))
		return
	}
	if vl := wrapVLANs(wrap); len(vl) > 0 {
		for j, id := range vl {
			if got := binary.BigEndian.Uint16(out[14+4*j:]) & 0xfff; got != id {
				d.r.failf("%s: reply VLAN tag %d is %d, request had %d", what, j, got, id)
				return
			}
		}
	}
	if f.client.Is6() {
		if pl := int(binary.BigEndian.Uint16(out[l3+4:])); pl != len(out)-l3-40 {
			d.r.failf("%s: reply IPv6 payload length %d, the frame carries %d bytes after the IPv6 header", what, pl, len(out)-l3-40)
			return
		}
	} else if tl := int(binary.BigEndian.Uint16(out[l3+2:])); tl != len(out)-l3 {
		d.r.failf("%s: reply IPv4 total length %d, the frame carries %d bytes", what, tl, len(out)-l3)
		return
	}
	f.vlans = wrapVLANs(wrap)
	rep := decodeReply(d.rt, f, out)
	body := req[8:]
	want, err := d.m.oneShot(body, len(body) > 0 && body[0] == 0x80)
	if err != nil {
		d.r.failf("%s: asking memcached: %v", what, err)
		return
	}
	wantHdr := append(append([]byte(nil), req[:2]...), 0, 0, 0, 1, 0, 0)
	if len(rep.payload) < 8 || !bytes.Equal(rep.payload[:8], wantHdr) {
		d.r.failf("%s: XDP reply frame header %x, want %x", what, rep.payload[:min(8, len(rep.payload))], wantHdr)
		return
	}
	if got := rep.payload[8:]; !bytes.Equal(got, want) {
		d.r.failf("%s: XDP answered %q, memcached answers %q", what, got, want)
	}
}

// setup stores the universe in memcached, shows XDP the same sets (so it
// knows the expiry), and fills the cache through the miss path with
// memcached's real replies. Returns memcached's state of each key.
func (d *diffRunner) setup(keys []difftest.Key) []mcItem {
	sf := v4flow()
	sf.cport = 39999
	seq := uint32(1)
	d.xdp(sf.tcpSyn(d.t, seq-1, nil)) // a connection XDP follows from its start
	for _, k := range keys {
		cmd := []byte(fmt.Sprintf("set %s %d %d %d\r\n", k.Key, k.Flags, k.TTL, len(k.Value)))
		cmd = append(append(cmd, k.Value...), "\r\n"...)
		d.xdp(sf.tcpToServer(d.t, seq, cmd))
		seq += uint32(len(cmd))
		if out, err := d.m.ctlCmd(string(cmd), "STORED\r\n", "SERVER_ERROR object too large for cache\r\n", "CLIENT_ERROR bad command line format\r\n"); err != nil || string(out) != "STORED\r\n" {
			d.t.Fatalf("set-up: %q -> %q %v", cmd, out, err)
		}
	}
	var before []mcItem
	for _, k := range keys {
		if !d.fill(k.Key) {
			d.r.notCached++
			if testing.Verbose() {
				st, _ := d.c.Stats()
				d.t.Logf("set-up: %q not cached: %v", k.Key, st.Named())
			}
		}
		it, err := d.m.read(k.Key)
		if err != nil {
			d.t.Fatalf("read %q: %v", k.Key, err)
		}
		before = append(before, it)
	}
	return before
}

// fill asks for key through XDP (gets over UDP); on a miss the request goes
// to memcached and its reply through TC. Reports whether XDP then serves it.
func (d *diffRunner) fill(key string) bool {
	req := append(difftest.Frame(d.nextID(), 0, 1), "gets "+key+"\r\n"...)
	ret, _ := d.xdp(d.udp4.udpToServer(d.t, req))
	if ret != xdpPass {
		return ret == xdpTX
	}
	d.lastV6 = false
	if err := d.mc.sendUDP(req); err != nil {
		d.t.Fatalf("UDP write: %v", err)
	}
	d.settle("", false)
	ret, _ = d.xdp(d.udp4.udpToServer(d.t, append(difftest.Frame(d.nextID(), 0, 1), "gets "+key+"\r\n"...)))
	return ret == xdpTX
}

// bucketExpiry returns how long XDP could still serve key (a way of its set
// holds it, valid, in the current epoch; the longest of both ways: once
// way 0's copy expires, readers go on to way 1's), or -1.
func (d *diffRunner) bucketExpiry(key string) time.Duration {
	s, _, err := d.c.Config()
	if err != nil {
		d.t.Fatal(err)
	}
	h := KeyHash([]byte(key), InstanceSeed(s.Seed, uint32(s.Ports[0])))
	now, _ := clockMonotonic()
	longest := time.Duration(-1)
	for _, idx := range SetWays(setOfHash(h, s.Entries)) {
		var it xdpItem
		if err := d.c.Maps.CacheMap.Lookup(idx, &it); err != nil {
			d.t.Fatal(err)
		}
		if it.Valid == 0 || it.Busy != 0 || it.Hash != h || int(it.KeyLen) != len(key) ||
			!bytes.Equal(it.B.Key[:len(key)], []byte(key)) || it.Epoch != d.epoch(uint32(s.Ports[0])) ||
			it.ExpiresNs <= uint64(now) {
			continue
		}
		longest = max(longest, time.Duration(it.ExpiresNs-uint64(now)))
	}
	return longest
}

// ttlSlack covers memcached's clock, which ticks once a second, and the
// time the check takes.
const ttlSlack = 2 * time.Second

func sameItem(a, b mcItem) bool {
	if a.exists != b.exists {
		return false
	}
	if !a.exists {
		return true
	}
	dt := a.ttl - b.ttl
	if (a.ttl < 0) != (b.ttl < 0) || dt > 3 || dt < -3 {
		return false
	}
	return bytes.Equal(a.value, b.value) && a.flags == b.flags && a.cas == b.cas
}

// check is the oracle after the stream.
func (d *diffRunner) check(keys []difftest.Key, before []mcItem, flushed bool) {
	for i, k := range keys {
		after, err := d.m.read(k.Key)
		if err != nil {
			d.t.Fatalf("read %q: %v", k.Key, err)
		}
		changed := !sameItem(before[i], after)
		if changed {
			d.r.changed++
		}
		if d.checkServed(k.Key, after, "after the stream") {
			d.r.served++
		} else if !changed && !flushed && before[i].exists {
			d.r.needless++
		}
		// refill from memcached's answer: the expiry XDP gives it must not
		// outlast memcached's
		if d.fill(k.Key) {
			d.r.refilled++
		}
		d.checkServed(k.Key, after, "after a refill")
	}
}

// checkServed asks XDP for key (get, then gets: an entry filled from a get
// reply has no CAS and answers only the former): if it answers, the answer
// must be memcached's, and the entry must not outlive memcached's item.
// Reports whether XDP answered.
func (d *diffRunner) checkServed(key string, it mcItem, when string) bool {
	exp := d.bucketExpiry(key)
	if exp >= 0 && it.exists && it.ttl >= 0 {
		limit := time.Duration(it.ttl)*time.Second + ttlSlack
		if d.expiryEpoch() != d.expiryEpoch0 {
			limit = max(limit, diffSettings().MaxAge+ttlSlack)
		}
		if exp > limit {
			d.r.failf("%s: XDP may serve %q for %.0fs more, memcached expires it in %ds (%s)", when, key, exp.Seconds(), it.ttl, it)
		}
	}
	served := false
	for _, cmd := range []string{"get", "gets"} {
		req := append(difftest.Frame(d.nextID(), 0, 1), cmd+" "+key+"\r\n"...)
		ret, out := d.xdp(d.udp4.udpToServer(d.t, req))
		if ret == xdpTX {
			d.compareReply(fmt.Sprintf("%s: %s %q", when, cmd, key), d.udp4, "", req, out)
			served = true
		}
	}
	return served
}

// diffFailure is a printable report of a failing stream.
func diffReport(s difftest.Stream, r *diffResult) string {
	var b strings.Builder
	for _, f := range r.failures {
		b.WriteString("  - " + f + "\n")
	}
	b.WriteString("stream:\n")
	b.WriteString(s.String())
	b.WriteString("replay (paste into diffRegressions):\n")
	b.WriteString(s.GoString())
	b.WriteString("\n")
	return b.String()
}
