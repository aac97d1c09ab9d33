package relay

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xdpcache/xdpcache/internal/mcproto"
)

// RestartWatcher notices memcached restarting (a new process has none of the
// old data, but the cache would keep serving it) by its pid and start time.
type RestartWatcher struct {
	addrs   []netip.AddrPort
	pid     int
	started int64
	seen    bool
}

// NewRestartWatcher watches memcached on the interface's addresses and ports.
func NewRestartWatcher(iface string, ports []uint16) (*RestartWatcher, error) {
	lk, err := netlink.LinkByName(iface)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", iface, err)
	}
	addrs, err := netlink.AddrList(lk, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	w := &RestartWatcher{}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.IsLinkLocalUnicast() {
			continue
		}
		for _, p := range ports {
			w.addrs = append(w.addrs, netip.AddrPortFrom(ip.Unmap(), p))
		}
	}
	for _, p := range ports {
		w.addrs = append(w.addrs, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p))
	}
	return w, nil
}

// Check asks memcached who it is. It reports true when the process differs
// from the one seen before.
func (w *RestartWatcher) Check() (bool, error) {
	var last error
	for _, a := range w.addrs {
		pid, started, err := memcachedIdentity(a)
		if err != nil {
			last = err
			continue
		}
		restarted := w.seen && (pid != w.pid || abs(started-w.started) > 2)
		w.pid, w.started, w.seen = pid, started, true
		return restarted, nil
	}
	return false, fmt.Errorf("memcached unreachable: %w", last)
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// memcachedIdentity asks memcached at a for its pid and start time (time
// minus uptime), over TCP with mcproto's client.
func memcachedIdentity(a netip.AddrPort) (int, int64, error) {
	c, err := net.DialTimeout("tcp", a.String(), 500*time.Millisecond)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	stats, err := mcproto.NewTCPClient(c, time.Second).Stats()
	if err != nil {
		return 0, 0, fmt.Errorf("%s: stats: %w", a, err)
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(stats[k], 10, 64); return n }
	pid := num("pid")
	if pid == 0 {
		return 0, 0, fmt.Errorf("%s: no pid in memcached's stats", a)
	}
	return int(pid), num("time") - num("uptime"), nil
}
