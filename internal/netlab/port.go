package netlab

import (
	"errors"
	"fmt"
	"net"
)

// FreeLoopbackPort returns a port that is free on 127.0.0.1 for both TCP and
// UDP at the time of the call, for a memcached started with -p and -U.
func FreeLoopbackPort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("listen tcp on 127.0.0.1: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no port on 127.0.0.1 free for both TCP and UDP after 50 tries")
}
