package main

import (
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/metrics"
	"github.com/xdpcache/xdpcache/offload/deploy"
	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/record"
	"github.com/xdpcache/xdpcache/offload/relay"
)

func runCommand() *cli.Command {
	flags := append(settingsFlags(),
		&cli.DurationFlag{Name: "interval", Value: 10 * time.Second, Usage: "how often to log the counters"},
		&cli.BoolFlag{Name: "keep", Usage: "leave the deployment in place when stopped"},
		&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics on this address (e.g. :9411); empty: off"},
		&cli.DurationFlag{Name: "restart-poll", Value: time.Second, Usage: "how often to check whether memcached restarted (the cache is flushed when it did)"},
	)
	return &cli.Command{
		Name:  "run",
		Usage: "deploy, log counters while running, and undeploy on SIGINT/SIGTERM (for supervisors and containers)",
		Flags: flags,
		Action: func(c *cli.Context) error {
			opts, err := deployOptions(c, c.App.ErrWriter)
			if err != nil {
				return cli.Exit("xdpcache run: "+err.Error(), exitUsage)
			}
			if c.Duration("interval") <= 0 || c.Duration("restart-poll") <= 0 {
				return cli.Exit("xdpcache run: --interval and --restart-poll must be positive", exitUsage)
			}
			var srv *http.Server
			if addr := c.String("metrics-addr"); addr != "" {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					return cli.Exit(fmt.Sprintf("xdpcache run: --metrics-addr %s: %v", addr, err), exitUsage)
				}
				reg := prometheus.NewRegistry()
				reg.MustRegister(metrics.New(opts.PinRoot, version()))
				mux := http.NewServeMux()
				mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
				go srv.Serve(ln)
				defer srv.Close()
				fmt.Fprintf(c.App.Writer, "metrics on http://%s/metrics\n", ln.Addr())
			}
			d, err := deploy.Deploy(opts)
			if err != nil {
				return cli.Exit("xdpcache run: "+err.Error(), exitCodeFor(err))
			}
			printDeployment(c.App.Writer, c.App.ErrWriter, d)
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			tick := time.NewTicker(c.Duration("interval"))
			defer tick.Stop()
			// memcached restarting loses its data: flush the cache when it does.
			watch, err := relay.NewRestartWatcher(d.Iface, opts.Settings.Ports)
			if err != nil {
				return cli.Exit("xdpcache run: "+err.Error(), exitFailed)
			}
			var fills *relay.Relay
			if d.Mode == mode.Offload {
				if fills, err = relay.Open(opts.PinRoot, d.Iface); err != nil {
					return cli.Exit("xdpcache run: start the relay: "+err.Error(), exitFailed)
				}
				defer fills.Close()
				go func() {
					if err := fills.Run(ctx); err != nil {
						fmt.Fprintf(c.App.ErrWriter, "%s relay stopped: %v\n", time.Now().Format(time.RFC3339), err)
					}
				}()
				fmt.Fprintf(c.App.Writer, "relay: writing fills to the device's maps\n")
			}
			poll := time.NewTicker(c.Duration("restart-poll"))
			defer poll.Stop()
			unreachable := false
			for {
				select {
				case <-poll.C:
					restarted, err := watch.Check()
					if err != nil {
						if !unreachable {
							fmt.Fprintf(c.App.ErrWriter, "%s %v\n", time.Now().Format(time.RFC3339), err)
						}
						unreachable = true
						continue
					}
					unreachable = false
					if restarted {
						if err := deploy.Flush(opts.PinRoot, d.Iface); err != nil {
							fmt.Fprintf(c.App.ErrWriter, "%s memcached restarted; flush failed: %v\n", time.Now().Format(time.RFC3339), err)
						} else {
							fmt.Fprintf(c.App.Writer, "%s memcached restarted: cache flushed\n", time.Now().Format(time.RFC3339))
						}
						if d.Mode != mode.Offload {
							d = redeploy(c, opts, d)
						}
					}
				case <-ctx.Done():
					if c.Bool("keep") {
						fmt.Fprintf(c.App.Writer, "stopping; the deployment on %s stays (--keep)\n", d.Iface)
						return nil
					}
					if err := deploy.Undeploy(d.Iface, opts.PinRoot); err != nil {
						return cli.Exit("xdpcache run: undeploy: "+err.Error(), exitFailed)
					}
					fmt.Fprintf(c.App.Writer, "stopped; xdpcache removed from %s\n", d.Iface)
					return nil
				case <-tick.C:
					logCounters(c, opts.PinRoot, d.Iface)
					if fills != nil {
						rs := fills.Stats()
						fmt.Fprintf(c.App.Writer, "%s %s relay replies=%d handed_over=%d ring_full=%d filled=%d stale=%d ttl=%d no_ticket=%d too_big=%d malformed=%d errors=%d items=%d\n",
							time.Now().Format(time.RFC3339), d.Iface, rs.Seen, rs.Sent, rs.RingFull, rs.Results["filled"], rs.Results["stale"], rs.Results["ttl"],
							rs.Results["no_ticket"], rs.Results["too_big"]+rs.TooBig, rs.Results["malformed"], rs.Errors, rs.Items)
					}
				}
			}
		},
	}
}

// redeploy deploys again after memcached restarted: it may listen on other
// addresses or ports now, which changes its instances (Settings.Instances)
// and the interfaces writes reach it through. Nothing changed: nothing to
// do; otherwise the programs are swapped in place (or the deployment
// replaced when its interfaces changed). On failure the deployment stays.
func redeploy(c *cli.Context, opts deploy.Options, d *record.Deployment) *record.Deployment {
	opts.Log = nil
	nd, err := deploy.Deploy(opts)
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "%s memcached restarted; deploying again for its listeners failed: %v\n", time.Now().Format(time.RFC3339), err)
		return d
	}
	if nd.XDPProgID != d.XDPProgID || len(nd.Members) != len(d.Members) {
		fmt.Fprintf(c.App.Writer, "%s memcached restarted with other listeners: deployment updated (%d instance listeners, interfaces %s)\n",
			time.Now().Format(time.RFC3339), len(nd.Settings.Instances), strings.Join(nd.Ifaces(), ", "))
	}
	return nd
}

func logCounters(c *cli.Context, pinRoot, iface string) {
	st, err := deploy.ReadStatus(pinRoot, iface)
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "%s read counters: %v\n", time.Now().Format(time.RFC3339), err)
		return
	}
	s := st.Stats
	fmt.Fprintf(c.App.Writer, "%s %s gets=%d hits=%d ratio=%.1f%% fills=%d stale_fills=%d invalidations=%d flushes=%d attached=%v\n",
		time.Now().Format(time.RFC3339), iface, s.Get(bpf.StatGetReqs), s.Get(bpf.StatHits), 100*st.HitRatio,
		s.Get(bpf.StatFills), s.Get(bpf.StatFillStale), s.Get(bpf.StatInvalidations), s.Get(bpf.StatFlushes), st.Attached)
	if st.Settings.Shadow {
		fmt.Fprintf(c.App.Writer, "%s %s shadow: %s\n", time.Now().Format(time.RFC3339), iface, st.Shadow)
	}
}
