package replytap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
)

// XDP verdicts.
const (
	xdpDrop = 1
	xdpPass = 2
)

var (
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	serverMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
)

// flow is a client talking to memcached, for crafting the frames the tap
// sees on the client's interface.
type flow struct {
	client, server netip.Addr
	cport, sport   uint16
	vlan           uint16 // 802.1Q tag, 0 for none
}

func v4flow() flow {
	return flow{client: netip.MustParseAddr("198.18.0.2"), server: netip.MustParseAddr("198.18.0.1"), cport: 40000, sport: 11211}
}

func v6flow() flow {
	return flow{client: netip.MustParseAddr("2001:db8::2"), server: netip.MustParseAddr("2001:db8::1"), cport: 40000, sport: 11211}
}

// build serializes Ethernet (+ VLAN) / IP / l4 / payload, from the server to
// the client or the other way.
func (f flow) build(t *testing.T, toClient bool, l4 gopacket.SerializableLayer, payload []byte) []byte {
	t.Helper()
	src, dst, smac, dmac := f.client, f.server, clientMAC, serverMAC
	if toClient {
		src, dst, smac, dmac = dst, src, dmac, smac
	}
	var ls []gopacket.SerializableLayer
	ipType := layers.EthernetTypeIPv4
	if src.Is6() {
		ipType = layers.EthernetTypeIPv6
	}
	if f.vlan != 0 {
		ls = append(ls, &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: f.vlan, Type: ipType})
	} else {
		ls = append(ls, &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: ipType})
	}
	var ip gopacket.NetworkLayer
	if src.Is6() {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ip = ip6
		ls = append(ls, ip6)
	} else {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ip = ip4
		ls = append(ls, ip4)
	}
	switch l := l4.(type) {
	case *layers.UDP:
		l.SetNetworkLayerForChecksum(ip)
		setProto(ip, layers.IPProtocolUDP)
	case *layers.TCP:
		l.SetNetworkLayerForChecksum(ip)
		setProto(ip, layers.IPProtocolTCP)
	}
	ls = append(ls, l4, gopacket.Payload(payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func setProto(ip gopacket.NetworkLayer, p layers.IPProtocol) {
	switch l := ip.(type) {
	case *layers.IPv4:
		l.Protocol = p
	case *layers.IPv6:
		l.NextHeader = p
	}
}

// udpToClient is memcached's datagram to the client (payload with its frame header).
func (f flow) udpToClient(t *testing.T, payload []byte) []byte {
	return f.build(t, true, &layers.UDP{SrcPort: layers.UDPPort(f.sport), DstPort: layers.UDPPort(f.cport)}, payload)
}

// udpToServer is the client's datagram to memcached.
func (f flow) udpToServer(t *testing.T, payload []byte) []byte {
	return f.build(t, false, &layers.UDP{SrcPort: layers.UDPPort(f.cport), DstPort: layers.UDPPort(f.sport)}, payload)
}

// tcpToClient is memcached's TCP segment to the client.
func (f flow) tcpToClient(t *testing.T, seq uint32, payload []byte) []byte {
	return f.build(t, true, &layers.TCP{SrcPort: layers.TCPPort(f.sport), DstPort: layers.TCPPort(f.cport), Seq: seq, Ack: 1, ACK: true, PSH: true, Window: 512}, payload)
}

func arpFrame(t *testing.T) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true},
		&layers.Ethernet{SrcMAC: clientMAC, DstMAC: serverMAC, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: clientMAC, SourceProtAddress: []byte{198, 18, 0, 2}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{198, 18, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// frame prepends memcached's UDP frame header (seq of total).
func frame(reqID, seq, total uint16, body []byte) []byte {
	return append(mcproto.Frame{RequestID: reqID, Seq: seq, Total: total}.Append(nil), body...)
}

// binResp is memcached's binary response to a GET-family request.
func binResp(op uint8, status uint16, key string, value []byte, opaque uint32) []byte {
	extras := binary.BigEndian.AppendUint32(nil, 0) // flags
	return mcproto.AppendBinRequest(nil, mcproto.BinHeader{Magic: mcproto.MagicResponse, Opcode: op, Status: status, Opaque: opaque, CAS: 1},
		extras, []byte(key), value)
}

func runProg(t *testing.T, p *ebpf.Program, pkt []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(pkt)+256)
	ret, err := p.Run(&ebpf.RunOptions{Data: pkt, DataOut: out})
	if err != nil {
		t.Fatalf("run the reply tap: %v", err)
	}
	return ret, out
}

// TestTap runs the reply tap on crafted frames: memcached's UDP replies to
// a registered socket become one record each and are dropped; everything
// else passes untouched and leaves no record.
func TestTap(t *testing.T) {
	labtest.RequireRoot(t, "loads BPF programs")
	tap, err := Load(11211)
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	rd, err := tap.Open(40000)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	v4, v6 := v4flow(), v6flow()
	other := v4flow()
	other.cport = 40001 // no socket registered
	fromElsewhere := v4flow()
	fromElsewhere.sport = 11212
	vlan := v4flow()
	vlan.vlan = 7
	item := mcproto.AppendGetReply(nil, mcproto.Item{Key: "k", Value: []byte("v")})
	end := []byte("END\r\n")
	for _, tc := range []struct {
		name string
		pkt  []byte
		want *Record // nil: the frame passes, no record
	}{
		{"ascii hit", v4.udpToClient(t, frame(5, 0, 1, item)), &Record{ReqID: 5, Total: 1, Kind: Hit}},
		{"ascii miss", v4.udpToClient(t, frame(6, 0, 1, end)), &Record{ReqID: 6, Total: 1, Kind: Miss}},
		{"ipv6 hit", v6.udpToClient(t, frame(7, 0, 1, item)), &Record{ReqID: 7, Total: 1, Kind: Hit}},
		// unpadded (a 5-byte payload makes an IPv4 frame shorter than
		// Ethernet's minimum, so the builder pads it; IPv6's is longer)
		{"ipv6 miss", v6.udpToClient(t, frame(21, 0, 1, end)), &Record{ReqID: 21, Total: 1, Kind: Miss}},
		{"ipv4 padded", v4.udpToClient(t, frame(22, 0, 1, []byte("EN"))), &Record{ReqID: 22, Total: 1, Kind: Other}},
		{"vlan miss", vlan.udpToClient(t, frame(8, 0, 1, end)), &Record{ReqID: 8, Total: 1, Kind: Miss}},
		{"binary hit", v4.udpToClient(t, frame(9, 0, 1, binResp(mcproto.OpGetK, 0, "k", []byte("v"), 1))), &Record{ReqID: 9, Total: 1, Kind: Hit}},
		{"binary not found", v4.udpToClient(t, frame(10, 0, 1, binResp(mcproto.OpGetK, 1, "", nil, 1))), &Record{ReqID: 10, Total: 1, Kind: Miss}},
		{"server error", v4.udpToClient(t, frame(11, 0, 1, []byte("SERVER_ERROR out of memory\r\n"))), &Record{ReqID: 11, Total: 1, Kind: Other}},
		{"second datagram", v4.udpToClient(t, frame(12, 1, 2, []byte("VALUE looks like a hit"))), &Record{ReqID: 12, Seq: 1, Total: 2, Kind: Other}},
		{"frame header only", v4.udpToClient(t, frame(13, 0, 1, nil)), &Record{ReqID: 13, Total: 1, Kind: Other}},
		{"short frame header", v4.udpToClient(t, []byte{0, 14, 0}), nil},
		{"unregistered socket", other.udpToClient(t, frame(15, 0, 1, item)), nil},
		{"other server port", fromElsewhere.udpToClient(t, frame(16, 0, 1, item)), nil},
		{"request to the server", v4.udpToServer(t, frame(17, 0, 1, mcproto.AppendGet(nil, false, "k"))), nil},
		{"tcp from the server", v4.tcpToClient(t, 1, item), nil},
		{"arp", arpFrame(t), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ret, out := runProg(t, tap.Program(), tc.pkt)
			rec, rerr := rd.Read(time.Now().Add(20 * time.Millisecond))
			if tc.want == nil {
				if ret != xdpPass || !bytes.Equal(out[:len(tc.pkt)], tc.pkt) {
					t.Errorf("verdict %d (want XDP_PASS, packet unchanged)", ret)
				}
				if !errors.Is(rerr, os.ErrDeadlineExceeded) {
					t.Errorf("record %+v, %v; want none", rec, rerr)
				}
				return
			}
			if ret != xdpDrop {
				t.Errorf("verdict %d, want XDP_DROP", ret)
			}
			if rerr != nil || rec != *tc.want {
				t.Errorf("record %+v, %v; want %+v", rec, rerr, *tc.want)
			}
		})
	}
	if lost, err := tap.Lost(); err != nil || lost != 0 {
		t.Errorf("lost %d, %v", lost, err)
	}

	// A closed reader's socket is no longer routed: its replies pass.
	rd.Close()
	if ret, _ := runProg(t, tap.Program(), v4.udpToClient(t, frame(20, 0, 1, item))); ret != xdpPass {
		t.Errorf("after Close: verdict %d; want XDP_PASS", ret)
	}
}

// TestCount runs the reply tap on crafted frames to a counted port: each
// reply moves the totals as the load generator would count it (a reply
// split over datagrams once, at its last; its kind from its first), is
// dropped and leaves no record on another port's ring; other frames pass
// and count nothing; after Uncount the port's replies pass.
func TestCount(t *testing.T) {
	labtest.RequireRoot(t, "loads BPF programs")
	tap, err := Load(11211)
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	rd, err := tap.Open(40001) // a ring on another port: must stay empty
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if err := tap.Count(40000); err != nil {
		t.Fatal(err)
	}
	v4, v6 := v4flow(), v6flow()
	unregistered := v4flow()
	unregistered.cport = 40002
	item := mcproto.AppendGetReply(nil, mcproto.Item{Key: "k", Value: []byte("v")})
	end := []byte("END\r\n")
	for _, tc := range []struct {
		name string
		pkt  []byte
		want Counts // the change; zero and XDP_PASS for frames not counted
	}{
		{"ascii hit", v4.udpToClient(t, frame(5, 0, 1, item)), Counts{Replies: 1, Hits: 1}},
		{"ascii miss", v4.udpToClient(t, frame(6, 0, 1, end)), Counts{Replies: 1}},
		{"ipv6 hit", v6.udpToClient(t, frame(7, 0, 1, item)), Counts{Replies: 1, Hits: 1}},
		{"binary hit", v4.udpToClient(t, frame(9, 0, 1, binResp(mcproto.OpGetK, 0, "k", []byte("v"), 1))), Counts{Replies: 1, Hits: 1}},
		{"binary not found", v4.udpToClient(t, frame(10, 0, 1, binResp(mcproto.OpGetK, 1, "", nil, 1))), Counts{Replies: 1}},
		{"server error", v4.udpToClient(t, frame(11, 0, 1, []byte("SERVER_ERROR out of memory\r\n"))), Counts{Replies: 1, Other: 1}},
		{"first of two datagrams", v4.udpToClient(t, frame(12, 0, 2, item[:4])), Counts{Hits: 0, Other: 1}},
		{"first of two, a hit", v4.udpToClient(t, frame(13, 0, 2, item)), Counts{Hits: 1}},
		{"last of two", v4.udpToClient(t, frame(13, 1, 2, []byte("END\r\n"))), Counts{Replies: 1}},
		{"total 0", v4.udpToClient(t, frame(14, 0, 0, end)), Counts{Replies: 1}},
		{"unregistered socket", unregistered.udpToClient(t, frame(15, 0, 1, item)), Counts{}},
		{"request to the server", v4.udpToServer(t, frame(17, 0, 1, mcproto.AppendGet(nil, false, "k"))), Counts{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c0, err := tap.Counted()
			if err != nil {
				t.Fatal(err)
			}
			ret, _ := runProg(t, tap.Program(), tc.pkt)
			c1, err := tap.Counted()
			if err != nil {
				t.Fatal(err)
			}
			got := Counts{Replies: c1.Replies - c0.Replies, Hits: c1.Hits - c0.Hits, Other: c1.Other - c0.Other}
			if got != tc.want {
				t.Errorf("counts moved by %+v, want %+v", got, tc.want)
			}
			wantRet := uint32(xdpDrop)
			if tc.want == (Counts{}) {
				wantRet = xdpPass
			}
			if ret != wantRet {
				t.Errorf("verdict %d, want %d", ret, wantRet)
			}
		})
	}
	if rd.Pending() {
		t.Error("a counted reply left a record on another port's ring")
	}
	if err := tap.Uncount(40000); err != nil {
		t.Fatal(err)
	}
	if ret, _ := runProg(t, tap.Program(), v4.udpToClient(t, frame(20, 0, 1, item))); ret != xdpPass {
		t.Errorf("after Uncount: verdict %d; want XDP_PASS", ret)
	}
	if err := tap.Uncount(40000); err != nil {
		t.Errorf("second Uncount: %v", err)
	}
}

func TestLoadRejectsPortZero(t *testing.T) {
	if _, err := Load(0); err == nil {
		t.Fatal("server port 0 accepted")
	}
}
