package consistency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpcache/xdpcache/internal/mcproto"
)

// Workload drives concurrent writers (TCP, ASCII and binary; UDP, ASCII and
// binary) and readers (UDP, ASCII and binary) on a small hot key set and
// records the history.
type Workload struct {
	Keys       int           // hot keys
	Writers    int           // TCP writer connections
	UDPWriters int           // UDP writer sockets (every write waits for its acknowledgement)
	Noreply    bool          // TCP writers also send noreply sets (each followed by a version: its end)
	Readers    int           // UDP reader sockets
	Ops        int           // stop after this many operations in all
	Duration   time.Duration // or after this long
	FlushEvery int           // writer 0 sends flush_all every N of its operations (0: never)
	WritePause time.Duration // pause between a writer's operations (keeps keys readable from the cache)
	Seed       uint64
	DialTCP    func() (net.Conn, error)
	DialUDP    func() (*net.UDPConn, error)
	// Name prefixes the clients' names, and so the values they write: two
	// workloads on two memcached instances write different values under
	// the same keys.
	Name string
	// WriteVia and ReadVia, when set, are the paths writers and readers
	// take in turn (writer i dials WriteVia[i % len]): a second interface,
	// loopback. Unset: DialTCP and DialUDP.
	WriteVia []func() (net.Conn, error)
	ReadVia  []func() (*net.UDPConn, error)
}

