package memcaslap

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	report := "servers: 127.0.0.1:22811\nset proportion: set_prop=0.10\ncmd_get: 35589\ncmd_set: 3957\nget_misses: 0\n" +
		"verify_misses: 2\nverify_failed: 1\nwritten_bytes: 2512675\npacket_disorder: 0\npacket_drop: 3\nudp_timeout: 4\n" +
		"\nRun time: 2.0s Ops: 39546 TPS: 19674 Net_rate: 3.9M/s\n"
	for _, tc := range []struct {
		name, out string
		want      Result
		err       bool
	}{
		{"whole", report, Result{Gets: 35589, Sets: 3957, VerifyMisses: 2, VerifyFailed: 1, PacketDrop: 3, UDPTimeouts: 4, TPS: 19674}, false},
		{"cut", strings.SplitN(report, "verify_failed", 2)[0], Result{}, true},
		{"bad number", strings.Replace(report, "cmd_get: 35589", "cmd_get: x", 1), Result{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.out)
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			got.Output = ""
			if got != tc.want {
				t.Errorf("got %+v want %+v", got, tc.want)
			}
		})
	}
}
