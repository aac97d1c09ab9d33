package nicdb

import (
	"os"
	"strings"
	"testing"
)

func mustLoad(t *testing.T) *DB {
	t.Helper()
	db, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// The drivers xdpcache must know: every mainline driver with native XDP that
// it is likely to meet, and netdevsim for offload tests.
var requiredDrivers = []string{"mlx4_en", "mlx5_core", "nfp", "i40e", "ice", "ixgbe", "ixgbevf", "igb", "igc", "bnxt_en",
	"qede", "thunderx", "nicvf", "dpaa2-eth", "enetc", "fsl_enetc", "stmmac", "mvneta", "mvpp2", "tsnep", "fec", "ena",
	"hv_netvsc", "virtio_net", "veth", "tun", "bonding", "sfc", "lan966x", "octeontx2", "rvu_nicpf", "cpsw", "funeth",
	"gve", "ionic", "atlantic", "netdevsim", "netsec", "mana", "mlx5", "mlx4"}

func TestNicdbRequiredDrivers(t *testing.T) {
	db := mustLoad(t)
	for _, n := range requiredDrivers {
		if _, ok := db.Driver(n); !ok {
			t.Errorf("driver %s missing", n)
		}
	}
	for alias, name := range map[string]string{"mlx5": "mlx5_core", "thunderx": "nicvf", "enetc": "fsl_enetc",
		"octeontx2": "rvu_nicpf", "lan966x": "lan966x_switch", "netvsc": "hv_netvsc"} {
		if d, _ := db.Driver(alias); d.Name != name {
			t.Errorf("alias %s -> %q, want %s", alias, d.Name, name)
		}
	}
	if _, ok := db.Driver("MLX5_CORE"); ok {
		t.Errorf("lookup must be case-sensitive on kernel names")
	}
	if _, ok := db.Driver("e1000e"); ok {
		t.Errorf("e1000e has no native XDP")
	}
}

func TestNicdbVerifiedMTU(t *testing.T) {
	db := mustLoad(t)
	for _, tc := range []struct {
		driver string
		mtu    int
	}{
		{"nfp", 4096}, {"veth", 3520}, {"virtio_net", 3506}, {"bnxt_en", 3502},
		{"mlx4_en", 3498}, {"mlx5_core", 3498}, {"ena", 3498},
		{"ixgbe", 3050}, {"ixgbevf", 3050}, {"i40e", 3046}, {"ice", 3046}, {"igb", 3046},
		{"gve", 2032}, {"igc", 1500}, {"stmmac", 1500}, {"netsec", 1500}, {"tun", 1500},
	} {
		d, ok := db.Driver(tc.driver)
		if !ok || d.MaxXDPMTU != tc.mtu {
			t.Errorf("%s: MTU limit %d, want %d", tc.driver, d.MaxXDPMTU, tc.mtu)
		}
	}
}

func TestNicdbDataIsConsistent(t *testing.T) {
	db := mustLoad(t)
	drivers := db.Drivers()
	if len(drivers) < len(requiredDrivers)-10 {
		t.Fatalf("only %d drivers", len(drivers))
	}
	names := map[string]string{}
	for i, d := range drivers {
		if i > 0 && drivers[i-1].Name >= d.Name {
			t.Errorf("not sorted: %s before %s", drivers[i-1].Name, d.Name)
		}
		for _, n := range append([]string{d.Name}, d.Aliases...) {
			if other, dup := names[n]; dup {
				t.Errorf("%q names both %s and %s", n, other, d.Name)
			}
			names[n] = d.Name
		}
		if d.NativeXDP == "" && d.HWOffload == "" {
			t.Errorf("%s has neither native XDP nor offload", d.Name)
		}
		var native KernelVersion
		if d.NativeXDP != "" {
			var err error
			if native, err = ParseKernelVersion(d.NativeXDP); err != nil {
				t.Errorf("%s: native %v", d.Name, err)
			}
		}
		for field, s := range map[string]string{"xdp_tx": d.XDPTX, "redirect": d.Redirect, "multi_buffer": d.MultiBuffer,
			"zero_copy": d.ZeroCopy, "hw_offload": d.HWOffload} {
			if s == "" {
				continue
			}
			v, err := ParseKernelVersion(s)
			if err != nil {
				t.Errorf("%s: %s: %v", d.Name, field, err)
				continue
			}
			if v.Major < 4 || v.Major > 7 {
				t.Errorf("%s: %s %s is not a plausible release", d.Name, field, s)
			}
			if field != "hw_offload" && d.NativeXDP != "" && !v.AtLeast(native) {
				t.Errorf("%s: %s %s before native XDP %s", d.Name, field, s, d.NativeXDP)
			}
		}
		if len(d.Sources) == 0 {
			t.Errorf("%s has no source", d.Name)
		}
		for _, s := range d.Sources {
			// A kernel release with a commit subject, or a path in the tree.
			if !strings.HasPrefix(s.Ref, "v") && !strings.Contains(s.Ref, "/") && !strings.Contains(s.Ref, ".c") {
				t.Errorf("%s: source %q names neither a release nor a kernel path", d.Name, s.Ref)
			}
			if s.Fact == "" {
				t.Errorf("%s: empty fact", d.Name)
			}
		}
		ids := map[string]bool{}
		for _, q := range d.Quirks {
			if ids[q.ID] {
				t.Errorf("%s: quirk %s twice", d.Name, q.ID)
			}
			ids[q.ID] = true
			if q.Severity != Info && q.Severity != Warn && q.Severity != Fail {
				t.Errorf("%s: quirk %s: severity %q", d.Name, q.ID, q.Severity)
			}
			if q.Summary == "" || q.Fix == "" || q.Source == "" {
				t.Errorf("%s: quirk %s incomplete", d.Name, q.ID)
			}
		}
	}
}

// The quirks xdpcache's checks refer to by ID, and what their fixes must say.
func TestNicdbRequiredQuirks(t *testing.T) {
	db := mustLoad(t)
	for _, tc := range []struct {
		driver, id string
		severity   Severity
		fixHas     []string
	}{
		{"virtio_net", "guest-offloads", Fail, []string{"hypervisor", "guest_tso4=off", "guest_csum=off"}},
		{"virtio_net", "spare-queues", Warn, []string{"queues=2*vCPUs", "ethtool -L IFACE combined"}},
		{"ena", "half-channels", Fail, []string{"ethtool -L IFACE combined"}},
		{"ena", "jumbo-mtu", Fail, []string{"mtu 3498"}},
		{"ixgbe", "many-cpus", Fail, []string{"64"}},
		{"ixgbe", "lro-off", Fail, []string{"ethtool -K IFACE lro off"}},
		{"mlx5_core", "lro-off", Fail, []string{"lro off"}},
		{"hv_netvsc", "lro-off", Fail, []string{"ethtool -K IFACE lro off"}},
		{"mlx5_core", "striding-rq", Info, []string{"3498"}},
		{"veth", "peer-needs-xdp", Warn, []string{"XDP_PASS", "PEER"}},
		{"bonding", "bond-modes", Fail, []string{"802.3ad"}},
		{"tun", "tap-only", Warn, []string{"TAP"}},
		{"gve", "half-channels", Fail, []string{"ethtool -L IFACE rx N tx N"}},
	} {
		d, ok := db.Driver(tc.driver)
		if !ok {
			t.Errorf("%s missing", tc.driver)
			continue
		}
		var q *Quirk
		for i := range d.Quirks {
			if d.Quirks[i].ID == tc.id {
				q = &d.Quirks[i]
			}
		}
		if q == nil {
			t.Errorf("%s: quirk %s missing", tc.driver, tc.id)
			continue
		}
		if q.Severity != tc.severity {
			t.Errorf("%s/%s: severity %s, want %s", tc.driver, tc.id, q.Severity, tc.severity)
		}
		for _, s := range tc.fixHas {
			if !strings.Contains(q.Fix, s) && !strings.Contains(q.Summary, s) {
				t.Errorf("%s/%s: neither fix nor summary mentions %q", tc.driver, tc.id, s)
			}
		}
	}
	virtio, _ := db.Driver("virtio_net")
	if !strings.Contains(virtio.Quirks[0].Summary, "Can't set XDP while host is implementing GRO_HW/CSUM") {
		t.Errorf("virtio_net: the kernel's message is not quoted")
	}
	veth, _ := db.Driver("veth")
	if !strings.Contains(veth.Quirks[0].Source, "6.18") {
		t.Errorf("veth peer quirk: the measurement's kernel is not named")
	}
}

func TestNicdbValidationRejects(t *testing.T) {
	const src = `"sources":[{"fact":"f","ref":"r"}]`
	const ok = `"name":"x","vendor":"v","description":"d",`
	for _, tc := range []struct{ name, json, errHas string }{
		{"bad version", `{"drivers":[{` + ok + `"native_xdp":"four",` + src + `}]}`, `"x"`},
		{"no source", `{"drivers":[{` + ok + `"native_xdp":"5.0"}]}`, "no source"},
		{"empty source", `{"drivers":[{` + ok + `"native_xdp":"5.0","sources":[{"fact":"f"}]}]}`, "ref"},
		{"tx before xdp", `{"drivers":[{` + ok + `"native_xdp":"5.0","xdp_tx":"4.9",` + src + `}]}`, "earlier"},
		{"zc without xdp", `{"drivers":[{` + ok + `"hw_offload":"5.0","zero_copy":"5.1",` + src + `}]}`, "without native"},
		{"no xdp", `{"drivers":[{` + ok + src + `}]}`, "neither"},
		{"no name", `{"drivers":[{"vendor":"v","description":"d","native_xdp":"5.0",` + src + `}]}`, "#1"},
		{"no vendor", `{"drivers":[{"name":"x","description":"d","native_xdp":"5.0",` + src + `}]}`, "vendor"},
		{"duplicate", `{"drivers":[{` + ok + `"native_xdp":"5.0",` + src + `},{"name":"y","vendor":"v","description":"d","aliases":["x"],"native_xdp":"5.0",` + src + `}]}`, "already used"},
		{"bad severity", `{"drivers":[{` + ok + `"native_xdp":"5.0",` + src + `,"quirks":[{"id":"q","severity":"meh","summary":"s","fix":"f","source":"s"}]}]}`, "severity"},
		{"repeated quirk", `{"drivers":[{` + ok + `"native_xdp":"5.0",` + src + `,"quirks":[{"id":"q","severity":"info","summary":"s","fix":"f","source":"s"},{"id":"q","severity":"info","summary":"s","fix":"f","source":"s"}]}]}`, "repeated"},
		{"unknown field", `{"drivers":[{` + ok + `"nativ_xdp":"5.0",` + src + `}]}`, "unknown field"},
		{"quirk needs fix", `{"drivers":[{` + ok + `"native_xdp":"5.0",` + src + `,"quirks":[{"id":"q","severity":"warn","summary":"s","source":"s"}]}]}`, "fix"},
		{"mtu", `{"drivers":[{` + ok + `"native_xdp":"5.0","max_xdp_mtu":-1,` + src + `}]}`, "max_xdp_mtu"},
		{"empty", `{"drivers":[]}`, "no drivers"},
	} {
		_, err := parse([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.errHas)
		}
	}
	if _, err := parse([]byte(`{"drivers":[{` + ok + `"native_xdp":"5.0",` + src + `}]}`)); err != nil {
		t.Errorf("minimal valid entry rejected: %v", err)
	}
}

func TestNicdbParseKernelVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want KernelVersion
		err  bool
	}{
		{"6.1", KernelVersion{6, 1, 0}, false},
		{"5.10.0", KernelVersion{5, 10, 0}, false},
		{"6.1.0-13-amd64", KernelVersion{6, 1, 0}, false},
		{"6.18.44-fc-v657", KernelVersion{6, 18, 44}, false},
		{"5.15.0-1051-aws", KernelVersion{5, 15, 0}, false},
		{"6.8.0+", KernelVersion{6, 8, 0}, false},
		{"4.18.0-553.el8_10.x86_64", KernelVersion{4, 18, 0}, false},
		{"6.12.1\n", KernelVersion{6, 12, 1}, false},
		{"linux", KernelVersion{}, true},
		{"", KernelVersion{}, true},
		{"6", KernelVersion{}, true},
		{"6.", KernelVersion{}, true},
		{"v6.1", KernelVersion{}, true},
		{"6.1rc1", KernelVersion{}, true},
		{"99999999999999999999.1", KernelVersion{}, true},
	} {
		got, err := ParseKernelVersion(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseKernelVersion(%q) = %v, %v", tc.in, got, err)
		}
	}
	if s := (KernelVersion{6, 1, 2}).String(); s != "6.1.2" {
		t.Errorf("String() = %q", s)
	}
}

