package main

import (
	"fmt"
	"net/netip"

	"github.com/urfave/cli/v2"

	"github.com/xdpcache/xdpcache/bpf"
)

// The flags probe and deploy share: probe plans with what deploy will be
// given, so the mode it reports is the one deploy chooses.

func entriesFlag() cli.Flag {
	return &cli.UintFlag{Name: "entries", Value: uint(bpf.DefaultSettings().Entries), Usage: "cache entries (a power of two, at least 2: sets of 2 ways)"}
}

func allowFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "allow", Usage: "source prefix served from the cache (repeatable; default: the interface's own subnets)"}
}

func anyDestinationFlag() cli.Flag {
	return &cli.BoolFlag{Name: "any-destination", Usage: "also answer requests not addressed to this host's own addresses"}
}

// allowPrefixes parses --allow.
func allowPrefixes(c *cli.Context) ([]netip.Prefix, error) {
	var allow []netip.Prefix
	for _, a := range c.StringSlice("allow") {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("--allow %q: not a CIDR prefix such as 198.18.0.0/15 or 2001:db8::/32", a)
		}
		allow = append(allow, p)
	}
	return allow, nil
}

// entriesValue parses --entries.
func entriesValue(c *cli.Context) (uint32, error) {
	n := c.Uint("entries")
	if n > 1<<24 {
		return 0, fmt.Errorf("--entries %d: at most %d", n, 1<<24)
	}
	return uint32(n), nil
}
