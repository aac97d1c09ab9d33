package netdev

// Hardware-offload tests against netdevsim, the kernel's simulated offload
// NIC. They run in a QEMU guest (make test-offload, scripts/offload-lab.sh)
// and skip elsewhere. netdevsim keeps offloaded maps (HASH/ARRAY, at most 2
// entries, flags 0) and accepts any offloaded program, but never runs one on
// packets: these tests cover loading, maps and attachment, not verdicts.

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/internal/netlab/nsimtest"
)

// newNetdevsim creates a netdevsim device whose single port is up, removed
// when the test ends; it returns the port's name and ifindex.
func newNetdevsim(t *testing.T) (ifname string, ifindex int) {
	t.Helper()
	d := nsimtest.New(t)
	return d.Ifname, d.Ifindex
}

// verdictMapSpec is the map the verdict program reads: key 0 → 1 means drop.
func verdictMapSpec(typ ebpf.MapType, entries uint32) *ebpf.MapSpec {
	return &ebpf.MapSpec{Name: "verdict", Type: typ, KeySize: 4, ValueSize: 4, MaxEntries: entries}
}

func newDeviceMap(t *testing.T, spec *ebpf.MapSpec, ifindex int) *ebpf.Map {
	t.Helper()
	m, err := NewDeviceMap(spec, ifindex)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// verdictCollection is a tiny XDP program (no C: cilium/ebpf's asm) that
// looks up key 0 of the "verdict" map and drops on 1, offloaded to ifindex.
func verdictCollection(ifindex int) *ebpf.CollectionSpec {
	insns := asm.Instructions{
		asm.Mov.Imm(asm.R0, 0),
		asm.StoreMem(asm.RFP, -4, asm.R0, asm.Word), // key = 0 on the stack
		asm.LoadMapPtr(asm.R1, 0).WithReference("verdict"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R0, asm.R0, 0, asm.Word),
		asm.JEq.Imm(asm.R0, 1, "drop"),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("pass"), // XDP_PASS
		asm.Return(),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("drop"), // XDP_DROP
		asm.Return(),
	}
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{"verdict": verdictMapSpec(ebpf.Hash, 2)},
		Programs: map[string]*ebpf.ProgramSpec{"xdp_verdict": {
			Name: "xdp_verdict", Type: ebpf.XDP, License: "GPL",
			Ifindex: uint32(ifindex), Instructions: insns}},
	}
}

// loadVerdict loads the verdict program offloaded to ifindex with m as its
// map; the error is the loader's (nil m: a host map, which must fail).
func loadVerdict(t *testing.T, ifindex int, m *ebpf.Map) (*ebpf.Program, error) {
	t.Helper()
	opts := ebpf.CollectionOptions{}
	if m != nil {
		opts.MapReplacements = map[string]*ebpf.Map{"verdict": m}
	}
	coll, err := ebpf.NewCollectionWithOptions(verdictCollection(ifindex), opts)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { coll.Close() })
	return coll.Programs["xdp_verdict"], nil
}

func mustLoadVerdict(t *testing.T, ifindex int) (*ebpf.Program, *ebpf.Map) {
	t.Helper()
	m := newDeviceMap(t, verdictMapSpec(ebpf.Hash, 2), ifindex)
	p, err := loadVerdict(t, ifindex, m)
	if err != nil {
		t.Fatalf("load offloaded verdict program: %v", err)
	}
	return p, m
}

