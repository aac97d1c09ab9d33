package nicdb

import (
	"os"
	"strings"
	"testing"
)

func TestDataIsValid(t *testing.T) {
	db, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	required := []string{"mlx4_en", "mlx5_core", "nfp", "i40e", "ice", "ixgbe", "ixgbevf", "igb", "igc", "bnxt_en",
		"qede", "nicvf", "dpaa2-eth", "fsl_enetc", "stmmac", "mvneta", "mvpp2", "tsnep", "fec", "ena", "hv_netvsc",
		"virtio_net", "veth", "tun", "bonding", "sfc", "lan966x_switch", "rvu_nicpf", "cpsw", "funeth", "gve", "ionic",
		"atlantic", "netdevsim"}
	for _, n := range required {
		if _, ok := db.Driver(n); !ok {
			t.Errorf("driver %s missing", n)
		}
	}
	// The single-page XDP MTU limits verified for xdpcache.
	for n, mtu := range map[string]int{"nfp": 4096, "veth": 3520, "virtio_net": 3506, "bnxt_en": 3502, "mlx4_en": 3498,
		"mlx5_core": 3498, "ena": 3498, "ixgbe": 3050, "ixgbevf": 3050, "i40e": 3046, "ice": 3046, "igb": 3046,
		"gve": 2032, "igc": 1500, "stmmac": 1500, "tun": 1500} {
		if d, _ := db.Driver(n); d.MaxXDPMTU != mtu {
			t.Errorf("%s: MTU limit %d, want %d", n, d.MaxXDPMTU, mtu)
		}
	}
	for _, d := range db.Drivers() {
		if d.NativeXDP == "" && d.HWOffload == "" {
			t.Errorf("%s has neither native XDP nor offload", d.Name)
		}
	}
	if d, _ := db.Driver("mlx5"); d.Name != "mlx5_core" {
		t.Errorf("alias mlx5 -> %q", d.Name)
	}
}

func TestValidationRejects(t *testing.T) {
	for name, js := range map[string]string{
		"bad version":     `{"drivers":[{"name":"x","native_xdp":"four","sources":[{"fact":"f","ref":"r"}]}]}`,
		"no source":       `{"drivers":[{"name":"x","native_xdp":"5.0"}]}`,
		"tx before xdp":   `{"drivers":[{"name":"x","native_xdp":"5.0","xdp_tx":"4.9","sources":[{"fact":"f","ref":"r"}]}]}`,
		"duplicate":       `{"drivers":[{"name":"x","native_xdp":"5.0","sources":[{"fact":"f","ref":"r"}]},{"name":"y","aliases":["x"],"native_xdp":"5.0","sources":[{"fact":"f","ref":"r"}]}]}`,
		"bad severity":    `{"drivers":[{"name":"x","native_xdp":"5.0","sources":[{"fact":"f","ref":"r"}],"quirks":[{"id":"q","severity":"meh","summary":"s","fix":"f","source":"s"}]}]}`,
		"unknown field":   `{"drivers":[{"name":"x","nativ_xdp":"5.0","sources":[{"fact":"f","ref":"r"}]}]}`,
		"quirk needs fix": `{"drivers":[{"name":"x","native_xdp":"5.0","sources":[{"fact":"f","ref":"r"}],"quirks":[{"id":"q","severity":"warn","summary":"s","source":"s"}]}]}`,
	} {
		if _, err := parse([]byte(js)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestKernelVersions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want KernelVersion
		err  bool
	}{
		{"6.1", KernelVersion{6, 1, 0}, false},
		{"5.10.0", KernelVersion{5, 10, 0}, false},
		{"6.1.0-13-amd64", KernelVersion{6, 1, 0}, false},
		{"6.18.44-fc-v657", KernelVersion{6, 18, 44}, false},
		{"linux", KernelVersion{}, true},
		{"", KernelVersion{}, true},
	} {
		got, err := ParseKernelVersion(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%q: %v %v", tc.in, got, err)
		}
	}
	db, _ := Load()
	veth, _ := db.Driver("veth")
	if !veth.NativeAt(KernelVersion{6, 1, 0}) || veth.NativeAt(KernelVersion{4, 18, 0}) {
		t.Errorf("veth native XDP by version is wrong")
	}
	nfp, _ := db.Driver("nfp")
	if !nfp.OffloadAt(KernelVersion{5, 4, 0}) || veth.OffloadAt(KernelVersion{6, 18, 0}) {
		t.Errorf("offload by version is wrong")
	}
	if !(KernelVersion{6, 18, 0}).AtLeast(KernelVersion{6, 6, 0}) || (KernelVersion{5, 19, 9}).AtLeast(KernelVersion{6, 0, 0}) {
		t.Errorf("AtLeast")
	}
	if !strings.HasPrefix((KernelVersion{6, 1, 2}).String(), "6.1.2") {
		t.Errorf("String")
	}
}

func TestDocsUpToDate(t *testing.T) {
	db, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../docs/nicdb.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != db.Markdown() {
		t.Errorf("docs/nicdb.md is out of date: run go generate ./nicdb")
	}
}
