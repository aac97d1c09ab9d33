package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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
			// Interfaces and addresses that appear, come up or go away
			// change which interfaces carry writes to memcached: deploy
			// again at the next poll (the host flavor watches them).
			ifaces, err := newIfaceWatch(ctx)
			if err != nil {
				return cli.Exit("xdpcache run: "+err.Error(), exitFailed)
			}
			poll := time.NewTicker(c.Duration("restart-poll"))
			defer poll.Stop()
			unreachable := false
			for {
				select {
				case <-ifaces.changes:
					ifaces.changed = true
				case <-poll.C:
					if ifaces.changed && d.Mode != mode.Offload {
						ifaces.changed = false
						d = redeploy(c, opts, d, "interfaces changed")
					}
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
							d = redeploy(c, opts, d, "memcached restarted")
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

// redeploy deploys again after memcached restarted (it may listen on other
// addresses or ports now, which changes its instances, Settings.Instances,
// and the interfaces writes reach it through) or after interfaces or
// addresses changed (why says which). Nothing changed: nothing to do;
// otherwise the programs are swapped in place (or the deployment replaced
// when its interfaces changed). On failure the deployment stays.
func redeploy(c *cli.Context, opts deploy.Options, d *record.Deployment, why string) *record.Deployment {
	opts.Log = nil
	nd, err := deploy.Deploy(opts)
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "%s %s; deploying again failed: %v\n", time.Now().Format(time.RFC3339), why, err)
		return d
	}
	if nd.XDPProgID != d.XDPProgID || !slices.Equal(nd.Ifaces(), d.Ifaces()) {
		fmt.Fprintf(c.App.Writer, "%s %s: deployment updated (%d instance listeners, interfaces %s)\n",
			time.Now().Format(time.RFC3339), why, len(nd.Settings.Instances), strings.Join(nd.Ifaces(), ", "))
	}
	return nd
}

// ifaceWatch notes link and address changes of this network namespace: a
// link that appears, goes away or changes its up state, any address added
// or removed. (Attaching programs changes no link's up state.)
type ifaceWatch struct {
	changes chan struct{}
	changed bool // seen since the last deploy (the run loop's own)
}

func newIfaceWatch(ctx context.Context) (*ifaceWatch, error) {
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	// subscribed before the list, so no change between the two is missed
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{}); err != nil {
		return nil, fmt.Errorf("watch the interfaces (netlink): %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{}); err != nil {
		close(done)
		return nil, fmt.Errorf("watch the addresses (netlink): %w", err)
	}
	list, err := netlink.LinkList()
	if err != nil {
		close(done)
		return nil, fmt.Errorf("list the interfaces: %w", err)
	}
	up := map[int]bool{}
	for _, l := range list {
		up[l.Attrs().Index] = l.Attrs().Flags&net.FlagUp != 0
	}
	w := &ifaceWatch{changes: make(chan struct{}, 1)}
	note := func() {
		select {
		case w.changes <- struct{}{}:
		default: // one pending is enough
		}
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-links:
				if !ok {
					return
				}
				idx, isUp := u.Attrs().Index, u.Attrs().Flags&net.FlagUp != 0
				was, known := up[idx]
				switch {
				case u.Header.Type == unix.RTM_DELLINK:
					delete(up, idx)
					note()
				case !known || was != isUp:
					up[idx] = isUp
					note()
				}
			case _, ok := <-addrs:
				if !ok {
					return
				}
				note()
			}
		}
	}()
	return w, nil
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
