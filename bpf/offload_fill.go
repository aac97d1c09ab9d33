package bpf

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/cilium/ebpf"
)

// FillRecord is what the relay TC program hands over: memcached's reply
// payload (frame header removed) and whom it goes to.
type FillRecord struct {
	Addr    [16]byte // client (IPv4 as ::ffff:a.b.c.d)
	Port    uint16   // network order, as on the wire
	ReqID   uint16   // network order
	MCPort  uint16   // memcached's port, the reply's source (network order): its instance
	Payload []byte
}

// fillRecordHeader is struct fill_record's fixed part (offload.h).
const fillRecordHeader = 16 + 2 + 2 + 4 + 2 + 2

// ParseFillRecord decodes one ring buffer record.
func ParseFillRecord(raw []byte) (FillRecord, error) {
	if len(raw) < fillRecordHeader {
		return FillRecord{}, fmt.Errorf("fill record of %d bytes is shorter than its header", len(raw))
	}
	var r FillRecord
	copy(r.Addr[:], raw)
	r.Port = binary.LittleEndian.Uint16(raw[16:])
	r.ReqID = binary.LittleEndian.Uint16(raw[18:])
	n := binary.LittleEndian.Uint32(raw[20:])
	r.MCPort = binary.LittleEndian.Uint16(raw[24:])
	if n > OffloadItemMax || int(n) > len(raw)-fillRecordHeader {
		return FillRecord{}, fmt.Errorf("fill record says %d payload bytes, has %d", n, len(raw)-fillRecordHeader)
	}
	r.Payload = raw[fillRecordHeader : fillRecordHeader+int(n)]
	return r, nil
}

// FillResult says what became of a fill record.
type FillResult int

const (
	Filled        FillResult = iota
	FillNoTicket             // no GET the device passed matches (or it was filled already)
	FillStale                // the key or the cache changed since the GET
	FillTTL                  // the key's last write set an expiry time the device cannot enforce
	FillTooBig               // larger than the device's items
	FillMalformed            // not exactly one item
	numFillResults
)

var fillResultNames = [...]string{"filled", "no_ticket", "stale", "ttl", "too_big", "malformed"}

func (r FillResult) String() string {
	if r >= 0 && int(r) < len(fillResultNames) {
		return fillResultNames[r]
	}
	return "fill_result_" + strconv.Itoa(int(r))
}

// FillResults lists every result, for counters.
func FillResults() []FillResult {
	out := make([]FillResult, numFillResults)
	for i := range out {
		out[i] = FillResult(i)
	}
	return out
}

// ParseSingleItem checks that payload is exactly one memcached item,
// "VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n", and returns its key.
func ParseSingleItem(payload []byte) ([]byte, error) {
	line, rest, ok := bytes.Cut(payload, []byte("\r\n"))
	if !ok {
		return nil, errors.New("no item line")
	}
	f := bytes.Split(line, []byte(" "))
	if len(f) != 4 || string(f[0]) != "VALUE" || len(f[1]) == 0 {
		return nil, fmt.Errorf("not a single-item reply line: %q", line)
	}
	if _, err := strconv.ParseUint(string(f[2]), 10, 32); err != nil {
		return nil, fmt.Errorf("item flags %q: %w", f[2], err)
	}
	n, err := strconv.Atoi(string(f[3]))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("item length %q: not a number", f[3])
	}
	if len(rest) != n+len("\r\nEND\r\n") || !bytes.Equal(rest[n:], []byte("\r\nEND\r\n")) {
		return nil, fmt.Errorf("item of %d bytes is not followed by exactly \\r\\nEND\\r\\n", n)
	}
	return f[1], nil
}

// OffloadChecksum is the unfolded one's complement sum of b as
// little-endian 16-bit words (an odd last byte padded with zero), the form
// the XDP program adds to the reply's UDP checksum.
func OffloadChecksum(b []byte) uint32 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i]) | uint32(b[i+1])<<8
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum
}

// offloadEntryCheck mirrors oentry_check in offload.h.
func offloadEntryCheck(e *OffloadEntry) uint32 {
	return uint32(e.Gen) ^ uint32(e.Gen>>32) ^ uint32(e.Epoch) ^ uint32(e.Epoch>>32) ^
		uint32(e.Tail) ^ uint32(e.Tail>>32) ^ e.Fill ^ e.Hash ^ e.Sum ^
		(uint32(e.Len)<<16 | uint32(e.KeyLen)) ^ 0x9e3779b9
}

func chunksOf(n int) int { return (n + OffloadChunk - 1) / OffloadChunk }

// OffloadStore writes items into the offload flavor's maps: what the relay
// does with each fill record. It is not safe for concurrent use.
type OffloadStore struct {
	Maps    *OffloadMaps
	Seed    uint32
	Buckets uint32
	next    uint32 // fill ids
}

// NewOffloadStore starts fill ids at a random point, so that chunks left
// by an earlier relay are never mistaken for this one's.
func NewOffloadStore(m *OffloadMaps, seed, buckets uint32) (*OffloadStore, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("random fill id: %w", err)
	}
	return &OffloadStore{Maps: m, Seed: seed, Buckets: buckets, next: binary.LittleEndian.Uint32(b[:])}, nil
}

func (s *OffloadStore) fillID() uint32 {
	s.next++
	id := s.next & (1<<(32-offloadFillShift) - 1)
	if id == 0 {
		s.next++
		id = 1
	}
	return id
}

