package mcproto

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeUDPServer answers each request datagram with the datagrams built by
// reply, then exits when the test ends.
func fakeUDPServer(t *testing.T, reply func(f Frame, payload []byte) [][]byte) *net.UDPConn {
	t.Helper()
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			f, payload, err := ParseFrame(buf[:n])
			if err != nil {
				continue
			}
			for _, d := range reply(f, bytes.Clone(payload)) {
				if _, err := srv.WriteToUDP(d, from); err != nil {
					return
				}
			}
		}
	}()
	cli, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.Close()
		srv.Close()
		<-done
	})
	return cli
}

func dgram(id, seq, total uint16, payload string) []byte {
	return append(Frame{RequestID: id, Seq: seq, Total: total}.Append(nil), payload...)
}

func TestUDPClientGetAssembly(t *testing.T) {
	const reply = "VALUE a 0 3\r\nA\r\n\r\nVALUE b 1 1\r\nB\r\nEND\r\n"
	for _, tt := range []struct {
		name  string
		split func(id uint16) [][]byte
	}{
		{"single datagram", func(id uint16) [][]byte { return [][]byte{dgram(id, 0, 1, reply)} }},
		{"memcached 1.6: every datagram seq 0 of 1", func(id uint16) [][]byte {
			return [][]byte{
				dgram(id, 0, 1, "VALUE a 0 3\r\nA\r\n\r\n"),
				dgram(id, 0, 1, "VALUE b 1 1\r\nB\r\n"),
				dgram(id, 0, 1, "END\r\n"),
			}
		}},
		{"split inside a value", func(id uint16) [][]byte {
			return [][]byte{
				dgram(id, 0, 1, "VALUE a 0 3\r\nA\r"),
				dgram(id, 0, 1, "\n\r\nVALUE b 1 1\r\nB\r\nEND\r"),
				dgram(id, 0, 1, "\n"),
			}
		}},
		{"seq 0..2 of 3 out of order", func(id uint16) [][]byte {
			return [][]byte{
				dgram(id, 2, 3, "END\r\n"),
				dgram(id, 0, 3, "VALUE a 0 3\r\nA\r\n\r\n"),
				dgram(id, 1, 3, "VALUE b 1 1\r\nB\r\n"),
			}
		}},
		{"stale and foreign datagrams are discarded", func(id uint16) [][]byte {
			return [][]byte{
				dgram(id-1, 0, 1, "VALUE a 0 5\r\nSTALE\r\nEND\r\n"),
				{0x01, 0x02}, // too short for a frame
				dgram(id, 0, 1, "VALUE a 0 3\r\nA\r\n\r\n"),
				dgram(id+1, 0, 1, "END\r\n"),
				dgram(id, 0, 1, "VALUE b 1 1\r\nB\r\nEND\r\n"),
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reqs := make(chan []byte, 1)
			conn := fakeUDPServer(t, func(f Frame, p []byte) [][]byte {
				reqs <- p
				return tt.split(f.RequestID)
			})
			c := NewUDPClient(conn, 2*time.Second)
			start := time.Now()
			items, err := c.Get("a", "b")
			if err != nil {
				t.Fatal(err)
			}
			if time.Since(start) > time.Second {
				t.Errorf("took %v: completion not detected", time.Since(start))
			}
			if req := <-reqs; string(req) != "get a b\r\n" {
				t.Errorf("request %q", req)
			}
			want := []Item{{Key: "a", Value: []byte("A\r\n")}, {Key: "b", Flags: 1, Value: []byte("B")}}
			if len(items) != 2 || !itemEqual(items[0], want[0]) || !itemEqual(items[1], want[1]) {
				t.Fatalf("items %+v", items)
			}
		})
	}
}

func TestUDPClientFreshRequestIDs(t *testing.T) {
	ids := make(chan uint16, 10)
	conn := fakeUDPServer(t, func(f Frame, p []byte) [][]byte {
		ids <- f.RequestID
		if f.Seq != 0 || f.Total != 1 || f.Reserved != 0 {
			return nil
		}
		return [][]byte{dgram(f.RequestID, 0, 1, "END\r\n")}
	})
	c := NewUDPClient(conn, time.Second)
	seen := map[uint16]bool{}
	for range 5 {
		if _, err := c.Get("k"); err != nil {
			t.Fatal(err)
		}
		id := <-ids
		if seen[id] {
			t.Fatalf("request id %d reused", id)
		}
		seen[id] = true
	}
}

func TestUDPClientFailures(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reply func(id uint16) [][]byte
		check func(error) bool
	}{
		{"no reply", func(uint16) [][]byte { return nil },
			func(err error) bool { return errors.Is(err, ErrNoReply) }},
		{"only stale replies", func(id uint16) [][]byte { return [][]byte{dgram(id+7, 0, 1, "END\r\n")} },
			func(err error) bool { return errors.Is(err, ErrNoReply) }},
		{"incomplete at deadline", func(id uint16) [][]byte { return [][]byte{dgram(id, 0, 1, "VALUE k 0 1\r\nK\r\n")} },
			func(err error) bool { return errors.Is(err, ErrTruncated) }},
		{"missing seq", func(id uint16) [][]byte {
			return [][]byte{dgram(id, 0, 3, "VALUE k 0 1\r\nK\r\n"), dgram(id, 2, 3, "END\r\n")}
		}, func(err error) bool { return errors.Is(err, ErrTruncated) }},
		{"malformed", func(id uint16) [][]byte { return [][]byte{dgram(id, 0, 1, "VALUE k 0 1\r\nKX")} },
			func(err error) bool { return errors.Is(err, ErrMalformed) }},
		{"server error", func(id uint16) [][]byte { return [][]byte{dgram(id, 0, 1, "SERVER_ERROR busy\r\n")} },
			func(err error) bool { var se *ServerError; return errors.As(err, &se) && se.Msg == "busy" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn := fakeUDPServer(t, func(f Frame, _ []byte) [][]byte { return tt.reply(f.RequestID) })
			c := NewUDPClient(conn, 150*time.Millisecond)
			start := time.Now()
			_, err := c.Get("k")
			if !tt.check(err) {
				t.Fatalf("unexpected error %v", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("took %v, deadline not enforced", d)
			}
		})
	}
	t.Run("invalid key", func(t *testing.T) {
		c := NewUDPClient(nil, time.Second)
		if _, err := c.Get("bad key"); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestUDPClientBinGet(t *testing.T) {
	conn := fakeUDPServer(t, func(f Frame, p []byte) [][]byte {
		req, _, err := ParseBinPacket(p)
		if err != nil {
			return nil
		}
		h := BinHeader{Magic: MagicResponse, Opcode: req.Header.Opcode, Opaque: req.Header.Opaque}
		var resp []byte
		switch string(req.Key) {
		case "hit":
			resp = AppendBinRequest(nil, h, []byte{0, 0, 0, 5}, nil, []byte("value"))
		case "miss":
			if IsQuiet(req.Header.Opcode) {
				return [][]byte{dgram(f.RequestID, 0, 1, "")} // memcached 1.6 style
			}
			h.Status = StatusKeyNotFound
			resp = AppendBinRequest(nil, h, nil, nil, []byte("Not found"))
		case "split":
			resp = AppendBinRequest(nil, h, []byte{0, 0, 0, 5}, nil, []byte("value"))
			return [][]byte{dgram(f.RequestID, 0, 1, string(resp[:10])), dgram(f.RequestID, 0, 1, string(resp[10:]))}
		case "wrong-opaque":
			h.Opaque++
			resp = AppendBinRequest(nil, h, nil, nil, nil)
		}
		return [][]byte{dgram(f.RequestID, 0, 1, string(resp))}
	})
	c := NewUDPClient(conn, 150*time.Millisecond)
	for _, key := range []string{"hit", "split"} {
		p, err := c.BinGet(OpGet, key, 0xfeed0001)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if f, _ := p.Flags(); f != 5 || string(p.Value) != "value" {
			t.Fatalf("%s: %+v", key, p)
		}
	}
	if p, err := c.BinGet(OpGetK, "miss", 2); err != nil || !errors.Is(p.Err(), ErrNotFound) {
		t.Fatalf("non-quiet miss: %+v %v", p, err)
	}
	if _, err := c.BinGet(OpGetQ, "miss", 3); !errors.Is(err, ErrNoReply) {
		t.Fatalf("quiet miss: %v", err)
	}
	if _, err := c.BinGet(OpGet, "wrong-opaque", 4); !errors.Is(err, ErrUnexpectedReply) {
		t.Fatalf("wrong opaque: %v", err)
	}
	if _, err := c.BinGet(OpSet, "hit", 5); err == nil {
		t.Fatal("BinGet accepted OpSet")
	}
}

func TestUDPClientRaw(t *testing.T) {
	conn := fakeUDPServer(t, func(f Frame, p []byte) [][]byte {
		switch {
		case strings.HasPrefix(string(p), "get"):
			return [][]byte{dgram(f.RequestID, 0, 1, "VALUE k 0 1\r\nK\r\n"), dgram(f.RequestID, 0, 1, "END\r\n")}
		case strings.HasPrefix(string(p), "delete"):
			return [][]byte{dgram(f.RequestID, 0, 1, "DELETED\r\n")}
		default:
			return [][]byte{dgram(f.RequestID, 1, 2, "B"), dgram(f.RequestID, 0, 2, "A")}
		}
	})
	c := NewUDPClient(conn, 200*time.Millisecond)
	for _, tt := range []struct {
		req  string
		want []string
		fast bool
	}{
		{"get k\r\n", []string{"VALUE k 0 1\r\nK\r\n", "END\r\n"}, true},
		{"delete k\r\n", []string{"DELETED\r\n"}, true},
		{"unknown\r\n", []string{"A", "B"}, false},
	} {
		start := time.Now()
		got, err := c.Raw([]byte(tt.req))
		if err != nil {
			t.Fatalf("%q: %v", tt.req, err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%q: got %q", tt.req, got)
		}
		for i := range got {
			if string(got[i]) != tt.want[i] {
				t.Fatalf("%q: got %q", tt.req, got)
			}
		}
		if fast := time.Since(start) < 150*time.Millisecond; fast != tt.fast {
			t.Errorf("%q: returned after %v", tt.req, time.Since(start))
		}
	}
}
