package mcproto

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// fakeTCPServer answers each request line on one end of a pipe with the
// canned reply for it; storage commands have their data line skipped.
func fakeTCPServer(t *testing.T, replies map[string]string) *TCPClient {
	t.Helper()
	cli, srv := net.Pipe()
	go func() {
		defer srv.Close()
		r := bufio.NewReader(srv)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			reply, ok := replies[line]
			if !ok {
				reply = "ERROR\r\n"
			}
			if _, err := io.WriteString(srv, reply); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { cli.Close() })
	return NewTCPClient(cli, time.Second)
}

func TestTCPClientGetReplies(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reply string
		items int
		check func(error) bool
	}{
		{"ok", "VALUE k 1 4 9\r\na\r\nb\r\nEND\r\n", 1, func(err error) bool { return err == nil }},
		{"empty value", "VALUE k 0 0\r\n\r\nEND\r\n", 1, func(err error) bool { return err == nil }},
		{"miss", "END\r\n", 0, func(err error) bool { return err == nil }},
		{"key asked once, answered twice", "VALUE k 0 1\r\nA\r\nVALUE k 0 1\r\nA\r\nEND\r\n", 2,
			func(err error) bool { return errors.Is(err, ErrUnexpectedReply) }},
		{"another key", "VALUE x 0 1\r\nA\r\nEND\r\n", 1, func(err error) bool { return errors.Is(err, ErrUnexpectedReply) }},
		{"bad trailer", "VALUE k 0 1\r\nAB\r\nEND\r\n", 0, func(err error) bool { return errors.Is(err, ErrMalformed) }},
		{"bad header", "VALUE k x 1\r\nA\r\nEND\r\n", 0, func(err error) bool { return errors.Is(err, ErrMalformed) }},
		{"bare LF", "END\n", 0, func(err error) bool { return errors.Is(err, ErrMalformed) }},
		{"server error", "VALUE k 0 1\r\nA\r\nSERVER_ERROR oops\r\n", 1,
			func(err error) bool { var se *ServerError; return errors.As(err, &se) && se.Msg == "oops" }},
		{"eof", "VALUE k 0 10\r\nA", 0, func(err error) bool { return err != nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeTCPServer(t, map[string]string{"gets k\r\n": tt.reply})
			items, err := c.Gets("k")
			if !tt.check(err) || len(items) != tt.items {
				t.Fatalf("items %+v err %v", items, err)
			}
		})
	}
}

func TestTCPClientCommands(t *testing.T) {
	c := fakeTCPServer(t, map[string]string{
		"delete gone\r\n": "NOT_FOUND\r\n",
		"incr n 1\r\n":    "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
		"touch k 5\r\n":   "TOUCHED\r\n",
		"flush_all\r\n":   "OK\r\n",
		"stats\r\n":       "STAT get_hits 3\r\nSTAT cmd_get 4\r\nEND\r\n",
	})
	if err := c.Delete("gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete: %v", err)
	}
	var se *ServerError
	if _, err := c.Incr("n", 1); !errors.As(err, &se) || se.Kind != "CLIENT_ERROR" {
		t.Errorf("incr: %v", err)
	}
	if err := c.Touch("k", 5); err != nil {
		t.Errorf("touch: %v", err)
	}
	if err := c.FlushAll(); err != nil {
		t.Errorf("flush_all: %v", err)
	}
	if st, err := c.Stats(); err != nil || st["get_hits"] != "3" || st["cmd_get"] != "4" {
		t.Errorf("stats: %v %v", st, err)
	}
	if r, err := c.Do([]byte("nonsense")); err != nil || r != "ERROR" {
		t.Errorf("do: %q %v", r, err)
	}
	if err := c.Store("frobnicate", "k", 0, 0, nil, 0, false); err == nil {
		t.Error("unknown storage command accepted")
	}
	if err := c.Set("bad key", 0, 0, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad key: %v", err)
	}
}
