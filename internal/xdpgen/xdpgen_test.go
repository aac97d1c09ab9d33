package xdpgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/internal/replytap"
)

const xdpTX = 3

func testFlow() Flow {
	return Flow{
		SrcMAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}, DstMAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02},
		Src: netip.MustParseAddr("198.18.0.2"), SrcPort: 40000, Ports: 3,
		Dst: netip.MustParseAddrPort("198.18.0.1:11211"),
	}
}

func fixedKey(i, size int) string {
	s := fmt.Sprintf("key%d:", i)
	return s + strings.Repeat("x", size-len(s))
}

func requireBPF(t *testing.T) {
	t.Helper()
	labtest.RequireRoot(t, "loads BPF programs")
}

// TestRewrite runs the program on the template and on garbage (no
// transmission) and checks each frame it makes: the key the sequence names
// next, a fresh request id, the source port cycling, headers a receiver
// accepts.
func TestRewrite(t *testing.T) {
	requireBPF(t)
	for _, klen := range []int{8, 16, 64} {
		t.Run(strconv.Itoa(klen), func(t *testing.T) {
			flow := testFlow()
			keys := make([]string, 5)
			for i := range keys {
				keys[i] = fixedKey(i, klen)
			}
			seq := []uint32{4, 2, 0, 3, 1} // a permutation: a key tells its place
			g, err := Load(flow, keys, seq)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if g.FrameLen() != 14+20+8+8+4+klen+2 {
				t.Fatalf("frame length %d for a %d-byte key", g.FrameLen(), klen)
			}
			var prevID uint16
			start := -1 // each CPU starts at its own place in the sequence
			// A page of the live-frames pool comes back with whatever the
			// receiver left in it (xdpcache's reply): every other frame
			// starts as garbage of the template's length.
			garbage := make([]byte, g.FrameLen())
			for i := range garbage {
				garbage[i] = byte(i*7 + 3)
			}
			want := g.template
			for i := range 12 {
				in := want
				if i%2 == 1 {
					in = garbage
				}
				verdict, f, err := g.rewrite(in)
				if err != nil {
					t.Fatal(err)
				}
				if verdict != xdpTX {
					t.Fatalf("frame %d: verdict %d, want XDP_TX", i, verdict)
				}
				if !bytes.Equal(f[:14], want[:14]) || !bytes.Equal(f[14:34], want[14:34]) {
					t.Fatalf("frame %d: Ethernet and IPv4 headers % x, want % x", i, f[:34], want[:34])
				}
				if ipChecksum(f[14:34]) != 0 {
					t.Fatalf("frame %d: IPv4 header checksum does not verify", i)
				}
				if got, want := binary.BigEndian.Uint16(f[34:]), flow.SrcPort+uint16(i%flow.Ports); got != want {
					t.Fatalf("frame %d: source port %d, want %d", i, got, want)
				}
				if binary.BigEndian.Uint16(f[36:]) != flow.Dst.Port() || int(binary.BigEndian.Uint16(f[38:])) != len(f)-34 ||
					binary.BigEndian.Uint16(f[40:]) != 0 {
					t.Fatalf("frame %d: UDP header % x", i, f[34:42])
				}
				hdr, payload, err := mcproto.ParseFrame(f[42:])
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if i > 0 && hdr.RequestID != prevID+1 {
					t.Fatalf("frame %d: request id %d after %d", i, hdr.RequestID, prevID)
				}
				prevID = hdr.RequestID
				if start < 0 {
					start = slices.Index(keys, strings.TrimSuffix(strings.TrimPrefix(string(payload), "get "), "\r\n"))
					if start >= 0 {
						start = slices.Index(seq, uint32(start))
					}
					if start < 0 {
						t.Fatalf("frame %d: payload %q asks for no key of the sequence", i, payload)
					}
				}
				if want := "get " + keys[seq[(start+i)%len(seq)]] + "\r\n"; string(payload) != want {
					t.Fatalf("frame %d: payload %q, want %q", i, payload, want)
				}
			}
			if n, err := g.Sent(); err != nil || n != 12 {
				t.Fatalf("Sent = %d, %v; want 12", n, err)
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	requireBPF(t)
	v6 := testFlow()
	v6.Src = netip.MustParseAddr("2001:db8::2")
	tooManyPorts := testFlow()
	tooManyPorts.Ports = MaxPorts + 1
	noMAC := testFlow()
	noMAC.DstMAC = nil
	for _, c := range []struct {
		name string
		flow Flow
		keys []string
		seq  []uint32
		want string
	}{
		{"no keys", testFlow(), nil, nil, "0 keys"},
		{"odd key length", testFlow(), []string{"abcdefghijkl"}, nil, "multiple of 8"},
		{"key too long", testFlow(), []string{strings.Repeat("k", MaxKey+8)}, nil, "multiple of 8"},
		{"mixed lengths", testFlow(), []string{fixedKey(1, 16), fixedKey(2, 24)}, nil, "one length"},
		{"IPv6", v6, []string{fixedKey(1, 16)}, nil, "IPv4 only"},
		{"ports", tooManyPorts, []string{fixedKey(1, 16)}, nil, "source ports"},
		{"MAC", noMAC, []string{fixedKey(1, 16)}, nil, "MAC"},
		{"empty sequence", testFlow(), []string{fixedKey(1, 16)}, []uint32{}, "empty sequence"},
		{"sequence beyond the keys", testFlow(), []string{fixedKey(1, 16), fixedKey(2, 16)}, []uint32{0, 1, 2}, "names key 2 of 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := Load(c.flow, c.keys, c.seq)
			if err == nil {
				g.Close()
				t.Fatal("Load accepted it")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func hardwareAddr(t *testing.T, ns netlab.NS) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName(ns.Iface)
		if err == nil {
			mac = l.Attrs().HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

func memcachedStat(t *testing.T, c *mcproto.TCPClient, name string) uint64 {
	t.Helper()
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(st[name], 10, 64)
	if err != nil {
		t.Fatalf("stat %s: %v", name, err)
	}
	return n
}

// udpRcvbufErrors is the namespace's UDP RcvbufErrors: datagrams dropped
// because a socket's receive buffer was full.
func udpRcvbufErrors(t *testing.T, ns netlab.NS) uint64 {
	t.Helper()
	var b []byte
	if err := ns.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no Udp RcvbufErrors in %s's snmp", ns.Name)
	return 0
}

// TestLiveFramesAnsweredByMemcached sends requests with live frames from
// the client's end of a veth pair to a real memcached, chunk by chunk (each
// chunk's replies awaited before the next), and requires the replies the
// reply tap counts, hits and misses, to equal what memcached says it
// answered, and the requests to be those replies plus what memcached's
// socket buffer dropped. Chunks small enough for that buffer must lose
// nothing; a frame built from a live frame takes a page of the buffer, so
// big chunks overflow it.
func TestLiveFramesAnsweredByMemcached(t *testing.T) {
	for _, c := range []struct {
		name            string
		stored, missing int // distinct keys in the sequence
		requests, chunk uint32
		ports, keyLen   int
		lossless        bool
	}{
		{"hits only, one port", 8, 0, 1000, 20, 1, 16, true},
		{"hits and misses, three ports", 20, 5, 3000, 25, 3, 16, true},
		{"64-byte keys", 4, 4, 600, 20, 2, 64, true},
		{"bursts beyond the socket buffer", 10, 0, 2000, 200, 2, 16, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			lab, m := labtest.Start(t)
			tcp, err := lab.Client.DialTCP(netip.AddrPortFrom(m.Addr, m.Port), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer tcp.Close()
			mc := mcproto.NewTCPClient(tcp, 5*time.Second)
			keys := make([]string, c.stored+c.missing)
			for i := range keys {
				keys[i] = fixedKey(i, c.keyLen)
				if i < c.stored {
					if err := mc.Set(keys[i], 0, 0, []byte("value-"+strconv.Itoa(i))); err != nil {
						t.Fatal(err)
					}
				}
			}
			tap, err := replytap.Load(m.Port)
			if err != nil {
				t.Fatal(err)
			}
			defer tap.Close()
			if err := lab.Client.AttachXDP(tap.Program()); err != nil {
				t.Fatal(err)
			}
			// veth hands frames sent with ndo_xdp_xmit only to a peer
			// that runs XDP (NAPI on): memcached's end gets an XDP_PASS program.
			if err := lab.Server.AttachXDPPass(); err != nil {
				t.Fatal(err)
			}
			flow := Flow{SrcMAC: hardwareAddr(t, lab.Client), DstMAC: hardwareAddr(t, lab.Server),
				Src: lab.Client.Addr, SrcPort: 41000, Ports: c.ports, Dst: netip.AddrPortFrom(m.Addr, m.Port)}
			g, err := Load(flow, keys, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			var readers []*replytap.Reader
			for p := range c.ports {
				r, err := tap.Open(flow.SrcPort + uint16(p))
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				readers = append(readers, r)
			}
			ifindex := labtest.Ifindex(t, lab.Client, lab.Client.Iface)
			gets0, hits0 := memcachedStat(t, mc, "cmd_get"), memcachedStat(t, mc, "get_hits")
			drops0 := udpRcvbufErrors(t, lab.Server)
			var replies, hits, other uint64
			for sent := uint32(0); sent < c.requests; sent += c.chunk {
				n := min(c.chunk, c.requests-sent)
				if err := lab.Client.Do(func() error { return g.Send(ifindex, n, 0) }); err != nil {
					if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
						t.Skipf("the kernel refuses live frames: %v", err)
					}
					t.Fatal(err)
				}
				// this chunk's replies and drops, or give up after a second
				want := uint64(sent + n)
				deadline := time.Now().Add(time.Second)
				for time.Now().Before(deadline) {
					for _, r := range readers {
						for r.Pending() {
							rec, err := r.Read(deadline)
							if err != nil {
								t.Fatal(err)
							}
							switch rec.Kind {
							case replytap.Hit:
								hits++
								replies++
							case replytap.Miss:
								replies++
							default:
								other++
							}
						}
					}
					if replies+other+udpRcvbufErrors(t, lab.Server)-drops0 >= want {
						break
					}
					time.Sleep(200 * time.Microsecond)
				}
			}
			made, err := g.Sent()
			if err != nil {
				t.Fatal(err)
			}
			gets, mhits := memcachedStat(t, mc, "cmd_get")-gets0, memcachedStat(t, mc, "get_hits")-hits0
			drops := udpRcvbufErrors(t, lab.Server) - drops0
			t.Logf("sent %d, replies %d (hits %d), memcached cmd_get %d get_hits %d, socket buffer drops %d", made, replies, hits, gets, mhits, drops)
			if made != uint64(c.requests) {
				t.Errorf("the program made %d requests, want %d", made, c.requests)
			}
			if other != 0 {
				t.Errorf("%d replies were neither hits nor misses", other)
			}
			if replies != gets || hits != mhits {
				t.Errorf("tap counted %d replies, %d hits; memcached answered %d GETs, %d hits", replies, hits, gets, mhits)
			}
			if replies+drops != made {
				t.Errorf("%d replies + %d socket buffer drops, %d requests", replies, drops, made)
			}
			if c.lossless && drops != 0 {
				t.Errorf("%d requests dropped in chunks of %d", drops, c.chunk)
			}
			// every key is asked about equally often: without drops the
			// hits are the stored keys' share
			if want := uint64(c.requests) * uint64(c.stored) / uint64(len(keys)); drops == 0 && c.requests%uint32(len(keys)) == 0 && hits != want {
				t.Errorf("%d hits, want %d (%d of %d keys stored)", hits, want, c.stored, len(keys))
			}
			if lost, err := tap.Lost(); err != nil || lost != 0 {
				t.Errorf("reply tap lost %d records (%v)", lost, err)
			}
		})
	}
}
