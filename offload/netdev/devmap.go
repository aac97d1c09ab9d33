package netdev

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// NewDeviceMap creates a map that lives on the NIC ifindex (in the current
// network namespace), for programs offloaded to that NIC. cilium/ebpf's
// MapSpec cannot say "on a device", so this issues BPF_MAP_CREATE itself with
// map_ifindex set and hands the fd to ebpf.NewMapFromFD; pass the result to
// CollectionOptions.MapReplacements.
//
// The kernel offloads only HASH and ARRAY maps, with no flags and no BTF:
// spec.Key and spec.Value are not sent (the kernel refuses BTF on offloaded
// maps), other unsupported settings are refused here, before the syscall.
func NewDeviceMap(spec *ebpf.MapSpec, ifindex int) (*ebpf.Map, error) {
	if spec == nil {
		return nil, errors.New("create offloaded map: no MapSpec")
	}
	if err := checkDeviceMapSpec(spec, ifindex); err != nil {
		return nil, fmt.Errorf("create offloaded map %q on ifindex %d: %w", spec.Name, ifindex, err)
	}
	attr := mapCreateAttr{
		mapType:    uint32(spec.Type),
		keySize:    spec.KeySize,
		valueSize:  spec.ValueSize,
		maxEntries: spec.MaxEntries,
		mapIfindex: uint32(ifindex),
	}
	copy(attr.mapName[:], spec.Name)
	fd, err := bpfMapCreate(&attr)
	if err != nil {
		return nil, fmt.Errorf("create offloaded map %q (%s, %d entries) on ifindex %d: %w",
			spec.Name, spec.Type, spec.MaxEntries, ifindex, explainDeviceMapErr(err, ifindex))
	}
	m, err := ebpf.NewMapFromFD(fd) // owns fd from here on, closes it on error
	if err != nil {
		return nil, fmt.Errorf("offloaded map %q on ifindex %d: %w", spec.Name, ifindex, err)
	}
	return m, nil
}

// checkDeviceMapSpec refuses what the kernel would refuse for an offloaded
// map (with a bare EINVAL) or what NewDeviceMap does not implement.
func checkDeviceMapSpec(spec *ebpf.MapSpec, ifindex int) error {
	switch {
	case ifindex <= 0:
		return fmt.Errorf("ifindex must be a device's (> 0), got %d", ifindex)
	case spec.Type != ebpf.Hash && spec.Type != ebpf.Array:
		return fmt.Errorf("type %s cannot be offloaded: only Hash and Array maps can", spec.Type)
	case spec.Flags != 0:
		return fmt.Errorf("flags %#x: offloaded maps take no flags", spec.Flags)
	case spec.KeySize == 0 || spec.ValueSize == 0 || spec.MaxEntries == 0:
		return fmt.Errorf("key size %d, value size %d, max entries %d: none may be 0",
			spec.KeySize, spec.ValueSize, spec.MaxEntries)
	case spec.Type == ebpf.Array && spec.KeySize != 4:
		return fmt.Errorf("key size %d: Array keys are 4-byte indexes", spec.KeySize)
	case spec.Pinning != ebpf.PinNone:
		return errors.New("pinning is not supported for offloaded maps: pin the returned map yourself")
	case len(spec.Contents) > 0:
		return errors.New("initial contents are not supported: Update the returned map")
	case spec.InnerMap != nil || spec.MapExtra != 0 || spec.NumaNode != 0:
		return errors.New("inner map, map extra and NUMA node do not apply to offloaded maps")
	}
	return checkObjName(spec.Name)
}

// checkObjName mirrors the kernel's rule for BPF object names (which it
// answers with EINVAL): at most 15 bytes of letters, digits, '_' and '.'.
func checkObjName(name string) error {
	if len(name) >= unix.BPF_OBJ_NAME_LEN {
		return fmt.Errorf("name is %d bytes, the kernel takes at most %d", len(name), unix.BPF_OBJ_NAME_LEN-1)
	}
	for _, c := range []byte(name) {
		if !(c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return fmt.Errorf("name may hold only letters, digits, '_' and '.', not %q", c)
		}
	}
	return nil
}

