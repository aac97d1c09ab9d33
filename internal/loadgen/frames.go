package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

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
	// path. veth picks the receive queue by the sending CPU: with one queue
	// per CPU (netlab.Options.Queues) each thread's CPU runs its own NAPI;
	// on a pair with one queue a second thread only overflows the peer's
	// ring (measured: 6.5M requests for 1.3M replies).
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
// timeouts. The tap counts the generator's replies in the kernel (no record
// per reply: an open-loop source needs totals only, and a record would wake
// a reader per reply).
func runFrames(ctx context.Context, cfg Config) (Report, error) {
	src := cfg.Frames
	switch {
	case cfg.Tap == nil:
		return Report{}, errors.New("frames: replies come through the reply tap, and there is none")
	case src.Gen == nil || src.Do == nil || len(src.Ports) == 0:
		return Report{}, errors.New("frames: generator, namespace and source ports are needed")
	}
	defer func() {
		for _, p := range src.Ports {
			cfg.Tap.Uncount(p)
		}
	}()
	for _, p := range src.Ports {
		if err := cfg.Tap.Count(p); err != nil {
			return Report{}, fmt.Errorf("frames: %w", err)
		}
	}
	c0, err := cfg.Tap.Counted()
	if err != nil {
		return Report{}, err
	}
	sent0, err := src.Gen.Sent()
	if err != nil {
		return Report{}, err
	}
	start := time.Now()
	sendEnd := start.Add(cfg.Duration)
	threads := max(1, src.Threads)
	serrs := make([]error, threads)
	var swg sync.WaitGroup
	for i := range threads {
		swg.Add(1)
		go func() {
			defer swg.Done()
			serrs[i] = src.Do(func() error {
				return sendFrames(ctx, src, src.Chunk, cfg.Rate/float64(threads), start, sendEnd)
			})
		}()
	}
	swg.Wait()
	if err := errors.Join(serrs...); err != nil {
		return Report{}, err
	}
	// Replies still on their way: wait until the count stops moving for
	// quiet, or cfg.Timeout past the end of sending. The last reply's time
	// is known to the poll interval.
	const (
		quiet = 50 * time.Millisecond
		poll  = 2 * time.Millisecond
	)
	c1, err := cfg.Tap.Counted()
	if err != nil {
		return Report{}, err
	}
	lastReply := time.Now()
	for now := lastReply; now.Sub(lastReply) < quiet && now.Before(sendEnd.Add(cfg.Timeout)); now = time.Now() {
		time.Sleep(poll)
		c, err := cfg.Tap.Counted()
		if err != nil {
			return Report{}, err
		}
		if c.Replies != c1.Replies {
			c1, lastReply = c, time.Now()
		}
	}
	sent1, err := src.Gen.Sent()
	if err != nil {
		return Report{}, err
	}
	total := Report{
		Requests: int64(sent1 - sent0),
		Replies:  int64(c1.Replies - c0.Replies),
		Hits:     int64(c1.Hits - c0.Hits),
		Errors:   int64(c1.Other - c0.Other),
	}
	total.Timeouts = max(0, total.Requests-total.Replies)
	total.Elapsed = lastReply.Sub(start)
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
	switch {
	case !fixed && rate > 0:
		// paced: runs of about 10 ms of requests each
		chunk, fixed = uint32(max(1, min(minChunk, rate/100))), true
	case !fixed:
		chunk = minChunk
	}
	for done := uint64(0); ; done += uint64(chunk) {
		now := time.Now()
		left := sendEnd.Sub(now)
		if left <= 0 || ctx.Err() != nil {
			return nil
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(done) / rate * float64(time.Second)))
			if !due.Before(sendEnd) {
				return nil
			}
			if due.After(now) {
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
