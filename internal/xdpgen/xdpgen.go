// Package xdpgen is a benchmark instrument, not part of the cache: a request
// generator that runs in the kernel. Its XDP program (c/req_gen.c), run with
// BPF_PROG_TEST_RUN in live-frames mode on a load generator's interface,
// turns a template frame into UDP GETs to memcached, one key of a
// precomputed sequence each, and transmits them out of that interface with
// XDP_TX: no socket, skb or syscall per request.
package xdpgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/bpf"
)

// Layout of the template frame (the offsets req_gen.c writes at).
const (
	sportOff = 34 // UDP source port
	idOff    = 42 // memcached frame header's request id
	keyOff   = 54 // the key, after "get "

	// MaxKey is the longest key; key lengths are multiples of 8.
	MaxKey = 64
	// MaxPorts is how many source ports requests may cycle through.
	MaxPorts = 256
	// MaxKeys is the most distinct keys (64 bytes each in the map).
	MaxKeys = 1 << 20
	// MaxSequence is the longest sequence of key indexes (4 bytes each).
	MaxSequence = 1 << 24
)

// Flow says where the requests come from and go to.
type Flow struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src            netip.Addr // the load generator's IPv4 address
	SrcPort        uint16     // first UDP source port
	Ports          int        // requests cycle through SrcPort .. SrcPort+Ports-1 (0 means 1)
	Dst            netip.AddrPort
}

// Generator holds the loaded program and its template frame.
type Generator struct {
	objs     xdpgenObjects
	template []byte
	ncpu     int
}

// Load builds the template for flow, loads the program and fills its keys
// and sequence: request i asks for keys[seq[i % len(seq)]] (nil seq: for
// keys[i % len(keys)]). Keys must all have the same length, a multiple of 8
// up to MaxKey, so every frame has one length.
func Load(flow Flow, keys []string, seq []uint32) (*Generator, error) {
	if flow.Ports == 0 {
		flow.Ports = 1
	}
	switch {
	case len(flow.SrcMAC) != 6 || len(flow.DstMAC) != 6:
		return nil, fmt.Errorf("request generator: MAC addresses %v, %v: need 6 bytes each", flow.SrcMAC, flow.DstMAC)
	case !flow.Src.Is4() || !flow.Dst.Addr().Is4():
		return nil, fmt.Errorf("request generator: %v -> %v: IPv4 only", flow.Src, flow.Dst.Addr())
	case flow.SrcPort == 0 || flow.Dst.Port() == 0:
		return nil, errors.New("request generator: port 0")
	case flow.Ports < 0 || flow.Ports > MaxPorts || int(flow.SrcPort)+flow.Ports-1 > 0xffff:
		return nil, fmt.Errorf("request generator: %d source ports from %d: 1..%d ports, none above 65535", flow.Ports, flow.SrcPort, MaxPorts)
	case len(keys) == 0 || len(keys) > MaxKeys:
		return nil, fmt.Errorf("request generator: %d keys: 1..%d", len(keys), MaxKeys)
	case len(seq) > MaxSequence:
		return nil, fmt.Errorf("request generator: sequence of %d: at most %d", len(seq), MaxSequence)
	}
	if seq == nil {
		seq = make([]uint32, len(keys))
		for i := range seq {
			seq[i] = uint32(i)
		}
	}
	if len(seq) == 0 {
		return nil, errors.New("request generator: empty sequence")
	}
	for i, k := range seq {
		if int(k) >= len(keys) {
			return nil, fmt.Errorf("request generator: sequence entry %d names key %d of %d", i, k, len(keys))
		}
	}
	klen := len(keys[0])
	if klen == 0 || klen%8 != 0 || klen > MaxKey {
		return nil, fmt.Errorf("request generator: key length %d: a multiple of 8, at most %d", klen, MaxKey)
	}
	for i, k := range keys {
		if len(k) != klen {
			return nil, fmt.Errorf("request generator: key %d (%q) is %d bytes, key 0 is %d: all keys need one length", i, k, len(k), klen)
		}
	}
	spec, err := loadXdpgen()
	if err != nil {
		return nil, err
	}
	spec.Maps[xdpgenMapGenKeys].MaxEntries = uint32(len(keys))
	spec.Maps[xdpgenMapGenSeq].MaxEntries = uint32(len(seq))
	g := &Generator{template: Template(flow, klen)}
	if err := spec.LoadAndAssign(&g.objs, nil); err != nil {
		return nil, fmt.Errorf("load request generator: %w", bpf.VerifierSummary(err))
	}
	if err := g.fill(flow, keys, seq); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func (g *Generator) fill(flow Flow, keys []string, seq []uint32) error {
	idx := make([]uint32, max(len(keys), len(seq)))
	for i := range idx {
		idx[i] = uint32(i)
	}
	vals := make([]xdpgenGenKey, len(keys))
	for i, k := range keys {
		copy(vals[i].B[:], k)
	}
	if err := batchPut(g.objs.GenKeys, idx[:len(keys)], vals); err != nil {
		return fmt.Errorf("request generator: keys: %w", err)
	}
	if err := batchPut(g.objs.GenSeq, idx[:len(seq)], seq); err != nil {
		return fmt.Errorf("request generator: sequence: %w", err)
	}
	cfg := xdpgenGenCfg{SeqLen: uint32(len(seq)), KeyWords: uint32(len(keys[0]) / 8), Sport: flow.SrcPort, Ports: uint16(flow.Ports)}
	copy(cfg.Head[:], g.template)
	if err := g.objs.GenCfgMap.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("request generator: config: %w", err)
	}
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("request generator: %w", err)
	}
	g.ncpu = n
	// Each CPU starts at its own place in the sequence and the id space.
	states := make([]xdpgenGenState, n)
	for c := range states {
		states[c] = xdpgenGenState{Pos: uint32(c * len(seq) / n), Id: uint16(c * 65536 / n)}
	}
	if err := g.objs.GenStateMap.Put(uint32(0), states); err != nil {
		return fmt.Errorf("request generator: state: %w", err)
	}
	return nil
}

