// Package relay keeps a deployment fed while `xdpcache run` runs: the
// offload flavor's relay, which writes memcached's replies into the device's
// maps (the host's TC program cannot), and the watch on memcached that
// notices a restart, after which the cache must be flushed.
package relay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/record"
)

// Relay carries fills to a device the host's TC program cannot write: it
// reads memcached's replies from the relay ring buffer and writes items
// into the device's maps through bpf.OffloadStore, which keeps the
// consistency rules (ticket, generation, epoch). It also enforces max-age,
// which the device, having no clock, cannot.
type Relay struct {
	cache  *bpf.OffloadCache
	store  *bpf.OffloadStore
	ring   *ringbuf.Reader
	maxAge time.Duration

	mu       sync.Mutex
	filledAt map[uint32]time.Time // bucket -> when its item was written
	counts   map[bpf.FillResult]uint64
	errors   uint64
	lastErr  error
}

// Stats are the relay's counters since it started.
type Stats struct {
	Results   map[string]uint64 `json:"results"` // by bpf.FillResult name
	Errors    uint64            `json:"errors"`  // device map operations that failed
	LastError string            `json:"last_error,omitempty"`
	Items     int               `json:"items"` // items written and not yet evicted
	// The TC program's counters: replies seen, handed over, dropped for a
	// full ring, too large for the device.
	Seen, Sent, RingFull, TooBig uint64
}

// Open opens the relay of a pinned offload deployment on iface (pinRoot ""
// is record.DefaultRoot). It empties the device's items first: their age is
// unknown to a new relay.
func Open(pinRoot, iface string) (*Relay, error) {
	root, err := record.Resolve(pinRoot)
	if err != nil {
		return nil, err
	}
	d, err := record.Read(root, iface)
	if err != nil {
		return nil, err
	}
	if d.Mode != mode.Offload {
		return nil, fmt.Errorf("%s is deployed in %s mode: the relay is for offload mode only", iface, d.Mode)
	}
	f, err := record.Open(root, d)
	if err != nil {
		return nil, err
	}
	c := f.(*bpf.OffloadCache) // an offload deployment opens as the offload flavor
	r, err := newRelay(c, d.Settings.MaxAge)
	if err != nil {
		c.Close()
		return nil, err
	}
	return r, nil
}

func newRelay(c *bpf.OffloadCache, maxAge time.Duration) (*Relay, error) {
	store, err := bpf.NewOffloadStore(&c.Maps, c.Seed, c.Buckets)
	if err != nil {
		return nil, err
	}
	if err := store.Clear(); err != nil {
		return nil, fmt.Errorf("empty the device's items: %w", err)
	}
	rd, err := ringbuf.NewReader(c.Ring)
	if err != nil {
		return nil, fmt.Errorf("open the relay ring buffer: %w", err)
	}
	return &Relay{cache: c, store: store, ring: rd, maxAge: maxAge,
		filledAt: map[uint32]time.Time{}, counts: map[bpf.FillResult]uint64{}}, nil
}

// Run relays fills until ctx ends, sweeping items older than max-age.
func (r *Relay) Run(ctx context.Context) error {
	sweep := r.maxAge / 4
	if sweep > time.Second {
		sweep = time.Second
	}
	nextSweep := time.Now().Add(sweep)
	for ctx.Err() == nil {
		r.ring.SetDeadline(time.Now().Add(100 * time.Millisecond))
		rec, err := r.ring.Read()
		switch {
		case err == nil:
			r.handle(rec.RawSample)
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, ringbuf.ErrClosed):
			return nil
		default:
			return fmt.Errorf("read relay ring: %w", err)
		}
		if now := time.Now(); now.After(nextSweep) {
			r.Sweep(now)
			nextSweep = now.Add(sweep)
		}
	}
	return nil
}

func (r *Relay) handle(raw []byte) {
	rec, err := bpf.ParseFillRecord(raw)
	if err != nil {
		r.fail(err)
		return
	}
	res, b, err := r.store.Fill(rec)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errors++
		r.lastErr = err
		return
	}
	r.counts[res]++
	if res == bpf.Filled {
		r.filledAt[b] = time.Now()
	}
}

func (r *Relay) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors++
	r.lastErr = err
}

// Sweep evicts items written more than max-age before now.
func (r *Relay) Sweep(now time.Time) {
	r.mu.Lock()
	var old []uint32
	for b, t := range r.filledAt {
		if now.Sub(t) >= r.maxAge {
			old = append(old, b)
		}
	}
	r.mu.Unlock()
	for _, b := range old {
		err := r.store.Evict(b)
		r.mu.Lock()
		if err != nil {
			r.errors++
			r.lastErr = err
		} else if now.Sub(r.filledAt[b]) >= r.maxAge { // not refilled meanwhile
			delete(r.filledAt, b)
		}
		r.mu.Unlock()
	}
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Results: map[string]uint64{}, Errors: r.errors, Items: len(r.filledAt)}
	for _, res := range bpf.FillResults() {
		s.Results[res.String()] = r.counts[res]
	}
	if r.lastErr != nil {
		s.LastError = r.lastErr.Error()
	}
	for i, dst := range []*uint64{&s.Seen, &s.Sent, &s.RingFull, &s.TooBig} {
		var per []uint64
		if err := r.cache.RelayStats.Lookup(uint32(i), &per); err == nil {
			for _, v := range per {
				*dst += v
			}
		}
	}
	return s
}

// Close stops reading and releases the pinned objects (the deployment stays).
func (r *Relay) Close() error {
	return errors.Join(r.ring.Close(), r.cache.Close())
}
