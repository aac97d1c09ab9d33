package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xdpcache/xdpcache/internal/mcproto"
	"github.com/xdpcache/xdpcache/internal/netlab"
	"github.com/xdpcache/xdpcache/internal/netlab/labtest"
)

// newLab makes a namespace pair with memcached in the server namespace, or
// skips when the machine cannot.
func newLab(t *testing.T) (*netlab.Lab, *netlab.Memcached) { return labtest.Start(t) }

// testPinRoot keeps test deployments apart from real ones.
func testPinRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpcache-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	t.Cleanup(func() { os.RemoveAll(root) })
	return root
}

// attachPass gives a veth end an XDP_PASS program (see netlab.NS.AttachXDPPass).
func attachPass(t *testing.T, ns netlab.NS) {
	t.Helper()
	if err := ns.AttachXDPPass(); err != nil {
		t.Fatal(err)
	}
}

// mc wraps a lab's memcached client for tests: failures end the test.
type mc struct {
	t *testing.T
	c labtest.Client
}

func dialMC(t *testing.T, lab *netlab.Lab, m *netlab.Memcached) *mc {
	return &mc{t: t, c: labtest.Dial(t, lab, m)}
}

func (c *mc) set(key, value string) {
	c.t.Helper()
	if err := c.c.TCP.Set(key, 0, 0, []byte(value)); err != nil {
		c.t.Fatal(err)
	}
}

// tcpGet reads key from memcached itself ("" on a miss).
func (c *mc) tcpGet(key string) string {
	c.t.Helper()
	items, err := c.c.TCP.Get(key)
	if err != nil {
		c.t.Fatal(err)
	}
	v, _ := value(items)
	return v
}

func (c *mc) stats() map[string]string {
	c.t.Helper()
	s, err := c.c.TCP.Stats()
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// get reads key over UDP, where the cache may answer.
func (c *mc) get(key string) (string, bool) {
	c.t.Helper()
	items, err := c.c.UDP.Get(key)
	if err != nil {
		c.t.Fatal(err)
	}
	return value(items)
}

// value is the value of a one-key get's reply, and whether it was a hit.
func value(items []mcproto.Item) (string, bool) {
	if len(items) == 0 {
		return "", false
	}
	return string(items[0].Value), true
}
