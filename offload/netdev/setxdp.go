package netdev

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
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
