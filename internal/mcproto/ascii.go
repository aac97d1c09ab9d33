package mcproto

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

const (
	// MaxKeyLen is memcached's key length limit.
	MaxKeyLen = 250
	// MaxValueLen bounds the <bytes> field accepted by the parsers
	// (memcached's largest configurable item size, -I 1024m).
	MaxValueLen = 1 << 30
	// maxLineLen bounds a reply header line; a VALUE line with a
	// maximal key is about 300 bytes.
	maxLineLen = 1024
)

var crlf = []byte("\r\n")

// Item is one entry of a get/gets reply.
type Item struct {
	Key    string
	Flags  uint32
	Value  []byte
	CAS    uint64
	HasCAS bool
}

// ValidKey reports whether key can be sent in an ASCII command: 1 to
// MaxKeyLen bytes, no spaces or control characters.
func ValidKey(key string) error {
	if key == "" {
		return fmt.Errorf("key is empty: %w", ErrMalformed)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("key is %d bytes, max %d: %w", len(key), MaxKeyLen, ErrMalformed)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("key %q: byte 0x%02x at %d not allowed: %w", key, c, i, ErrMalformed)
		}
	}
	return nil
}

// AppendGet appends "get k1 k2...\r\n" (or "gets ..." if cas) to b. Keys
// are not validated; see ValidKey.
func AppendGet(b []byte, cas bool, keys ...string) []byte {
	if cas {
		b = append(b, "gets"...)
	} else {
		b = append(b, "get"...)
	}
	for _, k := range keys {
		b = append(b, ' ')
		b = append(b, k...)
	}
	return append(b, crlf...)
}

// AppendStorage appends a storage command (set, add, replace, append,
// prepend or cas) and its data block to b:
//
//	<cmd> <key> <flags> <exptime> <bytes>[ <cas>][ noreply]\r\n<value>\r\n
//
// The cas field is written only when cmd is "cas".
func AppendStorage(b []byte, cmd string, key string, flags uint32, exptime int64, value []byte, cas uint64, noreply bool) []byte {
	b = append(b, cmd...)
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(flags), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, exptime, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(value)), 10)
	if cmd == "cas" {
		b = append(b, ' ')
		b = strconv.AppendUint(b, cas, 10)
	}
	if noreply {
		b = append(b, " noreply"...)
	}
	b = append(b, crlf...)
	b = append(b, value...)
	return append(b, crlf...)
}

// ParseGetReply parses a complete or partial reply to get/gets:
//
//	VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n ... END\r\n
//
// Data lengths come from the <bytes> field, so values may contain any
// bytes. complete is true once END\r\n has been seen. Input that stops
// early (no END yet) yields complete=false, the items fully parsed so far
// and a nil error. Malformed syntax, a data block not followed by "\r\n",
// bytes after END, or an ERROR/CLIENT_ERROR/SERVER_ERROR line are errors
// (the latter as *ServerError). Item values are copies, not aliases of b.
func ParseGetReply(b []byte) (items []Item, complete bool, err error) {
	for len(b) > 0 {
		i := bytes.Index(b, crlf)
		if i < 0 {
			if err := checkPartialLine(b); err != nil {
				return items, false, err
			}
			return items, false, nil
		}
		line := b[:i]
		if string(line) == "END" {
			if extra := len(b) - i - 2; extra > 0 {
				return items, false, fmt.Errorf("get reply: %d bytes after END: %w", extra, ErrMalformed)
			}
			return items, true, nil
		}
		if err := parseErrorLine(string(line)); err != nil {
			return items, false, err
		}
		it, n, err := parseValueLine(line)
		if err != nil {
			return items, false, err
		}
		data := b[i+2:]
		if len(data) < n+2 {
			if len(data) > n && data[n] != '\r' {
				return items, false, fmt.Errorf("get reply: value %q not followed by \\r\\n: %w", it.Key, ErrMalformed)
			}
			return items, false, nil
		}
		if data[n] != '\r' || data[n+1] != '\n' {
			return items, false, fmt.Errorf("get reply: value %q not followed by \\r\\n: %w", it.Key, ErrMalformed)
		}
		it.Value = bytes.Clone(data[:n])
		items = append(items, it)
		b = data[n+2:]
	}
	return items, false, nil
}

// checkPartialLine rejects an unterminated reply line that can no longer
// become valid: too long, containing a bare CR/LF, or not a prefix of a
// line a get reply may contain.
func checkPartialLine(b []byte) error {
	if len(b) > maxLineLen {
		return fmt.Errorf("get reply: line longer than %d bytes: %w", maxLineLen, ErrMalformed)
	}
	body := bytes.TrimSuffix(b, []byte{'\r'})
	if bytes.ContainsAny(body, "\r\n") {
		return fmt.Errorf("get reply: bare CR or LF in line %q: %w", b, ErrMalformed)
	}
	for _, p := range []string{"VALUE ", "END", "ERROR", "CLIENT_ERROR", "SERVER_ERROR"} {
		if strings.HasPrefix(p, string(body)) || strings.HasPrefix(string(body), p) {
			return nil
		}
	}
	return fmt.Errorf("get reply: unexpected line %q: %w", b, ErrMalformed)
}

// parseValueLine parses "VALUE <key> <flags> <bytes>[ <cas>]" (without
// "\r\n") and returns the item header and the data length.
func parseValueLine(line []byte) (Item, int, error) {
	rest, ok := bytes.CutPrefix(line, []byte("VALUE "))
	if !ok {
		return Item{}, 0, fmt.Errorf("get reply: unexpected line %q: %w", line, ErrMalformed)
	}
	f := strings.Split(string(rest), " ")
	if len(f) != 3 && len(f) != 4 {
		return Item{}, 0, fmt.Errorf("get reply: VALUE line %q has %d fields: %w", line, len(f)+1, ErrMalformed)
	}
	if err := ValidKey(f[0]); err != nil {
		return Item{}, 0, fmt.Errorf("get reply: VALUE line: %w", err)
	}
	flags, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return Item{}, 0, fmt.Errorf("get reply: flags %q: %w", f[1], ErrMalformed)
	}
	n, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil || n > MaxValueLen {
		return Item{}, 0, fmt.Errorf("get reply: bytes %q: %w", f[2], ErrMalformed)
	}
	it := Item{Key: f[0], Flags: uint32(flags)}
	if len(f) == 4 {
		cas, err := strconv.ParseUint(f[3], 10, 64)
		if err != nil {
			return Item{}, 0, fmt.Errorf("get reply: cas %q: %w", f[3], ErrMalformed)
		}
		it.CAS, it.HasCAS = cas, true
	}
	return it, int(n), nil
}

// AppendGetReply appends the server-side encoding of items followed by
// END to b (useful for fakes and round-trip tests). The cas field is
// written for items with HasCAS.
func AppendGetReply(b []byte, items ...Item) []byte {
	for _, it := range items {
		b = append(b, "VALUE "...)
		b = append(b, it.Key...)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(it.Flags), 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(len(it.Value)), 10)
		if it.HasCAS {
			b = append(b, ' ')
			b = strconv.AppendUint(b, it.CAS, 10)
		}
		b = append(b, crlf...)
		b = append(b, it.Value...)
		b = append(b, crlf...)
	}
	return append(b, "END\r\n"...)
}
