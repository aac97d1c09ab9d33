package consistency

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpcache/xdpcache/internal/mclient"
)

// Workload drives concurrent writers (TCP, ASCII and binary) and readers
// (UDP, ASCII and binary) on a small hot key set and records the history.
type Workload struct {
	Keys       int           // hot keys
	Writers    int           // TCP writer connections
	Readers    int           // UDP reader sockets
	Ops        int           // stop after this many operations in all
	Duration   time.Duration // or after this long
	FlushEvery int           // writer 0 sends flush_all every N of its operations (0: never)
	WritePause time.Duration // pause between a writer's operations (keeps keys readable from the cache)
	Seed       uint64
	DialTCP    func() (net.Conn, error)
	DialUDP    func() (net.Conn, error)
}

// Run executes the workload and returns its history.
func (w Workload) Run(ctx context.Context) (*History, error) {
	if w.Keys <= 0 || w.Writers <= 0 || w.Readers <= 0 || (w.Ops <= 0 && w.Duration <= 0) {
		return nil, fmt.Errorf("workload needs keys, writers, readers and an operation count or duration")
	}
	if w.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.Duration)
		defer cancel()
	}
	h := &History{}
	var done atomic.Int64
	more := func() bool {
		return ctx.Err() == nil && (w.Ops <= 0 || done.Add(1) <= int64(w.Ops))
	}
	var wg sync.WaitGroup
	errc := make(chan error, w.Writers+w.Readers)
	for i := range w.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.writer(i, h, more); err != nil {
				errc <- fmt.Errorf("writer %d: %w", i, err)
			}
		}()
	}
	for i := range w.Readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.reader(i, h, more); err != nil {
				errc <- fmt.Errorf("reader %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		return h, err
	}
	return h, nil
}

func (w Workload) key(r *rand.Rand) string { return "ck:" + strconv.Itoa(r.IntN(w.Keys)) }

