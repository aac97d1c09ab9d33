package bpf

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// fuzzHarness pre-fills a few keys so fuzzed requests can hit.
func fuzzHarness(t testing.TB) (*harness, map[string][]byte) {
	h := newHarness(t, nil)
	cached := map[string][]byte{"k": []byte("v1"), "a": []byte("x\r\nEND\r\n"), "key": bytes.Repeat([]byte("z"), 300)}
	f := v4flow()
	for k, v := range cached {
		h.fillASCII(f, k, 5, v, nil)
	}
	return h, cached
}

// checkReply: a reply is only ever a well-formed answer built from cached
// entries (the harness already checked addresses, lengths and checksums).
func checkReply(t *testing.T, cached map[string][]byte, req, payload []byte) {
	if len(payload) < 8 || !bytes.Equal(payload[:2], req[:2]) {
		t.Fatalf("reply frame %x does not echo request %x", payload[:min(8, len(payload))], req[:min(8, len(req))])
	}
	body := payload[8:]
	if len(body) > 0 && body[0] == 0x81 {
		if len(body) < 28 {
			t.Fatalf("short binary reply %x", body)
		}
		kl := int(binary.BigEndian.Uint16(body[2:]))
		total := int(binary.BigEndian.Uint32(body[8:]))
		if 24+total != len(body) || kl+4 > total {
			t.Fatalf("binary reply lengths wrong: %x", body)
		}
		return
	}
	for len(body) > 0 {
		if bytes.Equal(body, []byte("END\r\n")) {
			return
		}
		var key string
		var flags, n int
		line, rest, ok := bytes.Cut(body, []byte("\r\n"))
		if !ok {
			t.Fatalf("reply item without a line end: %q", body)
		}
		if _, err := sscanItem(string(line), &key, &flags, &n); err != nil {
			t.Fatalf("reply item %q: %v", line, err)
		}
		v, ok := cached[key]
		if !ok || n != len(v) || len(rest) < n+2 || !bytes.Equal(rest[:n], v) {
			t.Fatalf("reply serves %q = %q, cache holds %q", key, rest[:min(n, len(rest))], v)
		}
		body = rest[n+2:]
	}
	t.Fatalf("reply without END")
}

func FuzzXDPPayload(f *testing.F) {
	for _, s := range []string{"get k\r\n", "get k a key\r\n", "gets k\r\n", "get k k k\n", "set k 0 0 1\r\nx\r\n",
		"delete k\r\nget a\r\n", "flush_all\r\n", "mg k v\r\n", "get " + string(bytes.Repeat([]byte("k "), 20)) + "\r\n"} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
	}
	f.Add(binReq(0x0c, "k", nil, nil, 3), uint8(0))
	f.Add(binReq(0x01, "k", make([]byte, 8), []byte("v"), 3), uint8(1))
	h, cached := fuzzHarness(f)
	flow := v4flow()
	f.Fuzz(func(t *testing.T, body []byte, kind uint8) {
		if len(body) > 1400 {
			return
		}
		h.t = t
		switch kind % 3 {
		case 0: // UDP datagram to memcached
			req := frame(0x4242, body)
			ret, out := h.xdp(flow.udpToServer(t, req)) // PASS: the harness checks the packet is unchanged
			if ret == xdpTX {
				checkReply(t, cached, req, decodeReply(t, flow, out).payload)
			} else if ret != xdpPass {
				t.Fatalf("verdict %d", ret)
			}
		case 1: // TCP segment to memcached: never answered, always passed
			if ret, _ := h.xdp(flow.tcpToServer(t, 1, body)); ret != xdpPass {
				t.Fatalf("TCP segment got verdict %d", ret)
			}
		case 2: // raw multi-frame datagram
			if ret, _ := h.xdp(flow.udpToServer(t, frameSeq(1, 1, 2, body))); ret != xdpPass {
				t.Fatalf("multi-frame datagram got verdict %d", ret)
			}
		}
		// Mutations in the fuzz input may invalidate; refill what went
		// (a fuzzed "flush_all <delay>" may hold fills: then it stays out).
		for k, v := range cached {
			id := h.nextID()
			if ret, _ := h.xdp(flow.udpToServer(t, frame(id, getLine("get", k)))); ret == xdpPass {
				h.tc(flow.udpToClient(t, frame(id, append(asciiItem(k, 5, v, nil), "END\r\n"...))))
			}
		}
	})
}

// FuzzXDPFrame: any frame at all is passed unchanged or answered correctly.
func FuzzXDPFrame(f *testing.F) {
	flow := v4flow()
	f.Add(flow.udpToServer(f, frame(1, []byte("get k\r\n"))))
	f.Add(v6flow().udpToServer(f, frame(1, []byte("get a\r\n"))))
	f.Add(flow.tcpToServer(f, 1, []byte("delete k\r\n")))
	h, cached := fuzzHarness(f)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) < 14 || len(pkt) > 1514 {
			return // BPF_PROG_TEST_RUN needs an Ethernet header, and one page at most
		}
		h.t = t
		ret, out := h.xdp(pkt)
		if ret == xdpTX {
			// Only a well-formed request from an allowed source to the
			// memcached port can be answered, and only from the cache.
			r := checkFrame(t, out)
			checkReply(t, cached, r.payload, r.payload)
		} else if ret != xdpPass {
			t.Fatalf("verdict %d", ret)
		}
	})
}

// FuzzTCReply: the egress program never changes or drops a packet, and a
// reply nobody asked for never changes what the cache serves.
func FuzzTCReply(f *testing.F) {
	f.Add([]byte("VALUE k 0 2\r\nzz\r\nEND\r\n"), uint16(1))
	f.Add(binResp(0x0c, "k", 0, []byte("zz"), 1, 1), uint16(7))
	h, cached := fuzzHarness(f)
	flow := v4flow()
	f.Fuzz(func(t *testing.T, body []byte, reqID uint16) {
		if len(body) > 1400 {
			return // one MTU-sized frame at most through BPF_PROG_TEST_RUN
		}
		h.t = t
		h.tc(flow.udpToClient(t, frame(reqID, body)))
		h.tc(flow.tcpToClient(t, 1, body))
		for k, v := range cached {
			ret, out := h.xdp(flow.udpToServer(t, frame(9, getLine("get", k))))
			if ret == xdpTX {
				got := decodeReply(t, flow, out).payload[8:]
				if want := append(asciiItem(k, 5, v, nil), "END\r\n"...); !bytes.Equal(got, want) {
					t.Fatalf("after a fuzzed reply, %s serves %q", k, got)
				}
			}
		}
	})
}