// batchPut stores vals at keys, 64k at a time.
func batchPut[V any](m *ebpf.Map, keys []uint32, vals []V) error {
	for start := 0; start < len(keys); start += 1 << 16 {
		end := min(start+1<<16, len(keys))
		if _, err := m.BatchUpdate(keys[start:end], vals[start:end], nil); err != nil {
			return err
		}
	}
	return nil
}

// Template is the frame the program rewrites: Ethernet, IPv4 (no options,
// don't fragment), UDP with checksum 0, the memcached UDP frame header
// (request id 0, sequence 0 of 1) and "get <key>\r\n" with a key of klen
// bytes of 'x'.
func Template(flow Flow, klen int) []byte {
	payload := 8 + 4 + klen + 2
	udpLen := 8 + payload
	ipLen := 20 + udpLen
	b := make([]byte, 14+ipLen)
	copy(b[0:], flow.DstMAC)
	copy(b[6:], flow.SrcMAC)
	binary.BigEndian.PutUint16(b[12:], unix.ETH_P_IP)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	src, dst := flow.Src.As4(), flow.Dst.Addr().As4()
	copy(ip[12:], src[:])
	copy(ip[16:], dst[:])
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:], flow.SrcPort)
	binary.BigEndian.PutUint16(udp[2:], flow.Dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	// udp[6:8]: checksum 0 = none
	fh := b[42:50]
	binary.BigEndian.PutUint16(fh[4:], 1) // one datagram
	copy(b[50:], "get ")
	for i := range klen {
		b[keyOff+i] = 'x'
	}
	copy(b[keyOff+klen:], "\r\n")
	return b
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// Program is the generator's XDP program (its bpf_stats are its own).
func (g *Generator) Program() *ebpf.Program { return g.objs.ReqGen }

// FrameLen is the length of every request frame.
func (g *Generator) FrameLen() int { return len(g.template) }

// Send has the kernel build and transmit n requests out of the interface
// ifindex, batch frames per transmit flush (0: the kernel's 64). It must be
// called from inside the interface's network namespace. An error means the
// kernel refused live frames (before 5.18, or the interface has no XDP
// transmit) or was interrupted; Sent says how many went out either way.
func (g *Generator) Send(ifindex int, n, batch uint32) error {
	if n == 0 {
		return nil
	}
	_, err := g.objs.ReqGen.Run(&ebpf.RunOptions{
		Data:      g.template,
		Repeat:    n,
		Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		BatchSize: batch,
		Context:   xdpMd{DataEnd: uint32(len(g.template)), IngressIfindex: uint32(ifindex)},
	})
	if err != nil {
		return fmt.Errorf("request generator: live frames on ifindex %d: %w", ifindex, err)
	}
	return nil
}

// xdpMd is struct xdp_md, the context a live-frames run takes the ingress
// interface from.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// Rewrite runs the program once on a copy of the template without
// transmitting it (plain BPF_PROG_TEST_RUN) and returns its verdict and the
// frame it made; it advances the sequence like a sent request.
func (g *Generator) Rewrite() (uint32, []byte, error) { return g.rewrite(g.template) }

// rewrite runs the program once on frame (of the template's length: what a
// page of the live-frames pool holds when it comes back).
func (g *Generator) rewrite(frame []byte) (uint32, []byte, error) {
	out := make([]byte, len(frame)+256)
	verdict, err := g.objs.ReqGen.Run(&ebpf.RunOptions{Data: frame, DataOut: out})
	if err != nil {
		return 0, nil, fmt.Errorf("request generator: test run: %w", err)
	}
	return verdict, out[:len(frame)], nil
}

// Sent is how many requests the program has made (on every CPU), sent or
// rewritten.
func (g *Generator) Sent() (uint64, error) {
	var per []xdpgenGenState
	if err := g.objs.GenStateMap.Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("request generator: state: %w", err)
	}
	var n uint64
	for _, s := range per {
		n += s.Sent
	}
	return n, nil
}

// Close releases the program and maps.
func (g *Generator) Close() error { return g.objs.Close() }
