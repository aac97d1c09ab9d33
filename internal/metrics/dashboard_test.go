package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpcache/xdpcache/bpf"
	"github.com/xdpcache/xdpcache/offload/deploy"
)

const dashboardPath = "../../deploy/grafana/xdpcache.json"

// targetLabels are the labels Prometheus adds to every series of a target.
var targetLabels = []string{"instance", "job"}

// series are the known series: name → label → the values it takes ("" in the
// set when any value may occur).
type series map[string]map[string]map[string]bool

func (s series) add(name, label, value string) {
	if s[name] == nil {
		s[name] = map[string]map[string]bool{}
	}
	if label == "" {
		return
	}
	if s[name][label] == nil {
		s[name][label] = map[string]bool{}
	}
	if value != "" {
		s[name][label][value] = true
	}
}

// knownSeries is what our collector exposes (from a scrape with every counter
// set, so every reason and cause shows) and what memcached_exporter documents.
func knownSeries(t *testing.T) series {
	t.Helper()
	busy := map[bpf.Stat]uint64{}
	for i := range allStats {
		busy[bpf.Stat(i)] = 1
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(statuses{New("", "test"), []*deploy.Status{status("eth0", 0, busy)}})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	s := series{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			s.add(mf.GetName(), "", "")
			for _, l := range m.GetLabel() {
				v := l.GetValue()
				if l.GetName() == "iface" || l.GetName() == "version" || l.GetName() == "goversion" {
					v = "" // any value
				}
				s.add(mf.GetName(), l.GetName(), v)
			}
		}
	}
	for name, labels := range memcachedExporterSeries {
		s.add(name, "", "")
		for _, l := range labels {
			s.add(name, l, "")
		}
	}
	for cmd, sts := range memcachedExporterCommands {
		for st := range sts {
			s.add("memcached_commands_total", "command", cmd)
			s.add("memcached_commands_total", "status", st)
		}
	}
	return s
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string      `json:"name"`
			Type       string      `json:"type"`
			Query      any         `json:"query"`
			Definition string      `json:"definition"`
			Datasource *datasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// query is one PromQL expression of the dashboard and where it is.
type query struct{ where, expr string }

// grafanaVars are the values the test gives the dashboard's variables and
// Grafana's built-in ones, in each form Grafana's Prometheus data source
// interpolates them to (All, one value, several values).
var grafanaVars = []map[string]string{
	{"__rate_interval": "5m", "__range": "6h", "__interval": "30s", "host": ".*"},
	{"__rate_interval": "1m", "__range": "1h", "__interval": "15s", "host": `(10\\.0\\.0\\.7)`},
	{"__rate_interval": "2m", "__range": "24h", "__interval": "1m", "host": `(node\\-1|\\[fd00::7\\])`},
}

var varRef = regexp.MustCompile(`\$(?:\{([A-Za-z_]\w*)(?::\w+)?\}|([A-Za-z_]\w*))`)

// interpolate replaces Grafana variables; an unknown one is an error.
func interpolate(expr string, vars map[string]string) (string, error) {
	var bad []string
	out := varRef.ReplaceAllStringFunc(expr, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		v, ok := vars[name]
		if !ok {
			bad = append(bad, name)
		}
		return v
	})
	if len(bad) > 0 {
		return "", fmt.Errorf("unknown variables %v", bad)
	}
	return out, nil
}

func TestDashboardStructure(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q title %q schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	dsVar := ""
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = v.Name
		}
	}
	if dsVar == "" {
		t.Fatal("no Prometheus data source variable")
	}
	wantDS := datasource{Type: "prometheus", UID: "${" + dsVar + "}"}
	for _, v := range d.Templating.List {
		if v.Type == "query" && (v.Datasource == nil || *v.Datasource != wantDS) {
			t.Errorf("variable %s: data source %+v, want %+v", v.Name, v.Datasource, wantDS)
		}
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v", p.Title, g)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || *p.Datasource != wantDS {
				t.Errorf("panel %q: data source %+v, want %+v", p.Title, p.Datasource, wantDS)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no queries", p.Title)
			}
			refs := map[string]bool{}
			for _, q := range p.Targets {
				if q.RefID == "" || refs[q.RefID] || strings.TrimSpace(q.Expr) == "" {
					t.Errorf("panel %q: query %+v (refIds must be unique, expr set)", p.Title, q)
				}
				refs[q.RefID] = true
				if q.Datasource != nil && *q.Datasource != wantDS {
					t.Errorf("panel %q %s: data source %+v", p.Title, q.RefID, q.Datasource)
				}
			}
		}
	}
	walk(d.Panels)
}

