package deploy

// Deploying xdpcache's offload flavor on netdevsim (make test-offload): the
// control path end to end — mode choice, device maps, hardware attach, the
// relay writing the device, fallback with the reason, undeploy. netdevsim
// never runs the program on packets, so the GET/invalidation datapath is
// covered by bpf's BPF_PROG_TEST_RUN tests of the same object.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/netlab/nsimtest"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/netdev"
	"github.com/xdpcache/xdpcache/offload/record"
	"github.com/xdpcache/xdpcache/offload/relay"
)

// newNetdevsim creates a netdevsim device whose single port is up, removed
// when the test ends; it returns the port's name and ifindex.
func newNetdevsim(t *testing.T) (ifname string, ifindex int) {
	t.Helper()
	d := nsimtest.New(t)
	return d.Ifname, d.Ifindex
}

// offloadSettings fit netdevsim: maps of at most 2 entries.
func offloadSettings() bpf.Settings {
	s := bpf.DefaultSettings()
	s.Entries = 2
	s.RequireLocal = false
	return s
}

func nsimPinRoot(t *testing.T) string {
	t.Helper()
	if _, err := record.Ensure(record.DefaultRoot); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join("/sys/fs/bpf", "xdpcache-nsim-"+strings.ReplaceAll(t.Name(), "/", "_"))
	t.Cleanup(func() { os.RemoveAll(root) })
	return root
}

// addPortAddr gives the netdevsim port an address in 198.18.0.0/15 and a
// neighbour for the "client", so packets to it leave through the port.
func addPortAddr(t *testing.T, ifname string) (server, client netip.Addr) {
	t.Helper()
	lk, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	server, client = netip.MustParseAddr("198.18.7.1"), netip.MustParseAddr("198.18.7.2")
	if err := netlink.AddrAdd(lk, &netlink.Addr{IPNet: &net.IPNet{IP: server.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatalf("address on %s: %v", ifname, err)
	}
	mac, _ := net.ParseMAC("02:00:00:00:07:02")
	if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: lk.Attrs().Index, State: netlink.NUD_PERMANENT,
		IP: client.AsSlice(), HardwareAddr: mac}); err != nil {
		t.Fatalf("neighbour on %s: %v", ifname, err)
	}
	return server, client
}

func TestNetdevsimDeployOffload(t *testing.T) {
	for _, m := range []mode.Mode{mode.Offload, mode.Auto} {
		t.Run(string(m), func(t *testing.T) {
			ifname, ifindex := newNetdevsim(t)
			addPortAddr(t, ifname)
			root := nsimPinRoot(t)
			d, err := Deploy(Options{Iface: ifname, Mode: m, Settings: offloadSettings(), PinRoot: root, ListedOnly: true})
			if err != nil {
				t.Fatalf("deploy --mode %s: %v", m, err)
			}
			if d.Mode != mode.Offload {
				t.Fatalf("deployed in %s mode, want offload; attempts %+v", d.Mode, d.Attempts)
			}
			if got, err := attachedMode(ifindex); err != nil || got != mode.Offload {
				t.Fatalf("kernel reports %q (%v), want offload (IFLA_XDP_ATTACHED hw)", got, err)
			}
			// every map of the XDP program lives on the device; the relay's on the host
			dir := filepath.Join(root, ifname)
			for _, name := range []string{"ocfg_map", "ogen_map", "oentry_map", "ochunk_map", "oticket_map", "ostats_map"} {
				pm, err := ebpf.LoadPinnedMap(filepath.Join(dir, "maps", name), nil)
				if err != nil {
					t.Fatal(err)
				}
				if dev, err := netdev.MapDevice(pm); err != nil || dev != ifindex {
					t.Errorf("map %s is on device %d (%v), want %d", name, dev, err, ifindex)
				}
				pm.Close()
			}
			p, err := ebpf.LoadPinnedProgram(filepath.Join(dir, bpf.PinXDPProg), nil)
			if err != nil {
				t.Fatal(err)
			}
			if dev, err := netdev.ProgramDevice(p); err != nil || dev != ifindex {
				t.Errorf("XDP program is on device %d (%v), want %d", dev, err, ifindex)
			}
			p.Close()
			st, err := ReadStatus(root, ifname)
			if err != nil {
				t.Fatalf("status: %v", err)
			}
			if !st.Attached || st.Mode != mode.Offload {
				t.Errorf("status: attached %v mode %s", st.Attached, st.Mode)
			}
			if err := Undeploy(ifname, root); err != nil {
				t.Fatalf("undeploy: %v", err)
			}
			if lk, _ := netlink.LinkByName(ifname); lk.Attrs().Xdp != nil && lk.Attrs().Xdp.Attached {
				t.Errorf("XDP still attached after undeploy: %+v", lk.Attrs().Xdp)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("pins left in %s: %v", dir, err)
			}
		})
	}
}

