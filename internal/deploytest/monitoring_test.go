package deploytest

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var update = flag.Bool("update", false, "rewrite deploy/kustomize/monitoring/prometheusrule.yaml and deploy/helm/keyhole/files/alerts.yaml from dashboards/alerts.yaml")

// The monitoring artefacts under test, relative to this package.
const (
	monitoring     = "../../deploy/kustomize/monitoring"
	rulesFile      = "../../dashboards/alerts.yaml"
	rulesTests     = "../../dashboards/alerts_test.yaml"
	prometheusRule = monitoring + "/prometheusrule.yaml"
	runbooks       = "../../docs/runbooks"
	operatorCRDs   = "../../testdata/prometheus-operator"
	runbookBase    = "https://github.com/keyhole-sec/keyhole/blob/main/docs/runbooks/"
)

// PrometheusVersion is the github.com/prometheus/prometheus module whose
// promtool build-prometheus.sh builds; keep the two equal.
const PrometheusVersion = "v0.316.0"

// promtoolBinary is $KEYHOLE_PROMTOOL, else the promtool that
// build-prometheus.sh caches (`make promtool`).
func promtoolBinary(t *testing.T) string {
	t.Helper()
	return cachedTool(t, "promtool", PrometheusVersion, "KEYHOLE_PROMTOOL", "about five minutes")
}

// cachedTool is $env, else the binary name that `make name` caches in
// $XDG_CACHE_HOME/keyhole/tools/name-version (build-name.sh); took says how
// long building it takes, for the message when it is missing.
func cachedTool(t *testing.T, name, version, env, took string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping test that needs " + name)
	}
	if p := os.Getenv(env); p != "" {
		return p
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("locating %s: %v; set %s", name, err, env)
		}
		cache = filepath.Join(home, ".cache")
	}
	p := filepath.Join(cache, "keyhole", "tools", name+"-"+version, name)
	if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("no %s at %s: run `make %s` to build it (once, %s), or point %s at one", name, p, name, took, env)
	}
	return p
}

// promtool runs it and returns its combined output.
func promtool(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// The rule file format Prometheus reads (rule_files:), and the spec of a
// PrometheusRule. Decoding is strict, so a misspelt field fails.
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []rule `yaml:"rules"`
}

type rule struct {
	Alert         string            `yaml:"alert,omitempty"`
	Record        string            `yaml:"record,omitempty"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for,omitempty"`
	KeepFiringFor string            `yaml:"keep_firing_for,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty"`
}

func decodeStrict(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	decodeStrict(t, rulesFile, &rf)
	if len(rf.Groups) == 0 {
		t.Fatalf("%s: no rule groups", rulesFile)
	}
	return rf
}

