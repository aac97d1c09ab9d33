package netdev

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/offload/mode"
)

// ErrNoInterface is matched (errors.Is) by the error of an interface name
// that this network namespace does not have.
var ErrNoInterface = errors.New("no such interface")

// NoInterfaceError is the one message for an interface that is not there.
type NoInterfaceError struct{ Name string }

func (e *NoInterfaceError) Error() string {
	return fmt.Sprintf("interface %q not found (ip link show lists interfaces)", e.Name)
}

// Is makes errors.Is(err, ErrNoInterface) hold.
func (e *NoInterfaceError) Is(target error) bool { return target == ErrNoInterface }

// ByName looks an interface up in the current network namespace; an
// interface that is not there is a *NoInterfaceError.
func ByName(name string) (netlink.Link, error) {
	lk, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, &NoInterfaceError{Name: name}
		}
		return nil, fmt.Errorf("interface %q: %w", name, err)
	}
	return lk, nil
}

// XDPState is what is attached to an interface, per mode. netlink's
// LinkAttrs.Xdp reports only IFLA_XDP_PROG_ID, which is 0 when programs sit in
// two modes at once; this parses the per-mode ids too.
type XDPState struct {
	Attached  string `json:"attached"` // none, native, generic, offload or multi
	ProgID    uint32 `json:"prog_id"`
	DrvProgID uint32 `json:"drv_prog_id"`
	SkbProgID uint32 `json:"skb_prog_id"`
	HwProgID  uint32 `json:"hw_prog_id"`
}

// Values of XDPState.Attached besides the modes' names.
const (
	AttachedNone  = "none"
	AttachedMulti = "multi"
)

// Any reports whether some XDP program is attached.
func (s XDPState) Any() bool { return s.Attached != AttachedNone && s.Attached != "" }

// Mode is the single mode a program is attached in; false when none is, or
// programs are attached in several.
func (s XDPState) Mode() (mode.Mode, bool) {
	for _, m := range mode.Attached() {
		if s.Attached == string(m) {
			return m, true
		}
	}
	return "", false
}

// Link is what one RTM_GETLINK tells about an interface, beyond what
// vishvananda/netlink parses.
type Link struct {
	Name           string
	XDP            XDPState
	MinMTU, MaxMTU int
}

// PeerLink is what rtnetlink tells about an interface in another network
// namespace, addressed by the namespace id the current namespace knows it
// under (IFLA_LINK_NETNSID of a veth, for one).
type PeerLink struct {
	Name string
	XDP  XDPState
}

// IFLA_XDP and its nested attributes (include/uapi/linux/if_link.h).
const (
	iflaXDP          = 43
	iflaXDPAttached  = 2
	iflaXDPProgID    = 4
	iflaXDPDrvProgID = 5
	iflaXDPSkbProgID = 6
	iflaXDPHwProgID  = 7
)

// QueryLink reads ifindex in the current network namespace.
func QueryLink(ifindex int) (Link, error) { return getLink(ifindex, -1) }

// QueryXDP reads the XDP attachment of ifindex in the current netns.
func QueryXDP(ifindex int) (XDPState, error) {
	l, err := getLink(ifindex, -1)
	return l.XDP, err
}

// QueryXDPInNetnsID reads the name and XDP attachment of ifindex in the
// network namespace that the current one calls nsid (-1: the current one),
// without entering it: RTM_GETLINK with IFLA_TARGET_NETNSID (kernel 4.20+).
// The kernel requires CAP_NET_ADMIN over that namespace; an error means
// "cannot tell".
func QueryXDPInNetnsID(nsid, ifindex int) (PeerLink, error) {
	l, err := getLink(ifindex, nsid)
	if err != nil {
		return PeerLink{}, err
	}
	return PeerLink{Name: l.Name, XDP: l.XDP}, nil
}

// getLink is the one RTM_GETLINK request: ifindex in the namespace the
// current one calls nsid, or in the current one for nsid < 0.
func getLink(ifindex, nsid int) (Link, error) {
	where := ""
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	if nsid >= 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
		where = fmt.Sprintf(" in netns id %d", nsid)
	}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return Link{}, fmt.Errorf("RTM_GETLINK %d%s: %w", ifindex, where, err)
	}
	if len(msgs) == 0 {
		return Link{}, fmt.Errorf("RTM_GETLINK %d%s: no reply", ifindex, where)
	}
	st, ex, err := parseLink(msgs[0])
	if err != nil {
		return Link{}, err
	}
	return Link{Name: linkName(msgs[0]), XDP: st, MinMTU: ex.MinMTU, MaxMTU: ex.MaxMTU}, nil
}

// linkExtras are attributes vishvananda/netlink does not parse.
type linkExtras struct{ MinMTU, MaxMTU int }

func parseLink(m []byte) (XDPState, linkExtras, error) {
	st := XDPState{Attached: AttachedNone}
	var ex linkExtras
	if len(m) < unix.SizeofIfInfomsg {
		return st, ex, fmt.Errorf("short RTM_NEWLINK")
	}
	attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
	if err != nil {
		return st, ex, fmt.Errorf("parse link attributes: %w", err)
	}
	for _, a := range attrs {
		switch a.Attr.Type &^ unix.NLA_F_NESTED {
		case unix.IFLA_MIN_MTU:
			ex.MinMTU = int(native32(a.Value))
			continue
		case unix.IFLA_MAX_MTU:
			ex.MaxMTU = int(native32(a.Value))
			continue
		case iflaXDP:
		default:
			continue
		}
		nested, err := nl.ParseRouteAttr(a.Value)
		if err != nil {
			return st, ex, fmt.Errorf("parse IFLA_XDP: %w", err)
		}
		for _, n := range nested {
			switch n.Attr.Type {
			case iflaXDPAttached:
				if len(n.Value) > 0 {
					st.Attached = [...]string{AttachedNone, string(mode.Native), string(mode.Generic), string(mode.Offload), AttachedMulti}[min(int(n.Value[0]), 4)]
				}
			case iflaXDPProgID:
				st.ProgID = native32(n.Value)
			case iflaXDPDrvProgID:
				st.DrvProgID = native32(n.Value)
			case iflaXDPSkbProgID:
				st.SkbProgID = native32(n.Value)
			case iflaXDPHwProgID:
				st.HwProgID = native32(n.Value)
			}
		}
	}
	// A single attachment reports only PROG_ID: name it by mode.
	switch m, _ := st.Mode(); m {
	case mode.Native:
		st.DrvProgID = max(st.DrvProgID, st.ProgID)
	case mode.Generic:
		st.SkbProgID = max(st.SkbProgID, st.ProgID)
	case mode.Offload:
		st.HwProgID = max(st.HwProgID, st.ProgID)
	}
	return st, ex, nil
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

func native32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return nl.NativeEndian().Uint32(b)
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
	switch {
	case !s.Any():
		return "no XDP program"
	case s.Attached == AttachedMulti:
		return fmt.Sprintf("programs in several modes (native id %d, generic id %d, offload id %d)", s.DrvProgID, s.SkbProgID, s.HwProgID)
	}
	id := s.ProgID
	if ids := s.progIDs(); len(ids) > 0 {
		id = ids[0]
	}
	return fmt.Sprintf("%s mode, program id %d", s.Attached, id)
}
