// Package consistency records a concurrent history of memcached operations
// and checks the cache's promise against it: a read never returns a value
// older than the newest write acknowledged before the read was sent, never a
// value that was not written, and never a value past its expiry.
package consistency

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind of operation.
type Kind int

const (
	Write  Kind = iota // the key now holds Value (set, cas, add, replace)
	Delete             // the key no longer exists (delete)
	Flush              // every key is gone (flush_all)
	Read               // a GET returned Value (Found) or nothing
)

// Op is one operation with its real-time interval. End is zero when no
// acknowledgement is expected (noreply) or none came (timeout).
type Op struct {
	Kind    Kind
	Key     string
	Value   string // Write: the value written; Read: the value returned
	Found   bool   // Read
	Exptime time.Duration
	Start   time.Time
	End     time.Time
	Client  string // who did it, for reports
}

// History collects operations from many goroutines.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Add records an operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Len is the number of operations recorded.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}

// Value encodes (key, writer, sequence) so every written value is unique
// and names its write.
func Value(key, writer string, seq int) string {
	return fmt.Sprintf("%s|%s|%d", key, writer, seq)
}

// Violation is one read that breaks the promise.
type Violation struct {
	Read   Op
	Reason string
	Around []Op // the key's writes around the read
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: read of %q sent %s returned %q (found=%v)\n", v.Reason, v.Read.Key,
		v.Read.Start.Format("15:04:05.000000"), v.Read.Value, v.Read.Found)
	for _, w := range v.Around {
		end := "no ack"
		if !w.End.IsZero() {
			end = w.End.Format("15:04:05.000000")
		}
		fmt.Fprintf(&b, "    %s %-7s %q %s .. %s\n", w.Client, kindName(w.Kind), w.Value, w.Start.Format("15:04:05.000000"), end)
	}
	return b.String()
}

func kindName(k Kind) string {
	return [...]string{"write", "delete", "flush", "read"}[k]
}

// Result of a check.
type Result struct {
	Ops, Reads, Hits int
	Stale, Invented  int
	Expired          int
	Violations       []Violation // the first few of each kind
}

// OK reports a history without violations.
func (r Result) OK() bool { return r.Stale+r.Invented+r.Expired == 0 }

// ExpiryMargin covers memcached's one-second clock.
const ExpiryMargin = 1500 * time.Millisecond

// Check verifies every read.
func (h *History) Check() Result {
	h.mu.Lock()
	ops := append([]Op(nil), h.ops...)
	h.mu.Unlock()

	// Writes (incl. deletes) per key, and flushes, in order of start.
	byKey := map[string][]Op{}
	var flushes []Op
	writeOf := map[string]Op{} // value -> its write
	for _, op := range ops {
		switch op.Kind {
		case Write:
			byKey[op.Key] = append(byKey[op.Key], op)
			writeOf[op.Value] = op
		case Delete:
			byKey[op.Key] = append(byKey[op.Key], op)
		case Flush:
			flushes = append(flushes, op)
		}
	}
	res := Result{Ops: len(ops)}
	report := func(v Violation) {
		if len(res.Violations) < 20 {
			res.Violations = append(res.Violations, v)
		}
	}
	for _, r := range ops {
		if r.Kind != Read {
			continue
		}
		res.Reads++
		if r.Found {
			res.Hits++
		}
		// The newest mutation of the key acknowledged before the read was sent.
		var last *Op
		for i := range byKey[r.Key] {
			w := &byKey[r.Key][i]
			if !w.End.IsZero() && w.End.Before(r.Start) && (last == nil || w.End.After(last.End)) {
				last = w
			}
		}
		for i := range flushes {
			f := &flushes[i]
			if !f.End.IsZero() && f.End.Before(r.Start) && (last == nil || f.End.After(last.End)) {
				last = f
			}
		}
		if !r.Found {
			continue // a miss is memcached's answer; never stale
		}
		w, ok := writeOf[r.Value]
		if !ok || w.Key != r.Key {
			res.Invented++
			report(Violation{Read: r, Reason: "invented value", Around: around(byKey[r.Key], r)})
			continue
		}
		// Stale: the value's write completed before the last acknowledged
		// mutation began, so that mutation certainly came after it.
		if last != nil && last.Value != w.Value && !w.End.IsZero() && w.End.Before(last.Start) {
			res.Stale++
			report(Violation{Read: r, Reason: "stale value", Around: around(byKey[r.Key], r)})
			continue
		}
		// Expired: the value's write had an exptime that had surely passed.
		if w.Exptime > 0 && !w.End.IsZero() && r.Start.After(w.End.Add(w.Exptime+ExpiryMargin)) {
			res.Expired++
			report(Violation{Read: r, Reason: "served after expiry", Around: around(byKey[r.Key], r)})
		}
	}
	return res
}

// around returns the writes of a key that overlap the second before the read.
func around(ws []Op, r Op) []Op {
	var out []Op
	for _, w := range ws {
		if w.Start.Before(r.Start) && w.Start.After(r.Start.Add(-time.Second)) {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	if len(out) > 10 {
		out = out[len(out)-10:]
	}
	return out
}

// Summary is a one-line report.
func (r Result) Summary() string {
	return "operations " + strconv.Itoa(r.Ops) + ", reads " + strconv.Itoa(r.Reads) + " (" + strconv.Itoa(r.Hits) +
		" found), stale " + strconv.Itoa(r.Stale) + ", invented " + strconv.Itoa(r.Invented) + ", expired " + strconv.Itoa(r.Expired)
}
