package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/netdev"
	"github.com/xdpcache/xdpcache/offload/record"
)

// Our cls_bpf filter, told apart from others' by name and priority.
const (
	tcFilterName = "xdpcache_tc"
	tcFilterPrio = 0xc0de & 0xffff
)

// xdpFlags are a mode's attach flags for bpf_link and for netlink.
func xdpFlags(m mode.Mode) (link.XDPAttachFlags, uint32, error) {
	switch m {
	case mode.Native:
		return link.XDPDriverMode, unix.XDP_FLAGS_DRV_MODE, nil
	case mode.Generic:
		return link.XDPGenericMode, unix.XDP_FLAGS_SKB_MODE, nil
	case mode.Offload:
		return link.XDPOffloadMode, unix.XDP_FLAGS_HW_MODE, nil
	}
	return 0, 0, fmt.Errorf("unknown XDP mode %q", m)
}

// attachXDP attaches prog in mode m. It prefers a bpf_link (pinned, so it
// outlives this process and cannot be replaced by accident); when the kernel
// refuses, it retries over netlink, which either works (kernels without XDP
// links) or returns the kernel's own explanation, which BPF_LINK_CREATE
// does not.
func attachXDP(ifindex int, prog *ebpf.Program, m mode.Mode, pinDir string) (how record.XDPAttach, err error) {
	lflags, nflags, err := xdpFlags(m)
	if err != nil {
		return "", err
	}
	l, lerr := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: lflags})
	if lerr == nil {
		if err := l.Pin(filepath.Join(pinDir, record.PinXDPLink)); err != nil {
			l.Close()
			return "", fmt.Errorf("pin XDP link: %w", err)
		}
		l.Close()
		return record.XDPLink, nil
	}
	nerr := netdev.SetXDP(ifindex, prog.FD(), nflags)
	if nerr == nil {
		return record.XDPNetlink, nil
	}
	return "", fmt.Errorf("%s mode: %w", m, explain(nerr, lerr))
}

// explain prefers the kernel's extended-ack text (netlink) and keeps the
// errno of the bpf_link attempt.
func explain(netlinkErr, linkErr error) error {
	if linkErr == nil {
		return netlinkErr
	}
	var errno unix.Errno
	if errors.As(linkErr, &errno) && !errors.As(netlinkErr, new(unix.Errno)) {
		return fmt.Errorf("%v (%w)", netlinkErr, errno)
	}
	return fmt.Errorf("%v (bpf_link: %v)", netlinkErr, linkErr)
}

// detachXDP removes our XDP attachment: the pinned link if there is one,
// else the netlink attachment in mode m.
func detachXDP(ifindex int, pinDir string, m mode.Mode) error {
	p := filepath.Join(pinDir, record.PinXDPLink)
	if l, err := link.LoadPinnedLink(p, nil); err == nil {
		defer l.Close()
		if err := l.Unpin(); err != nil {
			return fmt.Errorf("unpin XDP link: %w", err)
		}
		return nil // detaches once our last fd closes
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("open pinned XDP link: %w", err)
	}
	if m == "" {
		return nil
	}
	_, nflags, err := xdpFlags(m)
	if err != nil {
		return err
	}
	if err := netdev.SetXDP(ifindex, -1, nflags); err != nil {
		return fmt.Errorf("detach XDP (%s): %w", m, err)
	}
	return nil
}

// attachTC attaches the egress filler: TCX (kernel 6.6+, pinned link) or a
// clsact qdisc with a cls_bpf filter in direct-action mode.
func attachTC(ifindex int, prog *ebpf.Program, pinDir string) (record.TCAttach, error) {
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXEgress})
	if err == nil {
		defer l.Close()
		if err := l.Pin(filepath.Join(pinDir, record.PinTCLink)); err != nil {
			return "", fmt.Errorf("pin TCX link: %w", err)
		}
		return record.TCX, nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return "", fmt.Errorf("attach TC egress (tcx): %w", err)
	}
	return attachClsact(ifindex, prog, pinDir)
}

// attachClsact attaches the egress filler as a cls_bpf filter on a clsact
// qdisc (kernels before 6.6), adding the qdisc if there is none.
func attachClsact(ifindex int, prog *ebpf.Program, pinDir string) (record.TCAttach, error) {
	nl.EnableErrorMessageReporting = true
	lk, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return "", fmt.Errorf("interface %d: %w", ifindex, err)
	}
	q := &netlink.GenericQdisc{QdiscType: "clsact", QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: ifindex, Parent: netlink.HANDLE_CLSACT, Handle: netlink.MakeHandle(0xffff, 0)}}
	switch err := netlink.QdiscAdd(q); {
	case err == nil:
		// ours: undeploy removes it again once no filter is left on it
		// (a directory, as bpffs holds no plain files)
		if err := os.MkdirAll(filepath.Join(pinDir, clsactMarker), 0o700); err != nil {
			return "", fmt.Errorf("mark the clsact qdisc as added: %w", err)
		}
	case !errors.Is(err, unix.EEXIST):
		return "", fmt.Errorf("add clsact qdisc on %s: %w", lk.Attrs().Name, err)
	}
	f := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_EGRESS,
		Handle: 1, Protocol: unix.ETH_P_ALL, Priority: tcFilterPrio}, Fd: prog.FD(), Name: tcFilterName, DirectAction: true}
	if err := netlink.FilterReplace(f); err != nil {
		return "", fmt.Errorf("add TC egress filter on %s: %w", lk.Attrs().Name, err)
	}
	return record.TCClsact, nil
}

// detachTC removes our TC attachment (TCX link or our cls_bpf filter only).
func detachTC(ifindex int, pinDir string) error {
	if l, err := link.LoadPinnedLink(filepath.Join(pinDir, record.PinTCLink), nil); err == nil {
		defer l.Close()
		return l.Unpin()
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("open pinned TC link: %w", err)
	}
	lk, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil // interface gone: nothing attached to it any more
	}
	filters, err := netlink.FilterList(lk, netlink.HANDLE_MIN_EGRESS)
	if err != nil {
		return nil // no clsact qdisc
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Name == tcFilterName && bf.Priority == tcFilterPrio {
			if err := netlink.FilterDel(bf); err != nil {
				return fmt.Errorf("delete TC filter: %w", err)
			}
		}
	}
	marker := filepath.Join(pinDir, clsactMarker)
	if _, err := os.Stat(marker); err != nil {
		return nil // the qdisc was there before us
	}
	egress, _ := netlink.FilterList(lk, netlink.HANDLE_MIN_EGRESS)
	ingress, _ := netlink.FilterList(lk, netlink.HANDLE_MIN_INGRESS)
	if len(egress) == 0 && len(ingress) == 0 {
		q := &netlink.GenericQdisc{QdiscType: "clsact", QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: lk.Attrs().Index, Parent: netlink.HANDLE_CLSACT, Handle: netlink.MakeHandle(0xffff, 0)}}
		if err := netlink.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("delete the clsact qdisc deploy added: %w", err)
		}
	}
	return os.Remove(marker)
}

// clsactMarker, in a deployment's pin directory: deploy added the clsact
// qdisc (it was not there before).
const clsactMarker = "clsact-added"

// loadPinnedLink opens a pinned link; what names it in the error.
func loadPinnedLink(path, what string) (link.Link, error) {
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return nil, fmt.Errorf("open pinned %s link: %w", what, err)
	}
	return l, nil
}
