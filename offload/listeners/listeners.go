// Package listeners finds memcached's listening sockets on the cache's
// ports and which process holds each: the memcached instances a
// deployment's entries belong to (bpf.Settings.Instances).
package listeners

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/xdpcache/xdpcache/bpf"
)

// Socket is one listening socket of this network namespace on one of the
// ports: its local address (unspecified: a wildcard socket), port,
// protocol and the process holding it (0: not found).
type Socket struct {
	Addr  netip.Addr
	Port  uint16
	Proto string // "tcp" or "udp"
	Pid   int
}

// Find lists the listening TCP sockets and unconnected UDP sockets of the
// calling thread's network namespace on ports, with the processes holding
// them.
func Find(ports []uint16) ([]Socket, error) {
	var out []Socket
	inodes := map[uint64][]int{} // socket inode -> indexes into out
	for _, f := range []struct{ file, proto string }{{"tcp", "tcp"}, {"tcp6", "tcp"}, {"udp", "udp"}, {"udp6", "udp"}} {
		socks, err := readTable(filepath.Join("/proc/thread-self/net", f.file), f.proto, ports)
		if err != nil {
			if os.IsNotExist(err) {
				continue // no IPv6
			}
			return nil, err
		}
		for _, s := range socks {
			inodes[s.inode] = append(inodes[s.inode], len(out))
			out = append(out, s.Socket)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(l, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]"), 10, 64)
			if err != nil {
				continue
			}
			for _, i := range inodes[ino] {
				out[i].Pid = pid
			}
		}
	}
	return out, nil
}

type tableSocket struct {
	Socket
	inode uint64
}

// readTable parses one /proc/net/{tcp,tcp6,udp,udp6} table: TCP sockets in
// LISTEN (0A), UDP sockets unconnected (07) on one of ports.
func readTable(path, proto string, ports []uint16) ([]tableSocket, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := "0A"
	if proto == "udp" {
		want = "07"
	}
	var out []tableSocket
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != want {
			continue
		}
		addr, port, err := parseHexAddr(fields[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !slices.Contains(ports, port) {
			continue
		}
		ino, err := strconv.ParseUint(fields[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: inode %q: %w", path, fields[9], err)
		}
		out = append(out, tableSocket{Socket: Socket{Addr: addr, Port: port, Proto: proto}, inode: ino})
	}
	return out, sc.Err()
}

// parseHexAddr reads "0100007F:2BCB" (IPv4) or 32 hex digits (IPv6), each
// 32-bit word in host (little endian) order, as /proc/net prints them.
func parseHexAddr(s string) (netip.Addr, uint16, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, fmt.Errorf("address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("port in %q: %w", s, err)
	}
	b, err := hex.DecodeString(a)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}, 0, fmt.Errorf("address %q", s)
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	addr, _ := netip.AddrFromSlice(b)
	return addr.Unmap(), uint16(port), nil
}

// Instances turns sockets into the deployment's listener table: nil when
// every port is held by one process that holds no other port (a port is
// then an instance, the programs' default); otherwise every socket with
// its process numbered 1.. (a socket whose process is unknown counts as a
// process of its own).
func Instances(socks []Socket) []bpf.Listener {
	pidsOfPort := map[uint16]map[int]bool{}
	portsOfPid := map[int]map[uint16]bool{}
	for i, s := range socks {
		pid := s.Pid
		if pid == 0 {
			pid = -1 - i
		}
		if pidsOfPort[s.Port] == nil {
			pidsOfPort[s.Port] = map[int]bool{}
		}
		if portsOfPid[pid] == nil {
			portsOfPid[pid] = map[uint16]bool{}
		}
		pidsOfPort[s.Port][pid] = true
		portsOfPid[pid][s.Port] = true
	}
	simple := true
	for _, pids := range pidsOfPort {
		simple = simple && len(pids) == 1
	}
	for _, ports := range portsOfPid {
		simple = simple && len(ports) == 1
	}
	if simple {
		return nil
	}
	ids := map[int]uint32{}
	seen := map[[2]string]bool{}
	var out []bpf.Listener
	for i, s := range socks {
		pid := s.Pid
		if pid == 0 {
			pid = -1 - i
		}
		if ids[pid] == 0 {
			ids[pid] = uint32(len(ids) + 1)
		}
		k := [2]string{s.Addr.String(), strconv.Itoa(int(s.Port))}
		if seen[k] {
			continue // the TCP and UDP sockets of one address
		}
		seen[k] = true
		out = append(out, bpf.Listener{Addr: s.Addr, Port: s.Port, Instance: ids[pid]})
	}
	return out
}
