// Package difftest generates memcached command streams for the differential
// harness of bpf/difftest_test.go, which runs each stream both against a real
// memcached and through the XDP program, and shrinks failing streams.
//
// A Stream is what a test replays exactly: the key universe with the value,
// flags and TTL each key holds before the stream starts, the TCP connections
// (their address family), and the events in order: TCP segments of one of the
// connections, or whole UDP datagrams (frame header included).
package difftest

import (
	"fmt"
	"strconv"
	"strings"
)

// Key is one key of the universe and what it holds before the stream.
type Key struct {
	Key   string
	Flags uint32
	TTL   int // seconds, 0: never expires
	Value []byte
}

// Conn is one TCP connection of the stream.
type Conn struct {
	V6 bool
	// NoSYN: XDP never sees the handshake (the connection began before the
	// program was attached); memcached sees the same bytes from the start.
	NoSYN bool
}

// UDP marks an event as a UDP datagram instead of a TCP segment.
const UDP = -1

// Behind marks bytes sent to memcached over a connection XDP never sees
// (for the harness's own check that it notices what XDP missed).
const Behind = -2

// Event is one TCP segment (Conn >= 0: the connection's next bytes) or one
// UDP datagram (Conn == UDP: Data starts with the 8-byte frame header).
type Event struct {
	Conn int
	V6   bool // UDP only: the datagram's address family
	Data []byte
	// Hold: memcached's replies to this event reach the TC program only
	// after the next event has passed XDP (a reply overtaken by the next
	// request; TCP acknowledgements lag behind the same way).
	Hold bool
	// Unseen (TCP only): memcached gets the segment, XDP does not (it was
	// sent before the program was attached; use with Conn.NoSYN).
	Unseen bool
	// Ack (TCP only): the segment acknowledges this many bytes of the
	// server's stream beyond what the client received (an early or forged
	// ACK); the server's next segment on the connection starts there.
	Ack int
	// Wrap is how the frame is encapsulated: "" plain, "vlan" one 802.1Q
	// tag, "qinq" two, "ipopts" IPv4 options (4 bytes) or an IPv6
	// destination-options header (8), "bigopts" 40 bytes of IPv4 options or
	// an 88-byte destination-options header (headers of 128 bytes and more
	// with QinQ), "frag" IPv4 fragments whose first one carries only 8 bytes
	// of the TCP/UDP header (IPv6: a fragment header, 8 bytes in the first).
	Wrap string
}

// Wraps are the encapsulations Event.Wrap names.
var Wraps = []string{"", "vlan", "qinq", "ipopts", "bigopts", "frag"}

// Stream is one test case.
type Stream struct {
	Keys   []Key
	Conns  []Conn
	Events []Event
}

// Clone is a deep copy.
func (s Stream) Clone() Stream {
	out := Stream{Keys: make([]Key, len(s.Keys)), Conns: append([]Conn(nil), s.Conns...), Events: make([]Event, len(s.Events))}
	for i, k := range s.Keys {
		k.Value = append([]byte(nil), k.Value...)
		out.Keys[i] = k
	}
	for i, e := range s.Events {
		e.Data = append([]byte(nil), e.Data...)
		out.Events[i] = e
	}
	return out
}

// Bytes is the total payload size (a measure for shrinking).
func (s Stream) Bytes() int {
	n := 0
	for _, e := range s.Events {
		n += len(e.Data)
	}
	return n
}

// quote is a Go string literal of b, one escaped line.
func quote(b []byte) string { return strconv.Quote(string(b)) }

// GoString prints the stream as a Go composite literal of this package's
// types, to paste into a regression table.
func (s Stream) GoString() string {
	var b strings.Builder
	b.WriteString("difftest.Stream{\n\tKeys: []difftest.Key{\n")
	for _, k := range s.Keys {
		fmt.Fprintf(&b, "\t\t{Key: %s, Flags: %d, TTL: %d, Value: []byte(%s)},\n", strconv.Quote(k.Key), k.Flags, k.TTL, quote(k.Value))
	}
	b.WriteString("\t},\n\tConns: []difftest.Conn{")
	for i, c := range s.Conns {
		if i > 0 {
			b.WriteString(", ")
		}
		if c.NoSYN {
			fmt.Fprintf(&b, "{V6: %v, NoSYN: true}", c.V6)
		} else {
			fmt.Fprintf(&b, "{V6: %v}", c.V6)
		}
	}
	b.WriteString("},\n\tEvents: []difftest.Event{\n")
	for _, e := range s.Events {
		extra := ""
		if e.Hold {
			extra += ", Hold: true"
		}
		if e.Wrap != "" {
			extra += ", Wrap: " + strconv.Quote(e.Wrap)
		}
		if e.Ack != 0 {
			extra += fmt.Sprintf(", Ack: %d", e.Ack)
		}
		if e.Unseen {
			extra += ", Unseen: true"
		}
		if e.Conn == Behind {
			fmt.Fprintf(&b, "\t\t{Conn: difftest.Behind, Data: []byte(%s)},\n", quote(e.Data))
		} else if e.Conn == UDP {
			fmt.Fprintf(&b, "\t\t{Conn: difftest.UDP, V6: %v, Data: []byte(%s)%s},\n", e.V6, quote(e.Data), extra)
		} else {
			fmt.Fprintf(&b, "\t\t{Conn: %d, Data: []byte(%s)%s},\n", e.Conn, quote(e.Data), extra)
		}
	}
	b.WriteString("\t},\n}")
	return b.String()
}

