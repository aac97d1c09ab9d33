// Package mcproto is a strict codec for the memcached protocols used by
// xdpcache's tests and tools, plus small UDP and TCP clients.
//
// It covers the 8-byte UDP frame header, the ASCII protocol (get/gets
// replies, storage and simple commands, stats) and the binary protocol
// (24-byte header packets). Parsers never panic on arbitrary input and
// report malformed input as errors; truncated input is distinguishable so
// callers can keep reading.
//
// UDPClient sends get/gets, binary GET-family and raw requests and
// reassembles replies split over several datagrams. TCPClient sends ASCII
// commands (one at a time or pipelined) or binary SET/DELETE. Both check
// that a reply answers the request: get items for keys that were asked,
// in the order asked; binary responses with the request's opcode, opaque
// and key.
package mcproto
