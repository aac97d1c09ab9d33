package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
)

// runApp runs the CLI in-process and returns its exit code and output.
func runApp(args ...string) (int, string) {
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	code := 0
	app.ExitErrHandler = func(_ *cli.Context, err error) {
		if err == nil {
			return
		}
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
			out.WriteString(ec.Error())
			return
		}
		code = exitFailed
		out.WriteString(err.Error())
	}
	if err := app.Run(append([]string{"xdpcache"}, args...)); err != nil && code == 0 {
		code = exitUsage
		out.WriteString(err.Error())
	}
	return code, out.String()
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"deploy"}, exitUsage, "iface"},
		{[]string{"deploy", "--iface", "lo", "--mode", "turbo"}, exitUsage, `--mode "turbo"`},
		{[]string{"deploy", "--iface", "lo", "--port", "0"}, exitUsage, "--port 0"},
		{[]string{"deploy", "--iface", "lo", "--port", "70000"}, exitUsage, "--port 70000"},
		{[]string{"deploy", "--iface", "lo", "--port", "1", "--port", "2", "--port", "3", "--port", "4", "--port", "5"}, exitUsage, "ports"},
		{[]string{"deploy", "--iface", "lo", "--entries", "0"}, exitUsage, "entries"},
		{[]string{"deploy", "--iface", "lo", "--entries", "1000"}, exitUsage, "power of two"},
		{[]string{"deploy", "--iface", "lo", "--entries", "99999999999"}, exitUsage, "--entries"},
		{[]string{"deploy", "--iface", "lo", "--max-value-size", "5000"}, exitUsage, "--max-value-size"},
		{[]string{"deploy", "--iface", "lo", "--allow", "10.0.0.1"}, exitUsage, `--allow "10.0.0.1"`},
		{[]string{"deploy", "--iface", "lo", "--allow", "bogus/8"}, exitUsage, "CIDR"},
		{[]string{"deploy", "--iface", "lo", "--mode", "generic", "--no-generic"}, exitUsage, "contradicts"},
		{[]string{"deploy", "--iface", "lo", "--mode", "offload", "--shadow"}, exitUsage, "--shadow contradicts --mode offload"},
		{[]string{"deploy", "--iface", "lo", "--max-age", "-1s"}, exitUsage, "max age"},
		{[]string{"deploy", "--iface", "lo", "--mtu", "100"}, exitUsage, "MTU"},
		{[]string{"run", "--iface", "lo", "--interval", "0s"}, exitUsage, "--interval"},
		{[]string{"demo", "--duration", "0s"}, exitFailed, "--duration"},
		{[]string{"undeploy"}, exitUsage, "iface"},
		{[]string{"nosuchcommand"}, exitUsage, ""},
		{[]string{"--bogus"}, exitUsage, "(see xdpcache --help)"},
		{[]string{"deploy", "--iface", "lo", "--bogus"}, exitUsage, "(see xdpcache deploy --help)"},
		{[]string{"status", "--bogus"}, exitUsage, "(see xdpcache status --help)"},
		{[]string{"deploy", "--iface", "lo", "--iface", "lo"}, exitUsage, "--iface lo is given twice"},
		{[]string{"deploy", "--iface", "lo", "--mode", "native", "--mode", "generic"}, exitUsage, "--mode is given more than once"},
		{[]string{"deploy", "--iface", "lo", "--mode=native", "--mode", "generic"}, exitUsage, "--mode is given more than once"},
		{[]string{"deploy", "--iface", "lo", "--max-age", "1s", "--max-age", "2s"}, exitUsage, "--max-age is given more than once"},
		{[]string{"run", "--iface", "lo", "--interval", "1s", "--interval", "2s"}, exitUsage, "--interval is given more than once"},
		{[]string{"status", "--iface", "a", "--iface", "b"}, exitUsage, "--iface is given more than once"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out := runApp(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; output %q", code, tc.code, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output %q does not mention %q", out, tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out := runApp("--version")
	if code != 0 || !strings.HasPrefix(out, "xdpcache version ") {
		t.Errorf("--version: exit %d, output %q; want exit 0 and \"xdpcache version ...\"", code, out)
	}
}

// --mode offload on a device that cannot hold offloaded maps fails with the
// reason and changes nothing.
func TestOffloadModeOnPlainDevice(t *testing.T) {
	labtest.RequireRoot(t, "deploys xdpcache")
	code, out := runApp("deploy", "--iface", "lo", "--mode", "offload", "--pin-root", t.TempDir()+"/xdpcache")
	if code != exitNoMode {
		t.Errorf("exit %d, want %d; output %q", code, exitNoMode, out)
	}
	if !strings.Contains(out, "does not offer XDP hardware offload") {
		t.Errorf("output %q does not say why", out)
	}
	if lk, err := netlink.LinkByName("lo"); err == nil && lk.Attrs().Xdp != nil && lk.Attrs().Xdp.Attached {
		t.Errorf("something was attached to lo: %+v", lk.Attrs().Xdp)
	}
}

func TestUnknownInterface(t *testing.T) {
	labtest.RequireRoot(t, "deploys xdpcache")
	code, out := runApp("deploy", "--iface", "nosuch0", "--pin-root", filepath.Join(t.TempDir(), "pins"))
	if code != exitNotFound || !strings.Contains(out, "not found") {
		t.Errorf("exit %d, output %q", code, out)
	}
	code, out = runApp("status", "--iface", "nosuch0")
	if code != exitNotFound {
		t.Errorf("status of a missing deployment: exit %d, %q", code, out)
	}
}

// status --json never answers "null": with no bpffs to find the pins on it
// fails saying why; with nothing deployed it prints an empty list.
func TestStatusJSONWithoutDeployments(t *testing.T) {
	code, out := runApp("status", "--json", "--pin-root", filepath.Join(t.TempDir(), "pins"))
	if code != exitNotFound || !strings.Contains(out, "no BPF filesystem") || strings.Contains(out, "null") {
		t.Errorf("status without a bpffs: exit %d, output %q; want exit %d saying there is no BPF filesystem", code, out, exitNotFound)
	}
	labtest.RequireRoot(t, "mounts bpffs")
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, 0) })
	code, out = runApp("status", "--json", "--pin-root", filepath.Join(dir, "xdpcache"))
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("status with nothing deployed: exit %d, output %q; want exit 0 and []", code, out)
	}
}

