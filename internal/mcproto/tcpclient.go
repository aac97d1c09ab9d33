package mcproto

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// TCPClient speaks the ASCII protocol, or the binary one (the Bin
// methods), over a stream connection. memcached fixes a connection's
// protocol with its first request, so use one client for ASCII or for
// binary requests, not both. Calls are serialized and each has a deadline
// of the client's timeout. The caller keeps ownership of the connection.
type TCPClient struct {
	mu      sync.Mutex
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
	opaque  uint32 // of the last binary request
}

// NewTCPClient wraps conn. A non-positive timeout means five seconds.
func NewTCPClient(conn net.Conn, timeout time.Duration) *TCPClient {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &TCPClient{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn), timeout: timeout}
}

// Set stores value under key.
func (c *TCPClient) Set(key string, flags uint32, exptime int64, value []byte) error {
	return c.Store("set", key, flags, exptime, value, 0, false)
}

// Store runs a storage command (set, add, replace, append, prepend, cas).
// It returns nil on STORED, ErrNotStored, ErrExists, ErrNotFound, or a
// *ServerError. With noreply it returns once the command is sent.
func (c *TCPClient) Store(cmd, key string, flags uint32, exptime int64, value []byte, cas uint64, noreply bool) error {
	switch cmd {
	case "set", "add", "replace", "append", "prepend", "cas":
	default:
		return fmt.Errorf("store: unknown command %q: %w", cmd, ErrMalformed)
	}
	if err := ValidKey(key); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	req := AppendStorage(nil, cmd, key, flags, exptime, value, cas, noreply)
	if noreply {
		return c.send(cmd, req)
	}
	return c.status(cmd+" "+key, req, "STORED")
}

// Get fetches keys with "get".
func (c *TCPClient) Get(keys ...string) ([]Item, error) { return c.get(false, keys) }

// Gets fetches keys with "gets"; items carry their CAS.
func (c *TCPClient) Gets(keys ...string) ([]Item, error) { return c.get(true, keys) }

func (c *TCPClient) get(cas bool, keys []string) ([]Item, error) {
	req, err := getRequest(cas, keys)
	if err != nil {
		return nil, fmt.Errorf("tcp get: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.write(req); err != nil {
		return nil, fmt.Errorf("tcp get: %w", err)
	}
	var items []Item
	err = c.readUntilEnd(func(line string) error {
		it, err := c.readItem(line)
		if err != nil {
			return err
		}
		items = append(items, it)
		return nil
	})
	if err != nil {
		return items, fmt.Errorf("tcp get: %w", err)
	}
	if err := matchItemKeys(items, keys); err != nil {
		return items, fmt.Errorf("tcp get: %w", err)
	}
	return items, nil
}

// readItem parses a VALUE line and reads the item's data block. c.mu must
// be held.
func (c *TCPClient) readItem(line string) (Item, error) {
	it, n, err := parseValueLine([]byte(line))
	if err != nil {
		return it, err
	}
	data := make([]byte, n+2)
	if _, err := io.ReadFull(c.r, data); err != nil {
		return it, fmt.Errorf("value of %q: %w", it.Key, err)
	}
	if !bytes.HasSuffix(data, crlf) {
		return it, fmt.Errorf("value of %q not followed by \\r\\n: %w", it.Key, ErrMalformed)
	}
	it.Value = data[:n:n]
	return it, nil
}

// Delete removes key; a missing key yields ErrNotFound.
func (c *TCPClient) Delete(key string) error {
	if err := ValidKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return c.status("delete "+key, AppendDelete(nil, key, false), "DELETED")
}

// Incr adds delta to the counter at key and returns the new value.
func (c *TCPClient) Incr(key string, delta uint64) (uint64, error) {
	return c.counter("incr", key, AppendIncr(nil, key, delta, false))
}

// Decr subtracts delta (memcached clamps at zero) and returns the new
// value.
func (c *TCPClient) Decr(key string, delta uint64) (uint64, error) {
	return c.counter("decr", key, AppendDecr(nil, key, delta, false))
}

func (c *TCPClient) counter(cmd, key string, req []byte) (uint64, error) {
	if err := ValidKey(key); err != nil {
		return 0, fmt.Errorf("%s: %w", cmd, err)
	}
	line, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", cmd, key, err)
	}
	v, err := ParseCounterLine(line)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", cmd, key, err)
	}
	return v, nil
}

