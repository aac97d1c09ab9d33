// Command xdpcache deploys an in-kernel look-aside cache for memcached: an
// XDP program answers GETs for hot keys from a BPF map and a TC egress
// program fills that map from memcached's own replies.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// Exit codes (docs/cli.md).
const (
	exitOK       = 0
	exitFailed   = 1 // the operation failed; the message says why
	exitUsage    = 2 // bad flags or arguments
	exitNoMode   = 3 // no XDP mode usable on the interface
	exitNotFound = 4 // no such interface or deployment
)

func newApp() *cli.App {
	return &cli.App{
		Name:  "xdpcache",
		Usage: "in-kernel look-aside cache for memcached (XDP + TC)",
		Commands: []*cli.Command{
			deployCommand(),
			undeployCommand(),
			statusCommand(),
			runCommand(),
			demoCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cli.Exit(fmt.Sprintf("xdpcache: unknown command %q (xdpcache --help lists the commands)", c.Args().First()), exitUsage)
			}
			return cli.ShowAppHelp(c)
		},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return cli.Exit(fmt.Sprintf("xdpcache: %v (see xdpcache %s --help)", err, c.Command.Name), exitUsage)
		},
		ExitErrHandler: func(c *cli.Context, err error) {
			if err == nil {
				return
			}
			if ec, ok := err.(cli.ExitCoder); ok {
				if msg := ec.Error(); msg != "" {
					fmt.Fprintln(c.App.ErrWriter, msg)
				}
				os.Exit(ec.ExitCode())
			}
			fmt.Fprintf(c.App.ErrWriter, "xdpcache: %v\n", err)
			os.Exit(exitFailed)
		},
	}
}

func main() {
	app := newApp()
	app.Commands = append(app.Commands, extraCommands()...)
	if err := app.Run(os.Args); err != nil {
		os.Exit(exitFailed) // ExitErrHandler printed it
	}
}
