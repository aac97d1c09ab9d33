package mcproto

import (
	"errors"
	"strings"
)

// Sentinel errors. Parsers wrap them, so test with errors.Is.
var (
	// ErrTruncated means the input ended before a complete unit could be
	// decoded; more bytes may make it valid.
	ErrTruncated = errors.New("mcproto: truncated input")
	// ErrMalformed means the input can never become valid.
	ErrMalformed = errors.New("mcproto: malformed input")
	// ErrNoReply means no reply arrived before the request deadline (the
	// normal outcome of a quiet binary GET that misses).
	ErrNoReply = errors.New("mcproto: no reply")
	// ErrNotFound is the NOT_FOUND reply.
	ErrNotFound = errors.New("mcproto: not found")
	// ErrNotStored is the NOT_STORED reply.
	ErrNotStored = errors.New("mcproto: not stored")
	// ErrExists is the EXISTS reply (cas mismatch).
	ErrExists = errors.New("mcproto: exists")
	// ErrUnexpectedReply means the server answered with a well-formed
	// line that does not fit the command.
	ErrUnexpectedReply = errors.New("mcproto: unexpected reply")
)

// ServerError is an ERROR, CLIENT_ERROR or SERVER_ERROR line from the
// server.
type ServerError struct {
	Kind string // "ERROR", "CLIENT_ERROR" or "SERVER_ERROR"
	Msg  string // text after the kind, may be empty
}

func (e *ServerError) Error() string {
	if e.Msg == "" {
		return "memcached: " + e.Kind
	}
	return "memcached: " + e.Kind + " " + e.Msg
}

// parseErrorLine returns a *ServerError if line (without "\r\n") is one of
// the ASCII error replies, nil otherwise.
func parseErrorLine(line string) error {
	if line == "ERROR" {
		return &ServerError{Kind: "ERROR"}
	}
	for _, kind := range []string{"CLIENT_ERROR", "SERVER_ERROR"} {
		if line == kind {
			return &ServerError{Kind: kind}
		}
		if msg, ok := strings.CutPrefix(line, kind+" "); ok {
			return &ServerError{Kind: kind, Msg: msg}
		}
	}
	return nil
}

func isTruncated(err error) bool { return errors.Is(err, ErrTruncated) }
