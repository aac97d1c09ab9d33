package deploy

import (
	"testing"

	"github.com/xdpcache/xdpcache/offload/mode"
	"github.com/xdpcache/xdpcache/offload/record"
)

// upgradeAllowed reads "" and "auto" alike: both honour --no-generic.
func TestUpgradeAllowed(t *testing.T) {
	links := func(m mode.Mode) *record.Deployment {
		return &record.Deployment{Mode: m, XDPAttach: record.XDPLink, TCAttach: record.TCX}
	}
	for _, tc := range []struct {
		name string
		prev *record.Deployment
		o    Options
		want bool
	}{
		{"auto keeps native", links(mode.Native), Options{Mode: mode.Auto}, true},
		{"unset keeps native", links(mode.Native), Options{}, true},
		{"auto keeps generic", links(mode.Generic), Options{Mode: mode.Auto}, true},
		{"auto --no-generic replaces generic", links(mode.Generic), Options{Mode: mode.Auto, NoGeneric: true}, false},
		{"unset --no-generic replaces generic", links(mode.Generic), Options{NoGeneric: true}, false},
		{"same explicit mode", links(mode.Native), Options{Mode: mode.Native}, true},
		{"another explicit mode", links(mode.Native), Options{Mode: mode.Generic}, false},
		{"offload is never swapped", links(mode.Offload), Options{Mode: mode.Auto}, false},
		{"netlink attachment", &record.Deployment{Mode: mode.Native, XDPAttach: record.XDPNetlink, TCAttach: record.TCX}, Options{}, false},
		{"clsact attachment", &record.Deployment{Mode: mode.Native, XDPAttach: record.XDPLink, TCAttach: record.TCClsact}, Options{}, false},
	} {
		if got := upgradeAllowed(tc.prev, &tc.o); got != tc.want {
			t.Errorf("%s: upgradeAllowed = %v, want %v", tc.name, got, tc.want)
		}
	}
}
