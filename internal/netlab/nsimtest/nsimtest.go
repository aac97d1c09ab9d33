// Package nsimtest creates netdevsim devices for tests: the kernel's
// simulated NIC with the hardware-offload API. It exists in the QEMU guest of
// make test-offload (scripts/offload-lab.sh); elsewhere tests skip, unless
// XDPCACHE_REQUIRE_NETDEVSIM=1 says they must run.
package nsimtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Bus is where netdevsim devices are created.
const Bus = "/sys/bus/netdevsim"

// Device is one netdevsim device with a single port (its netdev), up.
type Device struct {
	ID      int
	Ifname  string
	Ifindex int
	removed bool
}

// Require skips the test without netdevsim, or fails it when the harness
// said netdevsim is there (XDPCACHE_REQUIRE_NETDEVSIM=1).
func Require(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Bus); err != nil {
		if os.Getenv("XDPCACHE_REQUIRE_NETDEVSIM") == "1" {
			t.Fatalf("XDPCACHE_REQUIRE_NETDEVSIM=1 but no netdevsim: %v", err)
		}
		t.Skip("no netdevsim: run make test-offload")
	}
}

// New creates a device whose port is up; it is removed when the test ends.
func New(t testing.TB) *Device {
	t.Helper()
	Require(t)
	d := &Device{}
	var err error
	// The id is the first free one; another creator may take it between the
	// check and the write, so try the next few.
	for id := 1; id < 1000; id++ {
		if _, serr := os.Stat(dir(id)); serr == nil {
			continue
		}
		err = os.WriteFile(filepath.Join(Bus, "new_device"), []byte(fmt.Sprintf("%d 1", id)), 0)
		if err == nil {
			d.ID = id
			break
		}
		if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.EBUSY) {
			t.Fatalf("create netdevsim device %d: %v", id, err)
		}
	}
	if d.ID == 0 {
		t.Fatalf("create a netdevsim device: no free id: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Remove(); err != nil {
			t.Errorf("remove netdevsim device %d: %v", d.ID, err)
		}
	})
	d.Ifname = d.waitForPort(t)
	l, err := netlink.LinkByName(d.Ifname)
	if err != nil {
		t.Fatalf("netdevsim port %s: %v", d.Ifname, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatalf("set %s up: %v", d.Ifname, err)
	}
	d.Ifindex = l.Attrs().Index
	return d
}

func dir(id int) string {
	return filepath.Join(Bus, "devices", fmt.Sprintf("netdevsim%d", id))
}

// waitForPort returns the name of the device's netdev, which the driver may
// register shortly after new_device returns.
func (d *Device) waitForPort(t testing.TB) string {
	t.Helper()
	netDir := filepath.Join(dir(d.ID), "net")
	deadline := time.Now().Add(5 * time.Second)
	for {
		ents, err := os.ReadDir(netDir)
		if err == nil && len(ents) == 1 {
			return ents[0].Name()
		}
		if time.Now().After(deadline) {
			t.Fatalf("netdevsim%d has no single netdev in %s after 5 s (%d entries, %v)", d.ID, netDir, len(ents), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Remove deletes the device (and so its port) once.
func (d *Device) Remove() error {
	if d.removed {
		return nil
	}
	d.removed = true
	return os.WriteFile(filepath.Join(Bus, "del_device"), []byte(fmt.Sprint(d.ID)), 0)
}

// SetPortKnob writes one of netdevsim's debugfs switches of port 0 (e.g.
// bpf_map_accept), which make the driver refuse what it would accept.
func (d *Device) SetPortKnob(t testing.TB, knob string, on bool) {
	t.Helper()
	p := fmt.Sprintf("/sys/kernel/debug/netdevsim/netdevsim%d/ports/0/%s", d.ID, knob)
	v := map[bool]string{true: "Y", false: "N"}[on]
	if err := os.WriteFile(p, []byte(v), 0); err != nil {
		t.Fatalf("netdevsim knob: %v", err)
	}
}