// dashboardQueries lists every PromQL expression: panels' and variables'.
func dashboardQueries(d dashboard) []query {
	var qs []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, q := range p.Targets {
				qs = append(qs, query{fmt.Sprintf("panel %q %s", p.Title, q.RefID), q.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return qs
}

var labelValues = regexp.MustCompile(`^label_values\((?:(.+),\s*)?([A-Za-z_]\w*)\)$`)

func TestDashboardSeries(t *testing.T) {
	known := knownSeries(t)
	d := readDashboard(t)
	qs := dashboardQueries(d)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		qs = append(qs, query{"variable " + v.Name, m[1]})
		r, err := parsePromQL(m[1])
		if err != nil || len(r.selectors) != 1 {
			t.Errorf("variable %s: selector %q: %v", v.Name, m[1], err)
			continue
		}
		if _, ok := known[r.selectors[0].name][m[2]]; !ok && !slices.Contains(targetLabels, m[2]) {
			t.Errorf("variable %s: %s has no label %s", v.Name, r.selectors[0].name, m[2])
		}
	}
	used := map[string]map[string]bool{} // name → label=value matchers seen
	for _, q := range qs {
		for _, vars := range grafanaVars {
			expr, err := interpolate(q.expr, vars)
			if err != nil {
				t.Errorf("%s: %v", q.where, err)
				break
			}
			refs, err := parsePromQL(expr)
			if err != nil {
				t.Errorf("%s: %v\n%s", q.where, err, expr)
				break
			}
			for _, p := range checkRefs(refs, known) {
				t.Errorf("%s: %s\n%s", q.where, p, expr)
			}
			for _, s := range refs.selectors {
				if used[s.name] == nil {
					used[s.name] = map[string]bool{}
				}
				for _, m := range s.matchers {
					used[s.name][m.label+m.op+m.value] = true
				}
			}
		}
	}
	// The panels the dashboard promises.
	for _, want := range []struct{ name, matcher string }{
		{"xdpcache_gets_total", `result=hit`},           // hit ratio in the kernel
		{"memcached_commands_total", `source=`},         // memcached's own hit ratio
		{"memcached_commands_total", `source=xdpcache`}, // the kernel's share
		{"memcached_commands_total", `status=hit`},      // combined
		{"xdpcache_fills_refused_total", ``},            // fills refused by reason
		{"xdpcache_flushes_total", `cause=unreadable`},  // unreadable flushes
		{"xdpcache_invalidations_total", ``},
	} {
		if used[want.name] == nil || (want.matcher != "" && !used[want.name][want.matcher]) {
			t.Errorf("no query selects %s{%s}", want.name, want.matcher)
		}
	}
}

// checkRefs reports selectors of series nobody exposes, matchers on labels
// they lack or with values they never take, and grouping by absent labels.
func checkRefs(r refs, known series) []string {
	var problems []string
	have := map[string]bool{}
	for _, l := range targetLabels {
		have[l] = true
	}
	for _, l := range r.created {
		have[l] = true
	}
	for _, s := range r.selectors {
		labels, ok := known[s.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("series %s is exposed neither by xdpcache nor by memcached_exporter", s.name))
			continue
		}
		for l := range labels {
			have[l] = true
		}
		for _, m := range s.matchers {
			if slices.Contains(targetLabels, m.label) {
				continue
			}
			values, ok := labels[m.label]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s has no label %s", s.name, m.label))
				continue
			}
			if len(values) == 0 { // any value
				continue
			}
			match := func(v string) bool { return v == m.value }
			if m.op == "=~" || m.op == "!~" {
				re, err := regexp.Compile("^(?:" + m.value + ")$")
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s{%s%s%q}: %v", s.name, m.label, m.op, m.value, err))
					continue
				}
				match = re.MatchString
			}
			if m.value == "" && (m.op == "=" || m.op == "=~") {
				continue // series without the label (memcached_exporter's own)
			}
			n := 0
			for v := range values {
				if match(v) {
					n++
				}
			}
			if (m.op == "=" || m.op == "=~") && n == 0 || (m.op == "!=" || m.op == "!~") && n == len(values) {
				problems = append(problems, fmt.Sprintf("%s{%s%s%q} selects nothing (values: %v)", s.name, m.label, m.op, m.value, keys(values)))
			}
		}
	}
	if len(r.selectors) == 0 {
		problems = append(problems, "no series selected")
	}
	for _, l := range r.grouping {
		if !have[l] {
			problems = append(problems, fmt.Sprintf("grouping by %s, which no selected series has", l))
		}
	}
	return problems
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestPromtoolCheckDashboardQueries has promtool parse every query, as
// recording rules, with each set of variable values.
func TestPromtoolCheckDashboardQueries(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus; .ci/deps installs it)")
	}
	qs := dashboardQueries(readDashboard(t))
	var rules strings.Builder
	rules.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, q := range qs {
		for j, vars := range grafanaVars {
			expr, err := interpolate(q.expr, vars)
			if err != nil {
				t.Fatalf("%s: %v", q.where, err)
			}
			e, _ := json.Marshal(expr) // a JSON string is a YAML string
			fmt.Fprintf(&rules, "  - record: dashboard:query_%d_%d\n    expr: %s\n", i, j, e)
		}
	}
	f := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s\n%s", err, out, rules.String())
	}
}

