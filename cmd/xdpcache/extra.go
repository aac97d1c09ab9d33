package main

import "github.com/urfave/cli/v2"

// extraCommands are the commands that live in their own files (probe, nicdb).
func extraCommands() []*cli.Command {
	return []*cli.Command{probeCommand(), nicdbCommand(), fleetCommand()}
}
