package bpf

import (
	"encoding/binary"
	"net/netip"
)

// ReplySlots is REPLY_SLOTS (c/include/common/structs.h): how many UDP GET
// replies can have a parse state at once.
const ReplySlots = 16384

// ReplySlotOf is reply_slot_index (c/include/host/reply_slots.h) in Go: the
// reply slot of a UDP GET from client (IPv4 as ::ffff:a.b.c.d), port and
// memcached frame request id (both host order here; the programs hash them
// as they are on the wire), for a deployment's seed.
func ReplySlotOf(client netip.Addr, port, reqID uint16, seed uint64) uint32 {
	a := client.As16()
	var pr [4]byte
	binary.BigEndian.PutUint16(pr[0:], port)
	binary.BigEndian.PutUint16(pr[2:], reqID)
	h := seed ^ 0x2545f4914f6cdd1d
	h ^= binary.LittleEndian.Uint64(a[0:8])
	h *= 0xff51afd7ed558ccd
	h ^= h >> 32
	h ^= binary.LittleEndian.Uint64(a[8:16])
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 29
	h ^= uint64(binary.LittleEndian.Uint32(pr[:]))
	h *= 0xff51afd7ed558ccd
	h ^= h >> 32
	return uint32(h) & (ReplySlots - 1)
}