// Fill checks a reply against the ticket the XDP program left for its GET
// and, if the key is unchanged since, writes the item: chunks first, then
// the entry that points at them, then the replaced item's chunks go. It
// returns the bucket written (or looked at).
func (s *OffloadStore) Fill(r FillRecord) (FillResult, uint32, error) {
	key, err := ParseSingleItem(r.Payload)
	if err != nil {
		return FillMalformed, 0, nil
	}
	if len(r.Payload) > OffloadItemMax || len(key) > OffloadKeyMax {
		return FillTooBig, 0, nil
	}
	hash := OffloadKeyHash(key, OffloadInstanceSeed(s.Seed, ntohs(r.MCPort)))
	b := hash & (s.Buckets - 1)
	tk := OffloadTicketKey{Addr: r.Addr, Port: r.Port, ReqId: r.ReqID, Hash: hash}
	var t OffloadTicket
	if err := s.Maps.OticketMap.Lookup(&tk, &t); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return FillNoTicket, b, nil
		}
		return 0, b, fmt.Errorf("read ticket: %w", err)
	}
	if err := s.Maps.OticketMap.Delete(&tk); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, b, fmt.Errorf("delete ticket: %w", err)
	}
	var ttl OffloadTTL
	if err := s.Maps.OttlMap.Lookup(&b, &ttl); err == nil && ttl.Gen == t.Gen {
		return FillTTL, b, nil
	}
	var g OffloadGen
	var st xdpoffOstate
	if err := s.Maps.OgenMap.Lookup(&b, &g); err != nil {
		return 0, b, fmt.Errorf("read bucket generation: %w", err)
	}
	if err := s.Maps.OstateMap.Lookup(uint32(0), &st); err != nil {
		return 0, b, fmt.Errorf("read epoch: %w", err)
	}
	if g.Gen != t.Gen || st.Epoch != t.Epoch {
		return FillStale, b, nil
	}
	var old OffloadEntry
	if err := s.Maps.OentryMap.Lookup(&b, &old); err != nil {
		return 0, b, fmt.Errorf("read entry: %w", err)
	}
	fill := s.fillID()
	p := r.Payload
	for i := 0; i < chunksOf(len(p)); i++ {
		var c OffloadChunkData
		copy(c.B[:], p[i*OffloadChunk:])
		ck := OffloadChunkKey{Bucket: b, Fill: fill<<offloadFillShift | uint32(i)}
		if err := s.Maps.OchunkMap.Update(&ck, &c, ebpf.UpdateAny); err != nil {
			s.deleteChunks(b, fill, len(p))
			return 0, b, fmt.Errorf("write chunk %d: %w", i, err)
		}
	}
	e := OffloadEntry{
		Gen: t.Gen, Epoch: t.Epoch, Fill: fill, Hash: hash,
		Tail: binary.LittleEndian.Uint64(p[len(p)-8:]),
		Sum:  OffloadChecksum(p), Len: uint16(len(p)), KeyLen: uint16(len(key)),
	}
	e.Check = offloadEntryCheck(&e)
	if err := s.Maps.OentryMap.Update(&b, &e, ebpf.UpdateAny); err != nil {
		s.deleteChunks(b, fill, len(p))
		return 0, b, fmt.Errorf("write entry: %w", err)
	}
	if old.Len != 0 && old.Fill != fill {
		s.deleteChunks(b, old.Fill, int(old.Len))
	}
	return Filled, b, nil
}

// Evict empties bucket b (the relay's max-age sweep).
func (s *OffloadStore) Evict(b uint32) error {
	var old OffloadEntry
	if err := s.Maps.OentryMap.Lookup(&b, &old); err != nil {
		return fmt.Errorf("read entry %d: %w", b, err)
	}
	if old.Len == 0 {
		return nil
	}
	if err := s.Maps.OentryMap.Update(&b, &OffloadEntry{}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("clear entry %d: %w", b, err)
	}
	s.deleteChunks(b, old.Fill, int(old.Len))
	return nil
}

// Clear empties every bucket and removes every chunk: what a relay does
// when it starts, since it cannot know how old the items it finds are.
func (s *OffloadStore) Clear() error {
	for b := uint32(0); b < s.Buckets; b++ {
		if err := s.Maps.OentryMap.Update(&b, &OffloadEntry{}, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("clear entry %d: %w", b, err)
		}
	}
	var ck OffloadChunkKey
	var keys []OffloadChunkKey
	it := s.Maps.OchunkMap.Iterate()
	var c OffloadChunkData
	for it.Next(&ck, &c) {
		keys = append(keys, ck)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list chunks: %w", err)
	}
	for i := range keys {
		if err := s.Maps.OchunkMap.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete chunk: %w", err)
		}
	}
	return nil
}

func (s *OffloadStore) deleteChunks(b, fill uint32, n int) {
	for i := 0; i < chunksOf(n) && i < OffloadMaxChunks; i++ {
		ck := OffloadChunkKey{Bucket: b, Fill: fill<<offloadFillShift | uint32(i)}
		_ = s.Maps.OchunkMap.Delete(&ck) // absent is fine: it was never written
	}
}

// ntohs turns a port stored as on the wire into its number.
func ntohs(v uint16) uint16 { return v<<8 | v>>8 }