// Client timeouts: writers wait for memcached; a reader's UDP request may
// be lost, and the reader moves on.
const (
	writeTimeout = 2 * time.Second
	readTimeout  = 500 * time.Millisecond
)

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
	errc := make(chan error, w.Writers+w.UDPWriters+w.Readers)
	for i := range w.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.writer(i, h, more); err != nil {
				errc <- fmt.Errorf("writer %d: %w", i, err)
			}
		}()
	}
	for i := range w.UDPWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.udpWriter(i, h, more); err != nil {
				errc <- fmt.Errorf("UDP writer %d: %w", i, err)
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
	dial := w.DialTCP
	if len(w.WriteVia) > 0 {
		dial = w.WriteVia[id%len(w.WriteVia)]
	}
	tc, err := dial()
	if err != nil {
		return err
	}
	defer tc.Close()
	bc, err := dial() // binary protocol on its own connection
	if err != nil {
		return err
	}
	defer bc.Close()
	c, bin := mcproto.NewTCPClient(tc, writeTimeout), mcproto.NewTCPClient(bc, writeTimeout)
	r := rand.New(rand.NewPCG(w.Seed, uint64(id)))
	name := w.Name + "w" + strconv.Itoa(id)
	seq := 0
	val := func(k string) string { seq++; return Value(k, name, seq) }
	for n := 0; more(); n++ {
		if w.WritePause > 0 {
			time.Sleep(w.WritePause)
		}
		k := w.key(r)
		start := time.Now()
		if id == 0 && w.FlushEvery > 0 && n%w.FlushEvery == w.FlushEvery-1 {
			if err := c.FlushAll(); err != nil {
				return err
			}
			h.Add(Op{Kind: Flush, Start: start, End: time.Now(), Client: name})
			continue
		}
		switch p := r.IntN(100); {
		case p < 35: // set
			v := val(k)
			if err := c.Set(k, 0, 0, []byte(v)); err != nil {
				return err
			}
			h.Add(Op{Kind: Write, Key: k, Value: v, Start: start, End: time.Now(), Client: name})
		case p < 42: // set with a short exptime
			v := val(k)
			if err := c.Set(k, 0, 2, []byte(v)); err != nil {
				return err
			}
			h.Add(Op{Kind: Write, Key: k, Value: v, Exptime: 2 * time.Second, Start: start, End: time.Now(), Client: name})
		case p < 50 && w.Noreply: // set noreply, then a version: memcached processed the set once it answers
			v := val(k)
			if err := c.Store("set", k, 0, 0, []byte(v), 0, true); err != nil {
				return err
			}
			if _, err := c.Do([]byte("version\r\n")); err != nil {
				return err
			}
			h.Add(Op{Kind: Write, Key: k, Value: v, Start: start, End: time.Now(), Client: name + "n"})
		case p < 50: // set
			v := val(k)
			if err := c.Set(k, 0, 0, []byte(v)); err != nil {
				return err
			}
			h.Add(Op{Kind: Write, Key: k, Value: v, Start: start, End: time.Now(), Client: name})
		case p < 60: // gets + cas
			items, err := c.Gets(k)
			if err != nil {
				return err
			}
			if len(items) == 0 {
				continue
			}
			v := val(k)
			start = time.Now()
			err = c.Store("cas", k, 0, 0, []byte(v), items[0].CAS, false)
			switch {
			case err == nil:
				h.Add(Op{Kind: Write, Key: k, Value: v, Start: start, End: time.Now(), Client: name})
			case errors.Is(err, mcproto.ErrExists), errors.Is(err, mcproto.ErrNotFound):
				// another writer got there first: nothing written
			default:
				return err
			}
		case p < 70: // delete
			if err := c.Delete(k); err != nil && !errors.Is(err, mcproto.ErrNotFound) {
				return err
			}
			h.Add(Op{Kind: Delete, Key: k, Start: start, End: time.Now(), Client: name})
		case p < 80: // a pipelined batch of three sets
			var reqs [][]byte
			var ops []Op
			for range 3 {
				k := w.key(r)
				v := val(k)
				reqs = append(reqs, mcproto.AppendStorage(nil, "set", k, 0, 0, []byte(v), 0, false))
				ops = append(ops, Op{Kind: Write, Key: k, Value: v, Start: start, Client: name})
			}
			replies, err := c.Pipeline(reqs...)
			if err != nil {
				return err
			}
			end := time.Now()
			for i, l := range replies {
				if err := mcproto.ParseStatusLine(l, "STORED"); err != nil {
					return fmt.Errorf("pipelined set %s: %w", ops[i].Key, err)
				}
				ops[i].End = end
				h.Add(ops[i])
			}
		case p < 90: // binary SET
			v := val(k)
			if err := bin.BinSet(k, 0, 0, []byte(v)); err != nil {
				return err
			}
			h.Add(Op{Kind: Write, Key: k, Value: v, Start: start, End: time.Now(), Client: name + "b"})
		default: // binary DELETE
			if err := bin.BinDelete(k); err != nil && !errors.Is(err, mcproto.ErrNotFound) {
				return err
			}
			h.Add(Op{Kind: Delete, Key: k, Start: start, End: time.Now(), Client: name + "b"})
		}
	}
	return nil
}

// udpWriter writes over UDP: ASCII set and delete, binary set. A write
// whose reply does not come (a datagram lost) may still have been applied:
// it is recorded without an end.
func (w Workload) udpWriter(id int, h *History, more func() bool) error {
	uc, err := w.DialUDP()
	if err != nil {
		return err
	}
	defer uc.Close()
	c := mcproto.NewUDPClient(uc, writeTimeout)
	r := rand.New(rand.NewPCG(w.Seed^0x5eed, uint64(id)))
	name := "u" + strconv.Itoa(id)
	seq, lost := 0, 0
	for more() {
		if w.WritePause > 0 {
			time.Sleep(w.WritePause)
		}
		k := w.key(r)
		seq++
		v := Value(k, name, seq)
		op := Op{Kind: Write, Key: k, Value: v, Client: name}
		var req []byte
		want := []string{"STORED"}
		switch p := r.IntN(100); {
		case p < 60:
			req = mcproto.AppendStorage(nil, "set", k, 0, 0, []byte(v), 0, false)
		case p < 80:
			op = Op{Kind: Delete, Key: k, Client: name}
			req = mcproto.AppendDelete(nil, k, false)
			want = []string{"DELETED", "NOT_FOUND"}
		default:
			op.Client = name + "b"
			req = mcproto.AppendBinSet(nil, mcproto.OpSet, k, []byte(v), 0, 0, 0, uint32(seq))
		}
		op.Start = time.Now()
		replies, err := c.Raw(req)
		if err != nil {
			if !errors.Is(err, mcproto.ErrNoReply) {
				return err
			}
			if lost++; lost > 50 {
				return fmt.Errorf("too many UDP writes unanswered: %w", err)
			}
			h.Add(op) // perhaps applied: no end
			continue
		}
		end := time.Now()
		if err := udpWriteAcked(bytes.Join(replies, nil), req[0] == mcproto.MagicRequest, want); err != nil {
			return fmt.Errorf("%s %s: %w", name, k, err)
		}
		op.End = end
		h.Add(op)
	}
	return nil
}

