package main

// The CLI on netdevsim, in the guest of make test-offload
// (OFFLOAD_LAB_PKGS includes ./cmd/xdpcache).

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/xdpcache/xdpcache/internal/netlab/nsimtest"
)

func TestNetdevsimCLI(t *testing.T) {
	d := nsimtest.New(t)
	root := filepath.Join("/sys/fs/bpf", "xdpcache-cli-"+d.Ifname)
	pin := []string{"--iface", d.Ifname, "--pin-root", root}

	code, out := runApp(append([]string{"probe", "--json"}, pin[:2]...)...)
	if code != 0 {
		t.Fatalf("probe: exit %d: %s", code, out)
	}
	var rep struct {
		Offload struct {
			Maps       bool   `json:"maps"`
			MaxEntries uint32 `json:"max_entries"`
		} `json:"offload"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Offload.Maps || rep.Offload.MaxEntries != 2 {
		t.Errorf("probe --json offload = %+v (%v), want maps of 2 entries measured", rep.Offload, err)
	}

	// probe plans with deploy's flags: the default cache (65536 entries)
	// does not fit the device, 2 entries for any destination do
	var plan struct {
		Plan struct {
			Mode  string `json:"mode"`
			Steps []struct {
				Reason string `json:"reason"`
			} `json:"steps"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil || plan.Plan.Mode == "offload" || len(plan.Plan.Steps) == 0 ||
		!strings.Contains(plan.Plan.Steps[0].Reason, "65536 cache entries do not fit") {
		t.Errorf("probe with deploy's defaults plans %+v (%v), want no offload: the cache does not fit", plan.Plan, err)
	}
	code, out = runApp(append([]string{"probe", "--json", "--entries", "2", "--any-destination", "--allow", "198.18.0.0/15"}, pin[:2]...)...)
	if err := json.Unmarshal([]byte(out), &plan); code != 0 || err != nil || plan.Plan.Mode != "offload" {
		t.Errorf("probe --entries 2 --any-destination: exit %d, plan %+v (%v), want offload", code, plan.Plan, err)
	}

	code, out = runApp(append([]string{"deploy", "--listed-only", "--mode", "auto", "--entries", "2", "--any-destination", "--allow", "198.18.0.0/15"}, pin...)...)
	if code != 0 || !strings.Contains(out, "in offload mode") || !strings.Contains(out, "xdpcache run") {
		t.Fatalf("deploy --mode auto --entries 2: exit %d, output %q; want offload mode and the relay warning", code, out)
	}
	if lk, err := netlink.LinkByName(d.Ifname); err != nil || lk.Attrs().Xdp == nil || lk.Attrs().Xdp.AttachMode != 3 /* XDP_ATTACHED_HW */ {
		t.Errorf("not attached in hardware mode: %+v (%v)", lk.Attrs().Xdp, err)
	}
	code, out = runApp(append([]string{"status"}, pin...)...)
	if code != 0 || !strings.Contains(out, "offload") {
		t.Errorf("status: exit %d, output %q", code, out)
	}
	code, out = runApp(append([]string{"undeploy"}, pin...)...)
	if code != 0 {
		t.Fatalf("undeploy: exit %d: %s", code, out)
	}
	if lk, err := netlink.LinkByName(d.Ifname); err != nil || (lk.Attrs().Xdp != nil && lk.Attrs().Xdp.Attached) {
		t.Errorf("XDP left attached after undeploy: %+v (%v)", lk.Attrs().Xdp, err)
	}

	// --mode offload with more entries than the device holds: refused, nothing attached
	code, out = runApp(append([]string{"deploy", "--listed-only", "--mode", "offload", "--entries", "65536", "--allow", "198.18.0.0/15"}, pin...)...)
	if code != exitNoMode || !strings.Contains(out, "do not fit the device's maps") {
		t.Errorf("deploy --mode offload --entries 65536: exit %d, output %q", code, out)
	}
}
