package mcproto

import (
	"encoding/binary"
	"fmt"
)

// Binary protocol magics.
const (
	MagicRequest  uint8 = 0x80
	MagicResponse uint8 = 0x81
)

// BinHeaderLen is the size of a binary protocol header.
const BinHeaderLen = 24

// Binary protocol opcodes.
const (
	OpGet        uint8 = 0x00
	OpSet        uint8 = 0x01
	OpAdd        uint8 = 0x02
	OpReplace    uint8 = 0x03
	OpDelete     uint8 = 0x04
	OpIncrement  uint8 = 0x05
	OpDecrement  uint8 = 0x06
	OpQuit       uint8 = 0x07
	OpFlush      uint8 = 0x08
	OpGetQ       uint8 = 0x09
	OpNoop       uint8 = 0x0a
	OpVersion    uint8 = 0x0b
	OpGetK       uint8 = 0x0c
	OpGetKQ      uint8 = 0x0d
	OpAppend     uint8 = 0x0e
	OpPrepend    uint8 = 0x0f
	OpStat       uint8 = 0x10
	OpSetQ       uint8 = 0x11
	OpAddQ       uint8 = 0x12
	OpReplaceQ   uint8 = 0x13
	OpDeleteQ    uint8 = 0x14
	OpIncrementQ uint8 = 0x15
	OpDecrementQ uint8 = 0x16
	OpFlushQ     uint8 = 0x18
	OpAppendQ    uint8 = 0x19
	OpPrependQ   uint8 = 0x1a
	OpTouch      uint8 = 0x1c
	OpGAT        uint8 = 0x1d
	OpGATQ       uint8 = 0x1e
	OpGATK       uint8 = 0x23
	OpGATKQ      uint8 = 0x24
)

// Binary protocol response status codes.
const (
	StatusOK             uint16 = 0x0000
	StatusKeyNotFound    uint16 = 0x0001
	StatusKeyExists      uint16 = 0x0002
	StatusValueTooLarge  uint16 = 0x0003
	StatusInvalidArgs    uint16 = 0x0004
	StatusItemNotStored  uint16 = 0x0005
	StatusNonNumeric     uint16 = 0x0006
	StatusUnknownCommand uint16 = 0x0081
	StatusOutOfMemory    uint16 = 0x0082
)

// IsQuiet reports whether op is a quiet opcode (no reply on a get miss or
// on success of a mutation).
func IsQuiet(op uint8) bool {
	switch op {
	case OpGetQ, OpGetKQ, OpSetQ, OpAddQ, OpReplaceQ, OpDeleteQ,
		OpIncrementQ, OpDecrementQ, OpFlushQ, OpAppendQ, OpPrependQ,
		OpGATQ, OpGATKQ:
		return true
	}
	return false
}

// BinHeader is the 24-byte binary protocol header. Status carries the
// vbucket id in requests.
type BinHeader struct {
	Magic    uint8
	Opcode   uint8
	KeyLen   uint16
	ExtLen   uint8
	DataType uint8
	Status   uint16
	BodyLen  uint32
	Opaque   uint32
	CAS      uint64
}

// Append appends the 24-byte encoding of h to b, as is.
func (h BinHeader) Append(b []byte) []byte {
	b = append(b, h.Magic, h.Opcode)
	b = binary.BigEndian.AppendUint16(b, h.KeyLen)
	b = append(b, h.ExtLen, h.DataType)
	b = binary.BigEndian.AppendUint16(b, h.Status)
	b = binary.BigEndian.AppendUint32(b, h.BodyLen)
	b = binary.BigEndian.AppendUint32(b, h.Opaque)
	return binary.BigEndian.AppendUint64(b, h.CAS)
}

// ParseBinHeader decodes a header without validating it.
func ParseBinHeader(b []byte) (BinHeader, error) {
	if len(b) < BinHeaderLen {
		return BinHeader{}, fmt.Errorf("binary header: %d bytes, need %d: %w", len(b), BinHeaderLen, ErrTruncated)
	}
	return BinHeader{
		Magic:    b[0],
		Opcode:   b[1],
		KeyLen:   binary.BigEndian.Uint16(b[2:4]),
		ExtLen:   b[4],
		DataType: b[5],
		Status:   binary.BigEndian.Uint16(b[6:8]),
		BodyLen:  binary.BigEndian.Uint32(b[8:12]),
		Opaque:   binary.BigEndian.Uint32(b[12:16]),
		CAS:      binary.BigEndian.Uint64(b[16:24]),
	}, nil
}

// AppendBinRequest appends a packet to b. KeyLen, ExtLen and BodyLen are
// computed from extras, key and value; a zero Magic becomes
// MagicRequest (set MagicResponse to build a response).
func AppendBinRequest(b []byte, h BinHeader, extras, key, value []byte) []byte {
	if h.Magic == 0 {
		h.Magic = MagicRequest
	}
	h.ExtLen = uint8(len(extras))
	h.KeyLen = uint16(len(key))
	h.BodyLen = uint32(len(extras) + len(key) + len(value))
	b = h.Append(b)
	b = append(b, extras...)
	b = append(b, key...)
	return append(b, value...)
}