// Settings the device cannot hold: an error for --mode offload, a reason to
// fall back to native for auto.
func TestNetdevsimOffloadTooLarge(t *testing.T) {
	ifname, _ := newNetdevsim(t)
	addPortAddr(t, ifname)
	root := nsimPinRoot(t)
	s := offloadSettings()
	s.Entries = 65536
	_, err := Deploy(Options{Iface: ifname, Mode: mode.Offload, Settings: s, PinRoot: root, ListedOnly: true})
	if err == nil || !strings.Contains(err.Error(), "do not fit the device's maps") {
		t.Fatalf("deploy --mode offload with 65536 entries: %v, want a clear refusal", err)
	}
	d, err := Deploy(Options{Iface: ifname, Mode: mode.Auto, Settings: s, PinRoot: root, ListedOnly: true})
	if err != nil {
		t.Fatalf("deploy --mode auto: %v", err)
	}
	defer Undeploy(ifname, root)
	if d.Mode != mode.Native {
		t.Fatalf("auto chose %s, want native after offload was ruled out; attempts %+v", d.Mode, d.Attempts)
	}
	if len(d.Attempts) == 0 || d.Attempts[0].Mode != mode.Offload || !strings.Contains(d.Attempts[0].Why, "65536 cache entries") {
		t.Errorf("the offload step's reason is not recorded: %+v", d.Attempts)
	}
}

// The relay writes fills into the device's maps. netdevsim does not run the
// XDP program, so the ticket it would leave for a GET is written here; the
// reply leaves through the port, where the relay's TC program sees it.
func TestNetdevsimRelayWritesDevice(t *testing.T) {
	ifname, _ := newNetdevsim(t)
	server, client := addPortAddr(t, ifname)
	root := nsimPinRoot(t)
	d, err := Deploy(Options{Iface: ifname, Mode: mode.Offload, Settings: offloadSettings(), PinRoot: root, ListedOnly: true})
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	defer Undeploy(ifname, root)
	rl, err := relay.Open(root, ifname)
	if err != nil {
		t.Fatalf("open relay: %v", err)
	}
	defer rl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(ctx) }()
	defer func() { cancel(); <-done }()

	c, err := bpf.LoadPinnedOffload(filepath.Join(root, ifname), uint32(d.Settings.Seed), d.Settings.Entries)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const reqID, cport = 0x1234, 40000
	key, val := "nsim-key", []byte("from the relay")
	hash := bpf.OffloadKeyHash([]byte(key), bpf.OffloadInstanceSeed(c.Seed, 11211)) // the reply comes from port 11211
	tk := bpf.OffloadTicketKey{Addr: client.As16(), Port: htons(cport), ReqId: htons(reqID), Hash: hash}
	if err := c.Maps.OticketMap.Update(&tk, &bpf.OffloadTicket{}, ebpf.UpdateAny); err != nil {
		t.Fatalf("write the ticket on the device: %v", err)
	}
	item := []byte(fmt.Sprintf("VALUE %s 0 %d\r\n%s\r\nEND\r\n", key, len(val), val))
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: server.AsSlice(), Port: 11211})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	frame := append([]byte{reqID >> 8, reqID & 0xff, 0, 0, 0, 1, 0, 0}, item...)
	if _, err := conn.WriteToUDP(frame, &net.UDPAddr{IP: client.AsSlice(), Port: cport}); err != nil {
		t.Fatalf("send the reply out of %s: %v", ifname, err)
	}
	b := hash & (c.Buckets - 1)
	var e bpf.OffloadEntry
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := c.Maps.OentryMap.Lookup(&b, &e); err == nil && e.Len != 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if int(e.Len) != len(item) || e.Hash != hash {
		t.Fatalf("device entry %+v, want the %d-byte item for hash %#x; relay %+v", e, len(item), hash, rl.Stats())
	}
	var chunk bpf.OffloadChunkData
	ck := bpf.OffloadChunkKey{Bucket: b, Fill: e.Fill << 4}
	if err := c.Maps.OchunkMap.Lookup(&ck, &chunk); err != nil {
		t.Fatalf("chunk 0 on the device: %v", err)
	}
	if !bytes.HasPrefix(item, bytes.TrimRight(chunk.B[:], "\x00")) || !bytes.HasPrefix(chunk.B[:], item[:min(len(item), len(chunk.B))]) {
		t.Errorf("chunk 0 %q is not the item's start %q", chunk.B, item)
	}
	if s := rl.Stats(); s.Results["filled"] != 1 || s.Errors != 0 || s.Sent != 1 || s.Seen != 1 {
		t.Errorf("relay stats %+v", s)
	}
	// the ticket was used: a second copy of the reply fills nothing
	if _, err := conn.WriteToUDP(frame, &net.UDPAddr{IP: client.AsSlice(), Port: cport}); err != nil {
		t.Fatal(err)
	}
	for time.Now().Before(deadline) && rl.Stats().Results["no_ticket"] == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if s := rl.Stats(); s.Results["no_ticket"] != 1 {
		t.Errorf("duplicate reply: relay stats %+v", s)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// The guest runs Debian 12's own kernel (6.1), whose verifier is older than
// the host's: both flavors must load there too (on the host, not offloaded).
func TestNetdevsimGuestKernelLoadsBothFlavors(t *testing.T) {
	nsimtest.Require(t)
	s := bpf.DefaultSettings()
	s.Entries = 1024
	c, err := bpf.Load(s)
	if err != nil {
		t.Fatalf("host flavor on this kernel: %v", err)
	}
	c.Close()
	oc, err := bpf.LoadOffload(s, bpf.OffloadOptions{})
	if err != nil {
		t.Fatalf("offload flavor (host build) on this kernel: %v", err)
	}
	oc.Close()
}