func alerts(rf ruleFile) []rule {
	var out []rule
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// TestAlertRules checks the rules file with promtool (syntax, and lint as
// errors), runs its unit tests, and requires of every alert: a test where
// it fires and one where it does not, a severity, a summary, a
// description, a runbook section, HA-safe aggregation, and metric names
// keyhole exports.
func TestAlertRules(t *testing.T) {
	pt := promtoolBinary(t)
	if out, err := promtool(t, pt, "check", "rules", "--lint=all", "--lint-fatal", rulesFile); err != nil {
		t.Errorf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
	if out, err := promtool(t, pt, "test", "rules", rulesTests); err != nil {
		t.Errorf("promtool test rules %s: %v\n%s", rulesTests, err, out)
	}

	rf := loadRules(t)
	var tests struct {
		RuleFiles          []string `yaml:"rule_files"`
		EvaluationInterval string   `yaml:"evaluation_interval"`
		Tests              []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	b, err := os.ReadFile(rulesTests)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatalf("%s: %v", rulesTests, err)
	}
	if !slices.Equal(tests.RuleFiles, []string{filepath.Base(rulesFile)}) {
		t.Errorf("%s tests rule_files %v, want [%s]", rulesTests, tests.RuleFiles, filepath.Base(rulesFile))
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}

	index, err := os.ReadFile(filepath.Join(runbooks, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	catalog := catalogByName()
	seen := map[string]bool{}
	for _, a := range alerts(rf) {
		t.Run(a.Alert, func(t *testing.T) {
			if seen[a.Alert] {
				t.Errorf("alert %s defined twice", a.Alert)
			}
			seen[a.Alert] = true
			if !fires[a.Alert] || !quiet[a.Alert] {
				t.Errorf("%s: tested firing %v, not firing %v; want both", rulesTests, fires[a.Alert], quiet[a.Alert])
			}
			if s := a.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("severity label %q, want critical or warning", s)
			}
			if a.Annotations["summary"] == "" || a.Annotations["description"] == "" {
				t.Error("no summary or description annotation")
			}
			page := a.Alert + ".md"
			if got := a.Annotations["runbook_url"]; got != runbookBase+page {
				t.Errorf("runbook_url %q, want %q", got, runbookBase+page)
			}
			book, err := os.ReadFile(filepath.Join(runbooks, page))
			if err != nil || !strings.HasPrefix(string(book), "# "+a.Alert+"\n") {
				t.Errorf("no runbook %s titled %q: %v", filepath.Join(runbooks, page), a.Alert, err)
			}
			if !strings.Contains(string(index), "]("+page+")") {
				t.Errorf("%s/README.md does not list %s", runbooks, page)
			}
			// Two replicas scrape as two series; an expression that keeps
			// instance or pod alerts twice, and again on failover.
			if !strings.Contains(a.Expr, "absent(") && !regexp.MustCompile(`without \(instance, pod\b`).MatchString(a.Expr) {
				t.Errorf("expr does not aggregate without (instance, pod):\n%s", a.Expr)
			}
			for _, name := range metricNames(a.Expr) {
				if _, ok := catalog[name]; !ok && name != "up" {
					t.Errorf("expr uses %s, which keyhole does not export (internal/metrics Catalog)", name)
				}
			}
		})
	}
	// No runbook outlives its alert.
	pages, err := filepath.Glob(filepath.Join(runbooks, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		if name := strings.TrimSuffix(filepath.Base(p), ".md"); name != "README" && !seen[name] {
			t.Errorf("%s is the runbook of no alert of %s", p, rulesFile)
		}
	}
}

// metricNames are the keyhole_ metric names in a PromQL expression, and
// up. It is a lexical scan, enough for the expressions shipped here:
// promtool parses them for real.
func metricNames(expr string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`\b(keyhole_[a-z0-9_]+|up)\b`).FindAllStringSubmatch(stripStrings(expr), -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// stripStrings blanks PromQL string literals, so that label values are
// not read as names.
func stripStrings(expr string) string {
	return regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`+"`[^`]*`").ReplaceAllString(expr, `""`)
}

// The PrometheusRule is generated from the rules file, so the two cannot
// differ; -update regenerates it.
func generatedPrometheusRule(t *testing.T) []byte {
	t.Helper()
	rf := loadRules(t)
	type meta struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	}
	obj := struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Metadata   meta     `yaml:"metadata"`
		Spec       ruleFile `yaml:"spec"`
	}{
		APIVersion: "monitoring.coreos.com/v1",
		Kind:       "PrometheusRule",
		Metadata: meta{Name: "keyhole", Namespace: namespace, Labels: map[string]string{
			"app.kubernetes.io/name":      "keyhole",
			"app.kubernetes.io/component": "serve",
		}},
		Spec: rf,
	}
	var b bytes.Buffer
	b.WriteString("# GENERATED from dashboards/alerts.yaml, the source of truth: edit that file,\n" +
		"# then go test ./internal/deploytest -run TestPrometheusRuleIsTheRulesFile -update\n" +
		"# Its unit tests are dashboards/alerts_test.yaml. Add labels your Prometheus's\n" +
		"# ruleSelector needs in an overlay.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(obj); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestPrometheusRuleIsTheRulesFile(t *testing.T) {
	want := generatedPrometheusRule(t)
	if *update {
		if err := os.WriteFile(prometheusRule, want, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(prometheusRule)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what %s generates; run go test ./internal/deploytest -run TestPrometheusRuleIsTheRulesFile -update", prometheusRule, rulesFile)
	}
}

// TestMonitoringComponent holds the ServiceMonitor to the Service it
// scrapes and the PrometheusRule to the rules file, in the example
// overlay that includes the component, and requires the base to have no
// prometheus-operator object (clusters without the operator apply it).
func TestMonitoringComponent(t *testing.T) {
	kc := kubectlBinary(t)
	for _, o := range objects(t, render(t, kc, base)) {
		if strings.HasPrefix(o.GetAPIVersion(), "monitoring.coreos.com/") {
			t.Errorf("the base holds %s/%s: it must apply without prometheus-operator", o.GetKind(), o.GetName())
		}
	}

	checkMonitoringObjects(t, objects(t, render(t, kc, overlay)))
}

// checkMonitoringObjects holds the ServiceMonitor and PrometheusRule of a
// rendering (the example overlay, or the Helm chart with monitoring on)
// to its Service and to the rules file.
func checkMonitoringObjects(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	find := func(kind string) *unstructured.Unstructured {
		for _, o := range objs {
			if o.GetKind() == kind && o.GetName() == "keyhole" {
				return o
			}
		}
		t.Fatalf("the rendering has no %s/keyhole", kind)
		return nil
	}
	svc, sm, pr, dep := find("Service"), find("ServiceMonitor"), find("PrometheusRule"), find("Deployment")
	for _, o := range []*unstructured.Unstructured{sm, pr} {
		if o.GetNamespace() != dep.GetNamespace() {
			t.Errorf("%s in namespace %q, the Deployment in %q", o.GetKind(), o.GetNamespace(), dep.GetNamespace())
		}
	}

	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	if len(sel) == 0 {
		t.Error("ServiceMonitor selects no label")
	}
	for k, v := range sel {
		if svc.GetLabels()[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s; the Service has %s=%q", k, v, k, svc.GetLabels()[k])
		}
	}
	// KeyholeDown looks for up{job=~".*keyhole.*"}.
	jobLabel, _, _ := unstructured.NestedString(sm.Object, "spec", "jobLabel")
	if job := svc.GetLabels()[jobLabel]; !strings.Contains(job, "keyhole") {
		t.Errorf("ServiceMonitor jobLabel %q gives job %q; KeyholeDown needs one containing keyhole", jobLabel, job)
	}
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	var portNames []string
	for _, p := range ports {
		if m, ok := p.(map[string]any); ok {
			portNames = append(portNames, fmt.Sprint(m["name"]))
		}
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 {
		t.Fatalf("ServiceMonitor has %d endpoints, want 1", len(eps))
	}
	ep, _ := eps[0].(map[string]any)
	if port := fmt.Sprint(ep["port"]); !slices.Contains(portNames, port) {
		t.Errorf("ServiceMonitor scrapes port %q; the Service has %v", port, portNames)
	}
	if ep["honorLabels"] != true {
		t.Error("ServiceMonitor without honorLabels: Prometheus would rename keyhole's namespace label exported_namespace")
	}

	// The rendered PrometheusRule's groups are the rules file's.
	var fromFile, rendered ruleFile
	fromFile = loadRules(t)
	spec, _, _ := unstructured.NestedMap(pr.Object, "spec")
	b, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rendered); err != nil {
		t.Fatal(err)
	}
	x, _ := yaml.Marshal(fromFile)
	y, _ := yaml.Marshal(rendered)
	if !bytes.Equal(x, y) {
		t.Errorf("rendered PrometheusRule groups differ from %s:\n%s\nvs\n%s", rulesFile, y, x)
	}
}

// installOperatorCRDs installs the hand-written prometheus-operator CRDs
// (testdata/prometheus-operator/README.md) and waits until they serve.
func installOperatorCRDs(t *testing.T, kc string, admin []string) {
	t.Helper()
	mustKubectl(t, kc, nil, append(admin, "apply", "-f", operatorCRDs)...)
	mustKubectl(t, kc, nil, append(admin, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")...)
}

// TestPromtoolVersion keeps the version the tests look for equal to the
// one build-prometheus.sh builds.
func TestPromtoolVersion(t *testing.T) {
	b, err := os.ReadFile("build-prometheus.sh")
	if err != nil {
		t.Fatal(err)
	}
	if want := "PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-" + PrometheusVersion + "}"; !bytes.Contains(b, []byte(want)) {
		t.Errorf("build-prometheus.sh does not build %s (want a line %s)", PrometheusVersion, want)
	}
}
