package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpcache/xdpcache/internal/replytap"
	"github.com/xdpcache/xdpcache/internal/xdpgen"
)

// Frames is a request source that costs the client almost nothing per
// request: the kernel makes the requests from a template frame with the
// request generator's XDP program (internal/xdpgen, live frames) and sends
// them out of the client's interface, no socket or syscall per request.
// Replies come through the reply tap (Config.Tap). There is no latency to
// report (the requests carry no send time).
type Frames struct {
	Gen     *xdpgen.Generator
	Ports   []uint16                 // the generator's source ports (the tap routes replies by them)
	Ifindex int                      // the client's interface, in its namespace
	Do      func(func() error) error // runs fn inside that namespace (netlab.NS.Do)
	// Chunk is the requests per live-frames run; 0 sizes runs to about
	// chunkTime each from the rate the last one made (a run has a fixed
	// cost of tens of milliseconds here, mostly waiting: the kernel sets up
	// and tears down a page pool per run).
	Chunk uint32
	// Threads is how many threads make requests at once (0: 1). The
	// kernel receives each batch of requests in softirq on the sending CPU
	// right after the batch, so one thread is paced by the server's receive
	// path; on a veth pair with one receive queue, a second thread only
	// overflows the peer's ring (measured: 6.5M requests for 1.3M replies).
	Threads int
}

// Live-frames runs: how long one should last, and how many requests it may
// hold at least and at most.
const (
	chunkTime = 200 * time.Millisecond
	minChunk  = 1 << 14
	maxChunk  = 1 << 24
)

// nextChunk sizes the next run from the last: chunk requests took took;
// left of the sending time remains.
func nextChunk(chunk uint32, took, left time.Duration) uint32 {
	if took <= 0 {
		return chunk
	}
	perSec := float64(chunk) / took.Seconds()
	n := perSec * min(chunkTime, left).Seconds()
	return uint32(max(minChunk, min(maxChunk, n)))
}

// FramesSequence is what a generator asks for: cfg's keys (by rank, of
// cfg.KeySize bytes) and n draws of cfg's Zipf key choice (the socket
// client's), as ranks.
func FramesSequence(cfg Config, n int) ([]string, []uint32) {
	keys := make([]string, cfg.Keys)
	for k := range keys {
		keys[k] = Key(k, cfg.KeySize)
	}
	zipf := NewZipf(cfg.Keys, cfg.Zipf)
	rng := rand.New(rand.NewPCG(cfg.Seed, 1<<32))
	seq := make([]uint32, n)
	for i := range seq {
		seq[i] = uint32(zipf.Next(rng))
	}
	return keys, seq
}

// runFrames sends with cfg.Frames for the duration (at cfg.Rate if set, else
// as fast as the kernel makes frames) and counts the replies the tap sees,
// until none came for a while or cfg.Timeout after the end of sending.
// Requests are what the generator made; those without a reply count as
// timeouts.
func runFrames(ctx context.Context, cfg Config) (Report, error) {
	src := cfg.Frames
	switch {
	case cfg.Tap == nil:
		return Report{}, errors.New("frames: replies come through the reply tap, and there is none")
	case src.Gen == nil || src.Do == nil || len(src.Ports) == 0:
		return Report{}, errors.New("frames: generator, namespace and source ports are needed")
	}
	chunk := src.Chunk
	var readers []*replytap.Reader
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	for _, p := range src.Ports {
		r, err := cfg.Tap.Open(p)
		if err != nil {
			return Report{}, fmt.Errorf("frames: %w", err)
		}
		readers = append(readers, r)
	}
	sent0, err := src.Gen.Sent()
	if err != nil {
		return Report{}, err
	}
	var (
		sending   atomic.Bool
		lastReply atomic.Int64 // unix ns
		wg        sync.WaitGroup
		mu        sync.Mutex
		total     Report
		rerr      error
	)
	sending.Store(true)
	start := time.Now()
	lastReply.Store(start.UnixNano())
	sendEnd := start.Add(cfg.Duration)
	// quiet: no reply for this long after sending ends means all came
	const quiet = 50 * time.Millisecond
	for _, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rep Report
			kinds := make([]replytap.Kind, 65536) // by request id: the first datagram's kind
			for {
				now := time.Now()
				if !sending.Load() && (now.Sub(time.Unix(0, lastReply.Load())) > quiet || now.After(sendEnd.Add(cfg.Timeout))) {
					break
				}
				got := false
				err := receiveTap(r, now.Add(5*time.Millisecond), 1024, func(rec replytap.Record) {
					got = true
					if rec.Seq == 0 {
						kinds[rec.ReqID] = rec.Kind
					}
					if rec.Total > 0 && rec.Seq+1 < rec.Total {
						return // a reply split over datagrams: count once at its end
					}
					rep.Replies++
					switch kinds[rec.ReqID] {
					case replytap.Hit:
						rep.Hits++
					case replytap.Other:
						rep.Errors++
					}
				})
				if got {
					lastReply.Store(time.Now().UnixNano())
				}
				if err != nil {
					mu.Lock()
					rerr = errors.Join(rerr, err)
					mu.Unlock()
					break
				}
			}
			mu.Lock()
			total.Replies += rep.Replies
			total.Hits += rep.Hits
			total.Errors += rep.Errors
			mu.Unlock()
		}()
	}
	threads := max(1, src.Threads)
	serrs := make([]error, threads)
	var swg sync.WaitGroup
	for i := range threads {
		swg.Add(1)
		go func() {
			defer swg.Done()
			serrs[i] = src.Do(func() error { return sendFrames(ctx, src, chunk, cfg.Rate/float64(threads), start, sendEnd) })
		}()
	}
	swg.Wait()
	sending.Store(false)
	serr := errors.Join(serrs...)
	wg.Wait()
	sent1, err := src.Gen.Sent()
	if err := errors.Join(serr, rerr, err); err != nil {
		return Report{}, err
	}
	total.Requests = int64(sent1 - sent0)
	total.Timeouts = max(0, total.Requests-total.Replies)
	total.Elapsed = time.Unix(0, lastReply.Load()).Sub(start)
	if total.Elapsed > 0 {
		total.PerSecond = float64(total.Replies) / total.Elapsed.Seconds()
	}
	if total.Replies > 0 {
		total.HitRatio = float64(total.Hits) / float64(total.Replies)
	}
	return total, nil
}

// sendFrames makes requests with live frames on this thread until sendEnd
// (at rate per second if rate > 0); chunk 0 sizes each run from the rate
// of the last.
func sendFrames(ctx context.Context, src *Frames, chunk uint32, rate float64, start, sendEnd time.Time) error {
	fixed := chunk != 0
	if !fixed {
		chunk = minChunk
	}
	for done := uint64(0); ; done += uint64(chunk) {
		now := time.Now()
		left := sendEnd.Sub(now)
		if left <= 0 || ctx.Err() != nil {
			return nil
		}
		if rate > 0 {
			if due := start.Add(time.Duration(float64(done) / rate * float64(time.Second))); due.After(now) {
				time.Sleep(due.Sub(now))
			}
		}
		if err := src.Gen.Send(src.Ifindex, chunk, 0); err != nil {
			return err
		}
		if !fixed {
			chunk = nextChunk(chunk, time.Since(now), left)
		}
	}
}