// TestRunSurvivesSIGKILL: a `run` killed with SIGKILL leaves a consistent
// deployment that status reads and undeploy removes.
func TestRunSurvivesSIGKILL(t *testing.T) {
	labtest.RequireRoot(t, "deploys xdpcache")
	if _, err := exec.LookPath("memcached"); err != nil {
		t.Skip("memcached not installed")
	}
	bin := buildBinary(t)
	lab, err := netlab.New(netlab.Options{Subnet: 210})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	if err := lab.Client.AttachXDPPass(); err != nil { // run's auto deploy stays native
		t.Fatal(err)
	}
	root := filepath.Join("/sys/fs/bpf", "xdpcache-test-run-"+lab.Server.Iface)
	defer os.RemoveAll(root)
	run := lab.Server.Command(context.Background(), bin, "run", "--iface", lab.Server.Iface, "--pin-root", root, "--interval", "100ms")
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "attached=true") {
		if time.Now().After(deadline) {
			run.Process.Kill()
			t.Fatalf("run did not report counters: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	run.Process.Signal(syscall.SIGKILL)
	run.Wait()
	st, err := lab.Server.Command(context.Background(), bin, "status", "--iface", lab.Server.Iface, "--pin-root", root).CombinedOutput()
	if err != nil || !strings.Contains(string(st), "attached") || strings.Contains(string(st), "NOT ATTACHED") {
		t.Fatalf("status after SIGKILL: %v\n%s", err, st)
	}
	if un, err := lab.Server.Command(context.Background(), bin, "undeploy", "--iface", lab.Server.Iface, "--pin-root", root).CombinedOutput(); err != nil {
		t.Fatalf("undeploy: %v\n%s", err, un)
	}
	if _, err := os.Stat(filepath.Join(root, lab.Server.Iface)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pins left after undeploy")
	}
}

func TestNicdbCommand(t *testing.T) {
	code, out := runApp("nicdb")
	if code != 0 || !strings.Contains(out, "veth") || !strings.Contains(out, "mlx5_core") {
		t.Errorf("nicdb: %d %q", code, out)
	}
	code, out = runApp("nicdb", "ena")
	if code != 0 || !strings.Contains(out, "half the maximum") || !strings.Contains(out, "ethtool -L") {
		t.Errorf("nicdb ena: %d %q", code, out)
	}
	code, out = runApp("nicdb", "--json", "veth")
	if code != 0 || !strings.Contains(out, `"max_xdp_mtu": 3520`) {
		t.Errorf("nicdb --json veth: %d %q", code, out)
	}
	if code, out = runApp("nicdb", "nosuchdriver"); code != exitNotFound || !strings.Contains(out, "nosuchdriver") {
		t.Errorf("unknown driver: %d %q", code, out)
	}
}

// TestIPNetnsExec: `ip netns exec` gives the command a private /sys without
// bpffs; the deployment must still outlive the command and be found by
// status and undeploy run the same way or through nsenter.
func TestIPNetnsExec(t *testing.T) {
	labtest.RequireRoot(t, "deploys xdpcache")
	bin := buildBinary(t)
	lab, err := netlab.New(netlab.Options{Subnet: 211})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	iface := lab.Server.Iface
	defer os.RemoveAll(filepath.Join("/sys/fs/bpf/xdpcache", iface))
	ipx := func(args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", lab.Server.Name, bin}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := ipx("deploy", "--iface", iface, "--mode", "generic"); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	if out, err := ipx("status", "--iface", iface); err != nil || strings.Contains(out, "NOT ATTACHED") {
		t.Fatalf("status through ip netns exec: %v\n%s", err, out)
	}
	if out, err := lab.Server.Command(context.Background(), bin, "status", "--iface", iface).CombinedOutput(); err != nil || strings.Contains(string(out), "NOT ATTACHED") {
		t.Fatalf("status through nsenter: %v\n%s", err, out)
	}
	if out, err := ipx("undeploy", "--iface", iface); err != nil {
		t.Fatalf("undeploy: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/bpf/xdpcache", iface)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pins left after undeploy")
	}
}

// startRun starts `xdpcache run` in generic mode on the lab's server
// interface, polling memcached every 200ms, waits for its deployment and
// returns its output; the test's end stops it.
func startRun(t *testing.T, lab *netlab.Lab, bin, root string, args ...string) *syncBuffer {
	t.Helper()
	run := lab.Server.Command(context.Background(), bin, append([]string{"run", "--iface", lab.Server.Iface, "--mode", "generic",
		"--pin-root", root, "--restart-poll", "200ms"}, args...)...)
	out := &syncBuffer{}
	run.Stdout, run.Stderr = out, out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Signal(syscall.SIGTERM); run.Wait() })
	waitFor(t, out, "deployed on", 20*time.Second)
	return out
}

