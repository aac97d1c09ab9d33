package loadgen

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xdpcache/xdpcache/bpf"
	caslap "github.com/xdpcache/xdpcache/internal/memcaslap"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/offload/deploy"
	"github.com/xdpcache/xdpcache/offload/mode"
)

// BenchmarkEndToEndMemcaslap runs memcaslap's ordinary mix over UDP (10%
// sets, every GET verified; issue 15) against plain memcached and through
// xdpcache with default settings in native and generic mode: the share of
// GETs the kernel answers, memcaslap's throughput and its verify failures.
func BenchmarkEndToEndMemcaslap(b *testing.B) {
	if _, err := exec.LookPath("memcaslap"); err != nil {
		b.Skip("memcaslap not installed (libmemcached-tools)")
	}
	lab, m := labtest.Start(b, "-t", "1")
	if err := lab.Client.AttachXDPPass(); err != nil { // veth delivers XDP_TX frames only to a peer with XDP
		b.Fatal(err)
	}
	server := fmt.Sprintf("%s:%d", m.Addr, m.Port)
	root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-bench-caslap-%d", os.Getpid()))
	defer os.RemoveAll(root)
	fmt.Printf("\nmemcaslap's ordinary mix over UDP (10%% sets, keys 16-64 B, values 16-160 B, 4 connections, 6 s), default settings\n")
	fmt.Printf("%-16s %10s %10s %14s %14s %10s %10s\n", "config", "ops/s", "GETs", "kernel answers", "verify failed", "held", "dropped")
	for _, config := range []string{alone, string(mode.Native), string(mode.Generic)} {
		if config != alone {
			if err := lab.Server.Do(func() error {
				_, err := deploy.Deploy(deploy.Options{Iface: lab.Server.Iface, Mode: mode.Mode(config), Settings: bpf.DefaultSettings(), PinRoot: root})
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
		r, err := caslap.Ordinary().Run(b.Context(), lab.Client.Command, server, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		ratio, held := "-", "-"
		if config != alone {
			var st *deploy.Status
			if err := lab.Server.Do(func() error { st, err = deploy.ReadStatus(root, lab.Server.Iface); return err }); err != nil {
				b.Fatal(err)
			}
			gets, hits := st.Stats.Get(bpf.StatGetReqs), st.Stats.Get(bpf.StatHits)
			ratio = fmt.Sprintf("%.1f%%", 100*float64(hits)/float64(max(gets, 1)))
			held = fmt.Sprint(st.Stats.Get(bpf.StatFillHeld))
			if err := lab.Server.Do(func() error { return deploy.Undeploy(lab.Server.Iface, root) }); err != nil {
				b.Fatal(err)
			}
		}
		fmt.Printf("%-16s %10d %10d %14s %14d %10s %10d\n", config, r.TPS, r.Gets, ratio, r.VerifyFailed, held, r.PacketDrop)
	}
	fmt.Println("kernel answers: share of the GETs XDP saw that it answered; held: fills refused for the write hold.")
}
