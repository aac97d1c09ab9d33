package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/probe"
)

// runProbe runs `probe args...` through a cli.App holding only the probe
// command, on a thread in a fresh, empty network namespace (only lo), and
// returns the exit code (0 when the action returned nil), stdout and the exit
// message.
func runProbe(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runProbeIn(t, nil, args...)
}

// runProbeIn is runProbe with setup run first in the fresh namespace, to
// create the devices to probe.
func runProbeIn(t *testing.T, setup func() error, args ...string) (int, string, string) {
	t.Helper()
	labtest.RequireRoot(t, "probes inside a private network namespace")
	var out bytes.Buffer
	app := &cli.App{Name: "xdpcache", Commands: []*cli.Command{probeCommand()}, Writer: &out, ErrWriter: &out,
		ExitErrHandler: func(*cli.Context, error) {}}
	type result struct {
		code int
		msg  string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread leaves with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		if setup != nil {
			if err := setup(); err != nil {
				done <- result{err: err}
				return
			}
		}
		err := app.Run(append([]string{"xdpcache", "probe"}, args...))
		var ec cli.ExitCoder
		switch {
		case err == nil:
			done <- result{}
		case errors.As(err, &ec):
			done <- result{code: ec.ExitCode(), msg: ec.Error()}
		default:
			done <- result{code: -1, msg: err.Error()}
		}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("namespace setup: %v", r.err)
	}
	return r.code, out.String(), r.msg
}

func TestProbeCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  []string // in stdout
		msg  string   // in the exit message
	}{
		{"human report", []string{"--iface", "lo"}, 0,
			[]string{"lo (ifindex 1)", "device:", "XDP:", "kernel:", "attached:", "checks:", "plan:", "✘ offload", "✘ native", "✔ generic",
				"would use generic mode", "WARNING: generic (skb) mode: slower", "fix: start memcached with -U 11211"}, ""},
		{"two ports", []string{"--iface", "lo", "--port", "11211", "--port", "11311"}, 0, []string{"UDP ports [11211 11311]", "-U 11311"}, ""},
		{"explicit native on lo", []string{"--iface", "lo", "--mode", "native"}, exitNoMode,
			[]string{"✘ native", "=> native: not possible because the device has no native XDP"}, "no XDP mode is usable on lo"},
		{"explicit generic on lo", []string{"--iface", "lo", "--mode", "generic"}, 0,
			[]string{"✔ generic", "=> generic: deploy --mode generic would attach in generic mode"}, ""},
		{"no generic on lo", []string{"--iface", "lo", "--no-generic"}, exitNoMode, nil, "no XDP mode is usable on lo"},
		{"unknown interface", []string{"--iface", "nosuch0"}, exitNotFound, nil, `interface "nosuch0" not found (ip link show lists interfaces)`},
		{"bad mode", []string{"--mode", "fast"}, exitUsage, nil, `--mode "fast"`},
		{"bad port", []string{"--port", "70000"}, exitUsage, nil, "ports are 1..65535"},
		{"every interface", nil, 0, []string{"lo (ifindex 1)", "=> deploy --mode auto would use generic mode"}, ""},
		{"every interface, none usable", []string{"--no-generic"}, exitNoMode, []string{"lo (ifindex 1)", "=> auto: no usable mode"},
			"no XDP mode is usable on any interface (lo); lo: "},
		{"every interface, native asked", []string{"--mode", "native"}, exitNoMode, []string{"=> native: not possible because"}, "no XDP mode is usable on any interface (lo)"},
		{"an argument instead of --iface", []string{"eth0"}, exitUsage, nil, `unexpected argument "eth0": name the interface with --iface eth0`},
		{"empty interface name", []string{"--iface", ""}, exitUsage, nil, `--iface "": not an interface name`},
		{"interface name too long", []string{"--iface", "averyveryverylongname"}, exitUsage, nil, "1..15 characters"},
		{"bad --allow", []string{"--iface", "lo", "--allow", "198.18.0.0"}, exitUsage, nil, `--allow "198.18.0.0": not a CIDR prefix`},
		{"too many entries", []string{"--iface", "lo", "--entries", "33554432"}, exitUsage, nil, "--entries 33554432: at most 16777216"},
		{"deploy's flags are accepted", []string{"--iface", "lo", "--entries", "2", "--any-destination", "--allow", "198.18.0.0/15"}, 0, []string{"✔ generic"}, ""},
		{"--no-generic with --mode generic", []string{"--mode", "generic", "--no-generic"}, exitUsage, nil, "--no-generic contradicts --mode generic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, msg := runProbe(t, tc.args...)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Errorf("exit %d %q, want %d with %q\n%s", code, msg, tc.code, tc.msg, out)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("the exit message must be one line: %q", msg)
			}
			for _, s := range tc.out {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			if strings.Contains(out, "\x1b[") {
				t.Errorf("colour on a non-terminal:\n%s", out)
			}
		})
	}
}