// Touch updates the expiry of key; a missing key yields ErrNotFound.
func (c *TCPClient) Touch(key string, exptime int64) error {
	if err := ValidKey(key); err != nil {
		return fmt.Errorf("touch: %w", err)
	}
	return c.status("touch "+key, AppendTouch(nil, key, exptime, false), "TOUCHED")
}

// FlushAll invalidates every item.
func (c *TCPClient) FlushAll() error {
	return c.status("flush_all", AppendFlushAll(nil, 0, false), "OK")
}

// Do sends one raw command line ("\r\n" is added if missing) and returns
// the first reply line without its "\r\n". Only I/O and framing problems
// are errors; interpreting the reply is up to the caller.
func (c *TCPClient) Do(line []byte) (string, error) {
	req := line
	if !bytes.HasSuffix(req, crlf) {
		req = append(bytes.Clone(line), crlf...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.write(req); err != nil {
		return "", err
	}
	return c.readLine()
}

// Stats runs "stats" and returns its name/value pairs.
func (c *TCPClient) Stats() (map[string]string, error) { return c.StatsOf("") }

// StatsOf runs "stats <group>" ("settings", "slabs", ...; "" is plain
// stats) and returns its name/value pairs.
func (c *TCPClient) StatsOf(group string) (map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.write(AppendCommand(nil, "stats", group, false)); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	stats := make(map[string]string)
	err := c.readUntilEnd(func(line string) error { return parseStatLine(line, stats) })
	if err != nil {
		return stats, fmt.Errorf("stats: %w", err)
	}
	return stats, nil
}

// Pipeline sends several requests in one write and returns the first
// reply line of each, in order, without "\r\n". Each request must be
// complete and have a one-line reply (a storage command with its data
// block, delete, incr, decr, touch, flush_all; not noreply). Like Do, it
// leaves interpreting the replies (ParseStatusLine) to the caller.
func (c *TCPClient) Pipeline(reqs ...[]byte) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.write(bytes.Join(reqs, nil)); err != nil {
		return nil, fmt.Errorf("pipeline of %d: %w", len(reqs), err)
	}
	lines := make([]string, 0, len(reqs))
	for range reqs {
		line, err := c.readLine()
		if err != nil {
			return lines, fmt.Errorf("pipeline reply %d of %d: %w", len(lines)+1, len(reqs), err)
		}
		lines = append(lines, line)
	}
	return lines, nil
}

// status sends req and checks a one-line reply against want.
func (c *TCPClient) status(what string, req []byte, want string) error {
	line, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := ParseStatusLine(line, want); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (c *TCPClient) send(what string, req []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.write(req); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// write sets a fresh deadline and sends req. c.mu must be held.
func (c *TCPClient) write(req []byte) error {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	if _, err := c.w.Write(req); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// readUntilEnd reads reply lines up to END and hands every other line to
// each; an ERROR, CLIENT_ERROR or SERVER_ERROR line ends the reply as a
// *ServerError. c.mu must be held.
func (c *TCPClient) readUntilEnd(each func(line string) error) error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if line == "END" {
			return nil
		}
		if err := parseErrorLine(line); err != nil {
			return err
		}
		if err := each(line); err != nil {
			return err
		}
	}
}

// readLine reads one "\r\n"-terminated line (bounded by the reader's
// buffer size) and returns it without the terminator. c.mu must be held.
func (c *TCPClient) readLine() (string, error) {
	b, err := c.r.ReadSlice('\n')
	if err != nil {
		return "", fmt.Errorf("read reply line: %w", err)
	}
	line, ok := bytes.CutSuffix(b, crlf)
	if !ok {
		return "", fmt.Errorf("reply line %q lacks \\r\\n: %w", b, ErrMalformed)
	}
	return string(line), nil
}
