package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
	"github.com/xdpcache/xdpcache/offload/deploy"
	"github.com/xdpcache/xdpcache/offload/mode"
)

func TestScrape(t *testing.T) {
	lab, m := labtest.Start(t)
	root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-test-metrics-%d", os.Getpid()))
	defer os.RemoveAll(root)
	s := bpf.DefaultSettings()
	s.Entries, s.WriteHold = 1024, 0
	if err := lab.Server.Do(func() error {
		_, err := deploy.Deploy(deploy.Options{Iface: lab.Server.Iface, Mode: mode.Generic, Settings: s, PinRoot: root})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer lab.Server.Do(func() error { return deploy.Undeploy(lab.Server.Iface, root) })

	c := labtest.Dial(t, lab, m)
	if err := c.TCP.Set("k", 0, 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if items, err := c.UDP.Get("k"); err != nil || len(items) != 1 || string(items[0].Value) != "v" {
			t.Fatalf("get: %+v %v", items, err)
		}
	}

	col := New(root, "test")
	if problems, err := testutil.CollectAndLint(col); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	iface := lab.Server.Iface
	for _, want := range []string{
		fmt.Sprintf(`xdpcache_gets_total{iface=%q,result="hit"} 4`, iface),
		fmt.Sprintf(`xdpcache_gets_total{iface=%q,result="miss"} 1`, iface),
		fmt.Sprintf(`xdpcache_fills_total{iface=%q} 1`, iface),
		fmt.Sprintf(`xdpcache_mode{iface=%q,mode="generic"} 1`, iface),
		fmt.Sprintf(`xdpcache_invalidations_total{iface=%q} 1`, iface),
		fmt.Sprintf(`memcached_commands_total{command="get",iface=%q,source="xdpcache",status="hit"} 4`, iface),
		`xdpcache_build_info{goversion=`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s\n%s", want, text)
		}
	}

	// memcached's get_hits plus the kernel's share is every key asked for,
	// multi-key requests included: no key is counted twice or lost.
	if err := c.TCP.Set("k2", 0, 0, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if items, err := c.UDP.Get("k", "k2"); err != nil || len(items) != 2 {
			t.Fatalf("get k k2: %+v %v", items, err)
		}
	}
	const keys = 5 + 3*2
	kernel := 0.0
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "memcached_commands_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			kernel += m.GetCounter().GetValue()
		}
	}
	st, err := c.TCP.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var hits, misses float64
	fmt.Sscan(st["get_hits"], &hits)
	fmt.Sscan(st["get_misses"], &misses)
	t.Logf("get keys: memcached get_hits %v, kernel %v", hits, kernel)
	if kernel < 4 || hits+kernel != keys || misses != 0 {
		t.Errorf("memcached get_hits %v + kernel %v != %d keys asked for (get_misses %v)", hits, kernel, keys, misses)
	}
}
