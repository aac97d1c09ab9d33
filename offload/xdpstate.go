package offload

import (
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

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

// IFLA_XDP and its nested attributes (include/uapi/linux/if_link.h).
const (
	iflaXDP          = 43
	iflaXDPAttached  = 2
	iflaXDPProgID    = 4
	iflaXDPDrvProgID = 5
	iflaXDPSkbProgID = 6
	iflaXDPHwProgID  = 7
)

// QueryXDP reads the XDP attachment of ifindex in the current netns.
func QueryXDP(ifindex int) (XDPState, error) {
	st, _, err := queryLink(ifindex)
	return st, err
}

// linkExtras are attributes vishvananda/netlink does not parse.
type linkExtras struct{ MinMTU, MaxMTU int }

func queryLink(ifindex int) (XDPState, linkExtras, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return XDPState{}, linkExtras{}, fmt.Errorf("RTM_GETLINK %d: %w", ifindex, err)
	}
	if len(msgs) == 0 {
		return XDPState{}, linkExtras{}, fmt.Errorf("RTM_GETLINK %d: no reply", ifindex)
	}
	return parseLink(msgs[0])
}

func parseLink(m []byte) (XDPState, linkExtras, error) {
	st := XDPState{Attached: "none"}
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
					st.Attached = [...]string{"none", "native", "generic", "offload", "multi"}[min(int(n.Value[0]), 4)]
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
	switch st.Attached {
	case "native":
		st.DrvProgID = max(st.DrvProgID, st.ProgID)
	case "generic":
		st.SkbProgID = max(st.SkbProgID, st.ProgID)
	case "offload":
		st.HwProgID = max(st.HwProgID, st.ProgID)
	}
	return st, ex, nil
}

func native32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return nl.NativeEndian().Uint32(b)
}