// explainDeviceMapErr adds what the errno means for an offloaded map. The
// kernel answers EINVAL when the device does not exist or its driver has no
// BPF offload (veth, lo, most NICs); drivers answer EOPNOTSUPP when map
// offload is switched off.
func explainDeviceMapErr(err error, ifindex int) error {
	switch {
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
		dev, lerr := net.InterfaceByIndex(ifindex)
		if lerr != nil {
			return fmt.Errorf("no device with ifindex %d in this network namespace, or it does not offload maps: %w", ifindex, err)
		}
		return fmt.Errorf("device %s does not offload maps: %w", dev.Name, err)
	case errors.Is(err, unix.ENOMEM):
		return fmt.Errorf("the device has no room for it: %w", err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("needs CAP_SYS_ADMIN: %w", err)
	}
	return err
}

// MapDevice is the ifindex of the device m lives on, 0 for a host map. The
// index is in the network namespace the device is in. The library's MapInfo
// does not expose it (cilium/ebpf v0.22), so this reads bpf_map_info itself.
// An offloaded map whose device is gone gives ENODEV.
func MapDevice(m *ebpf.Map) (int, error) {
	var info mapInfoHead
	err := objInfo(m.FD(), unsafe.Pointer(&info), unsafe.Sizeof(info))
	runtime.KeepAlive(m) // the fd must stay open during the syscall
	if err != nil {
		return 0, fmt.Errorf("map info of %s: %w", m, err)
	}
	return int(info.ifindex), nil
}

// ProgramDevice is the ifindex of the device p is offloaded to, 0 for a host
// program (bpf_prog_info.ifindex; see MapDevice).
func ProgramDevice(p *ebpf.Program) (int, error) {
	var info progInfoHead
	err := objInfo(p.FD(), unsafe.Pointer(&info), unsafe.Sizeof(info))
	runtime.KeepAlive(p)
	if err != nil {
		return 0, fmt.Errorf("program info of %s: %w", p, err)
	}
	return int(info.ifindex), nil
}

// The leading fields of union bpf_attr for BPF_MAP_CREATE, up to map_ifindex
// (include/uapi/linux/bpf.h). The kernel accepts a shorter attr and treats
// the rest (btf_fd, ...) as 0.
type mapCreateAttr struct {
	mapType    uint32
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	mapFlags   uint32
	innerMapFD uint32
	numaNode   uint32
	mapName    [unix.BPF_OBJ_NAME_LEN]byte
	mapIfindex uint32 // offset 44
}

// The leading fields of struct bpf_map_info and struct bpf_prog_info, up to
// ifindex. BPF_OBJ_GET_INFO_BY_FD fills min(our size, kernel size) bytes.
type mapInfoHead struct {
	typ, id, keySize, valueSize, maxEntries, mapFlags uint32
	name                                              [unix.BPF_OBJ_NAME_LEN]byte
	ifindex                                           uint32 // offset 40
}

type progInfoHead struct {
	typ, id                     uint32
	tag                         [8]byte
	jitedProgLen, xlatedProgLen uint32
	jitedProgInsns, xlatedInsns uint64 // pointers: 0 asks for no copy
	loadTime                    uint64
	createdByUID, nrMapIDs      uint32
	mapIDs                      uint64
	name                        [unix.BPF_OBJ_NAME_LEN]byte
	ifindex                     uint32 // offset 80
	gplCompatible               uint32 // a bitfield; pads to the u64 after it
}

func bpfMapCreate(attr *mapCreateAttr) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

func objInfo(fd int, info unsafe.Pointer, size uintptr) error {
	// info stays an unsafe.Pointer (not a uint64) so that the runtime keeps
	// tracking it. No padding field: Go need not zero padding, and the kernel
	// refuses an attr with non-zero bytes after the last field (EINVAL). On a
	// 32-bit machine the attr is 12 bytes and the kernel takes the upper half
	// of the __aligned_u64 as 0.
	attr := struct {
		bpfFD, infoLen uint32
		info           unsafe.Pointer
	}{bpfFD: uint32(fd), infoLen: uint32(size), info: info}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET_INFO_BY_FD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return errno
	}
	return nil
}