func TestParsePromQL(t *testing.T) {
	for _, tc := range []struct {
		expr     string
		want     string // selectors, grouping and created labels, as refs.String prints them
		wantErrs bool
	}{
		{expr: `up`, want: `up{} by[] new[]`},
		{expr: `sum by (a, b) (rate(x_total{c="d",e=~"f|g"}[5m])) / sum(rate(x_total[1m:10s]))`,
			want: `x_total{c="d",e=~"f|g"} x_total{} by[a b] new[]`},
		{expr: `sum(rate(x_total{a!="b",}[5m] offset 1h)) without (c) > bool 0.5e1`, want: `x_total{a!="b"} by[c] new[]`},
		{expr: `label_replace(x{a='q\'s'}, "host", "$1", "instance", "(.*):[0-9]+")`, want: `x{a="q's"} by[] new[host]`},
		{expr: `a * on (i) group_left (j) b{k!~"l"}`, want: `a{} b{k!~"l"} by[i j] new[]`},
		{expr: "{__name__=`raw`}", want: `raw{} by[] new[]`},
		{expr: `nosuchfunc(x)`, wantErrs: true},
		{expr: `x{a="b"`, wantErrs: true},
		{expr: `x{a~"b"}`, wantErrs: true},
		{expr: `sum(x`, wantErrs: true},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			r, err := parsePromQL(tc.expr)
			if tc.wantErrs {
				if err == nil {
					t.Errorf("no error, got %s", r)
				}
				return
			}
			if err != nil || r.String() != tc.want {
				t.Errorf("got %s, %v; want %s", r, err, tc.want)
			}
		})
	}
}

// A small PromQL reader: enough to list the selectors, grouping labels and
// labels created by label_replace/label_join of the dashboard's queries, and
// to refuse unknown functions (promtool, where installed, checks the syntax in
// full).

type matcher struct{ label, op, value string }

type selector struct {
	name     string
	matchers []matcher
}

type refs struct {
	selectors []selector
	grouping  []string
	created   []string
}

func (r refs) String() string {
	var b strings.Builder
	for _, s := range r.selectors {
		var ms []string
		for _, m := range s.matchers {
			ms = append(ms, fmt.Sprintf("%s%s%q", m.label, m.op, m.value))
		}
		fmt.Fprintf(&b, "%s{%s} ", s.name, strings.Join(ms, ","))
	}
	fmt.Fprintf(&b, "by%v new%v", r.grouping, r.created)
	return b.String()
}