func TestProbeCommandJSON(t *testing.T) {
	code, out, msg := runProbe(t, "--iface", "lo", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	var r probe.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Iface != "lo" || r.Plan.Mode != mode.Generic || !r.XDPFeatures.Available || r.XDP.Attached != "none" || len(r.Checks) == 0 {
		t.Errorf("report %+v", r)
	}
	// The documented field names (docs/probe.md) are the ones emitted.
	var raw map[string]json.RawMessage
	json.Unmarshal([]byte(out), &raw)
	for _, k := range []string{"hostname", "iface", "ifindex", "driver", "driver_version", "firmware", "bus_info", "link_type", "netns",
		"mtu", "min_mtu", "max_mtu", "operstate", "features", "xdp", "ours", "tc_filters", "xdp_features", "kernel", "memcached",
		"cpus", "checks", "plan"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	var kernel map[string]any
	json.Unmarshal(raw["kernel"], &kernel)
	for _, k := range []string{"version", "btf", "bpffs", "spin_lock", "xdp_link", "tcx", "memlock"} {
		if _, ok := kernel[k]; !ok {
			t.Errorf("kernel lacks %q", k)
		}
	}

	code, out, _ = runProbe(t, "--json")
	var all []probe.Report
	if err := json.Unmarshal([]byte(out), &all); err != nil || code != 0 || len(all) != 1 || all[0].Iface != "lo" {
		t.Errorf("every interface: exit %d, %v, %d reports\n%s", code, err, len(all), out)
	}
}

// A veth pair in one namespace, one end a bridge port: the report shows the
// peer and the bridge, in text and in JSON, and the wording follows --mode.
func TestProbeCommandShowsPeerAndUppers(t *testing.T) {
	setup := func() error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "xpbr0"}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("add bridge: %w", err)
		}
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "xpv0", MasterIndex: br.Attrs().Index}, PeerName: "xpv1"}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		return nil
	}
	code, out, msg := runProbeIn(t, setup, "--iface", "xpv0")
	if code != 0 {
		t.Fatalf("exit %d %s\n%s", code, msg, out)
	}
	for _, want := range []string{
		"port of xpbr0 (bridge)",
		"  veth peer: xpv1 (ifindex ",
		"), same network namespace: no XDP program\n",
		"  uppers:    xpbr0 (bridge, master): no XDP program\n",
		"✘ veth-peer",
		"fix: attach an XDP program to the veth peer (one that only returns XDP_PASS is enough; pass.o is any such object): ip link set dev xpv1 xdpdrv obj pass.o sec xdp",
		"=> deploy --mode auto would use generic mode",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, msg = runProbeIn(t, setup, "--iface", "xpv0", "--mode", "native")
	if code != exitNoMode || !strings.Contains(out, "=> native: not possible because the veth peer xpv1 runs no XDP program") ||
		!strings.Contains(msg, "no XDP mode is usable on xpv0: the veth peer xpv1") {
		t.Errorf("explicit native: exit %d %q\n%s", code, msg, out)
	}

	code, out, msg = runProbeIn(t, setup, "--iface", "xpv0", "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d %s", code, msg)
	}
	var r struct {
		VethPeer *struct {
			Name        string `json:"name"`
			SameNetns   bool   `json:"same_netns"`
			NetnsID     int    `json:"netns_id"`
			Checked     bool   `json:"checked"`
			XDPAttached bool   `json:"xdp_attached"`
		} `json:"veth_peer"`
		Uppers []struct {
			Name     string `json:"name"`
			Kind     string `json:"kind"`
			Relation string `json:"relation"`
		} `json:"uppers"`
		Master string `json:"master"`
		Plan   struct {
			Requested string `json:"requested"`
			Mode      string `json:"mode"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if p := r.VethPeer; p == nil || p.Name != "xpv1" || !p.SameNetns || p.NetnsID != -1 || !p.Checked || p.XDPAttached {
		t.Errorf("veth_peer %+v", r.VethPeer)
	}
	if len(r.Uppers) != 1 || r.Uppers[0].Name != "xpbr0" || r.Uppers[0].Kind != "bridge" || r.Uppers[0].Relation != "master" || r.Master != "xpbr0 (bridge)" {
		t.Errorf("uppers %+v, master %q", r.Uppers, r.Master)
	}
	if r.Plan.Requested != "auto" || r.Plan.Mode != "generic" {
		t.Errorf("plan %+v", r.Plan)
	}
}
