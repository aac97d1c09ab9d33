package deploy

import (
	"errors"

	"golang.org/x/sys/unix"
)

// ErrPrivileges: attaching XDP and TC programs needs CAP_NET_ADMIN and
// CAP_BPF (or CAP_SYS_ADMIN on kernels before 5.8).
var ErrPrivileges = errors.New("needs root, or CAP_NET_ADMIN with CAP_BPF (CAP_SYS_ADMIN before kernel 5.8): run it with sudo")

// checkPrivileges fails early with ErrPrivileges instead of a bare EPERM
// from whichever step comes first.
func checkPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil // cannot tell: let the operation say
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if !has(unix.CAP_NET_ADMIN) || !(has(unix.CAP_BPF) || has(unix.CAP_SYS_ADMIN)) {
		return ErrPrivileges
	}
	return nil
}
