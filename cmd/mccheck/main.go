// Command mccheck checks a memcached (with or without xdpcache in front of
// it) for stale and invented reads: concurrent writers over TCP (ASCII set,
// cas, noreply followed by a version, pipelined batches, delete, flush_all,
// binary SET/DELETE), writers over UDP (ASCII set and delete, binary SET,
// each waiting for its acknowledgement) and readers over UDP (get, multi-get, binary GET/GETK) on a small hot key set,
// with values that name their write. Every read is checked against the
// writes acknowledged before it was sent.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/xdpcache/xdpcache/internal/consistency"
)

func main() {
	server := flag.String("server", "127.0.0.1:11211", "memcached address (TCP and UDP on the same port; UDP needs memcached -U)")
	keys := flag.Int("keys", 100, "hot keys")
	writers := flag.Int("writers", 4, "TCP writer connections")
	udpWriters := flag.Int("udp-writers", 2, "UDP writer sockets")
	noreply := flag.Bool("noreply", true, "TCP writers also send noreply sets")
	readers := flag.Int("readers", 8, "UDP reader sockets")
	ops := flag.Int("ops", 200000, "operations in all")
	dur := flag.Duration("duration", 5*time.Minute, "stop after this long at the latest")
	flushEvery := flag.Int("flush-every", 500, "writer 0 sends flush_all every N of its operations (0: never)")
	pause := flag.Duration("write-pause", 2*time.Millisecond, "pause between a writer's operations")
	flag.Parse()
	udpAddr, err := net.ResolveUDPAddr("udp", *server)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mccheck: --server %q: %v\n", *server, err)
		os.Exit(2)
	}
	w := consistency.Workload{
		Keys: *keys, Writers: *writers, UDPWriters: *udpWriters, Noreply: *noreply, Readers: *readers, Ops: *ops, Duration: *dur, FlushEvery: *flushEvery,
		WritePause: *pause, Seed: uint64(time.Now().UnixNano()),
		DialTCP: func() (net.Conn, error) { return net.DialTimeout("tcp", *server, 2*time.Second) },
		DialUDP: func() (*net.UDPConn, error) { return net.DialUDP("udp", nil, udpAddr) },
	}
	h, err := w.Run(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "mccheck: %v\n", err)
		os.Exit(2)
	}
	res := h.Check()
	fmt.Println(res.Summary())
	for _, v := range res.Violations {
		fmt.Print(v)
	}
	if !res.OK() {
		os.Exit(1)
	}
}
