package netdev

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/xdpcache/xdpcache/bpf"
)

// DeviceOffload is what probing the device's map offload measured: whether
// it holds maps at all, and how large they may be (map sizes the offload
// flavor needs: elements of bpf.OffloadElemMax bytes).
type DeviceOffload struct {
	Maps       bool   `json:"maps"`                  // the device accepts offloaded maps
	MaxEntries uint32 `json:"max_entries,omitempty"` // largest map (of those tried) it accepted
	ElemBytes  int    `json:"elem_bytes,omitempty"`  // element size tried (key + value)
	ItemBytes  int    `json:"item_bytes,omitempty"`  // largest item (memcached's whole reply) the offload flavor keeps
	Reason     string `json:"reason,omitempty"`      // why not
}

// deviceMapSizes are tried largest first (after the smallest, which tells
// whether the device offloads maps at all); the first the device accepts is
// reported: a lower bound of its real limit.
var deviceMapSizes = []uint32{1 << 20, 1 << 16, 1 << 12, 1 << 8, 1 << 4, 2}

// ProbeDeviceOffload creates (and closes) offloaded hash maps of the
// offload flavor's chunk shape on the device, to learn whether and how much
// it holds. Devices without offload refuse at once.
func ProbeDeviceOffload(ifindex int) DeviceOffload {
	spec := &ebpf.MapSpec{Name: "xdpcache_probe", Type: ebpf.Hash, KeySize: 8, ValueSize: bpf.OffloadChunk}
	spec.MaxEntries = 2
	m, err := NewDeviceMap(spec, ifindex)
	if err != nil {
		return DeviceOffload{Reason: err.Error()}
	}
	m.Close()
	var last error
	for _, n := range deviceMapSizes {
		spec.MaxEntries = n
		m, err := NewDeviceMap(spec, ifindex)
		if err != nil {
			last = err
			continue
		}
		m.Close()
		return DeviceOffload{Maps: true, MaxEntries: n, ElemBytes: int(spec.KeySize + spec.ValueSize), ItemBytes: bpf.OffloadItemMax}
	}
	return DeviceOffload{Reason: fmt.Sprintf("%v", last)}
}
