// Package lab holds the guest side of the driver and kernel matrix
// (scripts/lab.sh, make test-lab): tests that run as /init's child in a QEMU
// guest with real NIC drivers (virtio-net, e1000, e1000e, vmxnet3, bonding,
// tun, netdevsim) and drive the built xdpcache binary, memcached, iproute2
// and ethtool the way an operator would. Outside the guest (XDPCACHE_LAB
// unset) every test skips.
//
// Each row of the matrix — a NIC, or a NIC put into a state a driver refuses
// XDP in — is checked against testdata/<kernel>/<row>.json: the stable part
// of probe --json (driver, features, XDP features, checks, plan and every
// reason) and what deploy did in auto, native and --no-generic mode. Beyond
// the files, the probe must predict the kernel: the mode auto plans is the
// mode deploy attaches, native fails exactly where the probe says it is not
// usable, and a pre-flight check that quotes the kernel's refusal finds
// those words in the kernel's answer.
package lab

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	kernel = os.Getenv("XDPCACHE_LAB")               // kernel series of the guest: 6.1, 6.12
	update = os.Getenv("XDPCACHE_LAB_UPDATE") == "1" // print reports for testdata/ instead of comparing
	uname  string                                    // uname -r, replaced by <kernel> in reports
)

const (
	xdpcache = "/bin/xdpcache"
	ipCmd    = "/usr/sbin/ip" // busybox's ip applet would shadow iproute2's
	ethtool  = "/usr/sbin/ethtool"
	tcCmd    = "/usr/sbin/tc"
	pinRoot  = "/sys/fs/bpf/xdpcache"
)

func requireLab(t *testing.T) {
	t.Helper()
	if kernel == "" {
		t.Skip("runs in the QEMU guest of make test-lab (scripts/lab.sh)")
	}
}

