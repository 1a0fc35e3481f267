package deploytest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/keyhole-sec/keyhole/internal/metrics"
)

const dashboard = "../../dashboards/keyhole.json"

// targetLabels are the labels Prometheus (or its configuration) adds to
// every keyhole series, beyond the catalog's: a dashboard may select and
// group on them.
var targetLabels = []string{"cluster", "job", "instance", "pod", "le"}

func catalogByName() map[string]metrics.Definition {
	m := map[string]metrics.Definition{}
	for _, d := range metrics.Catalog {
		m[d.Name] = d
		if d.Type == metrics.Histogram {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				m[d.Name+s] = d
			}
		}
	}
	return m
}

type grafanaPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource json.RawMessage `json:"datasource"`
			AllValue   string          `json:"allValue"`
			IncludeAll bool            `json:"includeAll"`
		} `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

// query is one PromQL expression of the dashboard and where it is.
// variable is true for a template variable's query, which cannot filter
// on itself.
type query struct {
	where, expr string
	variable    bool
}

// TestDashboard holds dashboards/keyhole.json to the code: schema
// version, variables, every query parses as PromQL (promtool), uses only
// metrics in internal/metrics's Catalog with labels they have, and
// filters on the cluster and namespace variables (a variable's own query
// excepted); and every panel the
// issue asks for has a query.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want 39 or newer", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("no uid or title")
	}

	var queries []query
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		switch v.Type {
		case "datasource":
			if string(v.Query) != `"prometheus"` {
				t.Errorf("variable %s: query %s, want \"prometheus\"", v.Name, v.Query)
			}
		case "query":
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Errorf("variable %s: query %s: %v", v.Name, v.Query, err)
			}
			if !strings.Contains(string(v.Datasource), "${datasource}") {
				t.Errorf("variable %s: datasource %s, want ${datasource}", v.Name, v.Datasource)
			}
			if !v.IncludeAll || v.AllValue != ".*" {
				t.Errorf("variable %s: All must be offered as .*, which also matches series without the label", v.Name)
			}
			// label_values(SELECTOR, LABEL): the selector is PromQL.
			m := regexp.MustCompile(`^label_values\((.+),\s*([a-z_]+)\)$`).FindStringSubmatch(q.Query)
			if m == nil {
				t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
				continue
			}
			queries = append(queries, query{where: "variable " + v.Name, expr: m[1], variable: true})
		}
	}
	for name, typ := range map[string]string{"datasource": "datasource", "cluster": "query", "namespace": "query"} {
		if vars[name] != typ {
			t.Errorf("variable %s: type %q, want %q", name, vars[name], typ)
		}
	}

	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %d %q has no query", p.ID, p.Title)
			}
			if !strings.Contains(string(p.Datasource), "${datasource}") {
				t.Errorf("panel %d %q: datasource %s, want ${datasource}", p.ID, p.Title, p.Datasource)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %d %q target %s: no expr", p.ID, p.Title, tg.RefID)
				}
				queries = append(queries, query{where: fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), expr: tg.Expr})
			}
		}
	}
	walk(d.Panels)

	catalog := catalogByName()
	used := map[string]bool{}
	for _, q := range queries {
		checkQuery(t, q, catalog, used)
	}
	// The panels the issue asks for, by the metric each needs.
	for _, m := range []string{
		"keyhole_secret_exposure_score",           // most exposed Secrets
		"keyhole_secret_severity",                 // Secrets by severity over time
		"keyhole_findings",                        // namespace × severity
		"keyhole_secret_readers",                  // readers by path kind
		"keyhole_secret_env_injections",           // env-injected Secrets
		"keyhole_git_plaintext_secrets",           // plaintext in git
		"keyhole_secret_managed",                  // migration progress
		"keyhole_last_analysis_timestamp_seconds", // daemon health
		"keyhole_source_up",
		"keyhole_leader",
		"keyhole_cross_environment_readers", // Secrets readable from a lower environment
		"keyhole_etcd_encryption",           // encryption at rest of Secrets
		"keyhole_secret_actual_readers",     // could read vs did read
		"keyhole_secret_unused_readers",
		"keyhole_indirect_analysis_complete", // readers of direct reads only
	} {
		if !used[m] {
			t.Errorf("no panel queries %s", m)
		}
	}

	// promtool parses every query, as the recording rule of a throwaway
	// rule file, with Grafana's variables replaced.
	pt := promtoolBinary(t)
	repl := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
		"${datasource}", "x", "$cluster", ".*", "$namespace", ".*")
	var rf ruleFile
	g := ruleGroup{Name: "dashboard"}
	for i, q := range queries {
		g.Rules = append(g.Rules, rule{Record: fmt.Sprintf("dashboard:query%d", i), Expr: repl.Replace(q.expr)})
	}
	rf.Groups = []ruleGroup{g}
	y, err := yaml.Marshal(rf)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(f, y, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := promtool(t, pt, "check", "rules", f); err != nil {
		t.Errorf("a dashboard query is not PromQL: promtool check rules: %v\n%s\n(query N is %s, in the order: %v)", err, out, f, queryList(queries))
	}
}

func queryList(qs []query) string {
	var b strings.Builder
	for i, q := range qs {
		fmt.Fprintf(&b, "\n  query%d: %s", i, q.where)
	}
	return b.String()
}

// checkQuery requires every metric in q to be in the catalog, every
// selector of a keyhole metric to filter on $cluster (and on $namespace
// where the metric has a namespace label), and every label it selects on
// or groups by to be one the metrics in q carry.
func checkQuery(t *testing.T, q query, catalog map[string]metrics.Definition, used map[string]bool) {
	t.Helper()
	expr := q.expr
	// Selectors: a metric name and its {matchers}. Label values are
	// quoted and never contain braces here.
	sel := regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	labels := slices.Clone(targetLabels)
	names := 0
	for _, m := range sel.FindAllStringSubmatch(expr, -1) {
		name, matchers := m[1], m[2]
		def, ok := catalog[name]
		if !ok {
			t.Errorf("%s: %s is not a metric keyhole exports (internal/metrics Catalog):\n  %s", q.where, name, expr)
			continue
		}
		names++
		used[def.Name] = true
		labels = append(labels, def.Labels...)
		if q.variable {
			continue
		}
		if !strings.Contains(matchers, `cluster=~"$cluster"`) {
			t.Errorf("%s: %s does not filter on cluster=~\"$cluster\":\n  %s", q.where, name, expr)
		}
		wantNS := slices.Contains(def.Labels, "namespace")
		hasNS := strings.Contains(matchers, `namespace=~"$namespace"`)
		if wantNS != hasNS {
			t.Errorf("%s: %s filters on $namespace: %v, want %v (it has a namespace label: %v):\n  %s", q.where, name, hasNS, wantNS, wantNS, expr)
		}
		for _, lm := range regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`).FindAllStringSubmatch(stripStrings(matchers), -1) {
			if !slices.Contains(def.Labels, lm[1]) && !slices.Contains(targetLabels, lm[1]) {
				t.Errorf("%s: %s has no label %s:\n  %s", q.where, name, lm[1], expr)
			}
		}
	}
	// A keyhole metric outside a selector would escape the checks above.
	for _, n := range metricNames(expr) {
		if q.variable {
			if _, ok := catalog[n]; !ok {
				t.Errorf("%s: %s is not a metric keyhole exports (internal/metrics Catalog):\n  %s", q.where, n, expr)
			}
			names++
			continue
		}
		if !regexp.MustCompile(`\b` + n + `\s*\{`).MatchString(expr) {
			t.Errorf("%s: %s without a {cluster=~\"$cluster\"} selector:\n  %s", q.where, n, expr)
		}
	}
	if names == 0 {
		t.Errorf("%s queries no keyhole metric:\n  %s", q.where, expr)
	}
	for _, m := range regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`).FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !slices.Contains(labels, l) {
				t.Errorf("%s: groups by %s, which none of its metrics has:\n  %s", q.where, l, expr)
			}
		}
	}
}
