package netdev

import (
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
)

func validDeviceMapSpec(typ ebpf.MapType) *ebpf.MapSpec {
	return &ebpf.MapSpec{Name: "dev_map", Type: typ, KeySize: 4, ValueSize: 8, MaxEntries: 2}
}

// What NewDeviceMap refuses itself, without a syscall: no root needed, and
// the error carries no errno.
func TestNewDeviceMapRejectsSpecs(t *testing.T) {
	with := func(f func(*ebpf.MapSpec)) *ebpf.MapSpec {
		s := validDeviceMapSpec(ebpf.Hash)
		f(s)
		return s
	}
	tests := []struct {
		name    string
		spec    *ebpf.MapSpec
		ifindex int
		want    string
	}{
		{"nil spec", nil, 1, "no MapSpec"},
		{"host ifindex", validDeviceMapSpec(ebpf.Hash), 0, "ifindex must be a device's"},
		{"negative ifindex", validDeviceMapSpec(ebpf.Array), -3, "ifindex must be a device's"},
		{"LRU hash", with(func(s *ebpf.MapSpec) { s.Type = ebpf.LRUHash }), 1, "type LRUHash cannot be offloaded"},
		{"per-CPU array", with(func(s *ebpf.MapSpec) { s.Type = ebpf.PerCPUArray }), 1, "type PerCPUArray cannot be offloaded"},
		{"no-prealloc flag", with(func(s *ebpf.MapSpec) { s.Flags = unix.BPF_F_NO_PREALLOC }), 1, "flags 0x1: offloaded maps take no flags"},
		{"zero entries", with(func(s *ebpf.MapSpec) { s.MaxEntries = 0 }), 1, "max entries 0: none may be 0"},
		{"array with 8-byte keys", &ebpf.MapSpec{Name: "a", Type: ebpf.Array, KeySize: 8, ValueSize: 8, MaxEntries: 2}, 1, "key size 8: Array keys"},
		{"pinned", with(func(s *ebpf.MapSpec) { s.Pinning = ebpf.PinByName }), 1, "pinning is not supported"},
		{"contents", with(func(s *ebpf.MapSpec) { s.Contents = []ebpf.MapKV{{Key: uint32(0), Value: uint64(1)}} }), 1, "initial contents"},
		{"name too long", with(func(s *ebpf.MapSpec) { s.Name = "a_name_of_16_chr" }), 1, "name is 16 bytes"},
		{"name with a dash", with(func(s *ebpf.MapSpec) { s.Name = "dev-map" }), 1, `not '-'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewDeviceMap(tt.spec, tt.ifindex)
			if err == nil {
				m.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if errors.As(err, new(unix.Errno)) {
				t.Errorf("error %q comes from the kernel: the spec should have been refused before the syscall", err)
			}
		})
	}
	for _, typ := range []ebpf.MapType{ebpf.Hash, ebpf.Array} {
		if err := checkDeviceMapSpec(validDeviceMapSpec(typ), 1); err != nil {
			t.Errorf("valid %s spec refused: %v", typ, err)
		}
	}
}

// Devices whose drivers do not offload maps: the kernel answers EINVAL, and
// the error must say which device and why.
func TestNewDeviceMapOnDeviceWithoutOffload(t *testing.T) {
	n := labtest.NS(t, "xcp")
	labtest.IP(t, n, "link", "add", "xdm0", "type", "veth", "peer", "name", "xdm1")
	tests := []struct {
		name    string
		ifindex int
		want    string
	}{
		{"loopback", labtest.Ifindex(t, n, "lo"), "device lo does not offload maps"},
		{"veth", labtest.Ifindex(t, n, "xdm0"), "device xdm0 does not offload maps"},
		{"no such device", 4242, "no device with ifindex 4242"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if nerr := n.Do(func() error {
				var m *ebpf.Map
				m, err = NewDeviceMap(validDeviceMapSpec(ebpf.Hash), tt.ifindex)
				if err == nil {
					m.Close()
				}
				return nil
			}); nerr != nil {
				t.Fatal(nerr)
			}
			if err == nil {
				t.Fatalf("a map was offloaded to ifindex %d", tt.ifindex)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `"dev_map" (Hash, 2 entries)`) {
				t.Errorf("error %q does not name the map and say %q", err, tt.want)
			}
			if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EOPNOTSUPP) {
				t.Errorf("error %q lost the errno", err)
			}
		})
	}
}

// Host objects are on no device; the raw info read must see the same object
// the library describes (id, sizes, name), which checks the struct layouts.
func TestMapDeviceAndProgramDeviceOfHostObjects(t *testing.T) {
	labtest.RequireRoot(t, "creates BPF maps and programs")
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "host_map", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if dev, err := MapDevice(m); err != nil || dev != 0 {
		t.Errorf("MapDevice(host map) = %d, %v; want 0, nil", dev, err)
	}
	var mi mapInfoHead
	if err := objInfo(m.FD(), unsafe.Pointer(&mi), unsafe.Sizeof(mi)); err != nil {
		t.Fatal(err)
	}
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	if ebpf.MapID(mi.id) != id || mi.keySize != 4 || mi.valueSize != 8 || mi.maxEntries != 3 ||
		unix.ByteSliceToString(mi.name[:]) != "host_map" {
		t.Errorf("raw map info %+v does not match the map (id %d, 4/8 bytes, 3 entries, host_map)", mi, id)
	}

	p := labtest.PassProgram(t, "host_prog")
	if dev, err := ProgramDevice(p); err != nil || dev != 0 {
		t.Errorf("ProgramDevice(host program) = %d, %v; want 0, nil", dev, err)
	}
	var pi progInfoHead
	if err := objInfo(p.FD(), unsafe.Pointer(&pi), unsafe.Sizeof(pi)); err != nil {
		t.Fatal(err)
	}
	if pi.id != labtest.ProgID(t, p) || unix.ByteSliceToString(pi.name[:]) != "host_prog" || pi.typ != uint32(ebpf.XDP) {
		t.Errorf("raw program info %+v does not match the program (id %d, host_prog, XDP)", pi, labtest.ProgID(t, p))
	}
}
