package netdev

import (
	"errors"
	"fmt"
	"os"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// XDPFeatures is what the kernel's netdev generic-netlink family reports
// about a device (kernel 6.3+).
type XDPFeatures struct {
	Available bool     `json:"available"` // the family exists on this kernel
	Raw       uint64   `json:"raw"`
	Flags     []string `json:"flags"`
	ZCMaxSegs uint32   `json:"zc_max_segs"`
	Reason    string   `json:"reason,omitempty"` // why Available is false
}

// NETDEV_XDP_ACT_* (include/uapi/linux/netdev.h).
const (
	XDPBasic     = 1 << 0 // XDP_PASS/DROP/ABORTED/TX
	XDPRedirect  = 1 << 1
	XDPNdoXmit   = 1 << 2
	XDPZeroCopy  = 1 << 3
	XDPHWOffload = 1 << 4
	XDPRxSG      = 1 << 5
	XDPNdoXmitSG = 1 << 6
)

var xdpFeatureNames = []string{"basic", "redirect", "ndo-xmit", "xsk-zerocopy", "hw-offload", "rx-sg", "ndo-xmit-sg"}

// Has reports a NETDEV_XDP_ACT_* bit.
func (f XDPFeatures) Has(bit uint64) bool { return f.Raw&bit != 0 }

// QueryXDPFeatures asks the netdev family about ifindex (current netns).
func QueryXDPFeatures(ifindex int) (XDPFeatures, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return XDPFeatures{}, fmt.Errorf("generic netlink: %w", err)
	}
	defer c.Close()
	fam, err := c.GetFamily("netdev")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return XDPFeatures{Reason: "the kernel has no netdev netlink family (before 6.3): XDP support is taken from nicdb and the kernel version"}, nil
		}
		return XDPFeatures{}, fmt.Errorf("netdev family: %w", err)
	}
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(1, uint32(ifindex)) // NETDEV_A_DEV_IFINDEX
	data, err := ae.Encode()
	if err != nil {
		return XDPFeatures{}, err
	}
	msgs, err := c.Execute(genetlink.Message{Header: genetlink.Header{Command: 1 /* DEV_GET */, Version: fam.Version}, Data: data},
		fam.ID, netlink.Request)
	if err != nil {
		return XDPFeatures{}, fmt.Errorf("netdev DEV_GET %d: %w", ifindex, err)
	}
	f := XDPFeatures{Available: true}
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data)
		if err != nil {
			return XDPFeatures{}, err
		}
		for ad.Next() {
			switch ad.Type() {
			case 3: // NETDEV_A_DEV_XDP_FEATURES
				f.Raw = ad.Uint64()
			case 4: // NETDEV_A_DEV_XDP_ZC_MAX_SEGS
				f.ZCMaxSegs = ad.Uint32()
			}
		}
		if err := ad.Err(); err != nil {
			return XDPFeatures{}, err
		}
	}
	for i, n := range xdpFeatureNames {
		if f.Raw&(1<<i) != 0 {
			f.Flags = append(f.Flags, n)
		}
	}
	return f, nil
}
