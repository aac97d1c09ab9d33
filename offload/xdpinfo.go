package offload

import (
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// PeerLink is what rtnetlink tells about an interface in another network
// namespace, addressed by the namespace id the current namespace knows it
// under (IFLA_LINK_NETNSID of a veth, for one).
type PeerLink struct {
	Name string
	XDP  XDPState
}

// QueryXDPInNetnsID reads the name and XDP attachment of ifindex in the
// network namespace that the current one calls nsid, without entering it:
// RTM_GETLINK with IFLA_TARGET_NETNSID (kernel 4.20+). The kernel requires
// CAP_NET_ADMIN over that namespace; an error means "cannot tell".
func QueryXDPInNetnsID(nsid, ifindex int) (PeerLink, error) {
	if nsid < 0 {
		st, err := QueryXDP(ifindex)
		return PeerLink{XDP: st}, err
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return PeerLink{}, fmt.Errorf("RTM_GETLINK %d in netns id %d: %w", ifindex, nsid, err)
	}
	if len(msgs) == 0 {
		return PeerLink{}, fmt.Errorf("RTM_GETLINK %d in netns id %d: no reply", ifindex, nsid)
	}
	st, _, err := parseLink(msgs[0])
	if err != nil {
		return PeerLink{}, err
	}
	return PeerLink{Name: linkName(msgs[0]), XDP: st}, nil
}

// linkName is IFLA_IFNAME of an RTM_NEWLINK message, "" if absent.
func linkName(m []byte) string {
	if len(m) < unix.SizeofIfInfomsg {
		return ""
	}
	attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
	if err != nil {
		return ""
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_IFNAME {
			return unix.ByteSliceToString(a.Value)
		}
	}
	return ""
}

// progIDs lists the distinct program ids of an XDP state.
func (s XDPState) progIDs() []uint32 {
	var ids []uint32
	for _, id := range []uint32{s.DrvProgID, s.SkbProgID, s.HwProgID, s.ProgID} {
		if id != 0 && !containsID(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

func containsID(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// Describe is a short human description: "native mode, program id 42".
func (s XDPState) Describe() string {
	switch s.Attached {
	case "", "none":
		return "no XDP program"
	case "multi":
		return fmt.Sprintf("programs in several modes (native id %d, generic id %d, offload id %d)", s.DrvProgID, s.SkbProgID, s.HwProgID)
	}
	id := s.ProgID
	if ids := s.progIDs(); len(ids) > 0 {
		id = ids[0]
	}
	return fmt.Sprintf("%s mode, program id %d", s.Attached, id)
}
