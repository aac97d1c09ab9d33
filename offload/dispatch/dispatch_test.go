package dispatch

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

func TestActionsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Actions
		text string
		bad  bool
	}{
		{"XDP_PASS", ActionPass, "XDP_PASS", false},
		{"pass,drop", 1<<2 | 1<<1, "XDP_DROP,XDP_PASS", false},
		{" XDP_TX , redirect ", 1<<3 | 1<<4, "XDP_TX,XDP_REDIRECT", false},
		{"", 0, "", false},
		{"XDP_PASSS", 0, "", true},
	} {
		got, err := ParseActions(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("ParseActions(%q): error %v, want error %v", tc.in, err, tc.bad)
			continue
		}
		if got != tc.want || got.String() != tc.text {
			t.Errorf("ParseActions(%q) = %v (%q), want %v (%q)", tc.in, uint32(got), got, uint32(tc.want), tc.text)
		}
	}
}

// The run order is libxdp's: priority, then name; a new program after
// existing ones of the same priority and name.
func TestOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []entry
		want []string
	}{
		{"priority first", []entry{{name: "b", prio: 60}, {name: "a", prio: 70}, {name: "c", prio: 10}}, []string{"c", "b", "a"}},
		{"then name", []entry{{name: "zeta", prio: 50}, {name: "alpha", prio: 50}}, []string{"alpha", "zeta"}},
		{"existing before new", []entry{{name: "x", prio: 50, added: true}, {name: "x", prio: 50, id: 9}}, []string{"x#9", "x#0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order(tc.in)
			var got []string
			for _, e := range tc.in {
				n := e.name
				if tc.name == "existing before new" {
					n += "#" + string(rune('0'+e.id))
				}
				got = append(got, n)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v", got)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("order %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// The config's layout is the protocol's: libxdp checks the map's value size.
func TestConfigLayout(t *testing.T) {
	if n := binary.Size(dispatcherXdpDispatcherConfig{}); n != binarySize() || n != 124 {
		t.Fatalf("config is %d bytes, the protocol's is 124 (binarySize %d)", n, binarySize())
	}
	spec, err := loadDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Maps) != 1 || spec.Maps[".rodata"] == nil || spec.Maps[".rodata"].ValueSize != 124 {
		t.Fatalf("a dispatcher has one map, its 124-byte config: %v", spec.Maps)
	}
	if spec.Programs[ProgName] == nil || len(spec.Programs) != 1 {
		t.Fatalf("programs %v: want %s alone", spec.Programs, ProgName)
	}
}

// The dispatcher runs its slots in order and stops unless the slot's
// chain-call actions say to go on; empty slots return 31, which goes on.
// Without components (BPF_PROG_TEST_RUN, no freplace) every enabled slot
// returns 31 and the dispatcher passes the packet.
func TestDispatcherEmptySlotsPass(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loads a BPF program: needs root")
	}
	for _, n := range []uint8{0, 1, 3, MaxPrograms} {
		spec, err := loadDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		cfg := dispatcherXdpDispatcherConfig{Magic: Magic, DispatcherVersion: Version, NumProgsEnabled: n}
		for i := range int(n) {
			cfg.ChainCallActions[i] = uint32(ActionPass) | 1<<emptySlotAction
		}
		if err := spec.Variables["conf"].Set(cfg); err != nil {
			t.Fatal(err)
		}
		var objs dispatcherObjects
		if err := spec.LoadAndAssign(&objs, nil); err != nil {
			t.Fatalf("%d slots: %v", n, err)
		}
		ret, _, err := objs.XdpDispatcher.Test(make([]byte, 64))
		objs.Close()
		if err != nil {
			t.Fatal(err)
		}
		if ret != 2 {
			t.Errorf("%d empty slots: returned %d, want XDP_PASS", n, ret)
		}
	}
}

// What the loaded dispatcher looks like to libxdp: named xdp_dispatcher,
// one read-only config map holding magic and version.
func TestReadConfigOfLoadedDispatcher(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loads a BPF program: needs root")
	}
	spec, err := loadDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	want := dispatcherXdpDispatcherConfig{Magic: Magic, DispatcherVersion: Version, NumProgsEnabled: 2}
	want.RunPrios[0], want.RunPrios[1] = 10, 60
	if err := spec.Variables["conf"].Set(want); err != nil {
		t.Fatal(err)
	}
	var objs dispatcherObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	info, err := objs.XdpDispatcher.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != ProgName {
		t.Errorf("program name %q", info.Name)
	}
	ids, _ := info.MapIDs()
	if len(ids) != 1 {
		t.Fatalf("%d maps", len(ids))
	}
	got, err := readConfig(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if *got != want {
		t.Errorf("config read back %+v, want %+v", *got, want)
	}
}

// The run configuration comes from the object's BTF, as libxdp reads it.
func TestRunConfigOfTheCounter(t *testing.T) {
	spec, err := ebpf.LoadCollectionSpec("dispatchtest/counter_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fn    string
		prio  uint32
		chain Actions
	}{
		{"xdp_count", 10, ActionPass},
		{"no_such_program", DefaultPriority, ActionPass},
	} {
		if prio, chain := runConfig(spec, tc.fn); prio != tc.prio || chain != tc.chain {
			t.Errorf("%s: priority %d chain %s, want %d %s", tc.fn, prio, chain, tc.prio, tc.chain)
		}
	}
}

// Adopting a lone program loads it again from its object: only the same
// program (by tag), with the running program's maps.
func TestReloadChecksTheObject(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loads a BPF program: needs root")
	}
	spec, err := ebpf.LoadCollectionSpec("dispatchtest/counter_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	running := coll.Programs["xdp_count"]
	for _, tc := range []struct {
		object string
		err    string
	}{
		{"dispatchtest/counter_bpfel.o", ""},
		{"dispatcher_bpfel.o", "has no XDP program named"},
		{"no/such.o", "no such file"},
	} {
		r, err := reload(running, tc.object)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.object, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.object, err)
		}
		m := r.maps["count_map"]
		want, _ := coll.Maps["count_map"].Info()
		got, _ := m.Info()
		wid, _ := want.ID()
		gid, _ := got.ID()
		if m == nil || wid != gid || r.prio != 10 || r.chain != ActionPass {
			t.Errorf("reloaded: map %d (want the running one's, %d), priority %d, chain %s", gid, wid, r.prio, r.chain)
		}
		r.close()
	}
}
