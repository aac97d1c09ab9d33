package bpf

import "encoding/binary"

// KeyBufLen is KEY_BUF (c/include/common/consts.h): the longest key the
// programs hash.
const KeyBufLen = 256

// KeyHash is the host flavor's key_hash (c/include/common/text.h) in Go:
// what a key's bucket and item hash are, for a deployment's seed.
func KeyHash(key []byte, seed uint64) uint64 {
	var buf [KeyBufLen]byte
	copy(buf[:], key)
	h := seed ^ (uint64(len(key)) * 0x9E3779B97F4A7C15)
	for i := 0; i < KeyBufLen/8 && i*8 < len(key); i++ {
		h ^= binary.LittleEndian.Uint64(buf[i*8:])
		h *= 0xff51afd7ed558ccd
		h ^= h >> 32
	}
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// BucketOf is the index of key's bucket in a cache of entries buckets (a
// power of two) hashed with seed.
func BucketOf(key []byte, seed uint64, entries uint32) uint32 {
	return uint32(KeyHash(key, seed)) & (entries - 1)
}

// InstanceSeed is the seed the programs hash the keys of memcached instance
// inst with (INST_SEED in c/include/host/cache.h): keys of different
// instances land in different buckets with different hashes.
// Settings.InstanceID names a request's instance.
func InstanceSeed(seed uint64, inst uint32) uint64 {
	return seed ^ (uint64(inst) * 0x9E3779B97F4A7C15)
}