func TestMain(m *testing.M) {
	if kernel != "" {
		b, _ := exec.Command("uname", "-r").Output()
		uname = strings.TrimSpace(string(b))
		if err := setup(); err != nil {
			fmt.Fprintln(os.Stderr, "lab setup:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// Guest addressing: each server NIC has 198.18.N.1/24 and 2001:db8:N::1/64;
// a client NIC on the same QEMU hub is moved to namespace clN as .2.
type nic struct {
	name   string
	subnet int
	client string // client NIC on the same hub ("" none)
}

var nics = []nic{
	{"vsq", 1, "c1"}, {"e1k", 2, "c2"}, {"vmx", 3, "c3"}, {"e1ke", 4, ""},
	{"vmq", 5, ""}, {"vgo", 6, ""}, {"bond0", 7, ""}, {"tap0", 8, ""}, {"nsim", 9, ""},
}

func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func setup() error {
	do := func(steps ...[]string) error {
		for _, s := range steps {
			if _, err := run(s[0], s[1:]...); err != nil {
				return err
			}
		}
		return nil
	}
	// a bond over two virtio-net NICs (active-backup: native XDP needs a
	// mode bonding supports, and slaves that have it), a tap device
	bond := []string{ipCmd, "link", "add", "bond0", "type", "bond", "mode", "active-backup"}
	if haveIface("bond0") { // loading bonding creates bond0 (max_bonds=1)
		bond = []string{ipCmd, "link", "set", "bond0", "type", "bond", "mode", "active-backup"}
	}
	if err := do(bond,
		[]string{ipCmd, "link", "set", "vb1", "master", "bond0"},
		[]string{ipCmd, "link", "set", "vb2", "master", "bond0"},
		[]string{ipCmd, "tuntap", "add", "dev", "tap0", "mode", "tap"}); err != nil {
		return err
	}
	if d, err := filepath.Glob("/sys/bus/netdevsim/devices/netdevsim1/net/*"); err == nil && len(d) == 1 {
		if err := do([]string{ipCmd, "link", "set", "dev", filepath.Base(d[0]), "name", "nsim"}); err != nil {
			return err
		}
	}
	for _, n := range nics {
		if !haveIface(n.name) {
			continue // nsim: only where netdevsim is
		}
		if err := do(
			[]string{ipCmd, "addr", "add", fmt.Sprintf("198.18.%d.1/24", n.subnet), "dev", n.name},
			[]string{ipCmd, "addr", "add", fmt.Sprintf("2001:db8:%d::1/64", n.subnet), "dev", n.name, "nodad"},
			[]string{ipCmd, "link", "set", n.name, "up"}); err != nil {
			return err
		}
		if n.client == "" {
			continue
		}
		ns := clientNS(n)
		if err := do(
			[]string{ipCmd, "netns", "add", ns},
			[]string{ipCmd, "link", "set", n.client, "netns", ns},
			[]string{ipCmd, "-n", ns, "addr", "add", fmt.Sprintf("198.18.%d.2/24", n.subnet), "dev", n.client},
			[]string{ipCmd, "-n", ns, "addr", "add", fmt.Sprintf("2001:db8:%d::2/64", n.subnet), "dev", n.client, "nodad"},
			[]string{ipCmd, "-n", ns, "link", "set", n.client, "up"},
			[]string{ipCmd, "-n", ns, "link", "set", "lo", "up"}); err != nil {
			return err
		}
	}
	if err := do([]string{ipCmd, "link", "set", "vb1", "up"}, []string{ipCmd, "link", "set", "vb2", "up"}); err != nil {
		return err
	}
	// One memcached for every NIC, UDP on (off by default since 1.5.6).
	mc := exec.Command("/usr/bin/memcached", "-U", "11211", "-p", "11211", "-u", "root", "-t", "1", "-m", "32")
	mc.Stdout, mc.Stderr = os.Stderr, os.Stderr
	if err := mc.Start(); err != nil {
		return fmt.Errorf("start memcached: %w", err)
	}
	for i := 0; i < 100; i++ {
		if out, _ := os.ReadFile("/proc/net/udp"); strings.Contains(string(out), ":2BCB ") {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("memcached did not bind UDP 11211")
}

func clientNS(n nic) string { return "cl" + n.client[1:] }

func haveIface(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

// ---- the stable part of probe --json ----

type check struct {
	ID     string   `json:"id"`
	Status string   `json:"status"`
	Reason string   `json:"reason"`
	Fix    string   `json:"fix,omitempty"`
	Modes  []string `json:"modes,omitempty"`
	Silent bool     `json:"silent,omitempty"`
}

type planStep struct {
	Mode   string `json:"mode"`
	Usable bool   `json:"usable"`
	Reason string `json:"reason"`
	Final  bool   `json:"final,omitempty"`
}

type plan struct {
	Requested string     `json:"requested"`
	Mode      string     `json:"mode"`
	Steps     []planStep `json:"steps"`
	Warnings  []string   `json:"warnings,omitempty"`
}

// stableProbe is what of a probe report does not vary between runs or
// kernel package updates of one series (no ifindex, MAC, bus address,
// driver version or uname -r).
type stableProbe struct {
	Driver      string          `json:"driver"`
	LinkType    string          `json:"link_type"`
	MTU         int             `json:"mtu"`
	Master      string          `json:"master,omitempty"`
	Features    map[string]bool `json:"features"`
	Channels    json.RawMessage `json:"channels,omitempty"`
	XDPFeatures struct {
		Available bool     `json:"available"`
		Flags     []string `json:"flags"`
	} `json:"xdp_features"`
	Kernel struct {
		XDPLink bool `json:"xdp_link"`
		TCX     bool `json:"tcx"`
	} `json:"kernel"`
	NICDB  string  `json:"nicdb"` // the driver entry nicdb matched ("" none)
	Checks []check `json:"checks"`
	Plan   plan    `json:"plan"`
}

type fullReport struct {
	stableProbe
	XDP struct {
		Attached string `json:"attached"`
	} `json:"xdp"`
	TCFilters []string `json:"tc_filters"`
	NICDBRaw  *struct {
		Name string `json:"name"`
	} `json:"nicdb"`
}

// normalize replaces what varies within a kernel series.
func normalize(s string) string {
	if uname == "" {
		return s
	}
	return strings.ReplaceAll(s, uname, "<kernel>")
}

func probe(t *testing.T, iface string, args ...string) (fullReport, string) {
	t.Helper()
	cmd := exec.Command(xdpcache, append([]string{"probe", "--json", "--iface", iface}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !(errorsAs(err, &ee) && ee.ExitCode() == 3) { // 3: no usable mode, still a report
		t.Fatalf("xdpcache probe --iface %s %v: %v: %s", iface, args, err, stderr.String())
	}
	var r fullReport
	raw := normalize(stdout.String())
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatalf("probe --json: %v: %s", err, raw)
	}
	if r.NICDBRaw != nil {
		r.NICDB = r.NICDBRaw.Name
	}
	return r, raw
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// ---- deploy results ----

type result struct {
	Mode  string `json:"mode,omitempty"`  // attached in this mode
	Exit  int    `json:"exit"`            // xdpcache's exit code
	Error string `json:"error,omitempty"` // the last "xdpcache deploy:" line
	// Tried: the modes deploy tried or skipped before the one it used.
	Tried []string `json:"tried,omitempty"`
}

func deploy(t *testing.T, iface string, args ...string) result {
	t.Helper()
	cmd := exec.Command(xdpcache, append([]string{"deploy", "--json", "--iface", iface, "--listed-only", "--write-hold", "200ms"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{}
	if err != nil {
		var ee *exec.ExitError
		if !errorsAs(err, &ee) {
			t.Fatalf("run xdpcache deploy: %v", err)
		}
		res.Exit = ee.ExitCode()
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.HasPrefix(l, "xdpcache deploy: ") {
				res.Error = normalize(strings.TrimPrefix(l, "xdpcache deploy: "))
			}
		}
		if res.Error == "" {
			res.Error = normalize(strings.TrimSpace(stderr.String()))
		}
		return res
	}
	var d struct {
		Mode     string `json:"mode"`
		Attempts []struct {
			Mode string `json:"mode"`
			OK   bool   `json:"ok"`
			Why  string `json:"why"`
		} `json:"attempts"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &d); err != nil {
		t.Fatalf("deploy --json: %v: %s", err, stdout.String())
	}
	res.Mode = d.Mode
	for _, a := range d.Attempts {
		if !a.OK {
			res.Tried = append(res.Tried, a.Mode+": "+normalize(a.Why))
		}
	}
	return res
}

// undeploy removes the deployment and checks that nothing of xdpcache is
// left on the interface: no XDP program, no TC filter or TCX program, no
// pins. What else differs from before the deploy (a clsact qdisc, offloads
// the kernel turned off) is returned as leftovers and put back, so the
// next step starts from the same state.
func undeploy(t *testing.T, iface string, before devState) []string {
	t.Helper()
	if out, err := run(xdpcache, "undeploy", "--iface", iface); err != nil {
		t.Fatalf("undeploy: %v %s", err, out)
	}
	r, _ := probe(t, iface)
	if r.XDP.Attached != "none" || len(r.TCFilters) != 0 {
		t.Errorf("after undeploy %s still has XDP %q, TC %v", iface, r.XDP.Attached, r.TCFilters)
	}
	if out, _ := run(ipCmd, "-d", "link", "show", "dev", iface); regexp.MustCompile(`\bxdp(generic|drv|offload)?[/ ]`).MatchString(out) {
		t.Errorf("after undeploy ip link still shows XDP on %s:\n%s", iface, out)
	}
	if _, err := os.Stat(filepath.Join(pinRoot, iface)); err == nil {
		t.Errorf("after undeploy %s is still there", filepath.Join(pinRoot, iface))
	}
	after := readState(iface)
	var left []string
	if after.qdiscs != before.qdiscs {
		left = append(left, fmt.Sprintf("qdiscs %q, before %q", after.qdiscs, before.qdiscs))
		if before.qdiscs == "" && strings.Contains(after.qdiscs, "clsact") {
			run(tcCmd, "qdisc", "del", "dev", iface, "clsact")
		}
	}
	for _, f := range watchedFeatures {
		if after.features[f] != before.features[f] {
			left = append(left, fmt.Sprintf("%s %s, before %s", f, after.features[f], before.features[f]))
			run(ethtool, "-K", iface, f, before.features[f])
		}
	}
	return left
}

// devState is what a deploy and undeploy may change besides XDP and TC.
type devState struct {
	qdiscs   string
	features map[string]string // ethtool -k: on/off
}

// watchedFeatures are the offloads the kernel turns off for XDP (generic
// mode: dev_disable_lro, dev_disable_gro_hw; drivers: their own).
var watchedFeatures = []string{"large-receive-offload", "rx-gro-hw"}

func readState(iface string) devState {
	st := devState{qdiscs: qdiscs(iface), features: map[string]string{}}
	out, _ := run(ethtool, "-k", iface)
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		for _, f := range watchedFeatures {
			if k == f {
				st.features[f] = strings.Fields(v + " ?")[0]
			}
		}
	}
	return st
}

func qdiscs(iface string) string {
	out, _ := run(tcCmd, "qdisc", "show", "dev", iface)
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "clsact") || strings.Contains(l, "ingress") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	return strings.Join(keep, "\n")
}

// ---- the matrix ----

// row is one line of the matrix, as kept in testdata/<kernel>/<name>.json.
type row struct {
	Name      string      `json:"name"`
	Iface     string      `json:"iface"`
	Kernel    string      `json:"kernel"`
	Setup     [][]string  `json:"setup,omitempty"`
	Probe     stableProbe `json:"probe"`
	Auto      result      `json:"auto"`       // deploy --mode auto
	Native    result      `json:"native"`     // deploy --mode native
	NoGeneric result      `json:"no_generic"` // deploy --mode auto --no-generic
	KernelLog []string    `json:"kernel_log,omitempty"`
	// Leftovers: what undeploy did not put back, per step (a clsact qdisc,
	// offloads the kernel turned off).
	Leftovers map[string][]string `json:"leftovers,omitempty"`
	// Mispredicts: where the probe's plan and the kernel disagree.
	Mispredicts []string `json:"mispredicts,omitempty"`
}

type scenario struct {
	name, iface string
	kernels     []string   // only on these series (nil: all)
	setup       [][]string // commands run first, undone by teardown
	teardown    [][]string
	args        []string // extra deploy flags
	// refusal: per kernel series, words deploy --mode native must fail with.
	refusal map[string]string
	// known: per kernel series, why the probe mispredicts here (a finding
	// not fixed yet); the row's mispredicts are then expected, not failures.
	known map[string]string
}

// noNative is the kernel's answer to native XDP on a driver without it.
var noNative = map[string]string{"6.1": "Underlying driver does not support XDP in native mode", "6.12": "Underlying driver does not support XDP in native mode"}

var scenarios = []scenario{
	{name: "vsq", iface: "vsq"},                                                     // virtio-net, one queue pair, hub backend: no guest offloads
	{name: "vmq", iface: "vmq"},                                                     // virtio-net, 4 queue pairs, tap with vnet_hdr: guest offloads on, controllable
	{name: "vgo", iface: "vgo"},                                                     // virtio-net, guest offloads on, ctrl_guest_offloads=off: the guest cannot turn them off
	{name: "e1k", iface: "e1k", refusal: noNative},                                  // e1000
	{name: "e1ke", iface: "e1ke", refusal: noNative},                                // e1000e
	{name: "vmx", iface: "vmx", refusal: map[string]string{"6.1": noNative["6.1"]}}, // vmxnet3 (LRO on by default)
	{name: "bond0", iface: "bond0"},
	{name: "tap0", iface: "tap0"}, // tun in tap mode, no reader
	{name: "nsim", iface: "nsim", kernels: []string{"6.1"}, args: []string{"--entries", "2", "--any-destination"}}, // the offload flavor's maps are small and on the device (no local-address map)
	// pre-flight: states the drivers refuse XDP in, or warn about
	{name: "vsq-mtu4000", iface: "vsq", known: map[string]string{"6.1": "6.1's virtio_net limit is 4080 (PAGE_SIZE - virtio header); nicdb has 3506, 6.3 and later's"},
		setup: [][]string{{ipCmd, "link", "set", "dev", "vsq", "mtu", "4000"}}, teardown: [][]string{{ipCmd, "link", "set", "dev", "vsq", "mtu", "1500"}}},
	{name: "vmq-gro-hw-off", iface: "vmq",
		setup: [][]string{{ethtool, "-K", "vmq", "rx-gro-hw", "off"}}, teardown: [][]string{{ethtool, "-K", "vmq", "rx-gro-hw", "on"}}},
	{name: "vmq-4queues", iface: "vmq",
		setup: [][]string{{ethtool, "-L", "vmq", "combined", "4"}}, teardown: [][]string{{ethtool, "-L", "vmq", "combined", "1"}}},
	{name: "vmx-lro-off", iface: "vmx",
		setup: [][]string{{ethtool, "-K", "vmx", "lro", "off"}}, teardown: [][]string{{ethtool, "-K", "vmx", "lro", "on"}}},
	{name: "bond0-alb", iface: "bond0", setup: bondMode("balance-alb"), teardown: bondMode("active-backup")},
	{name: "vmx-mtu3494", iface: "vmx", kernels: []string{"6.12"}, // nicdb's limit: accepted
		setup: [][]string{{ipCmd, "link", "set", "dev", "vmx", "mtu", "3494"}}, teardown: [][]string{{ipCmd, "link", "set", "dev", "vmx", "mtu", "1500"}}},
	{name: "vmx-mtu3495", iface: "vmx", // one above: refused
		setup: [][]string{{ipCmd, "link", "set", "dev", "vmx", "mtu", "3495"}}, teardown: [][]string{{ipCmd, "link", "set", "dev", "vmx", "mtu", "1500"}}},
}

// bondMode changes bond0's mode: the slaves leave, the bond goes down,
// the mode changes, the slaves come back.
func bondMode(mode string) [][]string {
	return [][]string{
		{ipCmd, "link", "set", "vb1", "nomaster"}, {ipCmd, "link", "set", "vb2", "nomaster"},
		{ipCmd, "link", "set", "bond0", "down"}, {ipCmd, "link", "set", "bond0", "type", "bond", "mode", mode},
		{ipCmd, "link", "set", "vb1", "down"}, {ipCmd, "link", "set", "vb2", "down"},
		{ipCmd, "link", "set", "vb1", "master", "bond0"}, {ipCmd, "link", "set", "vb2", "master", "bond0"},
		{ipCmd, "link", "set", "bond0", "up"}, {ipCmd, "link", "set", "vb1", "up"}, {ipCmd, "link", "set", "vb2", "up"},
	}
}

// quoted is every "..." phrase in s: the kernel's words a check cites.
var quotedRE = regexp.MustCompile(`"([^"]{12,})"`)

func TestMatrix(t *testing.T) {
	requireLab(t)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			if sc.kernels != nil && !slices.Contains(sc.kernels, kernel) {
				t.Logf("not on %s", kernel)
				return
			}
			if !haveIface(sc.iface) {
				t.Fatalf("the guest has no %s", sc.iface)
			}
			start := time.Now()
			for _, c := range sc.setup {
				if out, err := run(c[0], c[1:]...); err != nil {
					t.Fatalf("setup: %v %s", err, out)
				}
			}
			defer func() {
				for _, c := range sc.teardown {
					if out, err := run(c[0], c[1:]...); err != nil {
						t.Errorf("teardown: %v %s", err, out)
					}
				}
			}()
			got := matrixRow(t, sc)
			got.Setup = sc.setup
			compare(t, got)
			t.Logf("%s on %s: auto %s, native %s, no-generic %s (%.1f s)", sc.name, kernel,
				got.Auto.describe(), got.Native.describe(), got.NoGeneric.describe(), time.Since(start).Seconds())
		})
	}
}

func (r result) describe() string {
	if r.Mode != "" {
		return r.Mode
	}
	return fmt.Sprintf("refused (exit %d)", r.Exit)
}

func matrixRow(t *testing.T, sc scenario) (got row) {
	iface := sc.iface
	run("dmesg", "-c") // the row's kernel log starts here
	defer func() {
		klog, _ := run("dmesg", "-c")
		got.KernelLog = kernelLog(klog)
	}()
	rep, _ := probe(t, iface, sc.args...) // probe plans with deploy's flags
	got = row{Name: sc.name, Iface: iface, Kernel: kernel, Probe: rep.stableProbe, Leftovers: map[string][]string{}}
	before := readState(iface)
	mispredict := func(f string, a ...any) { got.Mispredicts = append(got.Mispredicts, fmt.Sprintf(f, a...)) }
	clean := func(step string) {
		if l := undeploy(t, iface, before); len(l) > 0 {
			got.Leftovers[step] = l
		}
	}
	args := func(a ...string) []string { return append(a, sc.args...) }

	// auto: deploy must attach in the mode the probe planned.
	got.Auto = deploy(t, iface, args("--mode", "auto")...)
	if got.Auto.Mode != rep.Plan.Mode {
		mispredict("auto: probe planned %q, deploy attached %q %s", rep.Plan.Mode, got.Auto.Mode, got.Auto.Error)
	}
	if got.Auto.Mode != "" {
		st, err := run(xdpcache, "status", "--json", "--iface", iface)
		if err != nil || !strings.Contains(st, `"mode": "`+got.Auto.Mode+`"`) || !strings.Contains(st, `"attached": true`) {
			t.Errorf("status after deploy --mode auto: %v %s", err, st)
		}
		clean("auto")
	}

	// native, asked for by name: the kernel has the last word, and the
	// probe must have predicted it.
	pn, _ := probe(t, iface, append([]string{"--mode", "native"}, sc.args...)...)
	got.Native = deploy(t, iface, args("--mode", "native")...)
	if words := sc.refusal[kernel]; words != "" && (got.Native.Mode != "" || !strings.Contains(got.Native.Error, words)) {
		t.Errorf("deploy --mode native: want a refusal with %q, got mode %q, %s", words, got.Native.Mode, got.Native.Error)
	}
	predicted := pn.Plan.Mode == "native"
	if attached := got.Native.Mode == "native"; attached != predicted {
		mispredict("native: probe says usable=%v (%s); the kernel %s", predicted, stepReason(pn.Plan, "native"),
			map[bool]string{true: "accepted native XDP", false: "refused it: " + got.Native.Error}[attached])
	}
	if got.Native.Mode == "" && !strings.Contains(got.Native.Error, noNative[kernel]) {
		// Every failing check for native that quotes the kernel must find
		// those words in the kernel's refusal (unless the driver has no
		// native XDP at all: it never gets to its own checks).
		for _, c := range pn.Checks {
			if c.Status != "fail" || (len(c.Modes) > 0 && !slices.Contains(c.Modes, "native")) {
				continue
			}
			for _, q := range quotedRE.FindAllStringSubmatch(c.Reason, -1) {
				if !strings.Contains(got.Native.Error, q[1]) {
					mispredict("native: check %s quotes the kernel as %q; the kernel said: %s", c.ID, q[1], got.Native.Error)
				}
			}
		}
	}
	if got.Native.Mode != "" {
		clean("native")
	}

	// --no-generic: fails exactly where only generic is possible.
	got.NoGeneric = deploy(t, iface, args("--mode", "auto", "--no-generic")...)
	switch {
	case rep.Plan.Mode == "generic" && got.NoGeneric.Mode != "":
		mispredict("no-generic: attached in %s mode where the probe plans only generic", got.NoGeneric.Mode)
	case rep.Plan.Mode != "generic" && rep.Plan.Mode != "" && got.NoGeneric.Mode != rep.Plan.Mode:
		mispredict("no-generic: attached %q, the probe planned %q", got.NoGeneric.Mode, rep.Plan.Mode)
	}
	if got.NoGeneric.Mode != "" {
		clean("no_generic")
	} else if got.NoGeneric.Exit != 3 {
		t.Errorf("--no-generic failed with exit %d, want 3 (no usable mode): %s", got.NoGeneric.Exit, got.NoGeneric.Error)
	}
	known := sc.known[kernel]
	for _, m := range got.Mispredicts {
		if known == "" {
			t.Errorf("MISPREDICT %s", m)
		} else {
			t.Logf("known mispredict (%s): %s", known, m)
		}
	}
	if known != "" && len(got.Mispredicts) == 0 {
		t.Errorf("the known mispredict (%s) is gone: drop it from the scenario", known)
	}
	if len(got.Leftovers) == 0 {
		got.Leftovers = nil
	}
	return got
}

var (
	dmesgStamp = regexp.MustCompile(`^\[[ 0-9.]+\] `)
	// WARNING: CPU: 0 PID: 412 at net/core/dev.c:1681 generic_xdp_install+0xf6/0x160
	kernelWarn = regexp.MustCompile(`^WARNING: CPU: \d+ PID: \d+ at ([^: ]+):\d+ ([\w.]+)\+.*$`)
)

// kernelLog keeps the kernel's lines about XDP, without what varies between
// runs and kernel builds: a warning's stack dump, PIDs, line numbers, offsets.
func kernelLog(dmesg string) []string {
	var out []string
	for _, l := range strings.Split(dmesg, "\n") {
		l = dmesgStamp.ReplaceAllString(l, "")
		if !strings.Contains(strings.ToLower(l), "xdp") || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "CPU:") || strings.HasPrefix(l, "RIP:") {
			continue
		}
		out = append(out, normalize(kernelWarn.ReplaceAllString(l, "WARNING: at $1 in $2")))
	}
	return out
}

func stepReason(p plan, mode string) string {
	for _, s := range p.Steps {
		if s.Mode == mode {
			return s.Reason
		}
	}
	return "not considered"
}

// compare checks got against testdata/<kernel>/<name>.json, or prints it
// for scripts/lab.sh to write there (LAB_UPDATE=1).
func compare(t *testing.T, got row) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if update {
		fmt.Printf("LAB_EXPECT %s %s\n", got.Name, base64.StdEncoding.EncodeToString(b))
		return
	}
	path := filepath.Join("testdata", kernel, got.Name+".json")
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no expected report %s (LAB_UPDATE=1 make test-lab writes it): %v\ngot:\n%s", path, err, b)
	}
	if !bytes.Equal(want, b) {
		t.Errorf("%s differs from what the guest found:\n%s", path, lineDiff(string(want), string(b)))
	}
}

// lineDiff lists the lines only in want (-) or only in got (+), in order.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	i, j := 0, 0
	for i < len(w) || j < len(g) {
		switch {
		case i < len(w) && j < len(g) && w[i] == g[j]:
			i++
			j++
		case j < len(g) && !slices.Contains(w[i:], g[j]):
			out = append(out, "+ "+g[j])
			j++
		case i < len(w):
			out = append(out, "- "+w[i])
			i++
		default:
			out = append(out, "+ "+g[j])
			j++
		}
	}
	return strings.Join(out, "\n")
}
