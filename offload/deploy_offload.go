package offload

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/xdpcache/xdpcache/bpf"
)

// relayWarning is attached to every offload deployment.
const relayWarning = "offload mode: items reach the device through the relay, so keep `xdpcache run` running " +
	"(the systemd unit does); without it the device still invalidates but never fills, and every GET goes to memcached"

// deployOffload loads the offload flavor onto the device (its maps created
// there), attaches it in hardware mode and the relay's TC program on the
// host egress, and pins everything. On failure it leaves nothing behind.
func deployOffload(o *DeployOptions, lk netlink.Link, rep *Report, pinDir string) (*Deployment, error) {
	ifindex := lk.Attrs().Index
	var maxEntries uint32
	if rep != nil && rep.Offload != nil {
		maxEntries = rep.Offload.MaxEntries
	}
	c, err := bpf.LoadOffload(o.Settings, bpf.OffloadOptions{Ifindex: ifindex, NewDeviceMap: NewDeviceMap, MaxEntries: maxEntries})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	allow := o.Allow
	if len(allow) == 0 {
		if allow, err = connectedPrefixes(lk); err != nil {
			return nil, err
		}
	}
	if err := c.AllowOffload(allow, 0); err != nil {
		return nil, err
	}
	if o.Settings.RequireLocal {
		if err := forLocalAddrs(c.AddLocalOffload); err != nil {
			return nil, err
		}
	}
	att, err := beginAttempt(ifindex, pinDir)
	if err != nil {
		return nil, err
	}
	defer att.rollback()
	if err := c.Pin(pinDir); err != nil {
		return nil, err
	}
	how, err := attachXDP(ifindex, c.XDP, ModeOffload, pinDir)
	if err != nil {
		return nil, err
	}
	att.attached = ModeOffload
	if got, err := attachedMode(ifindex); err != nil || got != ModeOffload {
		return nil, fmt.Errorf("asked for offload mode but the kernel reports %q (%v)", got, err)
	}
	if o.attachTC == nil {
		o.attachTC = attachTC
	}
	tcHow, err := o.attachTC(ifindex, c.TC, pinDir)
	if err != nil {
		return nil, err
	}
	s := o.Settings
	s.Seed = uint64(c.Seed) // the relay hashes keys with it
	d := &Deployment{Iface: o.Iface, Ifindex: ifindex, Mode: ModeOffload, XDPAttach: how, TCAttach: tcHow,
		PinDir: pinDir, Settings: s, Allow: allow, Warnings: []string{relayWarning},
		Attempts: []Attempt{{Mode: ModeOffload, OK: true, Why: "attached"}}}
	d.XDPProgID, d.TCProgID = progID(c.XDP), progID(c.TC)
	if err := finishRecordIDs(o.PinRoot, d); err != nil {
		return nil, err
	}
	att.done()
	return d, nil
}

// forLocalAddrs calls add with every address of this network namespace.
func forLocalAddrs(add func(netip.Addr) error) error {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list local addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			if err := add(ip); err != nil {
				return err
			}
		}
	}
	return nil
}
