package mcproto

import "fmt"

// getRequest validates keys (see ValidKey) and encodes a get, or a gets
// if cas, for them.
func getRequest(cas bool, keys []string) ([]byte, error) {
	for _, k := range keys {
		if err := ValidKey(k); err != nil {
			return nil, err
		}
	}
	return AppendGet(nil, cas, keys...), nil
}

// matchItemKeys checks that items answer a get for keys: memcached returns
// the hits in the order the keys were asked (a key asked twice is returned
// twice), so the item keys must be a subsequence of keys. Anything else
// wraps ErrUnexpectedReply.
func matchItemKeys(items []Item, keys []string) error {
	next := 0
	for _, it := range items {
		for next < len(keys) && keys[next] != it.Key {
			next++
		}
		if next == len(keys) {
			return fmt.Errorf("item %q was not asked for, or not in the order asked (%q): %w", it.Key, keys, ErrUnexpectedReply)
		}
		next++
	}
	return nil
}
