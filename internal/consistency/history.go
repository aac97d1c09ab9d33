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

// SlowerThan counts the acknowledged mutations (writes, deletes, flushes)
// that took longer than d from being sent to being acknowledged.
func (h *History) SlowerThan(d time.Duration) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, op := range h.ops {
		if op.Kind != Read && !op.End.IsZero() && op.End.Sub(op.Start) > d {
			n++
		}
	}
	return n
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
	Wrote  *Op  // the write whose value the read returned (nil: none)
	Later  *Op  // stale: the mutation acknowledged before the read that began after Wrote ended
	Around []Op // the key's mutations (and flushes) overlapping [Wrote.Start, Read.End]
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: read of %q by %s, %s, returned %q (found=%v)\n", v.Reason, v.Read.Key, v.Read.Client,
		span(v.Read), v.Read.Value, v.Read.Found)
	if v.Wrote != nil {
		fmt.Fprintf(&b, "  value written:  %s\n", describe(*v.Wrote))
	}
	if v.Later != nil {
		fmt.Fprintf(&b, "  superseded by:  %s\n", describe(*v.Later))
	}
	for _, w := range v.Around {
		fmt.Fprintf(&b, "    overlapping:  %s\n", describe(w))
	}
	return b.String()
}

// span is an operation's interval and how long it took.
func span(op Op) string {
	if op.End.IsZero() {
		return op.Start.Format("15:04:05.000000") + " .. no ack"
	}
	return fmt.Sprintf("%s .. %s (%v)", op.Start.Format("15:04:05.000000"), op.End.Format("15:04:05.000000"),
		op.End.Sub(op.Start).Round(time.Microsecond))
}

func describe(op Op) string {
	return fmt.Sprintf("%s %-6s %q %s", op.Client, kindName(op.Kind), op.Value, span(op))
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

	// Mutations per key (writes, deletes; flushes are added below).
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
	for k, ms := range byKey {
		byKey[k] = append(ms[:len(ms):len(ms)], flushes...)
	}
	mutationsOf := func(key string) []Op {
		if ms, ok := byKey[key]; ok {
			return ms
		}
		return flushes
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
		if !r.Found {
			continue // a miss is memcached's answer; never stale
		}
		res.Hits++
		mutations := mutationsOf(r.Key)
		w, ok := writeOf[r.Value]
		if !ok || w.Key != r.Key {
			res.Invented++
			report(Violation{Read: r, Reason: "invented value", Around: overlapping(mutations, r.Start.Add(-time.Second), r)})
			continue
		}
		if later := supersededBy(mutations, w, r); later != nil {
			res.Stale++
			report(Violation{Read: r, Reason: "stale value", Wrote: &w, Later: later, Around: overlapping(mutations, w.Start, r)})
			continue
		}
		// Expired: the value's write had an exptime that had surely passed.
		if w.Exptime > 0 && !w.End.IsZero() && r.Start.After(w.End.Add(w.Exptime+ExpiryMargin)) {
			res.Expired++
			report(Violation{Read: r, Reason: "served after expiry", Wrote: &w, Around: overlapping(mutations, w.Start, r)})
		}
	}
	return res
}

// supersededBy returns a mutation (of the key, or a flush) that certainly
// took effect after w and before r was sent: it began after w was
// acknowledged and was acknowledged before r began. It picks the one that
// began last. nil if there is none, or if w was never acknowledged (noreply,
// timeout): then w may have taken effect at any time.
func supersededBy(mutations []Op, w Op, r Op) *Op {
	if w.End.IsZero() {
		return nil
	}
	var later *Op
	for i := range mutations {
		m := &mutations[i]
		if m.End.IsZero() || !m.End.Before(r.Start) || !m.Start.After(w.End) {
			continue
		}
		if later == nil || m.Start.After(later.Start) {
			later = m
		}
	}
	return later
}

// overlapping returns the mutations whose interval meets [from, r.End],
// in order of start (at most the last 12). An unacknowledged one counts
// from its start on.
func overlapping(mutations []Op, from time.Time, r Op) []Op {
	var out []Op
	for _, m := range mutations {
		if m.Start.After(r.End) || (!m.End.IsZero() && m.End.Before(from)) {
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	if len(out) > 12 {
		out = out[len(out)-12:]
	}
	return out
}

// Summary is a one-line report.
func (r Result) Summary() string {
	return "operations " + strconv.Itoa(r.Ops) + ", reads " + strconv.Itoa(r.Reads) + " (" + strconv.Itoa(r.Hits) +
		" found), stale " + strconv.Itoa(r.Stale) + ", invented " + strconv.Itoa(r.Invented) + ", expired " + strconv.Itoa(r.Expired)
}
