// Command mcload drives a memcached server with UDP GETs (ASCII or binary),
// Zipf key popularity and many requests in flight, and reports throughput,
// latency percentiles, hit ratio and timeouts. Point it at your own
// memcached (started with -U PORT) or at one with xdpcache in front.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/xdpcache/xdpcache/internal/loadgen"
)

func main() {
	server := flag.String("server", "127.0.0.1:11211", "memcached address (UDP; TCP on the same port for --populate)")
	keys := flag.Int("keys", 100000, "distinct keys")
	keySize := flag.Int("key-size", 16, "key length in bytes")
	valueSize := flag.Int("value-size", 32, "value length for --populate")
	zipf := flag.Float64("zipf", 0.99, "key popularity skew (0: uniform)")
	binary := flag.Bool("binary", false, "binary protocol GETK instead of ASCII get")
	sockets := flag.Int("sockets", 4, "UDP sockets")
	window := flag.Int("window", 64, "requests in flight per socket")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	rate := flag.Float64("rate", 0, "requests per second over all sockets, on a fixed schedule (0: as fast as the window allows);\ncompare latencies of two set-ups at the same rate")
	populate := flag.Bool("populate", true, "store every key over TCP first")
	jsonOut := flag.Bool("json", false, "print the report as JSON")
	flag.Parse()
	addr, err := net.ResolveUDPAddr("udp", *server)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcload: --server %q: %v\n", *server, err)
		os.Exit(2)
	}
	cfg := loadgen.Config{Keys: *keys, KeySize: *keySize, ValueSize: *valueSize, Zipf: *zipf, Binary: *binary,
		Sockets: *sockets, Window: *window, Rate: *rate, Duration: *duration, Seed: uint64(time.Now().UnixNano()),
		DialUDP: func() (*net.UDPConn, error) { return net.DialUDP("udp", nil, addr) },
		DialTCP: func() (net.Conn, error) { return net.DialTimeout("tcp", *server, 2*time.Second) }}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "mcload: %v\n", err)
		os.Exit(2)
	}
	if *populate {
		if err := loadgen.Populate(cfg); err != nil {
			fmt.Fprintf(os.Stderr, "mcload: populate: %v\n", err)
			os.Exit(1)
		}
	}
	rep, err := loadgen.Run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcload: %v\n", err)
		os.Exit(1)
	}
	if *jsonOut {
		json.NewEncoder(os.Stdout).Encode(rep)
		return
	}
	fmt.Println(rep)
}
