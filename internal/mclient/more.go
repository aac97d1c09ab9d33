package mclient

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrNoReply: a quiet binary GET (GETQ/GETKQ) missed; memcached sends nothing.
var ErrNoReply = errors.New("no reply")

// udpRoundTrip sends one request datagram and gathers the reply datagrams
// of its request id until done says the reply is complete.
func (c *Client) udpRoundTrip(body []byte, done func([]byte) bool) ([]byte, error) {
	c.id++
	var hdr [8]byte
	binary.BigEndian.PutUint16(hdr[0:], c.id)
	binary.BigEndian.PutUint16(hdr[4:], 1)
	if _, err := c.udp.Write(append(hdr[:], body...)); err != nil {
		return nil, err
	}
	buf := make([]byte, 65536)
	var reply []byte
	deadline := time.Now().Add(c.Timeout)
	for !done(reply) {
		c.udp.SetReadDeadline(deadline)
		n, err := c.udp.Read(buf)
		if err != nil {
			return reply, err
		}
		if n < 8 || binary.BigEndian.Uint16(buf) != c.id {
			continue
		}
		reply = append(reply, buf[8:n]...)
	}
	return reply, nil
}

// GetMulti reads several keys over UDP in one request.
func (c *Client) GetMulti(keys ...string) (map[string]string, error) {
	reply, err := c.udpRoundTrip([]byte("get "+strings.Join(keys, " ")+"\r\n"), func(b []byte) bool {
		return bytes.HasSuffix(b, []byte("END\r\n")) && validItems(b)
	})
	if err != nil {
		return nil, fmt.Errorf("UDP multi-get: %w", err)
	}
	return parseItems(reply)
}

func validItems(b []byte) bool { _, err := parseItems(b); return err == nil }

// parseItems parses VALUE items up to END; lengths come from the bytes field.
func parseItems(b []byte) (map[string]string, error) {
	out := map[string]string{}
	for {
		if string(b) == "END\r\n" {
			return out, nil
		}
		line, rest, ok := bytes.Cut(b, []byte("\r\n"))
		if !ok {
			return nil, errors.New("item without a line end")
		}
		f := strings.Fields(string(line))
		if len(f) < 4 || f[0] != "VALUE" {
			return nil, fmt.Errorf("bad item line %q", line)
		}
		n, err := strconv.Atoi(f[3])
		if err != nil || len(rest) < n+2 || string(rest[n:n+2]) != "\r\n" {
			return nil, fmt.Errorf("bad item %q", line)
		}
		out[f[1]] = string(rest[:n])
		b = rest[n+2:]
	}
}

// BinGet sends one binary-protocol GET-family request over UDP.
func (c *Client) BinGet(op byte, key string, opaque uint32) (string, bool, error) {
	req := binHeader(0x80, op, len(key), 0, len(key), opaque, 0)
	req = append(req, key...)
	reply, err := c.udpRoundTrip(req, func(b []byte) bool {
		return len(b) >= 24 && len(b) >= 24+int(binary.BigEndian.Uint32(b[8:]))
	})
	if err != nil {
		if op == 0x09 || op == 0x0d {
			return "", false, ErrNoReply
		}
		return "", false, fmt.Errorf("UDP binary get: %w", err)
	}
	if reply[0] != 0x81 || reply[1] != op || binary.BigEndian.Uint32(reply[12:]) != opaque {
		return "", false, fmt.Errorf("binary reply %x does not answer op %#x opaque %d", reply[:24], op, opaque)
	}
	status := binary.BigEndian.Uint16(reply[6:])
	if status == 1 {
		return "", false, nil
	}
	if status != 0 {
		return "", false, fmt.Errorf("binary get status %d", status)
	}
	kl, el := int(binary.BigEndian.Uint16(reply[2:])), int(reply[4])
	body := int(binary.BigEndian.Uint32(reply[8:]))
	if el != 4 || 24+body != len(reply) || el+kl > body {
		return "", false, fmt.Errorf("malformed binary reply %x", reply)
	}
	if kl > 0 && string(reply[28:28+kl]) != key {
		return "", false, fmt.Errorf("binary reply for key %q, asked %q", reply[28:28+kl], key)
	}
	return string(reply[24+el+kl:]), true, nil
}

func binHeader(magic, op byte, keyLen, extLen, body int, opaque uint32, cas uint64) []byte {
	h := make([]byte, 24)
	h[0], h[1] = magic, op
	binary.BigEndian.PutUint16(h[2:], uint16(keyLen))
	h[4] = byte(extLen)
	binary.BigEndian.PutUint32(h[8:], uint32(body))
	binary.BigEndian.PutUint32(h[12:], opaque)
	binary.BigEndian.PutUint64(h[16:], cas)
	return h
}

// BinSet stores a value with the binary protocol over TCP (the connection
// must carry only binary requests).
func (c *Client) BinSet(key, value string, exptime uint32) error {
	ext := make([]byte, 8)
	binary.BigEndian.PutUint32(ext[4:], exptime)
	req := binHeader(0x80, 0x01, len(key), 8, 8+len(key)+len(value), 1, 0)
	req = append(append(append(req, ext...), key...), value...)
	return c.binTCP(req, 0x01)
}

// BinDelete deletes a key with the binary protocol over TCP.
func (c *Client) BinDelete(key string) error {
	req := append(binHeader(0x80, 0x04, len(key), 0, len(key), 2, 0), key...)
	err := c.binTCP(req, 0x04)
	if errors.Is(err, errNotFound) {
		return nil
	}
	return err
}

var errNotFound = errors.New("not found")

func (c *Client) binTCP(req []byte, op byte) error {
	if _, err := c.tcp.Write(req); err != nil {
		return err
	}
	c.tcp.SetReadDeadline(time.Now().Add(c.Timeout))
	h := make([]byte, 24)
	if _, err := io.ReadFull(c.rd, h); err != nil {
		return err
	}
	body := make([]byte, binary.BigEndian.Uint32(h[8:]))
	if _, err := io.ReadFull(c.rd, body); err != nil {
		return err
	}
	if h[0] != 0x81 || h[1] != op {
		return fmt.Errorf("binary reply %x to op %#x", h, op)
	}
	switch st := binary.BigEndian.Uint16(h[6:]); st {
	case 0:
		return nil
	case 1:
		return errNotFound
	default:
		return fmt.Errorf("binary op %#x: status %d %s", op, st, body)
	}
}

// Pipeline sends several command lines in one write and returns the first
// reply line of each, in order.
func (c *Client) Pipeline(cmds ...string) ([]string, error) {
	var b strings.Builder
	for _, cmd := range cmds {
		b.WriteString(cmd)
	}
	if _, err := io.WriteString(c.tcp, b.String()); err != nil {
		return nil, err
	}
	out := make([]string, len(cmds))
	for i := range cmds {
		l, err := c.line()
		if err != nil {
			return nil, err
		}
		out[i] = l
	}
	return out, nil
}

// Gets returns a key's value and CAS unique over TCP.
func (c *Client) Gets(key string) (string, uint64, bool, error) {
	if _, err := fmt.Fprintf(c.tcp, "gets %s\r\n", key); err != nil {
		return "", 0, false, err
	}
	var v string
	var cas uint64
	found := false
	for {
		l, err := c.line()
		if err != nil {
			return "", 0, false, err
		}
		if l == "END" {
			return v, cas, found, nil
		}
		if f := strings.Fields(l); len(f) == 5 && f[0] == "VALUE" {
			cas, _ = strconv.ParseUint(f[4], 10, 64)
			if v, err = c.line(); err != nil {
				return "", 0, false, err
			}
			found = true
		}
	}
}