func TestNetdevsimDeviceMaps(t *testing.T) {
	_, ifindex := newNetdevsim(t)
	tests := []struct {
		typ ebpf.MapType
		// after updating keys 0 and 1
		check func(t *testing.T, m *ebpf.Map)
	}{
		{ebpf.Array, func(t *testing.T, m *ebpf.Map) {
			var v uint64
			if err := m.Lookup(uint32(2), &v); !errors.Is(err, ebpf.ErrKeyNotExist) {
				t.Errorf("lookup of index 2 in a 2-entry array: %v, want ErrKeyNotExist", err)
			}
			if err := m.Delete(uint32(0)); !errors.Is(err, unix.EINVAL) {
				t.Errorf("delete from an array: %v, want EINVAL", err)
			}
			wantKeys(t, m, 0, 1)
		}},
		{ebpf.Hash, func(t *testing.T, m *ebpf.Map) {
			if err := m.Update(uint32(7), uint64(7), ebpf.UpdateAny); !errors.Is(err, unix.E2BIG) {
				t.Errorf("third key in a 2-entry hash: %v, want E2BIG", err)
			}
			if err := m.Update(uint32(1), uint64(1), ebpf.UpdateNoExist); !errors.Is(err, ebpf.ErrKeyExist) {
				t.Errorf("UpdateNoExist of an existing key: %v, want ErrKeyExist", err)
			}
			if err := m.Delete(uint32(0)); err != nil {
				t.Errorf("delete key 0: %v", err)
			}
			var v uint64
			if err := m.Lookup(uint32(0), &v); !errors.Is(err, ebpf.ErrKeyNotExist) {
				t.Errorf("lookup of a deleted key: %v, want ErrKeyNotExist", err)
			}
			wantKeys(t, m, 1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.typ.String(), func(t *testing.T) {
			m := newDeviceMap(t, &ebpf.MapSpec{Name: "dev_" + strings.ToLower(tt.typ.String()),
				Type: tt.typ, KeySize: 4, ValueSize: 8, MaxEntries: 2}, ifindex)
			if dev, err := MapDevice(m); err != nil || dev != ifindex {
				t.Fatalf("MapDevice = %d, %v; want %d (the netdevsim port)", dev, err, ifindex)
			}
			want := map[uint32]uint64{0: 0xc0ffee, 1: 42}
			for k, v := range want {
				if err := m.Update(k, v, ebpf.UpdateAny); err != nil {
					t.Fatalf("update %d: %v", k, err)
				}
			}
			for k, v := range want {
				var got uint64
				if err := m.Lookup(k, &got); err != nil || got != v {
					t.Errorf("lookup %d = %#x, %v; want %#x", k, got, err, v)
				}
			}
			tt.check(t, m)
		})
	}
}

// wantKeys iterates m (BPF_MAP_GET_NEXT_KEY, answered by the device).
func wantKeys(t *testing.T, m *ebpf.Map, want ...uint32) {
	t.Helper()
	var got []uint32
	var k uint32
	var v uint64
	it := m.Iterate()
	for it.Next(&k, &v) {
		got = append(got, k)
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate: %v", err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
}

// What netdevsim refuses must come back as an error that names the map, its
// size and the device.
func TestNetdevsimDeviceMapRefused(t *testing.T) {
	tests := []struct {
		name    string
		spec    *ebpf.MapSpec
		noMaps  bool // switch the port's map offload off (debugfs)
		errno   unix.Errno
		message string
	}{
		{"3-entry array", verdictMapSpec(ebpf.Array, 3), false, unix.ENOMEM, `"verdict" (Array, 3 entries) on ifindex %[1]d: the device has no room for it`},
		{"3-entry hash", verdictMapSpec(ebpf.Hash, 3), false, unix.ENOMEM, `"verdict" (Hash, 3 entries) on ifindex %[1]d: the device has no room for it`},
		{"map offload off", verdictMapSpec(ebpf.Hash, 2), true, unix.EOPNOTSUPP, `"verdict" (Hash, 2 entries) on ifindex %[1]d: device %[2]s does not offload maps`},
	}
	nsimtest.Require(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := nsimtest.New(t)
			if tt.noMaps {
				d.SetPortKnob(t, "bpf_map_accept", false)
			}
			m, err := NewDeviceMap(tt.spec, d.Ifindex)
			if err == nil {
				m.Close()
				t.Fatalf("netdevsim accepted %v", tt.spec)
			}
			want := fmt.Sprintf(tt.message, d.Ifindex, d.Ifname)
			if !strings.Contains(err.Error(), want) || !errors.Is(err, tt.errno) {
				t.Errorf("error %q, want it to say %q and wrap %v", err, want, tt.errno)
			}
		})
	}
}

func TestNetdevsimXDPOffload(t *testing.T) {
	_, ifindex := newNetdevsim(t)
	prog, m := mustLoadVerdict(t, ifindex)
	if dev, err := ProgramDevice(prog); err != nil || dev != ifindex {
		t.Fatalf("ProgramDevice = %d, %v; want %d", dev, err, ifindex)
	}
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	mapIDs, _ := info.MapIDs()
	minfo, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	if mid, _ := minfo.ID(); !slices.Contains(mapIDs, mid) {
		t.Errorf("program uses maps %v, not the device map %d", mapIDs, mid)
	}
	progID := labtest.ProgID(t, prog)

	tests := []struct {
		name   string
		attach func(t *testing.T) (detach func() error)
	}{
		{"bpf_link", func(t *testing.T) func() error {
			l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPOffloadMode})
			if err != nil {
				t.Fatalf("attach in offload mode with a link: %v", err)
			}
			return l.Close
		}},
		{"netlink", func(t *testing.T) func() error {
			if err := SetXDP(ifindex, prog.FD(), unix.XDP_FLAGS_HW_MODE); err != nil {
				t.Fatalf("attach in offload mode over netlink: %v", err)
			}
			return func() error { return SetXDP(ifindex, -1, unix.XDP_FLAGS_HW_MODE) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			detach := tt.attach(t)
			st := queryXDP(t, ifindex)
			if st.Attached != "offload" || st.HwProgID != progID {
				t.Errorf("after attach: %+v, want offload mode with program %d", st, progID)
			}
			l, err := netlink.LinkByIndex(ifindex)
			if err != nil {
				t.Fatal(err)
			}
			if x := l.Attrs().Xdp; x == nil || !x.Attached || x.AttachMode != nl.XDP_ATTACHED_HW || x.ProgId != progID {
				t.Errorf("netlink reports %+v, want attached in hw mode (%d) with program %d", x, nl.XDP_ATTACHED_HW, progID)
			}
			if err := detach(); err != nil {
				t.Fatalf("detach: %v", err)
			}
			if st := queryXDP(t, ifindex); st.Attached != "none" || st.HwProgID != 0 {
				t.Errorf("after detach: %+v, want nothing attached", st)
			}
		})
	}
}

