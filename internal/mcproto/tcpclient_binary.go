package mcproto

import (
	"fmt"
	"io"
)

// maxBinBody bounds the body of a binary response read over TCP: the
// largest value plus extras and a maximal key.
const maxBinBody = MaxValueLen + 256 + MaxKeyLen

// BinSet stores value under key with a binary SET.
func (c *TCPClient) BinSet(key string, flags, exptime uint32, value []byte) error {
	_, err := c.binRoundTrip(OpSet, func(opaque uint32) []byte {
		return AppendBinSet(nil, OpSet, key, value, flags, exptime, 0, opaque)
	})
	if err != nil {
		return fmt.Errorf("binary set %q: %w", key, err)
	}
	return nil
}

// BinDelete removes key with a binary DELETE; a missing key yields an
// error matching ErrNotFound.
func (c *TCPClient) BinDelete(key string) error {
	_, err := c.binRoundTrip(OpDelete, func(opaque uint32) []byte {
		return AppendBinDelete(nil, OpDelete, key, 0, opaque)
	})
	if err != nil {
		return fmt.Errorf("binary delete %q: %w", key, err)
	}
	return nil
}

// binRoundTrip sends the non-quiet request that build makes with a fresh
// opaque and reads its response. A response with a non-zero status is
// returned with its *BinStatusError.
func (c *TCPClient) binRoundTrip(opcode uint8, build func(opaque uint32) []byte) (BinPacket, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opaque++
	if err := c.write(build(c.opaque)); err != nil {
		return BinPacket{}, err
	}
	p, err := c.readBinPacket()
	if err != nil {
		return BinPacket{}, err
	}
	if err := checkBinResponse(p, opcode, c.opaque); err != nil {
		return p, err
	}
	return p, p.Err()
}

// readBinPacket reads one binary packet. c.mu must be held.
func (c *TCPClient) readBinPacket() (BinPacket, error) {
	b := make([]byte, BinHeaderLen)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return BinPacket{}, fmt.Errorf("read binary header: %w", err)
	}
	h, err := ParseBinHeader(b)
	if err != nil {
		return BinPacket{}, err
	}
	if h.BodyLen > maxBinBody {
		return BinPacket{}, fmt.Errorf("binary body of %d bytes, max %d: %w", h.BodyLen, maxBinBody, ErrMalformed)
	}
	b = append(b, make([]byte, h.BodyLen)...)
	if _, err := io.ReadFull(c.r, b[BinHeaderLen:]); err != nil {
		return BinPacket{}, fmt.Errorf("read binary body of %d bytes: %w", h.BodyLen, err)
	}
	p, _, err := ParseBinPacket(b)
	if err != nil {
		return BinPacket{}, err
	}
	return p, nil
}

// BinStats runs a binary STAT for group ("" for plain stats, "settings",
// ...): one response per name/value and an empty one to end. A non-zero
// status (authentication required: 0x20) comes back as a *BinStatusError.
func (c *TCPClient) BinStats(group string) (map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opaque++
	req := AppendBinRequest(nil, BinHeader{Magic: MagicRequest, Opcode: OpStat, Opaque: c.opaque}, nil, []byte(group), nil)
	if err := c.write(req); err != nil {
		return nil, fmt.Errorf("binary stat: %w", err)
	}
	out := map[string]string{}
	for range 10000 {
		p, err := c.readBinPacket()
		if err != nil {
			return out, fmt.Errorf("binary stat: %w", err)
		}
		if err := checkBinResponse(p, OpStat, c.opaque); err != nil {
			return out, err
		}
		if err := p.Err(); err != nil {
			return out, fmt.Errorf("binary stat: %w", err)
		}
		if len(p.Key) == 0 {
			return out, nil
		}
		out[string(p.Key)] = string(p.Value)
	}
	return out, fmt.Errorf("binary stat: no end after 10000 responses: %w", ErrMalformed)
}
