package probe

import (
	"github.com/xdpcache/xdpcache/offload/mode"

	"strings"
	"testing"
)

// virtio feature strings as /sys/class/net/IFACE/device/features shows them:
// one '0'/'1' per bit from bit 0.
func virtioBits(bits ...int) string {
	b := []byte(strings.Repeat("0", 64))
	for _, i := range bits {
		b[i] = '1'
	}
	return string(b)
}

func TestVirtioOffloadsCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bits   string
		status CheckStatus
		want   string
	}{
		{"no guest offloads (hub backend)", virtioBits(0, 5, 16), Pass, "no guest offloads"},
		{"offloads with control (QEMU default on a tap)", virtioBits(0, 1, 2, 7, 8), Pass, "turns them off itself"},
		{"offloads without control", virtioBits(0, 1, 7, 8, 9, 10), Fail, "Can't set XDP while host is implementing GRO_HW/CSUM"},
		{"checksum only, without control", virtioBits(1), Fail, "guest_csum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Report{Driver: "virtio_net", Iface: "eth0", VirtioFeatures: tc.bits}
			c, ok := virtioOffloadsCheck(r)
			if !ok || c.Status != tc.status || !strings.Contains(c.Reason, tc.want) {
				t.Fatalf("got %+v ok=%v, want %s containing %q", c, ok, tc.status, tc.want)
			}
			if c.Status == Fail && (!c.Blocks(mode.Native) || c.Blocks(mode.Generic)) {
				t.Errorf("a refusal must block native and not generic: %+v", c)
			}
		})
	}
	if _, ok := virtioOffloadsCheck(&Report{Driver: "virtio_net"}); ok {
		t.Error("unknown feature bits must leave the decision to rx-gro-hw")
	}
}
