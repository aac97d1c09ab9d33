package mcproto

import "strings"

// completeFunc reports whether the ordered concatenation of the reply
// payloads received so far is a complete reply. An error ends the request.
type completeFunc func(data []byte) (bool, error)

// getCompletion: a get/gets reply is complete at END; malformed input
// ends the request.
func getCompletion(d []byte) (bool, error) {
	_, ok, err := ParseGetReply(d)
	return ok, err
}

// binPacketCompletion: one whole binary packet; malformed input ends the
// request.
func binPacketCompletion(d []byte) (bool, error) {
	_, _, err := ParseBinPacket(d)
	if isTruncated(err) {
		return false, nil
	}
	return err == nil, err
}

// rawCompletion guesses how to recognize the end of the reply to payload;
// nil means "wait for the deadline".
func rawCompletion(payload []byte) completeFunc {
	if len(payload) > 0 && payload[0] == MagicRequest {
		return binaryCompletion(payload)
	}
	line, rest, err := ParseLine(payload)
	if err != nil {
		return nil
	}
	words := strings.Fields(string(line))
	if len(words) == 0 || words[len(words)-1] == "noreply" {
		return nil
	}
	oneLine := func(d []byte) (bool, error) {
		_, _, err := ParseLine(d)
		return err == nil, nil
	}
	switch words[0] {
	case "set", "add", "replace", "append", "prepend", "cas":
		return oneLine // rest is the data block
	}
	if len(rest) != 0 {
		return nil // several commands
	}
	switch words[0] {
	case "get", "gets", "gat", "gats":
		return func(d []byte) (bool, error) {
			_, ok, err := ParseGetReply(d)
			return ok || err != nil, nil
		}
	case "stats":
		return func(d []byte) (bool, error) {
			_, ok, err := ParseStats(d)
			return ok || err != nil, nil
		}
	case "delete", "incr", "decr", "touch", "flush_all", "version", "verbosity":
		return oneLine
	}
	return nil
}

// binaryCompletion waits for one response per non-quiet request in
// payload.
func binaryCompletion(payload []byte) completeFunc {
	want := 0
	for len(payload) > 0 {
		p, rest, err := ParseBinPacket(payload)
		if err != nil {
			return nil
		}
		if !IsQuiet(p.Header.Opcode) {
			want++
		}
		payload = rest
	}
	if want == 0 {
		return nil
	}
	return func(d []byte) (bool, error) {
		have := 0
		for len(d) > 0 {
			p, rest, err := ParseBinPacket(d)
			if isTruncated(err) {
				return false, nil
			}
			if err != nil {
				return true, nil // let the caller look at it
			}
			if !IsQuiet(p.Header.Opcode) {
				have++
			}
			d = rest
		}
		return have >= want, nil
	}
}