// AppendBinGet appends a GET-family request (OpGet, OpGetQ, OpGetK,
// OpGetKQ) for key.
func AppendBinGet(b []byte, opcode uint8, key string, opaque uint32) []byte {
	return AppendBinRequest(b, BinHeader{Opcode: opcode, Opaque: opaque}, nil, []byte(key), nil)
}

// AppendBinSet appends a storage request (OpSet, OpAdd, OpReplace and
// their quiet forms) with the 8-byte flags+exptime extras. A non-zero cas
// makes the store conditional.
func AppendBinSet(b []byte, opcode uint8, key string, value []byte, flags, exptime uint32, cas uint64, opaque uint32) []byte {
	var ext [8]byte
	binary.BigEndian.PutUint32(ext[0:4], flags)
	binary.BigEndian.PutUint32(ext[4:8], exptime)
	h := BinHeader{Opcode: opcode, Opaque: opaque, CAS: cas}
	return AppendBinRequest(b, h, ext[:], []byte(key), value)
}

// AppendBinDelete appends a delete request (OpDelete or OpDeleteQ).
func AppendBinDelete(b []byte, opcode uint8, key string, cas uint64, opaque uint32) []byte {
	return AppendBinRequest(b, BinHeader{Opcode: opcode, Opaque: opaque, CAS: cas}, nil, []byte(key), nil)
}

// BinPacket is one decoded binary packet. Extras, Key and Value alias the
// parsed buffer (with capacity clipped, so appending to them is safe).
type BinPacket struct {
	Header BinHeader
	Extras []byte
	Key    []byte
	Value  []byte
}

// ParseBinPacket decodes the first packet of b and returns the bytes
// after it. It checks the magic (request or response), that
// ExtLen+KeyLen fits in BodyLen and that the whole body is present; a
// short input fails with ErrTruncated, an invalid one with ErrMalformed.
func ParseBinPacket(b []byte) (BinPacket, []byte, error) {
	h, err := ParseBinHeader(b)
	if err != nil {
		return BinPacket{}, b, err
	}
	if h.Magic != MagicRequest && h.Magic != MagicResponse {
		return BinPacket{}, b, fmt.Errorf("binary packet: magic 0x%02x: %w", h.Magic, ErrMalformed)
	}
	if uint64(h.ExtLen)+uint64(h.KeyLen) > uint64(h.BodyLen) {
		return BinPacket{}, b, fmt.Errorf("binary packet: extras %d + key %d exceed body %d: %w",
			h.ExtLen, h.KeyLen, h.BodyLen, ErrMalformed)
	}
	if uint64(len(b)-BinHeaderLen) < uint64(h.BodyLen) {
		return BinPacket{}, b, fmt.Errorf("binary packet: body %d bytes, have %d: %w",
			h.BodyLen, len(b)-BinHeaderLen, ErrTruncated)
	}
	e := BinHeaderLen + int(h.ExtLen)
	k := e + int(h.KeyLen)
	end := BinHeaderLen + int(h.BodyLen)
	p := BinPacket{
		Header: h,
		Extras: b[BinHeaderLen:e:e],
		Key:    b[e:k:k],
		Value:  b[k:end:end],
	}
	return p, b[end:], nil
}

// Append re-encodes p (lengths recomputed from its fields).
func (p BinPacket) Append(b []byte) []byte {
	return AppendBinRequest(b, p.Header, p.Extras, p.Key, p.Value)
}

// Flags returns the item flags carried in the 4-byte extras of a GET
// response.
func (p BinPacket) Flags() (uint32, error) {
	if len(p.Extras) != 4 {
		return 0, fmt.Errorf("binary packet: %d bytes of extras, want 4 flags bytes: %w", len(p.Extras), ErrMalformed)
	}
	return binary.BigEndian.Uint32(p.Extras), nil
}

// Err returns nil for a successful response and a *BinStatusError
// otherwise.
func (p BinPacket) Err() error {
	if p.Header.Magic != MagicResponse || p.Header.Status == StatusOK {
		return nil
	}
	return &BinStatusError{Opcode: p.Header.Opcode, Status: p.Header.Status, Msg: string(p.Value)}
}

// BinStatusError is a binary response with a non-zero status.
type BinStatusError struct {
	Opcode uint8
	Status uint16
	Msg    string // response body, usually a short text
}

func (e *BinStatusError) Error() string {
	return fmt.Sprintf("memcached binary opcode 0x%02x: status 0x%04x: %s", e.Opcode, e.Status, e.Msg)
}

// Is makes errors.Is(err, ErrNotFound) and friends work for the matching
// statuses.
func (e *BinStatusError) Is(target error) bool {
	switch e.Status {
	case StatusKeyNotFound:
		return target == ErrNotFound
	case StatusKeyExists:
		return target == ErrExists
	case StatusItemNotStored:
		return target == ErrNotStored
	}
	return false
}
