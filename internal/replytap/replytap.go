// Package replytap is a benchmark instrument, not part of the cache: an XDP
// program for a load generator's interface that hands memcached's UDP
// replies to per-socket ring buffers (c/reply_tap.c), so the client measures
// the server rather than its own receive stack.
package replytap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/bpf"
)

// Tap is the load generator's receive path (c/reply_tap.c): an XDP
// program for the client's interface that turns each of memcached's UDP
// replies to a registered socket into a small record on that socket's ring
// buffer and drops the packet, so a benchmark's client spends no CPU on the
// receive stack. It is not part of the cache.
type Tap struct {
	objs  replytapObjects
	mu    sync.Mutex
	slots map[uint32]bool // tap_rings slots in use
}

// Kind is what a reply said.
type Kind uint8

// Reply kinds (enum tap_kind).
const (
	Other Kind = iota // neither hit nor miss, or not the first datagram
	Hit
	Miss
)

// Record is one datagram of a reply: its UDP frame header and kind.
type Record struct {
	ReqID, Seq, Total uint16
	Kind              Kind
}

const tapRecordSize = 8 // struct tap_record

// enum tap_stat
const (
	tapStatRingFull       = uint32(1) // TAP_RING_FULL
	tapStatCountedReplies = uint32(2) // TAP_COUNTED_REPLIES
	tapStatCountedHits    = uint32(3) // TAP_COUNTED_HITS
	tapStatCountedOther   = uint32(4) // TAP_COUNTED_OTHER
)

// tapCountOnly is TAP_COUNT_ONLY: the tap_ports value of a counted port.
const tapCountOnly = ^uint32(0)

// tapMaxSockets is tap_rings' and tap_ports' size.
const tapMaxSockets = 256

// Load loads the program for replies from serverPort. The caller
// attaches Program() to the client's interface.
func Load(serverPort uint16) (*Tap, error) {
	if serverPort == 0 {
		return nil, errors.New("reply tap: server port 0")
	}
	t := &Tap{slots: map[uint32]bool{}}
	if err := loadReplytapObjects(&t.objs, nil); err != nil {
		return nil, fmt.Errorf("load reply tap: %w", bpf.VerifierSummary(err))
	}
	cfg := replytapTapCfg{ServerPort: htons(serverPort)}
	if err := t.objs.TapCfgMap.Put(uint32(0), cfg); err != nil {
		t.Close()
		return nil, fmt.Errorf("reply tap config: %w", err)
	}
	return t, nil
}

// Program is the XDP program to attach.
func (t *Tap) Program() *ebpf.Program { return t.objs.ReplyTap }

// Close releases the program and maps (an attachment keeps the program).
func (t *Tap) Close() error { return t.objs.Close() }

// Lost is how many replies were dropped because a socket's ring was full.
func (t *Tap) Lost() (uint64, error) { return t.stat(tapStatRingFull) }