func TestNicdbAtLeast(t *testing.T) {
	for _, tc := range []struct {
		v, o KernelVersion
		want bool
	}{
		{KernelVersion{6, 18, 0}, KernelVersion{6, 6, 0}, true},
		{KernelVersion{6, 6, 0}, KernelVersion{6, 18, 0}, false},
		{KernelVersion{5, 19, 9}, KernelVersion{6, 0, 0}, false},
		{KernelVersion{6, 0, 0}, KernelVersion{5, 19, 9}, true},
		{KernelVersion{6, 1, 0}, KernelVersion{6, 1, 0}, true},
		{KernelVersion{6, 1, 1}, KernelVersion{6, 1, 2}, false},
		{KernelVersion{6, 1, 3}, KernelVersion{6, 1, 2}, true},
	} {
		if got := tc.v.AtLeast(tc.o); got != tc.want {
			t.Errorf("%v.AtLeast(%v) = %v", tc.v, tc.o, got)
		}
	}
}

func TestNicdbNativeAtOffloadAt(t *testing.T) {
	db := mustLoad(t)
	for _, tc := range []struct {
		driver, kernel  string
		native, offload bool
	}{
		{"veth", "6.1.0-13-amd64", true, false},
		{"veth", "4.18.0-553.el8_10.x86_64", false, false},
		{"veth", "4.19", true, false},
		{"mlx5_core", "4.9.0", true, false},
		{"mlx5_core", "4.8.17", false, false},
		{"nfp", "4.12", true, false},
		{"nfp", "5.4.0", true, true},
		{"netdevsim", "6.18.44-fc-v657", true, true},
		{"gve", "6.3.9", false, false},
		{"gve", "6.4", true, false},
		{"bonding", "5.14.21", false, false},
		{"ena", "5.10.0", true, false},
	} {
		d, ok := db.Driver(tc.driver)
		if !ok {
			t.Fatalf("%s missing", tc.driver)
		}
		k, err := ParseKernelVersion(tc.kernel)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.NativeAt(k); got != tc.native {
			t.Errorf("%s.NativeAt(%s) = %v", tc.driver, tc.kernel, got)
		}
		if got := d.OffloadAt(k); got != tc.offload {
			t.Errorf("%s.OffloadAt(%s) = %v", tc.driver, tc.kernel, got)
		}
	}
	if (Driver{}).NativeAt(KernelVersion{9, 9, 9}) {
		t.Errorf("a driver without native XDP reports it")
	}
}

func TestNicdbLoadIsFresh(t *testing.T) {
	a, b := mustLoad(t), mustLoad(t)
	d, _ := a.Driver("veth")
	d.Quirks[0].Fix = "changed"
	d.Aliases = append(d.Aliases, "x")
	all := a.Drivers()
	all[0].Name = "changed"
	if d2, _ := a.Driver("veth"); d2.Quirks[0].Fix == "changed" {
		t.Errorf("Driver returns shared quirks")
	}
	if a.Drivers()[0].Name == "changed" {
		t.Errorf("Drivers returns the DB's slice")
	}
	if d3, _ := b.Driver("veth"); d3.Quirks[0].Fix == "changed" {
		t.Errorf("two Loads share data")
	}
}

func TestNicdbDocsUpToDate(t *testing.T) {
	db := mustLoad(t)
	got, err := os.ReadFile("../docs/nicdb.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != db.Markdown() {
		t.Errorf("docs/nicdb.md is out of date with nicdb/drivers.json: run go generate ./nicdb")
	}
	for _, d := range db.Drivers() {
		if !strings.Contains(string(got), "### "+d.Name+"\n") {
			t.Errorf("docs/nicdb.md has no section for %s", d.Name)
		}
	}
}
