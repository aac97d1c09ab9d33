package mcproto

import "fmt"

// checkBinResponse checks that p is the response to a request with the
// given opcode and opaque; a mismatch wraps ErrUnexpectedReply.
func checkBinResponse(p BinPacket, opcode uint8, opaque uint32) error {
	h := p.Header
	if h.Magic != MagicResponse || h.Opcode != opcode || h.Opaque != opaque {
		return fmt.Errorf("response magic 0x%02x opcode 0x%02x opaque 0x%08x, want 0x%02x/0x%02x/0x%08x: %w",
			h.Magic, h.Opcode, h.Opaque, MagicResponse, opcode, opaque, ErrUnexpectedReply)
	}
	return nil
}

// checkBinGetResponse checks a response to a GET-family request for key:
// it answers the request, carries key if it carries a key at all, and a
// hit carries the 4-byte flags extras.
func checkBinGetResponse(p BinPacket, opcode uint8, key string, opaque uint32) error {
	if err := checkBinResponse(p, opcode, opaque); err != nil {
		return err
	}
	if len(p.Key) > 0 && string(p.Key) != key {
		return fmt.Errorf("response for key %q: %w", p.Key, ErrUnexpectedReply)
	}
	if p.Header.Status == StatusOK {
		if _, err := p.Flags(); err != nil {
			return fmt.Errorf("hit: %w", err)
		}
	}
	return nil
}