// Mismatches the kernel or the driver must refuse, leaving the port bare.
func TestNetdevsimXDPOffloadRefused(t *testing.T) {
	_, ifindex := newNetdevsim(t)
	_, otherIfindex := newNetdevsim(t)
	prog, _ := mustLoadVerdict(t, ifindex)
	hostProg := labtest.PassProgram(t, "host_pass")

	t.Run("host map in an offloaded program", func(t *testing.T) {
		if p, err := loadVerdict(t, ifindex, nil); err == nil {
			t.Errorf("loaded %v offloaded with a host map", p)
		}
	})
	tests := []struct {
		name    string
		prog    *ebpf.Program
		ifindex int
		flags   link.XDPAttachFlags
	}{
		{"offloaded program in driver mode", prog, ifindex, link.XDPDriverMode},
		{"offloaded program in generic mode", prog, ifindex, link.XDPGenericMode},
		{"host program in offload mode", hostProg, ifindex, link.XDPOffloadMode},
		{"program offloaded to another device", prog, otherIfindex, link.XDPOffloadMode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := link.AttachXDP(link.XDPOptions{Program: tt.prog, Interface: tt.ifindex, Flags: tt.flags})
			if err == nil {
				l.Close()
				t.Fatal("attached")
			}
			if !errors.Is(err, unix.EINVAL) {
				t.Errorf("error %v, want EINVAL", err)
			}
			if st := queryXDP(t, tt.ifindex); st.Attached != "none" {
				t.Errorf("after a refused attach: %+v", st)
			}
		})
	}
}

// When the device goes, its maps and programs stay as fds but lose the
// device: the kernel answers ENODEV.
func TestNetdevsimDeviceRemoved(t *testing.T) {
	d := nsimtest.New(t)
	prog, m := mustLoadVerdict(t, d.Ifindex)
	if err := m.Update(uint32(0), uint32(1), ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if dev, err := MapDevice(m); !errors.Is(err, unix.ENODEV) {
		t.Errorf("MapDevice after removal = %d, %v; want ENODEV", dev, err)
	}
	if dev, err := ProgramDevice(prog); !errors.Is(err, unix.ENODEV) {
		t.Errorf("ProgramDevice after removal = %d, %v; want ENODEV", dev, err)
	}
	var v uint32
	if err := m.Lookup(uint32(0), &v); !errors.Is(err, unix.ENODEV) {
		t.Errorf("lookup after removal: %v, want ENODEV", err)
	}
}

func queryXDP(t *testing.T, ifindex int) XDPState {
	t.Helper()
	st, err := QueryXDP(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
