package netdev

import (
	"testing"

	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
)

func TestXDPFeatureBits(t *testing.T) {
	for i, bit := range []uint64{XDPBasic, XDPRedirect, XDPNdoXmit, XDPZeroCopy, XDPHWOffload, XDPRxSG, XDPNdoXmitSG} {
		if bit != 1<<i {
			t.Errorf("bit %d is %#x", i, bit)
		}
	}
	if len(xdpFeatureNames) != 7 || xdpFeatureNames[4] != "hw-offload" {
		t.Errorf("names %v", xdpFeatureNames)
	}
	if f := (XDPFeatures{Raw: 0x23}); !f.Has(XDPBasic) || !f.Has(XDPRedirect) || !f.Has(XDPRxSG) || f.Has(XDPHWOffload) {
		t.Errorf("0x23 (veth) decoded wrong")
	}
}

// The netdev family on real devices: lo has no ndo_bpf (0), veth reports
// basic, redirect and rx-sg at least; an unknown ifindex is an error.
func TestQueryXDPFeatures(t *testing.T) {
	a := labtest.NS(t, "xcp")
	labtest.IP(t, a, "link", "add", "xfa", "type", "veth", "peer", "name", "xfb")
	lo, veth := labtest.Ifindex(t, a, "lo"), labtest.Ifindex(t, a, "xfa")
	var missing string
	if err := a.Do(func() error {
		f, err := QueryXDPFeatures(lo)
		if err != nil {
			return err
		}
		if !f.Available {
			missing = f.Reason
			return nil
		}
		if f.Raw != 0 || len(f.Flags) != 0 {
			t.Errorf("lo: %+v", f)
		}
		if f, err = QueryXDPFeatures(veth); err != nil {
			return err
		}
		if f.Raw&0x23 != 0x23 || f.Flags[0] != "basic" {
			t.Errorf("veth: %+v", f)
		}
		if _, err := QueryXDPFeatures(99999); err == nil {
			t.Error("unknown ifindex: no error")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if missing != "" {
		t.Skipf("no netdev family on this kernel: %s", missing)
	}
}
