// Package loadgen drives memcached (with or without xdpcache in front) with
// UDP GETs: Zipf key popularity, many requests in flight per socket, batched
// sends and receives (sendmmsg/recvmmsg), a bounded duration, and a report of
// throughput, latency percentiles, hit ratio and timeouts.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/internal/replytap"
)

// Config describes a run.
type Config struct {
	Keys      int           // distinct keys
	KeySize   int           // bytes per key (at least 8)
	ValueSize int           // bytes per value
	Zipf      float64       // popularity skew (0.99 as in BMC; 0 = uniform)
	Binary    bool          // binary-protocol GETK instead of ASCII get
	Sockets   int           // UDP sockets (one goroutine each)
	Window    int           // requests in flight per socket
	Rate      float64       // requests per second over all sockets; 0: as fast as the window allows
	Duration  time.Duration // how long to send
	Timeout   time.Duration // a request unanswered this long counts as a timeout
	Seed      uint64
	DialUDP   func() (*net.UDPConn, error)
	DialTCP   func() (net.Conn, error) // for Populate
	// Tap, if set, receives the replies instead of the sockets: its XDP
	// program, attached to the client's interface, summarises each reply
	// and drops it, so the client spends no CPU on the receive stack. Replies
	// are then classified (hit, miss, other) but their keys not checked.
	Tap *replytap.Tap
	// Frames, if set, makes the requests instead of the sockets (see
	// Frames): Sockets, Window and Timeout's sweep do not apply, replies
	// come through Tap, and the report has no latencies.
	Frames *Frames
}