var promqlFuncs = map[string]bool{
	// aggregations
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "group": true, "stddev": true,
	"stdvar": true, "topk": true, "bottomk": true, "quantile": true, "count_values": true,
	// functions
	"rate": true, "irate": true, "increase": true, "delta": true, "idelta": true, "deriv": true,
	"resets": true, "changes": true, "abs": true, "absent": true, "absent_over_time": true, "ceil": true,
	"floor": true, "round": true, "clamp": true, "clamp_min": true, "clamp_max": true, "scalar": true,
	"vector": true, "time": true, "timestamp": true, "sort": true, "sort_desc": true, "label_replace": true,
	"label_join": true, "histogram_quantile": true, "avg_over_time": true, "min_over_time": true,
	"max_over_time": true, "sum_over_time": true, "count_over_time": true, "last_over_time": true,
	"quantile_over_time": true, "predict_linear": true, "exp": true, "ln": true, "log2": true, "log10": true, "sqrt": true,
}

var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true,
}

var groupingKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

type token struct {
	kind byte // 'i' identifier, 's' string, 'n' number, 'p' punctuation
	text string
}

func lexPromQL(s string) ([]token, error) {
	var toks []token
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case isIdent(c, true):
			j := i + 1
			for j < len(s) && isIdent(s[j], false) {
				j++
			}
			toks = append(toks, token{'i', s[i:j]})
			i = j
		case c >= '0' && c <= '9' || c == '.':
			j := i + 1
			for j < len(s) && (isIdent(s[j], false) && s[j] != ':' || s[j] == '.' || (s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E')) {
				j++
			}
			toks = append(toks, token{'n', s[i:j]})
			i = j
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			raw := s[i : j+1]
			var v string
			var err error
			switch c {
			case '`':
				v = raw[1 : len(raw)-1]
			case '\'':
				v, err = strconv.Unquote(`"` + strings.ReplaceAll(strings.ReplaceAll(raw[1:len(raw)-1], `\'`, `'`), `"`, `\"`) + `"`)
			default:
				v, err = strconv.Unquote(raw)
			}
			if err != nil {
				return nil, fmt.Errorf("string %s: %v", raw, err)
			}
			toks = append(toks, token{'s', v})
			i = j + 1
		default:
			n := 1
			if i+1 < len(s) && strings.Contains("== != <= >= =~ !~", s[i:i+2]) {
				n = 2
			}
			p := s[i : i+n]
			if !strings.Contains("(){}[],+-*/%^<>=!~:", p[:1]) || p == "!" || p == "~" {
				return nil, fmt.Errorf("unexpected %q at %d", p, i)
			}
			toks = append(toks, token{'p', p})
			i += n
		}
	}
	return toks, nil
}

