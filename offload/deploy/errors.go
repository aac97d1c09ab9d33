package deploy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoMode is matched (errors.Is) by the error of a deploy that found no
// XDP mode to attach in.
var ErrNoMode = errors.New("no usable XDP mode")

// NoModeError says why no mode could be used on Iface: each mode's reason,
// in the order they were considered.
type NoModeError struct {
	Iface   string
	Reasons []string
	Err     error // the last attach error, if one was tried
}

func (e *NoModeError) Error() string {
	return fmt.Sprintf("could not attach XDP to %s: %s", e.Iface, strings.Join(e.Reasons, "; "))
}

// Is makes errors.Is(err, ErrNoMode) hold.
func (e *NoModeError) Is(target error) bool { return target == ErrNoMode }

// Unwrap is the last attach error.
func (e *NoModeError) Unwrap() error { return e.Err }

// ForeignProgramError: the interface runs an XDP program xdpcache did not
// attach, and --force was not given.
type ForeignProgramError struct {
	Iface  string
	ProgID uint32
}

func (e *ForeignProgramError) Error() string {
	return fmt.Sprintf("%s already has an XDP program (id %d) that xdpcache did not attach, running alone; use --force to replace it, "+
		"or share the interface: --adopt ITS_OBJECT.o moves it into a libxdp dispatcher with xdpcache (loading it again from the file, keeping its maps), "+
		"or load it through libxdp (xdp-loader load %s ITS_OBJECT.o) and deploy again, which joins it",
		e.Iface, e.ProgID, e.Iface)
}