func (w Workload) writer(id int, h *History, more func() bool) error {
	tc, err := w.DialTCP()
	if err != nil {
		return err
	}
	defer tc.Close()
	bc, err := w.DialTCP() // binary protocol on its own connection
	if err != nil {
		return err
	}
	defer bc.Close()
	c, bin := mclient.New(tc, nil), mclient.New(bc, nil)
	r := rand.New(rand.NewPCG(w.Seed, uint64(id)))
	name := "w" + strconv.Itoa(id)
	seq := 0
	val := func(k string) string { seq++; return Value(k, name, seq) }
	for n := 0; more(); n++ {
		if w.WritePause > 0 {
			time.Sleep(w.WritePause)
		}
		k := w.key(r)
		start := time.Now()
		if id == 0 && w.FlushEvery > 0 && n%w.FlushEvery == w.FlushEvery-1 {
			l, err := c.Do("flush_all")
			if err != nil {
				return err
			}
			if l != "OK" {
				return fmt.Errorf("flush_all: %s", l)
			}
			h.Add(Op{Kind: Flush, Start: start, End: time.Now(), Client: name})
			continue
		}
		switch p := r.IntN(100); {
		case p < 35: // set
			v := val(k)
			if err := c.Set(k, v, 0); err != nil {
				return err
			}
			h.Add(Op{Kind: Write, Key: k, Value: v, Start: start, End: time.Now(), Client: name})
		case p < 42: // set with a short exptime
			v := val(k)
			if err := c.Set(k, v, 2); err != nil {
				return err
			}
			h.Add(Op{Kind: Write, Key: k, Value: v, Exptime: 2 * time.Second, Start: start, End: time.Now(), Client: name})
		case p < 50: // set noreply: no acknowledgement, so no end
			v := val(k)
			if _, err := fmt.Fprintf(tc, "set %s 0 0 %d noreply\r\n%s\r\n", k, len(v), v); err != nil {
				return err
			}
			h.Add(Op{Kind: Write, Key: k, Value: v, Start: start, Client: name})
		case p < 60: // gets + cas
			_, cas, found, err := c.Gets(k)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			v := val(k)
			start = time.Now()
			l, err := c.Do(fmt.Sprintf("cas %s 0 0 %d %d\r\n%s", k, len(v), cas, v))
			if err != nil {
				return err
			}
			op := Op{Kind: Write, Key: k, Value: v, Start: start, Client: name}
			if l == "STORED" {
				op.End = time.Now()
			} else if l != "EXISTS" && l != "NOT_FOUND" {
				return fmt.Errorf("cas: %s", l)
			}
			if l == "STORED" {
				h.Add(op)
			}
		case p < 70: // delete
			l, err := c.Do("delete " + k)
			if err != nil {
				return err
			}
			if l != "DELETED" && l != "NOT_FOUND" {
				return fmt.Errorf("delete: %s", l)
			}
			h.Add(Op{Kind: Delete, Key: k, Start: start, End: time.Now(), Client: name})
		case p < 80: // a pipelined batch of three sets
			var cmds []string
			var ops []Op
			for range 3 {
				k := w.key(r)
				v := val(k)
				cmds = append(cmds, fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", k, len(v), v))
				ops = append(ops, Op{Kind: Write, Key: k, Value: v, Start: start, Client: name})
			}
			replies, err := c.Pipeline(cmds...)
			if err != nil {
				return err
			}
			end := time.Now()
			for i, l := range replies {
				if l != "STORED" {
					return fmt.Errorf("pipelined set: %s", l)
				}
				ops[i].End = end
				h.Add(ops[i])
			}
		case p < 90: // binary SET
			v := val(k)
			if err := bin.BinSet(k, v, 0); err != nil {
				return err
			}
			h.Add(Op{Kind: Write, Key: k, Value: v, Start: start, End: time.Now(), Client: name + "b"})
		default: // binary DELETE
			if err := bin.BinDelete(k); err != nil {
				return err
			}
			h.Add(Op{Kind: Delete, Key: k, Start: start, End: time.Now(), Client: name + "b"})
		}
	}
	return nil
}

func (w Workload) reader(id int, h *History, more func() bool) error {
	uc, err := w.DialUDP()
	if err != nil {
		return err
	}
	defer uc.Close()
	c := mclient.New(nil, uc)
	c.Timeout = 500 * time.Millisecond
	r := rand.New(rand.NewPCG(w.Seed^0xabcdef, uint64(id)))
	name := "r" + strconv.Itoa(id)
	timeouts := 0
	for more() {
		start := time.Now()
		switch p := r.IntN(100); {
		case p < 70:
			k := w.key(r)
			v, found, err := c.Get(k)
			if err != nil {
				if timeouts++; timeouts > 50 {
					return fmt.Errorf("too many UDP timeouts: %w", err)
				}
				continue
			}
			h.Add(Op{Kind: Read, Key: k, Value: v, Found: found, Start: start, End: time.Now(), Client: name})
		case p < 85:
			keys := []string{w.key(r), w.key(r), w.key(r)}
			got, err := c.GetMulti(keys...)
			if err != nil {
				if timeouts++; timeouts > 50 {
					return fmt.Errorf("too many UDP timeouts: %w", err)
				}
				continue
			}
			end := time.Now()
			for _, k := range keys {
				v, found := got[k]
				h.Add(Op{Kind: Read, Key: k, Value: v, Found: found, Start: start, End: end, Client: name})
			}
		default:
			k := w.key(r)
			op := byte(0x00)
			if r.IntN(2) == 0 {
				op = 0x0c
			}
			v, found, err := c.BinGet(op, k, uint32(r.Uint32()))
			if err != nil {
				if timeouts++; timeouts > 50 {
					return fmt.Errorf("too many UDP timeouts: %w", err)
				}
				continue
			}
			h.Add(Op{Kind: Read, Key: k, Value: v, Found: found, Start: start, End: time.Now(), Client: name + "b"})
		}
	}
	return nil
}
