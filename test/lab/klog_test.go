package lab

import (
	"slices"
	"testing"
)

func TestKernelLog(t *testing.T) {
	dmesg := `[   41.771204] virtio_net virtio0 vsq: XDP request 2 queues but max is 1. XDP_TX and XDP_REDIRECT will operate in a slower locked tx mode.
[   52.104010] ------------[ cut here ]------------
[   52.104011] WARNING: CPU: 0 PID: 412 at net/core/dev.c:1681 generic_xdp_install+0xf6/0x160
[   52.104012] CPU: 0 PID: 412 Comm: xdpcache Tainted: G           OE      6.1.0-57-amd64 #1  Debian 6.1.192-3
[   52.104013] RIP: 0010:generic_xdp_install+0xf6/0x160
[   52.104014]  dev_xdp_install+0xef/0x250
[   52.104015] e1000 0000:00:05.0 e1k: link up`
	want := []string{
		"virtio_net virtio0 vsq: XDP request 2 queues but max is 1. XDP_TX and XDP_REDIRECT will operate in a slower locked tx mode.",
		"WARNING: at net/core/dev.c in generic_xdp_install",
	}
	if got := kernelLog(dmesg); !slices.Equal(got, want) {
		t.Errorf("kernelLog:\n got %q\nwant %q", got, want)
	}
}