func (t *Tap) stat(idx uint32) (uint64, error) {
	var per []uint64
	if err := t.objs.TapStats.Lookup(idx, &per); err != nil {
		return 0, fmt.Errorf("reply tap stats: %w", err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Counts are the totals of the counted ports' replies since Load.
type Counts struct {
	Replies uint64 // whole replies (a reply split over datagrams once)
	Hits    uint64 // replies whose first datagram is a hit
	Other   uint64 // replies whose first datagram is neither hit nor miss
}

// Count has the replies to localPort (host order) counted and dropped,
// without a record each: for a source that needs totals only (Counted).
func (t *Tap) Count(localPort uint16) error {
	if err := t.objs.TapPorts.Put(htons(localPort), tapCountOnly); err != nil {
		return fmt.Errorf("reply tap: count port %d: %w", localPort, err)
	}
	return nil
}

// Uncount stops counting localPort's replies (they pass again).
func (t *Tap) Uncount(localPort uint16) error {
	if err := t.objs.TapPorts.Delete(htons(localPort)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("reply tap: uncount port %d: %w", localPort, err)
	}
	return nil
}

// Counted reads the counted ports' totals.
func (t *Tap) Counted() (Counts, error) {
	var c Counts
	var err error
	if c.Replies, err = t.stat(tapStatCountedReplies); err != nil {
		return Counts{}, err
	}
	if c.Hits, err = t.stat(tapStatCountedHits); err != nil {
		return Counts{}, err
	}
	if c.Other, err = t.stat(tapStatCountedOther); err != nil {
		return Counts{}, err
	}
	return c, nil
}

// Reader receives the records of one socket's replies.
type Reader struct {
	tap  *Tap
	slot uint32
	port uint16
	ring *ebpf.Map
	rd   *ringbuf.Reader
	rec  ringbuf.Record
	// The ring's fd (a copy) in Go's network poller: waiting for records
	// parks the goroutine instead of blocking its thread in epoll_wait,
	// which starves the other sockets' goroutines of Ps at low rates.
	poll *os.File
	raw  syscall.RawConn
}

// Open routes replies to localPort (the socket's port, host order) to a new
// ring buffer and returns its reader.
func (t *Tap) Open(localPort uint16) (*Reader, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	slot := uint32(0)
	for ; slot < tapMaxSockets && t.slots[slot]; slot++ {
	}
	if slot == tapMaxSockets {
		return nil, fmt.Errorf("reply tap: more than %d sockets", tapMaxSockets)
	}
	ring, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 18})
	if err != nil {
		return nil, fmt.Errorf("reply tap ring: %w", err)
	}
	r := &Reader{tap: t, slot: slot, port: localPort, ring: ring}
	if r.rd, err = ringbuf.NewReader(ring); err != nil {
		ring.Close()
		return nil, fmt.Errorf("reply tap ring reader: %w", err)
	}
	if err := r.openPoll(); err != nil {
		r.close()
		return nil, err
	}
	if err := t.objs.TapRings.Put(slot, ring); err != nil {
		r.close()
		return nil, fmt.Errorf("reply tap: register ring: %w", err)
	}
	if err := t.objs.TapPorts.Put(htons(localPort), slot); err != nil {
		t.objs.TapRings.Delete(slot)
		r.close()
		return nil, fmt.Errorf("reply tap: register port %d: %w", localPort, err)
	}
	t.slots[slot] = true
	return r, nil
}

// Read returns the next record, waiting until deadline at most (then an
// error that wraps os.ErrDeadlineExceeded).
func (r *Reader) Read(deadline time.Time) (Record, error) {
	if !r.Pending() {
		if err := r.poll.SetReadDeadline(deadline); err != nil {
			return Record{}, err
		}
		if err := r.raw.Read(func(uintptr) bool { return r.Pending() }); err != nil {
			return Record{}, err
		}
	}
	// A record is there: the reader takes it without waiting.
	r.rd.SetDeadline(time.Time{})
	if err := r.rd.ReadInto(&r.rec); err != nil {
		return Record{}, err
	}
	b := r.rec.RawSample
	if len(b) < tapRecordSize {
		return Record{}, fmt.Errorf("reply tap: %d-byte record", len(b))
	}
	return Record{
		ReqID: binary.LittleEndian.Uint16(b[0:]),
		Seq:   binary.LittleEndian.Uint16(b[2:]),
		Total: binary.LittleEndian.Uint16(b[4:]),
		Kind:  Kind(b[6]),
	}, nil
}

// openPoll puts a non-blocking copy of the ring's fd into Go's poller.
func (r *Reader) openPoll() error {
	fd, err := unix.FcntlInt(uintptr(r.ring.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("reply tap: dup ring fd: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("reply tap: ring fd: %w", err)
	}
	r.poll = os.NewFile(uintptr(fd), "reply-tap-ring")
	if err := r.poll.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("reply tap: the ring cannot be polled: %w", err)
	}
	if r.raw, err = r.poll.SyscallConn(); err != nil {
		return fmt.Errorf("reply tap: %w", err)
	}
	return nil
}

// Pending says whether a record is waiting, so Read will not block.
func (r *Reader) Pending() bool { return r.rd.AvailableBytes() > 0 }

// Close stops routing the socket's replies and frees the ring.
func (r *Reader) Close() error {
	t := r.tap
	t.mu.Lock()
	defer t.mu.Unlock()
	t.objs.TapPorts.Delete(htons(r.port))
	t.objs.TapRings.Delete(r.slot)
	delete(t.slots, r.slot)
	return r.close()
}

func (r *Reader) close() error {
	var errs []error
	if r.poll != nil {
		errs = append(errs, r.poll.Close())
	}
	if r.rd != nil {
		errs = append(errs, r.rd.Close())
	}
	return errors.Join(append(errs, r.ring.Close())...)
}

// htons is v in network byte order as the (little-endian) BPF target stores it.
func htons(v uint16) uint16 { return v<<8 | v>>8 }
