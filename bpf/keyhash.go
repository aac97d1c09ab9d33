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

// CacheWays is CACHE_WAYS (c/include/host/cache.h): the cache is
// set-associative, a key may live in either entry of its set.
const CacheWays = 2

// SetOf is the index of key's set in a cache of entries entries (a power
// of two, at least CacheWays) hashed with seed: the key may live in the
// entries SetWays(SetOf(...)) names.
func SetOf(key []byte, seed uint64, entries uint32) uint32 {
	return setOfHash(KeyHash(key, seed), entries)
}

func setOfHash(h uint64, entries uint32) uint32 {
	return (uint32(h) & (entries - 1)) / CacheWays
}

// SetWays are the cache map indexes of set's ways, way 0 first (way 0's
// entry holds the set's generation and write hold).
func SetWays(set uint32) [CacheWays]uint32 {
	return [CacheWays]uint32{set * CacheWays, set*CacheWays + 1}
}

// InstanceSeed is the seed the programs hash the keys of memcached instance
// inst with (INST_SEED in c/include/host/cache.h): keys of different
// instances land in different buckets with different hashes.
// Settings.InstanceID names a request's instance.
func InstanceSeed(seed uint64, inst uint32) uint64 {
	return seed ^ (uint64(inst) * 0x9E3779B97F4A7C15)
}
