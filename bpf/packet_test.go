package bpf

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// flow describes a client talking to memcached, for crafting frames.
type flow struct {
	client, server netip.Addr
	cport, sport   uint16
	vlans          []uint16
	ipOptions      []layers.IPv4Option
}

var (
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	serverMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
)

func v4flow() flow {
	return flow{
		client: netip.MustParseAddr("198.18.0.2"), server: netip.MustParseAddr("198.18.0.1"),
		cport: 40000, sport: 11211,
	}
}

func v6flow() flow {
	return flow{
		client: netip.MustParseAddr("2001:db8::2"), server: netip.MustParseAddr("2001:db8::1"),
		cport: 40000, sport: 11211,
	}
}

// frame prepends memcached's UDP frame header (request id, seq 0 of 1).
func frame(reqID uint16, body []byte) []byte {
	return frameSeq(reqID, 0, 1, body)
}

func frameSeq(reqID, seq, total uint16, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint16(b[0:], reqID)
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint16(b[4:], total)
	return append(b, body...)
}

func (f flow) build(t testing.TB, toServer bool, l4 gopacket.SerializableLayer, payload []byte) []byte {
	t.Helper()
	src, dst := f.client, f.server
	smac, dmac := clientMAC, serverMAC
	if !toServer {
		src, dst, smac, dmac = dst, src, dmac, smac
	}
	eth := &layers.Ethernet{SrcMAC: smac, DstMAC: dmac}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	etype := layers.EthernetTypeIPv4
	if src.Is6() {
		etype = layers.EthernetTypeIPv6
	}
	if len(f.vlans) > 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		for i, id := range f.vlans {
			next := etype
			if i < len(f.vlans)-1 {
				next = layers.EthernetTypeDot1Q
			}
			ls = append(ls, &layers.Dot1Q{VLANIdentifier: id, Type: next})
		}
	} else {
		eth.EthernetType = etype
	}
	var nl gopacket.NetworkLayer
	proto := layers.IPProtocolUDP
	if _, ok := l4.(*layers.TCP); ok {
		proto = layers.IPProtocolTCP
	}
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Options: f.ipOptions}
		nl = ip
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		nl = ip
		ls = append(ls, ip)
	}
	switch l := l4.(type) {
	case *layers.UDP:
		if err := l.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
	case *layers.TCP:
		if err := l.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
	}
	ls = append(ls, l4, gopacket.Payload(payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return buf.Bytes()
}

// udpToServer is a client's datagram to memcached (payload includes the frame header).
func (f flow) udpToServer(t testing.TB, payload []byte) []byte {
	return f.build(t, true, &layers.UDP{SrcPort: layers.UDPPort(f.cport), DstPort: layers.UDPPort(f.sport)}, payload)
}

// udpToClient is memcached's datagram back to the client.
func (f flow) udpToClient(t testing.TB, payload []byte) []byte {
	return f.build(t, false, &layers.UDP{SrcPort: layers.UDPPort(f.sport), DstPort: layers.UDPPort(f.cport)}, payload)
}

// tcpToServer is a client's TCP segment to memcached.
func (f flow) tcpToServer(t testing.TB, seq uint32, payload []byte) []byte {
	return f.tcpToServerAck(t, seq, 1, payload)
}

func (f flow) tcpToServerAck(t testing.TB, seq, ack uint32, payload []byte) []byte {
	return f.build(t, true, &layers.TCP{SrcPort: layers.TCPPort(f.cport), DstPort: layers.TCPPort(f.sport), Seq: seq, Ack: ack, ACK: true, PSH: true, Window: 512}, payload)
}

// tcpSyn is a client's SYN to memcached: the connection's first byte will
// have sequence number isn+1. With a payload it carries data (TCP Fast Open).
func (f flow) tcpSyn(t testing.TB, isn uint32, payload []byte) []byte {
	return f.build(t, true, &layers.TCP{SrcPort: layers.TCPPort(f.cport), DstPort: layers.TCPPort(f.sport), Seq: isn, SYN: true, Window: 512}, payload)
}

// tcpToClient is memcached's TCP segment back to the client.
func (f flow) tcpToClient(t testing.TB, seq uint32, payload []byte) []byte {
	return f.build(t, false, &layers.TCP{SrcPort: layers.TCPPort(f.sport), DstPort: layers.TCPPort(f.cport), Seq: seq, Ack: 1, ACK: true, PSH: true, Window: 512}, payload)
}

// reply is a decoded XDP_TX frame.
type reply struct {
	pkt     gopacket.Packet
	payload []byte // after the UDP header (frame header included)
}

// decodeReply parses a frame the XDP program sent back and checks that it
// mirrors the request and that every checksum and length is right.
func decodeReply(t testing.TB, f flow, out []byte) reply {
	t.Helper()
	r := checkFrame(t, out)
	pkt := r.pkt
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth.SrcMAC.String() != serverMAC.String() || eth.DstMAC.String() != clientMAC.String() {
		t.Errorf("MACs not swapped: src %s dst %s", eth.SrcMAC, eth.DstMAC)
	}
	udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if int(udp.SrcPort) != int(f.sport) || int(udp.DstPort) != int(f.cport) {
		t.Errorf("ports not swapped: %d -> %d", udp.SrcPort, udp.DstPort)
	}
	if ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		if !net.IP(ip4.SrcIP).Equal(f.server.AsSlice()) || !net.IP(ip4.DstIP).Equal(f.client.AsSlice()) {
			t.Errorf("IPv4 addresses not swapped: %s -> %s", ip4.SrcIP, ip4.DstIP)
		}
	} else if ip6, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		if !ip6.SrcIP.Equal(f.server.AsSlice()) || !ip6.DstIP.Equal(f.client.AsSlice()) {
			t.Errorf("IPv6 addresses not swapped: %s -> %s", ip6.SrcIP, ip6.DstIP)
		}
	}
	return r
}