// Report is what a run measured.
type Report struct {
	Requests  int64         `json:"requests"`
	Replies   int64         `json:"replies"`
	Hits      int64         `json:"hits"`
	Timeouts  int64         `json:"timeouts"`
	Errors    int64         `json:"errors"` // malformed or unexpected replies
	Late      int64         `json:"late"`   // fixed rate: requests held back by a full window (latency counted from when they were due)
	Elapsed   time.Duration `json:"elapsed_ns"`
	PerSecond float64       `json:"replies_per_second"`
	HitRatio  float64       `json:"hit_ratio"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	P999      time.Duration `json:"p999_ns"`
}

func (r Report) String() string {
	late := ""
	if r.Late > 0 {
		late = fmt.Sprintf(", %d held back by a full window", r.Late)
	}
	return fmt.Sprintf("%.0f replies/s, p50 %s p99 %s p999 %s, hit ratio %.1f%%, %d timeouts, %d errors (%d requests in %s%s)",
		r.PerSecond, r.P50, r.P99, r.P999, 100*r.HitRatio, r.Timeouts, r.Errors, r.Requests, r.Elapsed.Round(time.Millisecond), late)
}

// Key is the name of key rank k, padded to size bytes.
func Key(k, size int) string {
	s := fmt.Sprintf("k%d:", k)
	if len(s) < size {
		s += strings.Repeat("x", size-len(s))
	}
	return s
}

// Validate reports the first setting a run cannot use, and fills in defaults.
func (c *Config) Validate() error {
	switch {
	case c.Keys <= 0, c.Sockets <= 0, c.Window <= 0, c.Duration <= 0:
		return errors.New("keys, sockets, window and duration must be positive")
	case c.KeySize < 8 || c.KeySize > 250:
		return fmt.Errorf("key size %d: 8..250", c.KeySize)
	case c.ValueSize < 0 || c.ValueSize > 1<<20:
		return fmt.Errorf("value size %d: 0..1 MiB", c.ValueSize)
	case c.Window > 30000:
		return fmt.Errorf("window %d: at most 30000 requests in flight per socket", c.Window)
	case c.Rate < 0:
		return fmt.Errorf("rate %g: must not be negative", c.Rate)
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	return nil
}

// Populate stores every key over TCP, pipelined.
func Populate(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	conn, err := cfg.DialTCP()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	c := mcproto.NewTCPClient(conn, 10*time.Second)
	value := []byte(strings.Repeat("v", cfg.ValueSize))
	const batch = 256
	reqs := make([][]byte, 0, batch)
	for start := 0; start < cfg.Keys; start += batch {
		reqs = reqs[:0]
		for k := start; k < min(start+batch, cfg.Keys); k++ {
			reqs = append(reqs, mcproto.AppendStorage(nil, "set", Key(k, cfg.KeySize), 0, 0, value, 0, false))
		}
		lines, err := c.Pipeline(reqs...)
		if err != nil {
			return fmt.Errorf("populate: %w", err)
		}
		for _, l := range lines {
			if err := mcproto.ParseStatusLine(l, "STORED"); err != nil {
				return fmt.Errorf("populate: %w", err)
			}
		}
	}
	return nil
}

type batchConn interface {
	ReadBatch([]ipv4.Message, int) (int, error)
	WriteBatch([]ipv4.Message, int) (int, error)
}

// Run sends GETs until the duration is over and waits for what is in flight.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if cfg.Frames != nil {
		return runFrames(ctx, cfg)
	}
	zipf := NewZipf(cfg.Keys, cfg.Zipf)
	keys := make([]string, cfg.Keys)
	for k := range keys {
		keys[k] = Key(k, cfg.KeySize)
	}
	var mu sync.Mutex
	var total Report
	var lats []time.Duration
	var wg sync.WaitGroup
	errc := make(chan error, cfg.Sockets)
	start := time.Now()
	for i := range cfg.Sockets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, l, err := runSocket(ctx, &cfg, i, zipf, keys)
			if err != nil {
				errc <- err
				return
			}
			mu.Lock()
			total.Requests += r.Requests
			total.Replies += r.Replies
			total.Hits += r.Hits
			total.Timeouts += r.Timeouts
			total.Errors += r.Errors
			total.Late += r.Late
			lats = append(lats, l...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		return Report{}, err
	}
	total.Elapsed = time.Since(start)
	total.PerSecond = float64(total.Replies) / total.Elapsed.Seconds()
	if total.Replies > 0 {
		total.HitRatio = float64(total.Hits) / float64(total.Replies)
	}
	slices.Sort(lats)
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[min(int(p*float64(len(lats))), len(lats)-1)]
	}
	total.P50, total.P99, total.P999 = pct(0.50), pct(0.99), pct(0.999)
	return total, nil
}

type inflight struct {
	sent time.Time
	key  int
	live bool
	kind replytap.Kind // reply tap: what the reply's first datagram said
}

func runSocket(ctx context.Context, cfg *Config, idx int, zipf *Zipf, keys []string) (Report, []time.Duration, error) {
	conn, err := cfg.DialUDP()
	if err != nil {
		return Report{}, nil, fmt.Errorf("socket %d: %w", idx, err)
	}
	defer conn.Close()
	var bc batchConn
	if ra, ok := conn.RemoteAddr().(*net.UDPAddr); ok && ra.IP.To4() == nil {
		bc = ipv6.NewPacketConn(conn)
	} else {
		bc = ipv4.NewPacketConn(conn)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(idx)))
	window := cfg.Window
	var tap *replytap.Reader
	if cfg.Tap != nil {
		la, ok := conn.LocalAddr().(*net.UDPAddr)
		if !ok {
			return Report{}, nil, fmt.Errorf("socket %d: local address %v", idx, conn.LocalAddr())
		}
		if tap, err = cfg.Tap.Open(uint16(la.Port)); err != nil {
			return Report{}, nil, fmt.Errorf("socket %d: %w", idx, err)
		}
		defer tap.Close()
	}
	slots := make([]inflight, 65536) // by request id
	var rep Report
	var lats []time.Duration
	nextID := uint16(rng.Uint32())
	inFlight := 0
	const batch = 64
	out := make([]ipv4.Message, batch)
	outBufs := make([][]byte, batch)
	for i := range out {
		outBufs[i] = make([]byte, 0, 64+cfg.KeySize)
	}
	in := make([]ipv4.Message, batch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 2048)}
	}
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	lastSweep := start
	// Fixed rate: request i of this socket is due at start + i*interval.
	// A request held back because the window was full counts its latency
	// from when it was due, so a server that falls behind is not flattered
	// by the client waiting for it (coordinated omission); others count from
	// when they went out, so the client's own timer slack is not blamed on
	// the server.
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Sockets) / cfg.Rate)
		// spread the sockets' schedules over one interval
		start = start.Add(interval * time.Duration(idx) / time.Duration(cfg.Sockets))
	}
	due := start
	held := false // a due request waited for the window
	// complete settles request id's reply, received at rnow; a late reply
	// to a request already counted as timed out is ignored.
	var rnow time.Time
	complete := func(id uint16, hit, ok bool) {
		s := &slots[id]
		if !s.live {
			return
		}
		if !ok {
			rep.Errors++
		}
		s.live = false
		inFlight--
		rep.Replies++
		if hit {
			rep.Hits++
		}
		lats = append(lats, rnow.Sub(s.sent))
	}
	onRecord := func(r replytap.Record) { // a reply tap's record
		rnow = time.Now()
		s := &slots[r.ReqID]
		if r.Seq == 0 {
			s.kind = r.Kind
		}
		if r.Total > 0 && r.Seq+1 < r.Total {
			return // a reply split over datagrams: count once at its end
		}
		complete(r.ReqID, s.kind == replytap.Hit, s.kind != replytap.Other)
	}
	for {
		now := time.Now()
		sending := now.Before(deadline) && ctx.Err() == nil
		if !sending && inFlight == 0 {
			break
		}
		if !sending && now.After(deadline.Add(cfg.Timeout)) {
			rep.Timeouts += int64(inFlight)
			break
		}
		// Fill the window.
		n := 0
		if interval > 0 && inFlight >= window && !due.After(now) {
			held = true
		}
		for sending && inFlight < window && n < batch && (interval == 0 || !due.After(now)) {
			sent := now
			if interval > 0 {
				if held {
					sent = due
					rep.Late++
				}
				due = due.Add(interval)
			}
			id := nextID
			nextID++
			if slots[id].live { // id space wrapped onto a lost request
				rep.Timeouts++
				slots[id].live = false
				inFlight--
			}
			k := zipf.Next(rng)
			b := mcproto.Frame{RequestID: id, Total: 1}.Append(outBufs[n][:0])
			b = appendRequest(b, cfg.Binary, keys[k], uint32(id))
			outBufs[n] = b
			out[n].Buffers = [][]byte{b}
			slots[id] = inflight{sent: sent, key: k, live: true}
			inFlight++
			n++
		}
		if held && due.After(now) {
			held = false // caught up
		}
		if n > 0 {
			for sent := 0; sent < n; {
				m, err := bc.WriteBatch(out[sent:n], 0)
				if err != nil {
					return rep, lats, fmt.Errorf("send: %w", err)
				}
				sent += m
			}
			rep.Requests += int64(n)
		}
		// Receive what has come, until the next request is due.
		wait := 2 * time.Millisecond
		if interval > 0 && inFlight < window {
			wait = min(wait, max(time.Until(due), 20*time.Microsecond))
		}
		if tap != nil {
			rnow = time.Time{}
			if err := receiveTap(tap, time.Now().Add(wait), batch*4, onRecord); err != nil {
				return rep, lats, err
			}
			if rnow.IsZero() {
				rnow = time.Now()
			}
		} else {
			conn.SetReadDeadline(time.Now().Add(wait))
			m, err := bc.ReadBatch(in, 0)
			if err != nil {
				var ne net.Error
				if !(errors.As(err, &ne) && ne.Timeout()) {
					return rep, lats, fmt.Errorf("receive: %w", err)
				}
				m = 0
			}
			rnow = time.Now()
			for i := range m {
				f, payload, err := mcproto.ParseFrame(in[i].Buffers[0][:in[i].N])
				if err != nil {
					rep.Errors++
					continue
				}
				id := f.RequestID
				if !slots[id].live {
					continue
				}
				hit, ok := parseReply(payload, cfg.Binary, keys[slots[id].key])
				// a reply split over datagrams: count once at its end
				if !ok && !cfg.Binary && len(payload) > 0 && !bytes.HasSuffix(payload, []byte("END\r\n")) {
					continue
				}
				complete(id, hit, ok)
			}
		}
		// Expire lost requests now and then.
		if rnow.Sub(lastSweep) > cfg.Timeout/4 {
			lastSweep = rnow
			for id := range slots {
				if slots[id].live && rnow.Sub(slots[id].sent) > cfg.Timeout {
					slots[id].live = false
					inFlight--
					rep.Timeouts++
				}
			}
		}
	}
	return rep, lats, nil
}

// receiveTap hands fn the records waiting on the socket's reply tap, at most
// max, waiting until deadline for the first.
func receiveTap(tap *replytap.Reader, deadline time.Time, max int, fn func(replytap.Record)) error {
	for n := 0; n < max && (n == 0 || tap.Pending()); n++ {
		r, err := tap.Read(deadline)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("receive (reply tap): %w", err)
		}
		fn(r)
	}
	return nil
}

// appendRequest appends a GET of key: ASCII "get", or a binary GETK.
func appendRequest(b []byte, binaryProto bool, key string, opaque uint32) []byte {
	if !binaryProto {
		return mcproto.AppendGet(b, false, key)
	}
	return mcproto.AppendBinGet(b, mcproto.OpGetK, key, opaque)
}

// parseReply: (found, well-formed). An ASCII reply is well-formed when it
// is complete and holds key (a hit) or nothing (a miss).
func parseReply(b []byte, binaryProto bool, key string) (bool, bool) {
	if binaryProto {
		h, err := mcproto.ParseBinHeader(b)
		if err != nil || h.Magic != mcproto.MagicResponse {
			return false, false
		}
		return h.Status == mcproto.StatusOK, h.Status == mcproto.StatusOK || h.Status == mcproto.StatusKeyNotFound
	}
	items, complete, err := mcproto.ParseGetReply(b)
	switch {
	case err != nil || !complete || len(items) > 1:
		return false, false
	case len(items) == 0:
		return false, true
	}
	return items[0].Key == key, items[0].Key == key
}
