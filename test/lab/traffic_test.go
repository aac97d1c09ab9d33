package lab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/internal/netlab"
)

// Traffic through a real driver: memcached in the guest's root namespace,
// a client in namespace clN behind a second NIC on the same QEMU hub. GET
// hits come back with XDP_TX through the server NIC's driver.
var traffic = []struct {
	nic  nic
	want map[string]string // kernel series -> the mode auto must choose
}{
	{nics[0], map[string]string{"6.1": "native", "6.12": "native"}},   // virtio-net
	{nics[1], map[string]string{"6.1": "generic", "6.12": "generic"}}, // e1000
	{nics[2], map[string]string{"6.1": "generic", "6.12": "native"}},  // vmxnet3: native XDP since 6.6
}

type status struct {
	Mode     string            `json:"mode"`
	Attached bool              `json:"attached"`
	Counters map[string]uint64 `json:"counters"`
}

func readStatus(t *testing.T, iface string) status {
	t.Helper()
	out, err := run(xdpcache, "status", "--json", "--iface", iface)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var st []status
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
		t.Fatalf("status --json: %v: %s", err, out)
	}
	return st[0]
}

func memcachedStat(t *testing.T, c *mcproto.TCPClient, name string) uint64 {
	t.Helper()
	st, err := c.Stats()
	if err != nil {
		t.Fatalf("memcached stats: %v", err)
	}
	v, err := strconv.ParseUint(st[name], 10, 64)
	if err != nil {
		t.Fatalf("memcached stat %s=%q: %v", name, st[name], err)
	}
	return v
}

// ethtoolStat sums the driver's statistics whose names end in suffix
// (virtio-net: rx_queue_N_xdp_tx).
func ethtoolStat(iface, suffix string) (uint64, bool) {
	out, err := run(ethtool, "-S", iface)
	if err != nil {
		return 0, false
	}
	var sum uint64
	found := false
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok || !strings.HasSuffix(k, suffix) {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			sum += n
			found = true
		}
	}
	return sum, found
}

func TestTraffic(t *testing.T) {
	requireLab(t)
	for _, tc := range traffic {
		t.Run(tc.nic.name, func(t *testing.T) {
			start := time.Now()
			iface := tc.nic.name
			want := tc.want[kernel]
			server := netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", tc.nic.subnet))
			client := netlab.NS{Name: clientNS(tc.nic), Iface: tc.nic.client}
			before := readState(iface)

			res := deploy(t, iface, "--mode", "auto")
			if res.Mode != want {
				t.Fatalf("deploy --mode auto on %s (%s): got %q (%s), the matrix says %s", iface, kernel, res.Mode, res.Error, want)
			}
			defer func() {
				if l := undeploy(t, iface, before); len(l) > 0 {
					t.Logf("undeploy left on %s: %s", iface, strings.Join(l, "; "))
				}
			}()

			tconn, err := client.DialTCP(netip.AddrPortFrom(server, 11211), 5*time.Second)
			if err != nil {
				t.Fatalf("TCP to memcached from %s: %v", client.Name, err)
			}
			defer tconn.Close()
			tcp := mcproto.NewTCPClient(tconn, 5*time.Second)
			uconn, err := client.DialUDP(netip.AddrPortFrom(server, 11211))
			if err != nil {
				t.Fatal(err)
			}
			defer uconn.Close()
			udp := mcproto.NewUDPClient(uconn, 2*time.Second)

			key := "lab:" + iface
			if err := tcp.Set(key, 0, 0, []byte("one-"+iface)); err != nil {
				t.Fatalf("set: %v", err)
			}
			time.Sleep(300 * time.Millisecond) // the write hold (200ms)
			getMany := func(n int, value string) {
				t.Helper()
				for i := 0; i < n; i++ {
					items, err := udp.Get(key)
					if err != nil {
						t.Fatalf("UDP get %d: %v", i, err)
					}
					if len(items) != 1 || string(items[0].Value) != value {
						t.Fatalf("UDP get %d: got %+v, want %q", i, items, value)
					}
				}
			}
			mcGets0 := memcachedStat(t, tcp, "cmd_get")
			xtx0, haveXTX := ethtoolStat(iface, "_xdp_tx")
			const n = 20
			getMany(n, "one-"+iface)
			st := readStatus(t, iface)
			mcGets := memcachedStat(t, tcp, "cmd_get") - mcGets0
			hits := st.Counters["hits"]
			t.Logf("%s (%s mode): %d UDP GETs: %d answered by XDP, %d by memcached; XDP counted %d GET requests",
				iface, st.Mode, n, hits, mcGets, st.Counters["get_reqs"])
			if st.Mode != want || !st.Attached {
				t.Errorf("status: mode %s attached %v", st.Mode, st.Attached)
			}
			if hits+mcGets != n {
				t.Errorf("XDP hits %d + memcached GETs %d != %d requests sent", hits, mcGets, n)
			}
			if st.Counters["get_reqs"] != n {
				t.Errorf("XDP saw %d GET requests, %d were sent", st.Counters["get_reqs"], n)
			}
			if hits < n-2 {
				t.Errorf("only %d of %d GETs answered by XDP (the first fills the cache)", hits, n)
			}
			if haveXTX {
				xtx, _ := ethtoolStat(iface, "_xdp_tx")
				t.Logf("%s's driver counted %d XDP_TX frames", iface, xtx-xtx0)
				if xtx-xtx0 < hits {
					t.Errorf("the driver counted %d XDP_TX frames for %d hits", xtx-xtx0, hits)
				}
			}

			// A TCP set invalidates: the next GET sees the new value.
			inv0 := st.Counters["invalidations"] + st.Counters["ack_invalidations"]
			if err := tcp.Set(key, 0, 0, []byte("two-"+iface)); err != nil {
				t.Fatalf("set: %v", err)
			}
			mcGets0 = memcachedStat(t, tcp, "cmd_get")
			getMany(1, "two-"+iface)
			st2 := readStatus(t, iface)
			if inv := st2.Counters["invalidations"] + st2.Counters["ack_invalidations"]; inv <= inv0 {
				t.Errorf("a TCP set did not invalidate (invalidations %d -> %d)", inv0, inv)
			}
			if st2.Counters["hits"] != hits || memcachedStat(t, tcp, "cmd_get")-mcGets0 != 1 {
				t.Errorf("the GET after the set was answered from the cache")
			}
			time.Sleep(300 * time.Millisecond)
			getMany(5, "two-"+iface)
			if h := readStatus(t, iface).Counters["hits"] - hits; h < 3 {
				t.Errorf("after the set, %d of 5 GETs answered by XDP", h)
			}
			t.Logf("%s: traffic checks in %.1f s", iface, time.Since(start).Seconds())
		})
	}
}