// TestRunFlushesOnMemcachedRestart: a restarted memcached has lost its data;
// `run` must flush the cache so the old values stop being served.
func TestRunFlushesOnMemcachedRestart(t *testing.T) {
	lab, m := labtest.Start(t)
	bin := buildBinary(t)
	root := filepath.Join("/sys/fs/bpf", "xdpcache-test-restart-"+lab.Server.Iface)
	defer os.RemoveAll(root)
	out := startRun(t, lab, bin, root, "--write-hold", "10ms")

	c := labtest.Dial(t, lab, m)
	if err := c.TCP.Set("k", 0, 0, []byte("old")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	for range 3 {
		if items, err := c.UDP.Get("k"); err != nil || len(items) != 1 || string(items[0].Value) != "old" {
			t.Fatalf("get before restart: %+v %v", items, err)
		}
	}
	time.Sleep(300 * time.Millisecond) // the watcher has seen the first memcached
	m.Stop()
	if _, err := lab.StartMemcached(11211); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "memcached restarted: cache flushed", 5*time.Second)
	if items, err := c.UDP.Get("k"); err != nil || len(items) != 0 {
		t.Fatalf("after memcached restarted, get k = %+v, %v: a value memcached no longer has", items, err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func waitFor(t *testing.T, out *syncBuffer, what string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(out.String(), what) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %q; output:\n%s", d, what, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNotRoot: without privileges, deploy says so in one line and changes nothing.
func TestNotRoot(t *testing.T) {
	labtest.RequireRoot(t, "drops to another user")
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) missing")
	}
	bin := buildBinary(t)
	os.Chmod(filepath.Dir(bin), 0o755)
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
		bin, "deploy", "--iface", "lo", "--pin-root", filepath.Join(t.TempDir(), "pins")).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("deploy as nobody: %v\n%s", err, out)
	}
	if lines := strings.Count(strings.TrimSpace(string(out)), "\n"); lines > 0 || !strings.Contains(string(out), "root") {
		t.Errorf("want one line naming the need for root, got:\n%s", out)
	}
}