func parsePromQL(expr string) (refs, error) {
	var r refs
	toks, err := lexPromQL(expr)
	if err != nil {
		return r, err
	}
	at := func(i int, kind byte, text string) bool {
		return i < len(toks) && toks[i].kind == kind && (text == "" || toks[i].text == text)
	}
	// label_replace/label_join calls open at these depths, with the commas seen.
	type call struct{ depth, commas int }
	var calls []call
	depth := 0
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		switch {
		case tk.kind == 'i' && groupingKeywords[strings.ToLower(tk.text)]:
			if !at(i+1, 'p', "(") {
				if strings.HasPrefix(strings.ToLower(tk.text), "group_") {
					continue // group_left without labels
				}
				return r, fmt.Errorf("%s without a label list", tk.text)
			}
			for i += 2; !at(i, 'p', ")"); i++ {
				switch {
				case at(i, 'i', ""):
					r.grouping = append(r.grouping, toks[i].text)
				case at(i, 'p', ","):
				default:
					return r, fmt.Errorf("bad label list after %s", tk.text)
				}
			}
		case tk.kind == 'i' && promqlKeywords[strings.ToLower(tk.text)]:
		case tk.kind == 'i' && (at(i+1, 'p', "(") || promqlFuncs[tk.text] && i+1 < len(toks) && groupingKeywords[toks[i+1].text]):
			if !promqlFuncs[tk.text] {
				return r, fmt.Errorf("unknown function %s", tk.text)
			}
			if tk.text == "label_replace" || tk.text == "label_join" {
				calls = append(calls, call{depth: depth + 1})
			}
		case tk.kind == 'i' || tk.kind == 'p' && tk.text == "{":
			s := selector{}
			if tk.kind == 'i' {
				s.name = tk.text
				if !at(i+1, 'p', "{") {
					r.selectors = append(r.selectors, s)
					continue
				}
				i++
			}
			for i++; !at(i, 'p', "}"); i++ {
				if !at(i, 'i', "") || !at(i+1, 'p', "") || !at(i+2, 's', "") {
					return r, fmt.Errorf("bad matcher in selector of %q", s.name)
				}
				m := matcher{toks[i].text, toks[i+1].text, toks[i+2].text}
				if !slices.Contains([]string{"=", "!=", "=~", "!~"}, m.op) {
					return r, fmt.Errorf("bad matcher operator %q", m.op)
				}
				if m.label == "__name__" && m.op == "=" {
					s.name = m.value
				} else {
					s.matchers = append(s.matchers, m)
				}
				i += 3
				if !at(i, 'p', ",") && !at(i, 'p', "}") {
					return r, fmt.Errorf("selector of %q not closed", s.name)
				}
				if at(i, 'p', "}") {
					i--
				}
			}
			if s.name == "" {
				return r, fmt.Errorf("selector without a metric name")
			}
			r.selectors = append(r.selectors, s)
		case tk.kind == 'p' && tk.text == "[":
			for i++; i < len(toks) && !at(i, 'p', "]"); i++ {
			}
			if i >= len(toks) {
				return r, fmt.Errorf("range not closed")
			}
		case tk.kind == 'p' && tk.text == "(":
			depth++
		case tk.kind == 'p' && tk.text == ")":
			if len(calls) > 0 && calls[len(calls)-1].depth == depth {
				calls = calls[:len(calls)-1]
			}
			depth--
			if depth < 0 {
				return r, fmt.Errorf("unbalanced )")
			}
		case tk.kind == 'p' && tk.text == ",":
			if len(calls) > 0 && calls[len(calls)-1].depth == depth {
				calls[len(calls)-1].commas++
				if calls[len(calls)-1].commas == 1 && at(i+1, 's', "") {
					r.created = append(r.created, toks[i+1].text)
				}
			}
		}
	}
	if depth != 0 {
		return r, fmt.Errorf("unbalanced (")
	}
	return r, nil
}

func TestCheckRefs(t *testing.T) {
	known := knownSeries(t)
	for _, tc := range []struct {
		expr string
		bad  string // part of the one problem expected; "" for none
	}{
		{`sum by (reason) (rate(xdpcache_fills_refused_total{reason="stale",instance=~".*"}[5m]))`, ""},
		{`memcached_commands_total{source="",command="cas",status="badval"}`, ""},
		{`memcached_commands_total{source="xdpcache",command="get",status="hit"}`, ""},
		{`sum by (host) (label_replace(memcached_up, "host", "$1", "instance", "(.*):[0-9]+"))`, ""},
		{`xdpcache_flushes_total{cause=~"unreadable|command"}`, ""},
		{`memcached_get_hits_total`, "exposed neither"},
		{`xdpcache_fills_refused_total{cause="stale"}`, "no label cause"},
		{`xdpcache_fills_refused_total{reason="nope"}`, "selects nothing"},
		{`xdpcache_flushes_total{cause=~"unread"}`, "selects nothing"},
		{`memcached_commands_total{command="gets"}`, "selects nothing"},
		{`memcached_commands_total{source="memcached"}`, "selects nothing"},
		{`sum by (host) (memcached_up)`, "grouping by host"},
		{`time()`, "no series"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			r, err := parsePromQL(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			problems := checkRefs(r, known)
			if tc.bad == "" && len(problems) > 0 || tc.bad != "" && (len(problems) != 1 || !strings.Contains(problems[0], tc.bad)) {
				t.Errorf("problems %q, want one with %q", problems, tc.bad)
			}
		})
	}
}
