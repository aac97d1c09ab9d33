package mcproto

import (
	"encoding/binary"
	"fmt"
)

// FrameHeaderLen is the size of the memcached UDP frame header.
const FrameHeaderLen = 8

// Frame is the header memcached puts in front of every UDP datagram.
// All fields are big endian on the wire.
type Frame struct {
	RequestID uint16
	Seq       uint16
	Total     uint16
	Reserved  uint16
}

// Append appends the 8-byte encoding of f to b.
func (f Frame) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, f.RequestID)
	b = binary.BigEndian.AppendUint16(b, f.Seq)
	b = binary.BigEndian.AppendUint16(b, f.Total)
	return binary.BigEndian.AppendUint16(b, f.Reserved)
}

// ParseFrame splits a datagram into its frame header and payload. The
// payload aliases b.
func ParseFrame(b []byte) (Frame, []byte, error) {
	if len(b) < FrameHeaderLen {
		return Frame{}, nil, fmt.Errorf("udp frame header: %d bytes, need %d: %w", len(b), FrameHeaderLen, ErrTruncated)
	}
	f := Frame{
		RequestID: binary.BigEndian.Uint16(b[0:2]),
		Seq:       binary.BigEndian.Uint16(b[2:4]),
		Total:     binary.BigEndian.Uint16(b[4:6]),
		Reserved:  binary.BigEndian.Uint16(b[6:8]),
	}
	return f, b[FrameHeaderLen:], nil
}