// buildBinary builds xdpcache for tests that run it as a separate process.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xdpcache")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func TestFleetSummary(t *testing.T) {
	dir := t.TempDir()
	node := func(host, iface, driver, mode, why string) string {
		return fmt.Sprintf(`{"hostname":%q,"iface":%q,"driver":%q,"kernel":{"version":"6.1.0"},"plan":{"mode":%q,"steps":[{"mode":"offload","usable":false,"reason":"no offload"},{"mode":"native","usable":%v,"reason":%q},{"mode":"generic","usable":true,"reason":"ok"}]}}`,
			host, iface, driver, mode, mode == "native", why)
	}
	a := filepath.Join(dir, "a.json")
	os.WriteFile(a, []byte("["+node("node-a", "eth0", "mlx5_core", "native", "fine")+"]"), 0o644)
	b := filepath.Join(dir, "b.json")
	os.WriteFile(b, []byte(node("node-b", "ens5", "virtio_net", "generic", "hardware GRO is on")+"\n"+node("node-c", "eth0", "ena", "native", "ok")), 0o644)
	code, out := runApp("fleet-summary", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{"node-a", "node-b", "hardware GRO is on", "generic 1, native 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if code, _ := runApp("fleet-summary", filepath.Join(dir, "missing.json")); code != exitUsage {
		t.Errorf("missing file: exit %d", code)
	}
}