// udpWriteAcked checks a UDP write's reply: one of the status lines, or a
// binary response without error.
func udpWriteAcked(reply []byte, binary bool, want []string) error {
	if binary {
		p, _, err := mcproto.ParseBinPacket(reply)
		if err != nil {
			return err
		}
		return p.Err()
	}
	line, _, err := mcproto.ParseLine(reply)
	if err != nil {
		return err
	}
	for _, s := range want {
		if string(line) == s {
			return nil
		}
	}
	return fmt.Errorf("reply %q, want one of %v", line, want)
}

func (w Workload) reader(id int, h *History, more func() bool) error {
	dial := w.DialUDP
	if len(w.ReadVia) > 0 {
		dial = w.ReadVia[id%len(w.ReadVia)]
	}
	uc, err := dial()
	if err != nil {
		return err
	}
	defer uc.Close()
	c := mcproto.NewUDPClient(uc, readTimeout)
	r := rand.New(rand.NewPCG(w.Seed^0xabcdef, uint64(id)))
	name := w.Name + "r" + strconv.Itoa(id)
	timeouts := 0
	for more() {
		start := time.Now()
		switch p := r.IntN(100); {
		case p < 70:
			k := w.key(r)
			items, err := c.Get(k)
			if err != nil {
				if timeouts++; timeouts > 50 {
					return fmt.Errorf("too many UDP timeouts: %w", err)
				}
				continue
			}
			op := Op{Kind: Read, Key: k, Start: start, End: time.Now(), Client: name}
			if len(items) > 0 {
				op.Value, op.Found = string(items[0].Value), true
			}
			h.Add(op)
		case p < 85:
			keys := []string{w.key(r), w.key(r), w.key(r)}
			items, err := c.Get(keys...)
			if err != nil {
				if timeouts++; timeouts > 50 {
					return fmt.Errorf("too many UDP timeouts: %w", err)
				}
				continue
			}
			end := time.Now()
			got := make(map[string]string, len(items))
			for _, it := range items {
				got[it.Key] = string(it.Value)
			}
			for _, k := range keys {
				v, found := got[k]
				h.Add(Op{Kind: Read, Key: k, Value: v, Found: found, Start: start, End: end, Client: name})
			}
		default:
			k := w.key(r)
			opcode := mcproto.OpGet
			if r.IntN(2) == 0 {
				opcode = mcproto.OpGetK
			}
			p, err := c.BinGet(opcode, k, r.Uint32())
			if err == nil && p.Header.Status != mcproto.StatusKeyNotFound {
				err = p.Err()
			}
			if err != nil {
				if timeouts++; timeouts > 50 {
					return fmt.Errorf("too many UDP timeouts: %w", err)
				}
				continue
			}
			op := Op{Kind: Read, Key: k, Start: start, End: time.Now(), Client: name + "b"}
			if p.Header.Status == mcproto.StatusOK {
				op.Value, op.Found = string(p.Value), true
			}
			h.Add(op)
		}
	}
	return nil
}
