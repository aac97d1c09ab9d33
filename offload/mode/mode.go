// Package mode is xdpcache's XDP mode: the one type, its names and its one
// parser. Every command and package that takes a mode takes a Mode.
package mode

import (
	"errors"
	"fmt"
	"strings"
)

// Mode is an XDP attach mode, or Auto: the fastest one the interface allows.
type Mode string

// The modes. Offload, Native and Generic are where the program runs, fastest
// first; Auto asks for the first of them that works.
const (
	Auto    Mode = "auto"
	Offload Mode = "offload" // on the NIC (SmartNIC)
	Native  Mode = "native"  // in the driver
	Generic Mode = "generic" // on the skb, after the driver: slow, works everywhere
)

// Attached lists the modes a program can be attached in, fastest first:
// the order Auto tries them in.
func Attached() []Mode { return []Mode{Offload, Native, Generic} }

// names is what Parse accepts, in the order messages list them.
var names = []Mode{Auto, Offload, Native, Generic}

// ErrUnknown is what Parse returns (wrapped) for a name that is no mode.
var ErrUnknown = errors.New("unknown mode")

// Parse reads a mode's name. The empty string is Auto (an option left unset).
func Parse(s string) (Mode, error) {
	if s == "" {
		return Auto, nil
	}
	for _, m := range names {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("%w %q: use %s", ErrUnknown, s, List())
}

// List is the modes' names for messages: "auto, offload, native or generic".
func List() string {
	s := make([]string, len(names))
	for i, m := range names {
		s[i] = string(m)
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// Resolve is m with the zero value read as Auto.
func (m Mode) Resolve() Mode {
	if m == "" {
		return Auto
	}
	return m
}

// IsAuto reports whether m leaves the choice to the plan ("" counts as Auto).
func (m Mode) IsAuto() bool { return m.Resolve() == Auto }

// String is the mode's name.
func (m Mode) String() string { return string(m) }