// TestDemo runs the README's first command's program, shortened.
func TestDemo(t *testing.T) {
	labtest.RequireRoot(t, "deploys xdpcache")
	for _, bin := range []string{"memcached", "memcaslap"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	var out bytes.Buffer
	if err := runDemo(context.Background(), &out, "auto", time.Second); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"would use native mode", "deployed on", "verify_failed: 0", "answered in the kernel", "cleaned up"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

// TestDeployTwoInterfacesCLI: deploy --iface a --iface b in a lab with a
// second link: --dry-run shows every path writes can take; deploy, status
// (from a member) and undeploy (from a member) handle it as one deployment.
func TestDeployTwoInterfacesCLI(t *testing.T) {
	labtest.RequireRoot(t, "deploys xdpcache")
	bin := buildBinary(t)
	lab, err := netlab.New(netlab.Options{Subnet: 212})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	second, err := lab.AddLink(213)
	if err != nil {
		t.Fatal(err)
	}
	a, b := lab.Server.Iface, second.Server.Iface
	root := filepath.Join("/sys/fs/bpf", "xdpcache-test-cli2-"+a)
	defer os.RemoveAll(root)
	cmd := func(args ...string) string {
		t.Helper()
		out, err := lab.Server.Command(context.Background(), bin, append(args, "--pin-root", root)...).CombinedOutput()
		if err != nil {
			t.Fatalf("xdpcache %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"deploy", "--iface", a, "--iface", b, "--mode", "generic", "--dry-run"},
			[]string{"paths writes can take to memcached", "seen  listed: GETs answered", "attach XDP to " + b, "watched (loopback", "attach the watch-only XDP program to lo"}},
		{[]string{"deploy", "--iface", a, "--iface", b, "--mode", "generic", "--listed-only", "--dry-run"},
			[]string{"NOT SEEN  --listed-only"}},
		{[]string{"deploy", "--iface", a, "--iface", b, "--mode", "generic"},
			[]string{"xdpcache deployed on " + a, "and on " + b + " (serve) in generic mode", "and on lo (watch) in generic mode"}},
		{[]string{"status", "--iface", "lo"}, []string{a + ": generic mode, attached", "and " + b + " (serve)", "and lo (watch)"}},
		{[]string{"status"}, []string{a + ": generic mode, attached"}},
		{[]string{"undeploy", "--iface", b}, []string{"xdpcache removed from " + a + ", " + b + ", lo"}},
		{[]string{"status"}, []string{"not deployed on any interface"}},
	} {
		out := cmd(tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("xdpcache %v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
	for _, iface := range []string{a, b, "lo"} {
		if _, err := os.Stat(filepath.Join(root, iface)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pins of %s left after undeploy", iface)
		}
		lab.Server.Do(func() error {
			if lk, err := netlink.LinkByName(iface); err == nil && lk.Attrs().Xdp != nil && lk.Attrs().Xdp.Attached {
				t.Errorf("XDP still attached to %s", iface)
			}
			return nil
		})
	}
}

// TestRunFollowsMemcachedsListeners: memcached restarts and a second
// memcached now shares its port at another address; run deploys again, so
// the two instances' entries are kept apart: a GET to either is answered
// with its own value, from the cache too.
func TestRunFollowsMemcachedsListeners(t *testing.T) {
	lab, m := labtest.Start(t)
	bin := buildBinary(t)
	root := filepath.Join("/sys/fs/bpf", "xdpcache-test-listeners-"+lab.Server.Iface)
	defer os.RemoveAll(root)
	// the second instance's address is there from the start (deploy knows it
	// as local): only the listeners change
	third := lab.Server.Addr.Next().Next()
	labtest.IP(t, lab.Server, "addr", "add", third.String()+"/24", "dev", lab.Server.Iface)
	out := startRun(t, lab, bin, root, "--write-hold", "0s")
	time.Sleep(300 * time.Millisecond) // the watcher has seen the first memcached
	// the second instance first: when run sees the first restart, both listen
	b, err := lab.StartMemcachedAt(11211, []netip.Addr{third})
	if err != nil {
		t.Fatal(err)
	}
	m.Stop()
	a, err := lab.StartMemcached(11211)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "deployment updated (", 10*time.Second)
	ca, cb := labtest.Dial(t, lab, a), labtest.Dial(t, lab, b)
	for _, c := range []struct {
		cl  labtest.Client
		val string
	}{{ca, "AAA"}, {cb, "BBB"}} {
		if err := c.cl.TCP.Set("foo", 0, 0, []byte(c.val)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // fill, then served from the cache
		for _, c := range []struct {
			cl  labtest.Client
			val string
		}{{ca, "AAA"}, {cb, "BBB"}} {
			if items, err := c.cl.UDP.Get("foo"); err != nil || len(items) != 1 || string(items[0].Value) != c.val {
				t.Fatalf("get foo = %+v, %v; want %s", items, err, c.val)
			}
		}
	}
	st, err := lab.Server.Command(context.Background(), bin, "status", "--pin-root", root).CombinedOutput()
	if err != nil || !strings.Contains(string(st), "told apart by address") {
		t.Errorf("status: %v\n%s", err, st)
	}
}

// wildcardLab is a lab whose memcached listens on every address (port
// 11211), so every interface of the server namespace carries writes to it.
func wildcardLab(t *testing.T) *netlab.Lab {
	t.Helper()
	lab, m := labtest.Start(t)
	m.Stop()
	if _, err := lab.StartMemcachedAt(11211, []netip.Addr{netip.IPv4Unspecified()}); err != nil {
		t.Fatal(err)
	}
	return lab
}

// TestRunWatchesInterfacesThatAppear: memcached listens on every address;
// while run is up, a second interface appears (a veth to another client
// namespace). run deploys again with it watched, so a write through it
// invalidates the entry the first interface's clients were served from
// the cache: they get the new value, not the cached one.
func TestRunWatchesInterfacesThatAppear(t *testing.T) {
	lab := wildcardLab(t)
	bin := buildBinary(t)
	root := filepath.Join("/sys/fs/bpf", "xdpcache-test-appear-"+lab.Server.Iface)
	defer os.RemoveAll(root)
	out := startRun(t, lab, bin, root, "--write-hold", "0s")
	main := labtest.Dial(t, lab, &netlab.Memcached{Addr: lab.Server.Addr, Port: 11211})
	if err := main.TCP.Set("foo", 0, 0, []byte("old")); err != nil {
		t.Fatal(err)
	}
	for range 3 { // fill, then served from the cache
		if items, err := main.UDP.Get("foo"); err != nil || len(items) != 1 || string(items[0].Value) != "old" {
			t.Fatalf("get foo = %+v, %v; want old", items, err)
		}
	}
	k, err := lab.AddLink(250)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "interfaces changed", 10*time.Second)
	waitFor(t, out, k.Server.Iface, 10*time.Second)
	conn, err := k.Client.DialTCP(netip.AddrPortFrom(k.Server.Addr, 11211), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := mcproto.NewTCPClient(conn, 2*time.Second).Set("foo", 0, 0, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if items, err := main.UDP.Get("foo"); err != nil || len(items) != 1 || string(items[0].Value) != "new" {
		t.Errorf("after a write through the new interface, get foo = %+v, %v; want new\n%s", items, err, out.String())
	}
}

// TestDeployFinishesWhenOutputCloses: the reader of deploy's output goes
// away before deploy writes (as `xdpcache deploy | head -1` after its first
// line); deploy still finishes, so the deployment is whole, not half made.
func TestDeployFinishesWhenOutputCloses(t *testing.T) {
	lab, _ := labtest.Start(t)
	bin := buildBinary(t)
	root := filepath.Join("/sys/fs/bpf", "xdpcache-test-sigpipe-"+lab.Server.Iface)
	defer os.RemoveAll(root)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // every write now meets a closed pipe
	deploy := lab.Server.Command(context.Background(), bin, "deploy", "--iface", lab.Server.Iface, "--mode", "generic", "--pin-root", root)
	deploy.Stdout, deploy.Stderr = w, w
	err = deploy.Run()
	w.Close()
	if err != nil {
		t.Fatalf("deploy with its output closed: %v", err)
	}
	st, err := lab.Server.Command(context.Background(), bin, "status", "--iface", lab.Server.Iface, "--pin-root", root).CombinedOutput()
	if err != nil || !strings.Contains(string(st), "generic mode, attached") {
		t.Errorf("status after the deploy: %v\n%s", err, st)
	}
	if out, err := lab.Server.Command(context.Background(), bin, "undeploy", "--iface", lab.Server.Iface, "--pin-root", root).CombinedOutput(); err != nil {
		t.Errorf("undeploy: %v\n%s", err, out)
	}
}

// TestRunListedOnlyKeepsItsDeployment: memcached listens on every address
// (so without --listed-only a new interface is watched, as
// TestRunWatchesInterfacesThatAppear shows); with --listed-only no other
// interface is watched, so one that appears changes nothing: run keeps its
// deployment (and its cache) instead of replacing it.
func TestRunListedOnlyKeepsItsDeployment(t *testing.T) {
	lab := wildcardLab(t)
	bin := buildBinary(t)
	root := filepath.Join("/sys/fs/bpf", "xdpcache-test-listed-"+lab.Server.Iface)
	defer os.RemoveAll(root)
	out := startRun(t, lab, bin, root, "--listed-only")
	deployment := func() (uint32, time.Time) {
		b, err := lab.Server.Command(context.Background(), bin, "status", "--json", "--pin-root", root).Output()
		var st []struct {
			XDPProgID  uint32    `json:"xdp_prog_id"`
			DeployedAt time.Time `json:"deployed_at"`
		}
		if err != nil || json.Unmarshal(b, &st) != nil || len(st) != 1 {
			t.Fatalf("status --json: %v\n%s", err, b)
		}
		return st[0].XDPProgID, st[0].DeployedAt
	}
	prog0, at0 := deployment()
	if _, err := lab.AddLink(251); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // five polls
	if strings.Contains(out.String(), "deployment updated") {
		t.Errorf("run redeployed for an interface --listed-only does not watch:\n%s", out.String())
	}
	if prog, at := deployment(); prog != prog0 || !at.Equal(at0) {
		t.Errorf("the deployment changed: prog %d -> %d, deployed %v -> %v", prog0, prog, at0, at)
	}
}
