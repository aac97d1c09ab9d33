package netdev

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
)

// QueryXDP on a real veth: nothing, then a generic-mode program, then a
// native-mode one, ids per mode; and the peer's state read from another
// namespace through its namespace id.
func TestQueryXDPModes(t *testing.T) {
	a, b := labtest.NS(t, "xcp"), labtest.NS(t, "xcp")
	labtest.IP(t, a, "link", "add", "xqa", "type", "veth", "peer", "name", "xqb", "netns", b.Name)
	labtest.IP(t, a, "link", "set", "xqa", "up")
	labtest.IP(t, b, "link", "set", "xqb", "up")
	idx := labtest.Ifindex(t, a, "xqa")
	query := func() XDPState {
		t.Helper()
		var st XDPState
		if err := a.Do(func() error { var err error; st, err = QueryXDP(idx); return err }); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := query(); st != (XDPState{Attached: "none"}) {
		t.Errorf("nothing attached: %+v", st)
	}

	p := labtest.PassProgram(t, "xcp_q_pass")
	id := labtest.ProgID(t, p)
	if err := a.SetXDP("xqa", p.FD(), unix.XDP_FLAGS_SKB_MODE); err != nil {
		t.Fatal(err)
	}
	if st := query(); st != (XDPState{Attached: "generic", ProgID: id, SkbProgID: id}) {
		t.Errorf("generic: %+v, want id %d", st, id)
	}
	// The kernel will not run native and generic together.
	if err := a.SetXDP("xqa", p.FD(), unix.XDP_FLAGS_DRV_MODE); !errors.Is(err, unix.EEXIST) {
		t.Errorf("native on top of generic: %v, want EEXIST", err)
	}
	if err := a.SetXDP("xqa", -1, unix.XDP_FLAGS_SKB_MODE); err != nil {
		t.Fatal(err)
	}
	if err := a.SetXDP("xqa", p.FD(), unix.XDP_FLAGS_DRV_MODE); err != nil {
		t.Fatal(err)
	}
	if st := query(); st != (XDPState{Attached: "native", ProgID: id, DrvProgID: id}) {
		t.Errorf("native: %+v, want id %d", st, id)
	}

	// From a: the peer xqb lives in b, known here by a namespace id.
	var nsid, peerIdx int
	if err := a.Do(func() error {
		l, err := netlink.LinkByName("xqa")
		if err == nil {
			nsid, peerIdx = l.Attrs().NetNsID, l.Attrs().ParentIndex
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if nsid < 0 || peerIdx != labtest.Ifindex(t, b, "xqb") {
		t.Fatalf("veth in another namespace: netns id %d, peer ifindex %d", nsid, peerIdx)
	}
	peer := func() PeerLink {
		t.Helper()
		var pl PeerLink
		if err := a.Do(func() error { var err error; pl, err = QueryXDPInNetnsID(nsid, peerIdx); return err }); err != nil {
			t.Fatal(err)
		}
		return pl
	}
	if pl := peer(); pl.Name != "xqb" || pl.XDP.Attached != "none" {
		t.Errorf("peer without XDP: %+v", pl)
	}
	if err := b.SetXDP("xqb", p.FD(), unix.XDP_FLAGS_SKB_MODE); err != nil {
		t.Fatal(err)
	}
	if pl := peer(); pl.Name != "xqb" || pl.XDP != (XDPState{Attached: "generic", ProgID: id, SkbProgID: id}) {
		t.Errorf("peer with a generic program: %+v", pl)
	}
	if err := a.Do(func() error { _, err := QueryXDPInNetnsID(nsid, 99999); return err }); err == nil {
		t.Error("a missing peer ifindex should be an error")
	}
}

// parseLink on constructed RTM_NEWLINK messages, including the multi-mode
// case (offload plus native) that needs real offload hardware to produce.
func TestParseLinkXDP(t *testing.T) {
	msg := func(attached uint8, ids map[int]uint32) []byte {
		b := nl.NewIfInfomsg(unix.AF_UNSPEC).Serialize()
		x := nl.NewRtAttr(iflaXDP|unix.NLA_F_NESTED, nil)
		x.AddRtAttr(iflaXDPAttached, []byte{attached})
		for typ, id := range ids {
			x.AddRtAttr(typ, nl.Uint32Attr(id))
		}
		b = append(b, nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(1500)).Serialize()...)
		b = append(b, nl.NewRtAttr(unix.IFLA_MIN_MTU, nl.Uint32Attr(68)).Serialize()...)
		b = append(b, nl.NewRtAttr(unix.IFLA_MAX_MTU, nl.Uint32Attr(9000)).Serialize()...)
		b = append(b, nl.NewRtAttr(unix.IFLA_IFNAME, append([]byte("eth7"), 0)).Serialize()...)
		return append(b, x.Serialize()...)
	}
	for _, tc := range []struct {
		name     string
		attached uint8
		ids      map[int]uint32
		want     XDPState
		describe string
	}{
		{"none", 0, nil, XDPState{Attached: "none"}, "no XDP program"},
		{"native", 1, map[int]uint32{iflaXDPProgID: 5}, XDPState{Attached: "native", ProgID: 5, DrvProgID: 5}, "native mode, program id 5"},
		{"generic", 2, map[int]uint32{iflaXDPProgID: 6}, XDPState{Attached: "generic", ProgID: 6, SkbProgID: 6}, "generic mode, program id 6"},
		{"offload", 3, map[int]uint32{iflaXDPProgID: 7}, XDPState{Attached: "offload", ProgID: 7, HwProgID: 7}, "offload mode, program id 7"},
		{"multi", 4, map[int]uint32{iflaXDPDrvProgID: 8, iflaXDPHwProgID: 9},
			XDPState{Attached: "multi", DrvProgID: 8, HwProgID: 9}, "programs in several modes (native id 8, generic id 0, offload id 9)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := msg(tc.attached, tc.ids)
			st, ex, err := parseLink(m)
			if err != nil {
				t.Fatal(err)
			}
			if st != tc.want || ex.MinMTU != 68 || ex.MaxMTU != 9000 || linkName(m) != "eth7" {
				t.Errorf("got %+v %+v %q, want %+v", st, ex, linkName(m), tc.want)
			}
			if d := st.Describe(); d != tc.describe {
				t.Errorf("describe: %q, want %q", d, tc.describe)
			}
		})
	}
	if _, _, err := parseLink([]byte{1, 2}); err == nil {
		t.Error("a short message should be an error")
	}
}
