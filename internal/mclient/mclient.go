// Package mclient is a small memcached client for xdpcache's demo and
// tests: ASCII commands over TCP, GETs over UDP with memcached's frame
// header (including replies split into several datagrams).
package mclient

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Client talks to one memcached over a TCP connection and a UDP socket.
type Client struct {
	tcp     net.Conn
	rd      *bufio.Reader
	udp     net.Conn
	id      uint16
	Timeout time.Duration
}

// New wraps already-connected sockets (callers may open them inside a
// network namespace). Either may be nil if unused.
func New(tcp net.Conn, udp net.Conn) *Client {
	c := &Client{tcp: tcp, udp: udp, Timeout: 2 * time.Second}
	if tcp != nil {
		c.rd = bufio.NewReader(tcp)
	}
	return c
}

func (c *Client) line() (string, error) {
	c.tcp.SetReadDeadline(time.Now().Add(c.Timeout))
	l, err := c.rd.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read from memcached: %w", err)
	}
	return strings.TrimRight(l, "\r\n"), nil
}

// Do sends one command line over TCP and returns the first reply line.
func (c *Client) Do(line string) (string, error) {
	if _, err := fmt.Fprintf(c.tcp, "%s\r\n", line); err != nil {
		return "", err
	}
	return c.line()
}

// Set stores a value over TCP.
func (c *Client) Set(key, value string, exptime int) error {
	if _, err := fmt.Fprintf(c.tcp, "set %s 0 %d %d\r\n%s\r\n", key, exptime, len(value), value); err != nil {
		return err
	}
	l, err := c.line()
	if err != nil {
		return err
	}
	if l != "STORED" {
		return fmt.Errorf("set %s: %s", key, l)
	}
	return nil
}

// TCPGet reads one key over TCP.
func (c *Client) TCPGet(key string) (string, bool, error) {
	if _, err := fmt.Fprintf(c.tcp, "get %s\r\n", key); err != nil {
		return "", false, err
	}
	var v string
	found := false
	for {
		l, err := c.line()
		if err != nil {
			return "", false, err
		}
		if l == "END" {
			return v, found, nil
		}
		if strings.HasPrefix(l, "VALUE ") {
			if v, err = c.line(); err != nil {
				return "", false, err
			}
			found = true
		}
	}
}

// Stats returns memcached's general statistics.
func (c *Client) Stats() (map[string]string, error) {
	if _, err := fmt.Fprint(c.tcp, "stats\r\n"); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for {
		l, err := c.line()
		if err != nil {
			return nil, err
		}
		if l == "END" {
			return out, nil
		}
		if f := strings.Fields(l); len(f) == 3 {
			out[f[1]] = f[2]
		}
	}
}

// Get asks for one key over UDP: the value, and whether it was found.
// The reply may come in several datagrams of the same request id (memcached
// 1.6 marks them all "0 of 1"); replies to other ids are stale and skipped.
func (c *Client) Get(key string) (string, bool, error) {
	c.id++
	var hdr [8]byte
	binary.BigEndian.PutUint16(hdr[0:], c.id)
	binary.BigEndian.PutUint16(hdr[4:], 1)
	if _, err := c.udp.Write(append(hdr[:], "get "+key+"\r\n"...)); err != nil {
		return "", false, err
	}
	buf := make([]byte, 65536)
	var reply []byte
	deadline := time.Now().Add(c.Timeout)
	for !bytes.HasSuffix(reply, []byte("END\r\n")) {
		c.udp.SetReadDeadline(deadline)
		n, err := c.udp.Read(buf)
		if err != nil {
			return "", false, fmt.Errorf("UDP get %s (request %d): %w", key, c.id, err)
		}
		if n < 8 || binary.BigEndian.Uint16(buf) != c.id {
			continue
		}
		reply = append(reply, buf[8:n]...)
	}
	return parseSingle(key, reply)
}

func parseSingle(key string, reply []byte) (string, bool, error) {
	if string(reply) == "END\r\n" {
		return "", false, nil
	}
	line, rest, ok := bytes.Cut(reply, []byte("\r\n"))
	if !ok {
		return "", false, errors.New("reply without a line end")
	}
	var k string
	var flags, size int
	if _, err := fmt.Sscanf(string(line), "VALUE %s %d %d", &k, &flags, &size); err != nil || k != key {
		return "", false, fmt.Errorf("bad reply to get %s: %q", key, reply)
	}
	if len(rest) != size+7 || string(rest[size:]) != "\r\nEND\r\n" {
		return "", false, fmt.Errorf("malformed reply to get %s: %q", key, reply)
	}
	return string(rest[:size]), true, nil
}
