package main

import "github.com/urfave/cli/v2"

func demoCommand() *cli.Command {
	return &cli.Command{Name: "demo", Usage: "self-contained demo on a namespace pair with a real memcached", Action: func(c *cli.Context) error {
		return cli.Exit("demo: not yet", 1)
	}}
}
