// Command xdpcache deploys an in-kernel look-aside cache for memcached: an
// XDP program answers GETs for hot keys from a BPF map and a TC egress
// program fills that map from memcached's own replies.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

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
	app := &cli.App{
		Name:    "xdpcache",
		Usage:   "in-kernel look-aside cache for memcached (XDP + TC)",
		Version: version(),
		Commands: []*cli.Command{
			deployCommand(),
			undeployCommand(),
			statusCommand(),
			runCommand(),
			demoCommand(),
			probeCommand(),
			nicdbCommand(),
			fleetCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cli.Exit(fmt.Sprintf("xdpcache: unknown command %q (xdpcache --help lists the commands)", c.Args().First()), exitUsage)
			}
			return cli.ShowAppHelp(c)
		},
		OnUsageError: usageError,
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
	withUsageErrors(app.Commands)
	rejectRepeats(app.Commands)
	return app
}

// usageError is the one-line answer to a bad flag, for the app and every
// command: the message and where the help is, exit code exitUsage.
func usageError(c *cli.Context, err error, _ bool) error {
	help := "xdpcache --help"
	if cmd := c.Command; cmd != nil && cmd.Name != "" && cmd.Name != c.App.Name {
		help = "xdpcache " + cmd.Name + " --help"
	}
	return cli.Exit(fmt.Sprintf("xdpcache: %v (see %s)", err, help), exitUsage)
}

// withUsageErrors gives every command (and subcommand) usageError: urfave/cli
// v2 does not pass the app's OnUsageError down to commands.
func withUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = usageError
		}
		withUsageErrors(c.Subcommands)
	}
}

func main() {
	// A reader of our output that goes away (`xdpcache deploy | head -1`)
	// must not kill a deploy or undeploy half done: with SIGPIPE ignored a
	// write to the closed pipe fails (and is dropped) and the command
	// finishes what it changes.
	signal.Ignore(syscall.SIGPIPE)
	app := newApp()
	if err := app.Run(os.Args); err != nil {
		os.Exit(exitFailed) // ExitErrHandler printed it
	}
}

// version is the module version this binary was built from (a VCS
// pseudo-version for a build in a git checkout), "devel" if unknown.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}