// String is a short human-readable listing (one line per event).
func (s Stream) String() string {
	var b strings.Builder
	for i, e := range s.Events {
		extra := ""
		if e.Hold {
			extra += " [replies held]"
		}
		if e.Wrap != "" {
			extra += " [" + e.Wrap + "]"
		}
		if e.Ack != 0 {
			extra += fmt.Sprintf(" [acks %d bytes early]", e.Ack)
		}
		if e.Unseen {
			extra += " [not seen by XDP]"
		}
		if e.Conn == Behind {
			fmt.Fprintf(&b, "%3d behind %s\n", i, quote(e.Data))
		} else if e.Conn == UDP {
			fam := "v4"
			if e.V6 {
				fam = "v6"
			}
			fmt.Fprintf(&b, "%3d udp/%s %s%s\n", i, fam, quote(e.Data), extra)
		} else {
			fmt.Fprintf(&b, "%3d tcp%d   %s%s\n", i, e.Conn, quote(e.Data), extra)
		}
	}
	return b.String()
}

// Shrink minimizes a failing stream: while fails(candidate) stays true it
// drops events, merges a connection's adjacent segments, and cuts byte
// ranges out of events. budget bounds the number of calls to fails.
func Shrink(s Stream, fails func(Stream) bool, budget int) Stream {
	cur := s.Clone()
	try := func(c Stream) bool {
		if budget <= 0 {
			return false
		}
		budget--
		if fails(c) {
			cur = c
			return true
		}
		return false
	}
	for progress := true; progress && budget > 0; {
		progress = false
		// 1. drop events, biggest chunks first
		for chunk := len(cur.Events) / 2; chunk >= 1; chunk /= 2 {
			for i := 0; i+chunk <= len(cur.Events); {
				c := cur.Clone()
				c.Events = append(c.Events[:i], c.Events[i+chunk:]...)
				if len(c.Events) > 0 && try(c) {
					progress = true
					continue
				}
				i++
			}
		}
		// 2. merge a TCP segment with the same connection's next one when
		// nothing else lies between them
		for i := 0; i+1 < len(cur.Events); {
			a, b := cur.Events[i], cur.Events[i+1]
			if a.Conn >= 0 && a.Conn == b.Conn && len(a.Data)+len(b.Data) <= MaxSegment {
				c := cur.Clone()
				c.Events[i].Data = append(c.Events[i].Data, b.Data...)
				c.Events = append(c.Events[:i+1], c.Events[i+2:]...)
				if try(c) {
					progress = true
					continue
				}
			}
			i++
		}
		// 3. cut byte ranges out of events (not a UDP frame header)
		for i := range cur.Events {
			min := 0
			if cur.Events[i].Conn == UDP {
				min = 8
			}
			for chunk := (len(cur.Events[i].Data) - min) / 2; chunk >= 1; chunk /= 2 {
				for off := min; i < len(cur.Events) && off+chunk <= len(cur.Events[i].Data); {
					c := cur.Clone()
					d := c.Events[i].Data
					c.Events[i].Data = append(d[:off:off], d[off+chunk:]...)
					if len(c.Events[i].Data) > min && try(c) {
						progress = true
						continue
					}
					off += chunk
				}
			}
		}
		// 4. plain events: no held replies, no encapsulation
		for i := range cur.Events {
			if cur.Events[i].Hold || cur.Events[i].Wrap != "" || cur.Events[i].Ack != 0 {
				c := cur.Clone()
				c.Events[i].Hold, c.Events[i].Wrap, c.Events[i].Ack = false, "", 0
				if try(c) {
					progress = true
				}
			}
		}
		// 5. drop keys of the universe the failure does not need
		for i := 0; i < len(cur.Keys) && len(cur.Keys) > 1; {
			c := cur.Clone()
			c.Keys = append(c.Keys[:i], c.Keys[i+1:]...)
			if try(c) {
				progress = true
				continue
			}
			i++
		}
	}
	return cur
}
