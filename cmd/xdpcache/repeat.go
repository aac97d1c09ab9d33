package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// rejectRepeats makes every command (and subcommand) refuse a flag that
// takes one value given more than once: urfave/cli keeps the last and
// drops the others without a word. Repeatable flags (slices) are left
// alone.
func rejectRepeats(cmds []*cli.Command) {
	for _, cmd := range cmds {
		before := cmd.Before
		cmd.Before = func(c *cli.Context) error {
			if err := repeatedFlag(c); err != nil {
				return cli.Exit(fmt.Sprintf("xdpcache %s: %v", c.Command.Name, err), exitUsage)
			}
			if before != nil {
				return before(c)
			}
			return nil
		}
		rejectRepeats(cmd.Subcommands)
	}
}

// repeatedFlag finds a single-valued flag of c's command given twice on
// the command line (the parent context's arguments: the command's name,
// then its own).
func repeatedFlag(c *cli.Context) error {
	lin := c.Lineage()
	if len(lin) < 2 || lin[1] == nil {
		return nil
	}
	args := lin[1].Args().Slice()
	if len(args) > 0 {
		args = args[1:] // the command's name
	}
	single := map[string]string{} // every name and alias -> the flag's name
	for _, f := range c.Command.Flags {
		if isRepeatable(f) {
			continue
		}
		names := f.Names()
		for _, n := range names {
			single[n] = names[0]
		}
	}
	seen := map[string]bool{}
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		name, ok := single[n]
		if !ok {
			continue
		}
		if seen[name] {
			return fmt.Errorf("--%s is given more than once; it takes one value", name)
		}
		seen[name] = true
	}
	return nil
}

func isRepeatable(f cli.Flag) bool {
	switch f.(type) {
	case *cli.StringSliceFlag, *cli.UintSliceFlag, *cli.IntSliceFlag, *cli.Int64SliceFlag, *cli.Uint64SliceFlag, *cli.Float64SliceFlag:
		return true
	}
	return false
}
