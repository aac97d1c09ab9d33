package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xdpcache/xdpcache/internal/mcproto"
)

// memcachedInstances asks memcached on each port, at the interface's
// addresses and then at loopback, for its settings.
func memcachedInstances(lk netlink.Link, ports []uint16) []MemcachedInstance {
	var addrs []netip.Addr
	if list, err := netlink.AddrList(lk, netlink.FAMILY_ALL); err == nil {
		for _, a := range list {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.IsLinkLocalUnicast() {
				addrs = append(addrs, ip.Unmap())
			}
		}
	}
	addrs = append(addrs, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"))
	var out []MemcachedInstance
	for _, p := range ports {
		for _, a := range addrs {
			if in, ok := askMemcached(netip.AddrPortFrom(a, p)); ok {
				out = append(out, in)
				break
			}
		}
	}
	return out
}

// askMemcached runs "stats settings" at a (over the binary protocol when
// memcached drops the ASCII one: -B binary, or -S which implies it). ok is
// false when nothing accepts the connection there.
func askMemcached(a netip.AddrPort) (MemcachedInstance, bool) {
	in := MemcachedInstance{Addr: a.Addr().String(), Port: a.Port()}
	st, err := statsSettings(a, false)
	if err != nil && strings.Contains(err.Error(), "unauthenticated") {
		// -Y: every command before "set <user> <pass>" gets this answer
		in.AuthASCII = true
		in.Error = err.Error()
		return in, true
	}
	if err != nil {
		if errors.Is(err, errRefused) {
			return in, false
		}
		var bse *mcproto.BinStatusError
		st, err = statsSettings(a, true)
		if errors.As(err, &bse) && bse.Status == 0x20 {
			in.AuthSASL = true // "authentication required"
		}
	}
	if err != nil {
		in.Error = err.Error()
		return in, true
	}
	in.Protocol = st["binding_protocol"]
	in.UDPPort, _ = strconv.Atoi(st["udpport"])
	in.AuthSASL = in.AuthSASL || st["auth_enabled_sasl"] == "yes"
	in.AuthASCII = st["auth_enabled_ascii"] != "" && st["auth_enabled_ascii"] != "no"
	return in, true
}

var errRefused = errors.New("nothing listens")

func statsSettings(a netip.AddrPort, binary bool) (map[string]string, error) {
	c, err := net.DialTimeout("tcp", a.String(), 300*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (%v)", a, errRefused, err)
	}
	defer c.Close()
	cl := mcproto.NewTCPClient(c, time.Second)
	if binary {
		return cl.BinStats("settings")
	}
	return cl.StatsOf("settings")
}
