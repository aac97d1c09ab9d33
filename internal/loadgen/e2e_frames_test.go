package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/internal/xdpgen"
)

// frameSeqLen is how many Zipf draws a generator's sequence holds (4 bytes
// each in its map): more than a row sends, so none repeats its draws (a
// short sequence repeated leaves the tail's keys out and raises the hit
// ratio: 1<<18 draws gave 96.3% XDP hits where the socket client saw 93.9%).
const frameSeqLen = 1 << 23

// frameSource makes the end-to-end bench's request generator for each row.
type frameSource struct {
	lab     *netlab.Lab
	flow    xdpgen.Flow
	ports   []uint16
	ifindex int
	groWas  bool              // memcached's veth end had GRO on before the bench
	err     error             // why live frames are not used, nil if they are
	gen     *xdpgen.Generator // the current row's
}

// newFrameSource prepares the generator's flow from the client's end of the
// lab to memcached, with one source port per socket the socket client would
// use, and tries one live frame: err says why the kernel refused.
func newFrameSource(b testing.TB, lab *netlab.Lab, m *netlab.Memcached, ports int) *frameSource {
	fs := &frameSource{lab: lab}
	cmac, cidx, err := linkOf(lab.Client)
	if err != nil {
		b.Fatal(err)
	}
	smac, _, err := linkOf(lab.Server)
	if err != nil {
		b.Fatal(err)
	}
	fs.ifindex = cidx
	// below the ephemeral range, so no socket of the socket client shares one
	const firstPort = 20000
	for p := range ports {
		fs.ports = append(fs.ports, firstPort+uint16(p))
	}
	fs.flow = xdpgen.Flow{SrcMAC: cmac, DstMAC: smac, Src: lab.Client.Addr, SrcPort: firstPort, Ports: ports,
		Dst: netip.AddrPortFrom(m.Addr, m.Port)}
	if fs.groWas, err = gro(lab.Server); err != nil {
		b.Fatal(err)
	}
	g, err := xdpgen.Load(fs.flow, []string{Key(0, 16)}, nil)
	if err != nil {
		fs.err = err
		return fs
	}
	defer g.Close()
	if err := lab.Client.Do(func() error { return g.Send(cidx, 1, 0) }); err != nil {
		fs.err = fmt.Errorf("the kernel refuses live frames: %w", err)
	}
	return fs
}

// forWorkload loads a generator whose key sequence is cfg's Zipf choice.
// veth hands frames that arrive with ndo_xdp_xmit only to an end with NAPI
// on, which an XDP program or GRO turns on: memcached's end gets GRO, so
// plain memcached and generic mode (no native program there) receive them.
func (fs *frameSource) forWorkload(b testing.TB, cfg Config, threads int) *Frames {
	if err := setGRO(fs.lab.Server, true); err != nil {
		b.Fatal(err)
	}
	keys, seq := FramesSequence(cfg, frameSeqLen)
	g, err := xdpgen.Load(fs.flow, keys, seq)
	if err != nil {
		b.Fatal(err)
	}
	fs.gen = g
	return &Frames{Gen: g, Ports: fs.ports, Ifindex: fs.ifindex, Do: fs.lab.Client.Do, Threads: threads}
}

// release closes the row's generator and puts GRO back as it was.
func (fs *frameSource) release() {
	if fs.gen != nil {
		fs.gen.Close()
		fs.gen = nil
	}
	setGRO(fs.lab.Server, fs.groWas)
}

func linkOf(ns netlab.NS) (net.HardwareAddr, int, error) {
	var mac net.HardwareAddr
	var idx int
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(ns.Iface)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", ns.Iface, ns.Name, err)
		}
		mac, idx = l.Attrs().HardwareAddr, l.Attrs().Index
		return nil
	})
	return mac, idx, err
}

func gro(ns netlab.NS) (bool, error) {
	out, err := ns.Command(context.Background(), "ethtool", "-k", ns.Iface).CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("ethtool -k %s: %v: %s", ns.Iface, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "generic-receive-offload:"); ok {
			return strings.HasPrefix(strings.TrimSpace(v), "on"), nil
		}
	}
	return false, fmt.Errorf("ethtool -k %s: no generic-receive-offload line", ns.Iface)
}

func setGRO(ns netlab.NS, on bool) error {
	v := "off"
	if on {
		v = "on"
	}
	if out, err := ns.Command(context.Background(), "ethtool", "-K", ns.Iface, "gro", v).CombinedOutput(); err != nil {
		return fmt.Errorf("ethtool -K %s gro %s: %v: %s", ns.Iface, v, err, out)
	}
	return nil
}
