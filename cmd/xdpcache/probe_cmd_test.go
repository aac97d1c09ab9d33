package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/offload"
)

// runProbe runs `probe args...` through a cli.App holding only the probe
// command, on a thread in a fresh, empty network namespace (only lo), and
// returns the exit code (0 when the action returned nil), stdout and the exit
// message.
func runProbe(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: probes inside a private network namespace")
	}
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
		t.Fatalf("unshare: %v", r.err)
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
		{"explicit native on lo", []string{"--iface", "lo", "--mode", "native"}, exitNoMode, []string{"✘ native"}, "no XDP mode is usable on lo"},
		{"no generic on lo", []string{"--iface", "lo", "--no-generic"}, exitNoMode, nil, "no XDP mode is usable on lo"},
		{"unknown interface", []string{"--iface", "nosuch0"}, exitNotFound, nil, `interface "nosuch0" not found (ip link show lists interfaces)`},
		{"bad mode", []string{"--mode", "fast"}, exitUsage, nil, `--mode "fast"`},
		{"bad port", []string{"--port", "70000"}, exitUsage, nil, "ports are 1..65535"},
		{"every interface", nil, 0, []string{"lo (ifindex 1)"}, ""},
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
	var r offload.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Iface != "lo" || r.Plan.Mode != offload.ModeGeneric || !r.XDPFeatures.Available || r.XDP.Attached != "none" || len(r.Checks) == 0 {
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
	var all []offload.Report
	if err := json.Unmarshal([]byte(out), &all); err != nil || code != 0 || len(all) != 1 || all[0].Iface != "lo" {
		t.Errorf("every interface: exit %d, %v, %d reports\n%s", code, err, len(all), out)
	}
}
