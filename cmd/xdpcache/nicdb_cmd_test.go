package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/xdpcache/xdpcache/nicdb"
)

// runNicdb runs `xdpcache nicdb ARGS...` in an app that has only the nicdb
// command, and returns the exit code, standard output and error output.
func runNicdb(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &cli.App{
		Name:      "xdpcache",
		Commands:  []*cli.Command{nicdbCommand()},
		Writer:    &out,
		ErrWriter: &errOut,
		// The default handler would call os.Exit.
		ExitErrHandler: func(_ *cli.Context, err error) {
			var ec cli.ExitCoder
			if errors.As(err, &ec) {
				code = ec.ExitCode()
				errOut.WriteString(ec.Error())
			}
		},
	}
	if err := app.Run(append([]string{"xdpcache", "nicdb"}, args...)); err != nil && code == 0 {
		code = -1
		errOut.WriteString(err.Error())
	}
	return code, out.String(), errOut.String()
}

func TestNicdbCmdTable(t *testing.T) {
	code, out, errOut := runNicdb(t)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(out, "\n")
	header := lines[0]
	for _, col := range []string{"DRIVER", "NATIVE", "XDP_TX", "REDIRECT", "FRAGS", "AF_XDP ZC", "OFFLOAD", "XDP MTU", "QUIRKS"} {
		if !strings.Contains(header, col) {
			t.Errorf("header lacks %s: %q", col, header)
		}
	}
	db, err := nicdb.Load()
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = l
		}
	}
	for _, d := range db.Drivers() {
		if _, ok := rows[d.Name]; !ok {
			t.Errorf("table has no row for %s", d.Name)
		}
	}
	// Aligned: every row's native column starts where the header's does.
	col := strings.Index(header, "NATIVE")
	for _, name := range []string{"veth", "mlx5_core", "am65-cpsw-nuss", "nfp"} {
		d, _ := db.Driver(name)
		if got := strings.Index(rows[name][col:], d.NativeXDP); got != 0 {
			t.Errorf("%s: native XDP %s not under NATIVE: %q", name, d.NativeXDP, rows[name])
		}
	}
	for name, want := range map[string][]string{
		"veth": {"4.19", "3520"},
		"nfp":  {"4.13", "4096"},
		"gve":  {"6.4", "2032"},
	} {
		for _, w := range want {
			if !strings.Contains(rows[name], w) {
				t.Errorf("%s row lacks %s: %q", name, w, rows[name])
			}
		}
	}
}

func TestNicdbCmdDriver(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want []string
	}{
		{"ena", []string{"ena: Amazon", "half-channels", "half the maximum", "ethtool -L IFACE combined", "mtu 3498",
			"fix:", "source:", "ena_xdp.c", "XDP MTU limit:    3498"}},
		{"virtio_net", []string{"Can't set XDP while host is implementing GRO_HW/CSUM", "hypervisor", "guest_tso4=off", "spare-queues"}},
		{"veth", []string{"peer-needs-xdp", "XDP_PASS", "6.18", "v4.19: veth: Add driver XDP"}},
		{"mlx5", []string{"mlx5_core:", "also known as:", "mlx5", "AF_XDP zero-copy: since 5.3", "lro-off"}},
		{"ixgbe", []string{"many-cpus", "64 CPUs", "lro off"}},
		{"netdevsim", []string{"hardware offload: since 4.16", "XDP_TX:           no"}},
	} {
		code, out, errOut := runNicdb(t, tc.arg)
		if code != 0 {
			t.Errorf("nicdb %s: exit %d: %s", tc.arg, code, errOut)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("nicdb %s: output lacks %q:\n%s", tc.arg, w, out)
			}
		}
	}
}

func TestNicdbCmdJSON(t *testing.T) {
	db, err := nicdb.Load()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runNicdb(t, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var all []nicdb.Driver
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&all); err != nil {
		t.Fatal(err)
	}
	want := db.Drivers()
	if len(all) != len(want) {
		t.Fatalf("%d drivers in JSON, want %d", len(all), len(want))
	}
	for i := range want {
		a, _ := json.Marshal(all[i])
		b, _ := json.Marshal(want[i])
		if !bytes.Equal(a, b) {
			t.Errorf("driver %s does not round-trip:\n%s\n%s", want[i].Name, a, b)
		}
	}

	code, out, errOut = runNicdb(t, "--json", "ena")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var ena nicdb.Driver
	if err := json.Unmarshal([]byte(out), &ena); err != nil {
		t.Fatal(err)
	}
	orig, _ := db.Driver("ena")
	a, _ := json.Marshal(ena)
	b, _ := json.Marshal(orig)
	if !bytes.Equal(a, b) || ena.MaxXDPMTU != 3498 || len(ena.Quirks) == 0 {
		t.Errorf("ena does not round-trip:\n%s\n%s", a, b)
	}
	if !strings.Contains(out, `"max_xdp_mtu": 3498`) || !strings.Contains(out, `"id": "half-channels"`) {
		t.Errorf("unexpected JSON field names:\n%s", out)
	}
}

func TestNicdbCmdErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"nosuchdriver"}, exitNotFound, []string{`"nosuchdriver"`, "xdpcache nicdb"}},
		{[]string{"--json", "e1000e"}, exitNotFound, []string{`"e1000e"`, "xdpcache nicdb"}},
		{[]string{"MLX5_CORE"}, exitNotFound, []string{"did you mean mlx5_core?"}},
		{[]string{"lan966x-Switch"}, exitNotFound, []string{"lan966x-switch", "lan966x_switch"}},
		{[]string{"veth", "ena"}, exitUsage, []string{"one driver at a time"}},
	} {
		code, out, errOut := runNicdb(t, tc.args...)
		if code != tc.code {
			t.Errorf("nicdb %v: exit %d, want %d (%s)", tc.args, code, tc.code, errOut)
		}
		if out != "" {
			t.Errorf("nicdb %v: wrote to stdout: %q", tc.args, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("nicdb %v: error %q lacks %q", tc.args, errOut, w)
			}
		}
	}
}
