package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// LockDir holds one lock file per interface (and network namespace), so two
// deploys or a deploy and an undeploy never interleave.
const LockDir = "/run/xdpcache"

// lockIface takes the interface's lock without waiting: a second deploy
// racing the first fails with a clear error rather than mixing their steps.
func lockIface(iface string) (func(), error) {
	if err := os.MkdirAll(LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", LockDir, err)
	}
	ns, _ := os.Readlink("/proc/thread-self/ns/net")
	ns = strings.NewReplacer("net:[", "", "]", "").Replace(ns)
	path := filepath.Join(LockDir, fmt.Sprintf("%s-%s.lock", ns, iface))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another xdpcache deploy or undeploy is running on %s (lock %s); try again when it is done", iface, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}