// checkFrame decodes a UDP frame and checks its lengths and checksums.
func checkFrame(t testing.TB, out []byte) reply {
	t.Helper()
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("reply does not decode: %v", el.Error())
	}
	udpL := pkt.Layer(layers.LayerTypeUDP)
	if udpL == nil {
		t.Fatalf("reply has no UDP layer")
	}
	udp := udpL.(*layers.UDP)
	if int(udp.Length) != 8+len(udp.Payload) {
		t.Errorf("UDP length %d, payload %d", udp.Length, len(udp.Payload))
	}
	var pseudo []byte
	if ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		if int(ip4.Length) != int(ip4.IHL)*4+int(udp.Length) {
			t.Errorf("IPv4 total length %d, header %d, UDP %d", ip4.Length, ip4.IHL*4, udp.Length)
		}
		if got := onesSum(ip4.Contents); got != 0xffff {
			t.Errorf("IPv4 header checksum wrong (sum %#x)", got)
		}
		pseudo = append(append([]byte{}, ip4.SrcIP.To4()...), ip4.DstIP.To4()...)
	} else if ip6, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		// the payload length covers extension headers and UDP: all of the
		// frame after the fixed header
		ipOff := 0
		for _, l := range pkt.Layers() {
			if l.LayerType() == layers.LayerTypeIPv6 {
				break
			}
			ipOff += len(l.LayerContents())
		}
		if want := len(out) - ipOff - 40; int(ip6.Length) != want {
			t.Errorf("IPv6 payload length %d, want %d (UDP %d)", ip6.Length, want, udp.Length)
		}
		pseudo = append(append([]byte{}, ip6.SrcIP...), ip6.DstIP...)
	} else {
		t.Fatalf("reply has no IP layer")
	}
	if udp.Checksum == 0 {
		t.Errorf("UDP checksum is zero")
	}
	var l [4]byte
	binary.BigEndian.PutUint16(l[0:], 17)
	binary.BigEndian.PutUint16(l[2:], udp.Length)
	sum := append(append(pseudo, l[:]...), udp.Contents...)
	sum = append(sum, udp.Payload...)
	if got := onesSum(sum); got != 0xffff {
		t.Errorf("UDP checksum wrong (sum %#x)", got)
	}
	return reply{pkt: pkt, payload: udp.Payload}
}

// onesSum is the 16-bit one's complement sum; 0xffff for data whose
// checksum field is right.
func onesSum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = (s & 0xffff) + (s >> 16)
	}
	return uint16(s)
}

// arpFrame is an ARP request from the client for the server's address.
func arpFrame() []byte {
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true},
		&layers.Ethernet{SrcMAC: clientMAC, DstMAC: serverMAC, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: clientMAC, SourceProtAddress: []byte{198, 18, 0, 2}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{198, 18, 0, 1}})
	return buf.Bytes()
}
