// Package memcaslap runs libmemcached's load generator (Debian's
// libmemcached-tools) and reads its report: the standard client a user tries
// xdpcache with, which verifies the values it gets back.
package memcaslap

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Mix is one memcaslap workload over UDP.
type Mix struct {
	KeyMin, KeyMax     int     // key sizes, bytes
	ValueMin, ValueMax int     // value sizes, bytes
	SetShare           float64 // share of sets; the rest are GETs
	Conns              int     // concurrent UDP connections
	Duration           time.Duration
	Window             string // memcaslap's task window per connection ("" for its default)
}

// Ordinary is memcaslap's ordinary mix (issue 15): 10% sets, keys 16-64 B,
// values 16-160 B, 4 connections, 6 s, every GET verified.
func Ordinary() Mix {
	return Mix{KeyMin: 16, KeyMax: 64, ValueMin: 16, ValueMax: 160, SetShare: 0.1, Conns: 4, Duration: 6 * time.Second}
}

// Result is memcaslap's report.
type Result struct {
	Gets, Sets   int // cmd_get, cmd_set
	GetMisses    int
	VerifyMisses int // a verified GET found nothing
	VerifyFailed int // a verified GET found another value than memcaslap wrote last
	PacketDrop   int
	UDPTimeouts  int
	TPS          int // operations per second
	Output       string
}

// Command builds the memcaslap command (through cmd, e.g. a network
// namespace's exec) against server ("host:port") with the mix's
// configuration file written into dir.
func (m Mix) Command(ctx context.Context, cmd func(ctx context.Context, name string, args ...string) *exec.Cmd,
	server, dir string) (*exec.Cmd, error) {
	if _, err := exec.LookPath("memcaslap"); err != nil {
		return nil, fmt.Errorf("memcaslap (libmemcached-tools): %w", err)
	}
	cfg := filepath.Join(dir, "memcaslap.cnf")
	conf := fmt.Sprintf("key\n%d %d 1\nvalue\n%d %d 1\ncmd\n0 %g\n1 %g\n",
		m.KeyMin, m.KeyMax, m.ValueMin, m.ValueMax, m.SetShare, 1-m.SetShare)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("memcaslap configuration: %w", err)
	}
	secs := int(m.Duration.Round(time.Second) / time.Second)
	args := []string{"-s", server, "-U", "-t", strconv.Itoa(max(secs, 1)) + "s", "-c", strconv.Itoa(m.Conns),
		"-T", "1", "-v", "1.0", "-F", cfg}
	if m.Window != "" {
		args = append(args, "-w", m.Window)
	}
	return cmd(ctx, "memcaslap", args...), nil
}

// Parse reads memcaslap's report ("name: value" lines).
func Parse(out string) (Result, error) {
	r := Result{Output: out}
	fields := map[string]*int{
		"cmd_get": &r.Gets, "cmd_set": &r.Sets, "get_misses": &r.GetMisses, "verify_misses": &r.VerifyMisses,
		"verify_failed": &r.VerifyFailed, "packet_drop": &r.PacketDrop, "udp_timeout": &r.UDPTimeouts,
	}
	seen := 0
	for _, l := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(l, " TPS: "); ok && strings.HasPrefix(l, "Run time:") {
			r.TPS, _ = strconv.Atoi(strings.Fields(rest)[0])
			continue
		}
		name, val, ok := strings.Cut(l, ":")
		p := fields[strings.TrimSpace(name)]
		if !ok || p == nil {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil {
			return r, fmt.Errorf("memcaslap report line %q: %w", l, err)
		}
		*p = n
		seen++
	}
	if seen < len(fields) {
		return r, fmt.Errorf("memcaslap report incomplete (%d of %d counters):\n%s", seen, len(fields), out)
	}
	return r, nil
}

// Run runs the mix and parses its report.
func (m Mix) Run(ctx context.Context, cmd func(ctx context.Context, name string, args ...string) *exec.Cmd,
	server, dir string) (Result, error) {
	c, err := m.Command(ctx, cmd, server, dir)
	if err != nil {
		return Result{}, err
	}
	out, err := c.CombinedOutput()
	if err != nil {
		return Result{Output: string(out)}, fmt.Errorf("memcaslap: %w\n%s", err, out)
	}
	return Parse(string(out))
}
