package netdev

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// SetXDP attaches the program fd to ifindex over netlink with XDP_FLAGS_*
// flags (fd -1 detaches). Errors carry the kernel's own explanation (its
// extended ack), which BPF_LINK_CREATE does not return.
func SetXDP(ifindex, fd int, flags uint32) error {
	nl.EnableErrorMessageReporting = true // the kernel's explanation, not just an errno
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("interface %d: %w", ifindex, err)
	}
	return netlink.LinkSetXdpFdWithFlags(l, fd, int(flags))
}

// IFLA_XDP attributes and flags SetXDP's library call does not expose
// (include/uapi/linux/if_link.h).
const (
	iflaXDPFD         = 1
	iflaXDPFlags      = 3
	iflaXDPExpectedFD = 8
	// XDPFlagsReplace: replace only if the program attached is expected's.
	XDPFlagsReplace = 1 << 4
)

// ReplaceXDP attaches fd to ifindex in place of the program expected (an
// fd; -1: attach only if nothing is attached, XDP_FLAGS_UPDATE_IF_NOEXIST),
// over netlink with the mode's XDP_FLAGS_*. fd -1 detaches expected. The
// kernel refuses (EEXIST) when another program is attached by then, so two
// writers never undo each other's change. Errors carry the kernel's
// explanation.
func ReplaceXDP(ifindex, fd, expected int, flags uint32) error {
	nl.EnableErrorMessageReporting = true
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	attr := nl.NewRtAttr(unix.IFLA_XDP|unix.NLA_F_NESTED, nil)
	attr.AddRtAttr(iflaXDPFD, nl.Uint32Attr(uint32(int32(fd))))
	if expected >= 0 {
		flags |= XDPFlagsReplace
		attr.AddRtAttr(iflaXDPExpectedFD, nl.Uint32Attr(uint32(int32(expected))))
	} else {
		flags |= unix.XDP_FLAGS_UPDATE_IF_NOEXIST
	}
	attr.AddRtAttr(iflaXDPFlags, nl.Uint32Attr(flags))
	req.AddData(attr)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("set XDP on interface %d: %w", ifindex, err)
	}
	return nil
}
