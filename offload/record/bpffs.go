package record

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultRoot holds one directory of pins per deployed interface.
const DefaultRoot = "/sys/fs/bpf/xdpcache"

// ErrNoBPFFS is matched (errors.Is) by Resolve's error when no bpffs holds
// the pin root's parent, here or in an ancestor's mount namespace.
var ErrNoBPFFS = errors.New("no BPF filesystem")

// IsBPFFS reports whether dir is on a BPF filesystem.
func IsBPFFS(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && uint32(st.Type) == unix.BPF_FS_MAGIC
}

// Resolve finds the bpffs a pin root lives on ("" is DefaultRoot) and
// returns the path to use for it. `ip netns exec` runs commands in a private
// mount namespace with a fresh /sys and no bpffs: a bpffs mounted there
// would vanish with the command, and the links pinned in it would detach.
// The host's bpffs is still reachable through the root of a process outside
// that mount namespace: the nearest ancestor that sees it (a script run by
// ip netns exec shares its namespace with its parent, not with the shell
// that started it), else PID 1. When none does, the error says so.
func Resolve(root string) (string, error) {
	if root == "" {
		root = DefaultRoot
	}
	dir := filepath.Dir(root)
	if IsBPFFS(dir) {
		return root, nil
	}
	for _, pid := range append(ancestors(), 1) {
		via := fmt.Sprintf("/proc/%d/root", pid)
		if IsBPFFS(filepath.Join(via, dir)) {
			return filepath.Join(via, root), nil
		}
	}
	return root, fmt.Errorf("%w at %s, nor through the root of this process's ancestors or PID 1 "+
		"(a private mount namespace, such as ip netns exec makes, hides the host's): "+
		"run xdpcache with nsenter --net=/run/netns/NAME instead, or mount one (mount -t bpf bpf %s)", ErrNoBPFFS, dir, dir)
}

// ancestors are this process's parent, its parent, ... up to (not
// including) PID 1, read from /proc.
func ancestors() []int {
	var out []int
	for pid := os.Getppid(); pid > 1 && len(out) < 64; {
		out = append(out, pid)
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			break
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			break
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			break
		}
		if pid, err = strconv.Atoi(f[1]); err != nil {
			break
		}
	}
	return out
}

// Ensure is Resolve for deploying: when no bpffs is found, it mounts one at
// the pin root's parent (normally /sys/fs/bpf).
func Ensure(root string) (string, error) {
	r, err := Resolve(root)
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, ErrNoBPFFS) {
		return "", err
	}
	dir := filepath.Dir(r)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return "", fmt.Errorf("%s is not a BPF filesystem and mounting one failed (mount -t bpf bpf %s): %w", dir, dir, err)
	}
	return r, nil
}
