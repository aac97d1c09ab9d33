package mcproto

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// AppendCommand appends a single-line command to b:
//
//	<cmd>[ <key>][ <args>...][ noreply]\r\n
//
// An empty key is omitted, so AppendCommand(b, "flush_all", "", false)
// and AppendCommand(b, "stats", "", false, "slabs") work too.
func AppendCommand(b []byte, cmd string, key string, noreply bool, args ...string) []byte {
	b = append(b, cmd...)
	if key != "" {
		b = append(b, ' ')
		b = append(b, key...)
	}
	for _, a := range args {
		b = append(b, ' ')
		b = append(b, a...)
	}
	if noreply {
		b = append(b, " noreply"...)
	}
	return append(b, crlf...)
}

// AppendDelete appends "delete <key>[ noreply]\r\n".
func AppendDelete(b []byte, key string, noreply bool) []byte {
	return AppendCommand(b, "delete", key, noreply)
}

// AppendIncr appends "incr <key> <delta>[ noreply]\r\n".
func AppendIncr(b []byte, key string, delta uint64, noreply bool) []byte {
	return AppendCommand(b, "incr", key, noreply, strconv.FormatUint(delta, 10))
}

// AppendDecr appends "decr <key> <delta>[ noreply]\r\n".
func AppendDecr(b []byte, key string, delta uint64, noreply bool) []byte {
	return AppendCommand(b, "decr", key, noreply, strconv.FormatUint(delta, 10))
}

// AppendTouch appends "touch <key> <exptime>[ noreply]\r\n".
func AppendTouch(b []byte, key string, exptime int64, noreply bool) []byte {
	return AppendCommand(b, "touch", key, noreply, strconv.FormatInt(exptime, 10))
}

// AppendFlushAll appends "flush_all[ <delay>][ noreply]\r\n"; a delay of
// zero or less is omitted.
func AppendFlushAll(b []byte, delay int64, noreply bool) []byte {
	if delay > 0 {
		return AppendCommand(b, "flush_all", "", noreply, strconv.FormatInt(delay, 10))
	}
	return AppendCommand(b, "flush_all", "", noreply)
}

// ParseLine splits off the first "\r\n"-terminated line of b. line
// excludes the terminator; rest aliases b. It fails with ErrTruncated if
// no terminator is present yet and ErrMalformed on a bare LF.
func ParseLine(b []byte) (line, rest []byte, err error) {
	i := bytes.Index(b, crlf)
	if i < 0 {
		if bytes.IndexByte(b, '\n') >= 0 {
			return nil, b, fmt.Errorf("reply line: bare LF: %w", ErrMalformed)
		}
		return nil, b, fmt.Errorf("reply line: %w", ErrTruncated)
	}
	if bytes.IndexByte(b[:i], '\n') >= 0 {
		return nil, b, fmt.Errorf("reply line: bare LF: %w", ErrMalformed)
	}
	return b[:i], b[i+2:], nil
}

// ParseStatusLine interprets a one-line reply (without "\r\n") to a
// command whose success reply is want (STORED, DELETED, TOUCHED, OK...).
// It returns nil for want, ErrNotFound, ErrNotStored or ErrExists for
// those replies, a *ServerError for error lines, and an error wrapping
// ErrUnexpectedReply otherwise.
func ParseStatusLine(line, want string) error {
	switch line {
	case want:
		return nil
	case "NOT_FOUND":
		return ErrNotFound
	case "NOT_STORED":
		return ErrNotStored
	case "EXISTS":
		return ErrExists
	}
	if err := parseErrorLine(line); err != nil {
		return err
	}
	return fmt.Errorf("reply %q, want %s: %w", line, want, ErrUnexpectedReply)
}

// ParseCounterLine interprets the reply to incr/decr: the new value,
// ErrNotFound, or an error.
func ParseCounterLine(line string) (uint64, error) {
	if line != "" && line[0] >= '0' && line[0] <= '9' {
		v, err := strconv.ParseUint(line, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("counter reply %q: %w", line, ErrMalformed)
		}
		return v, nil
	}
	if err := ParseStatusLine(line, ""); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("counter reply is empty: %w", ErrUnexpectedReply)
}

// ParseStats parses a reply to "stats": "STAT <name> <value>\r\n" lines
// followed by END\r\n. Values may contain spaces. complete is false (with
// a nil error) while END has not been seen; bytes after END are an error.
func ParseStats(b []byte) (stats map[string]string, complete bool, err error) {
	stats = make(map[string]string)
	for len(b) > 0 {
		line, rest, err := ParseLine(b)
		if err != nil {
			if len(b) > maxLineLen || !isTruncated(err) {
				return stats, false, fmt.Errorf("stats reply: %w", err)
			}
			return stats, false, nil
		}
		if string(line) == "END" {
			if len(rest) > 0 {
				return stats, false, fmt.Errorf("stats reply: %d bytes after END: %w", len(rest), ErrMalformed)
			}
			return stats, true, nil
		}
		if err := parseStatLine(string(line), stats); err != nil {
			return stats, false, err
		}
		b = rest
	}
	return stats, false, nil
}

func parseStatLine(line string, stats map[string]string) error {
	if err := parseErrorLine(line); err != nil {
		return err
	}
	body, ok := strings.CutPrefix(line, "STAT ")
	if !ok {
		return fmt.Errorf("stats reply: unexpected line %q: %w", line, ErrMalformed)
	}
	name, value, _ := strings.Cut(body, " ")
	if name == "" {
		return fmt.Errorf("stats reply: empty name in %q: %w", line, ErrMalformed)
	}
	stats[name] = value
	return nil
}
