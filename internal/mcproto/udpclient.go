package mcproto

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

// maxUDPReply bounds the bytes collected for one UDP request.
const maxUDPReply = 16 << 20

// UDPClient sends memcached requests over an already-connected UDP socket.
// Requests are serialized; each gets a fresh request id and a deadline of
// the client's timeout. Datagrams carrying other request ids (late replies
// to earlier requests) are discarded.
//
// Replies may be split into several datagrams. Both the documented form
// (seq 0..n-1 of n, ordered here by seq) and memcached 1.6's form (every
// datagram says "seq 0 of 1"; concatenated in arrival order) are handled:
// the client keeps reading until the reply is complete at the protocol
// level or the deadline passes.
type UDPClient struct {
	mu      sync.Mutex
	conn    *net.UDPConn
	timeout time.Duration
	nextID  uint16
	rbuf    []byte
}

// NewUDPClient wraps conn, which must be connected to the server. A
// non-positive timeout means one second. The caller keeps ownership of
// conn.
func NewUDPClient(conn *net.UDPConn, timeout time.Duration) *UDPClient {
	if timeout <= 0 {
		timeout = time.Second
	}
	return &UDPClient{
		conn:    conn,
		timeout: timeout,
		nextID:  uint16(rand.Uint32()),
		rbuf:    make([]byte, 64<<10),
	}
}

// Get fetches keys with "get" over UDP.
func (c *UDPClient) Get(keys ...string) ([]Item, error) { return c.get(false, keys) }

// Gets fetches keys with "gets" over UDP; items carry their CAS.
func (c *UDPClient) Gets(keys ...string) ([]Item, error) { return c.get(true, keys) }

func (c *UDPClient) get(cas bool, keys []string) ([]Item, error) {
	req, err := getRequest(cas, keys)
	if err != nil {
		return nil, fmt.Errorf("udp get: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.exchange(req, getCompletion)
	if err != nil {
		return nil, fmt.Errorf("udp get: %w", err)
	}
	items, _, err := ParseGetReply(r.data())
	if err != nil {
		return nil, fmt.Errorf("udp get (request %d): %w", r.id, err)
	}
	if !r.complete {
		return items, fmt.Errorf("udp get (request %d): reply incomplete at deadline (%d datagrams): %w",
			r.id, len(r.payloads), ErrTruncated)
	}
	if err := matchItemKeys(items, keys); err != nil {
		return items, fmt.Errorf("udp get (request %d): %w", r.id, err)
	}
	return items, nil
}

// BinGet sends one binary GET-family request (OpGet, OpGetQ, OpGetK or
// OpGetKQ) with the given opaque and returns the response packet; a miss
// on a non-quiet opcode is a packet with StatusKeyNotFound (see
// BinPacket.Err), not an error. Quiet opcodes get no reply on a miss:
// BinGet then waits for the whole timeout and returns an error wrapping
// ErrNoReply. Empty datagrams (memcached 1.6 sends one for a quiet miss)
// do not count as a reply.
//
// The response must echo the opcode and opaque, carry the requested key
// if it carries one, and a hit must carry the 4-byte flags extras;
// otherwise the error wraps ErrUnexpectedReply or ErrMalformed.
func (c *UDPClient) BinGet(opcode uint8, key string, opaque uint32) (BinPacket, error) {
	switch opcode {
	case OpGet, OpGetQ, OpGetK, OpGetKQ:
	default:
		return BinPacket{}, fmt.Errorf("udp binary get: opcode 0x%02x is not a get: %w", opcode, ErrMalformed)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.exchange(AppendBinGet(nil, opcode, key, opaque), binPacketCompletion)
	if err != nil {
		return BinPacket{}, fmt.Errorf("udp binary get 0x%02x %q: %w", opcode, key, err)
	}
	if len(r.data()) == 0 {
		// memcached 1.6 answers a quiet miss over UDP with an empty
		// datagram (frame header only); that is no reply either.
		return BinPacket{}, fmt.Errorf("udp binary get 0x%02x %q (request %d): %d empty datagrams: %w",
			opcode, key, r.id, len(r.payloads), ErrNoReply)
	}
	if !r.complete {
		return BinPacket{}, fmt.Errorf("udp binary get 0x%02x %q (request %d): %d datagrams, no complete packet: %w",
			opcode, key, r.id, len(r.payloads), ErrTruncated)
	}
	p, rest, err := ParseBinPacket(r.data())
	if err != nil {
		return BinPacket{}, fmt.Errorf("udp binary get %q: %w", key, err)
	}
	if len(rest) != 0 {
		return p, fmt.Errorf("udp binary get %q: %d bytes after the response: %w", key, len(rest), ErrMalformed)
	}
	if err := checkBinGetResponse(p, opcode, key, opaque); err != nil {
		return p, fmt.Errorf("udp binary get %q: %w", key, err)
	}
	return p, nil
}

// Raw sends payload in one datagram behind a fresh frame header and
// returns the payloads of the reply datagrams for that request id,
// ordered by seq (arrival order among equal seqs).
//
// Raw stops early when it recognizes the reply as complete: for a single
// ASCII get/gets/gat/gats, stats or simple command (without noreply), and
// for binary payloads once every non-quiet request has a response.
// Otherwise it collects until the timeout; if nothing arrived the error
// wraps ErrNoReply.
func (c *UDPClient) Raw(payload []byte) ([][]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.exchange(payload, rawCompletion(payload))
	if err != nil {
		return nil, fmt.Errorf("udp raw: %w", err)
	}
	return r.payloads, nil
}

// exchange sends payload and collects the reply datagrams. It returns an
// error wrapping ErrNoReply if none arrived before the deadline. A nil
// complete collects until the deadline. c.mu must be held.
func (c *UDPClient) exchange(payload []byte, complete completeFunc) (udpReply, error) {
	id := c.nextID
	c.nextID++
	r := udpReply{id: id}
	pkt := Frame{RequestID: id, Total: 1}.Append(make([]byte, 0, FrameHeaderLen+len(payload)))
	pkt = append(pkt, payload...)
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return r, fmt.Errorf("set deadline: %w", err)
	}
	if _, err := c.conn.Write(pkt); err != nil {
		return r, fmt.Errorf("send request %d: %w", id, err)
	}
	var got []datagram
	size := 0
	for {
		n, err := c.conn.Read(c.rbuf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if len(got) == 0 {
				return r, fmt.Errorf("request %d: nothing within %v: %w", id, c.timeout, ErrNoReply)
			}
			r.payloads = orderPayloads(got)
			return r, nil
		}
		if err != nil {
			return r, fmt.Errorf("receive reply to request %d: %w", id, err)
		}
		f, body, err := ParseFrame(c.rbuf[:n])
		if err != nil || f.RequestID != id {
			continue // garbage or a stale reply
		}
		if size += len(body); size > maxUDPReply {
			return r, fmt.Errorf("request %d: reply exceeds %d bytes: %w", id, maxUDPReply, ErrMalformed)
		}
		got = append(got, datagram{frame: f, payload: bytes.Clone(body)})
		if complete == nil || !allSeqs(got) {
			continue
		}
		r.payloads = orderPayloads(got)
		ok, err := complete(bytes.Join(r.payloads, nil))
		if err != nil {
			return r, fmt.Errorf("reply to request %d: %w", id, err)
		}
		if ok {
			r.complete = true
			return r, nil
		}
	}
}
