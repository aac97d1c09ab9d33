package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"
)

// TestReplyTap runs the load generator's reply tap on crafted frames:
// memcached's UDP replies to a registered socket become one record each and
// are dropped; everything else passes untouched and leaves no record.
func TestReplyTap(t *testing.T) {
	requireRoot(t)
	tap, err := LoadReplyTap(11211)
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
	vlan.vlans = []uint16{7}
	item := append(asciiItem("k", 0, []byte("v"), nil), "END\r\n"...)
	for _, tc := range []struct {
		name string
		pkt  []byte
		want *TapRecord // nil: the frame passes, no record
	}{
		{"ascii hit", v4.udpToClient(t, frame(5, item)), &TapRecord{ReqID: 5, Total: 1, Kind: TapHit}},
		{"ascii miss", v4.udpToClient(t, frame(6, []byte("END\r\n"))), &TapRecord{ReqID: 6, Total: 1, Kind: TapMiss}},
		{"ipv6 hit", v6.udpToClient(t, frame(7, item)), &TapRecord{ReqID: 7, Total: 1, Kind: TapHit}},
		// unpadded (a 5-byte payload makes an IPv4 frame shorter than
		// Ethernet's minimum, so the builder pads it; IPv6's is longer)
		{"ipv6 miss", v6.udpToClient(t, frame(21, []byte("END\r\n"))), &TapRecord{ReqID: 21, Total: 1, Kind: TapMiss}},
		// padding is not payload
		{"ipv4 padded", v4.udpToClient(t, frame(22, []byte("EN"))), &TapRecord{ReqID: 22, Total: 1, Kind: TapOther}},
		{"vlan miss", vlan.udpToClient(t, frame(8, []byte("END\r\n"))), &TapRecord{ReqID: 8, Total: 1, Kind: TapMiss}},
		{"binary hit", v4.udpToClient(t, frame(9, binResp(0x0c, "k", 0, []byte("v"), 1, 1))), &TapRecord{ReqID: 9, Total: 1, Kind: TapHit}},
		{"binary not found", v4.udpToClient(t, frame(10, func() []byte {
			b := binResp(0x0c, "", 0, nil, 1, 0)
			binary.BigEndian.PutUint16(b[6:], 1)
			return b
		}())), &TapRecord{ReqID: 10, Total: 1, Kind: TapMiss}},
		{"server error", v4.udpToClient(t, frame(11, []byte("SERVER_ERROR out of memory\r\n"))), &TapRecord{ReqID: 11, Total: 1, Kind: TapOther}},
		{"second datagram", v4.udpToClient(t, frameSeq(12, 1, 2, []byte("VALUE looks like a hit"))), &TapRecord{ReqID: 12, Seq: 1, Total: 2, Kind: TapOther}},
		{"frame header only", v4.udpToClient(t, frame(13, nil)), &TapRecord{ReqID: 13, Total: 1, Kind: TapOther}},
		{"short frame header", v4.udpToClient(t, []byte{0, 14, 0}), nil},
		{"unregistered socket", other.udpToClient(t, frame(15, item)), nil},
		{"other server port", fromElsewhere.udpToClient(t, frame(16, item)), nil},
		{"request to the server", v4.udpToServer(t, frame(17, getLine("get", "k"))), nil},
		{"tcp from the server", v4.tcpToClient(t, 1, []byte("VALUE k 0 1\r\nv\r\nEND\r\n")), nil},
		{"arp", arpFrame(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ret, out, err := runProg(tap.Program(), tc.pkt)
			if err != nil {
				t.Fatal(err)
			}
			rec, rerr := rd.Read(time.Now().Add(20 * time.Millisecond))
			if tc.want == nil {
				if ret != xdpPass || !bytes.Equal(out, tc.pkt) {
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
	if ret, _, err := runProg(tap.Program(), v4.udpToClient(t, frame(20, item))); err != nil || ret != xdpPass {
		t.Errorf("after Close: verdict %d, %v; want XDP_PASS", ret, err)
	}
}

func TestReplyTapRejectsPortZero(t *testing.T) {
	if _, err := LoadReplyTap(0); err == nil {
		t.Fatal("server port 0 accepted")
	}
}
