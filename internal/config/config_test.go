package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

const header = "apiVersion: keyhole.io/v1alpha1\nkind: Config\n"

func TestExampleIsValid(t *testing.T) {
	c, err := Parse("example.yaml", []byte(Example))
	if err != nil {
		t.Fatalf("the documented example does not pass its own check:\n%v", err)
	}
	sev := finding.Medium
	want := map[string]finding.Override{
		"KH102": {Severity: &sev},
		"KH103": {Disabled: true},
	}
	if got := c.Overrides(); !reflect.DeepEqual(got, want) {
		t.Errorf("Overrides() = %+v, want %+v", got, want)
	}
	wantExpected := []rbac.Subject{
		{Kind: "ServiceAccount", Namespace: "backup", Name: "velero"},
		{Kind: "Group", Name: "ops"},
	}
	if got := c.Expected(); !reflect.DeepEqual(got, wantExpected) {
		t.Errorf("Expected() = %v, want %v", got, wantExpected)
	}
	if got := c.ManyPrincipalsLimit(); got != 10 {
		t.Errorf("ManyPrincipalsLimit() = %d, want 10", got)
	}
	if got := c.PathDepth(); got != 4 {
		t.Errorf("PathDepth() = %d, want 4", got)
	}
	if got := c.PathBudget(); got != 20_000_000 {
		t.Errorf("PathBudget() = %d, want 20000000", got)
	}
	if got := c.StaleAfterDuration(); got != 90*24*time.Hour {
		t.Errorf("StaleAfterDuration() = %v, want 90 days", got)
	}
	if c.IgnoreFunc() == nil {
		t.Error("IgnoreFunc() is nil with ignore.paths set")
	}
	var envs []string
	for _, e := range c.EnvironmentList() {
		envs = append(envs, e.Name+": "+e.Selector.String())
	}
	if want := []string{"dev: environment in (dev)", "staging: environment=staging", "prod: environment in (prod,production)"}; !reflect.DeepEqual(envs, want) {
		t.Errorf("EnvironmentList() = %q, want %q", envs, want)
	}
}

// TestExampleDocumented keeps docs/configuration.md's example the one the
// binary prints and the tests check.
func TestExampleDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+Example+"```") {
		t.Error("docs/configuration.md does not contain internal/config/example.yaml verbatim in a ```yaml block; copy it there")
	}
}

func TestEmptyConfig(t *testing.T) {
	c, err := Parse("k.yaml", []byte(header))
	if err != nil {
		t.Fatal(err)
	}
	if c.Overrides() != nil || len(c.Expected()) != 0 || c.ManyPrincipalsLimit() != 0 || c.StaleAfterDuration() != 0 || c.IgnoreFunc() != nil || c.EnvironmentList() != nil {
		t.Errorf("empty config is not neutral: %+v", c)
	}
	var nilConfig *Config
	if nilConfig.Overrides() != nil || nilConfig.Expected() != nil || nilConfig.IgnoreFunc() != nil || nilConfig.EnvironmentList() != nil {
		t.Error("a nil *Config is not neutral")
	}
}

// TestBadConfigs: every problem names the file, the line and column where
// known, and the field.
func TestBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string // error lines, in order
	}{
		{"unknown top-level field", header + "rules: {}\nfoo: 1\n",
			[]string{`k.yaml:4:1: foo: unknown field (known: apiVersion, environments, expectedReaders, ignore, kind, manyPrincipals, paths, rules, staleAfter)`}},
		{"misspelt nested field", header + "rules:\n  KH102:\n    severty: low\n",
			[]string{`k.yaml:5:5: rules.KH102.severty: unknown field: did you mean "severity"?`}},
		{"wrong case", header + "ManyPrincipals: 3\n",
			[]string{`k.yaml:3:1: ManyPrincipals: unknown field: did you mean "manyPrincipals"? (names are case-sensitive)`}},
		{"every unknown field at once", header + "expectedReaders:\n  - kind: Group\n    name: a\n    nam: b\nignore:\n  path: [x]\n",
			[]string{
				`k.yaml:6:5: expectedReaders[0].nam: unknown field: did you mean "name"?`,
				`k.yaml:8:3: ignore.path: unknown field: did you mean "paths"?`,
			}},
		{"every problem at once", header + "rules:\n  KH999: {}\n  KH102: {severty: low}\nfoo: 1\nmanyPrincipals: 0\nexpectedReaders: [{kind: Group}, {kind: User, name: [x]}]\n",
			[]string{
				`k.yaml:4:3: rules.KH999: unknown rule id`,
				`k.yaml:5:11: rules.KH102.severty: unknown field`,
				`k.yaml:6:1: foo: unknown field`,
				`k.yaml:7:1: manyPrincipals: must be at least 1, not 0`,
				`k.yaml:8:19: expectedReaders[0]: Group without a name`,
				`k.yaml:8:53: expectedReaders[1].name: want a string, not a list`,
			}},
		{"bad apiVersion type is not also missing", "apiVersion: [x]\nkind: Config\n",
			[]string{`k.yaml:1:13: apiVersion: want a string, not a list`}},
		{"custom tag", "apiVersion: !x keyhole.io/v1alpha1\nkind: Config\n", []string{`k.yaml:1:13: apiVersion: YAML tag !x is not supported`}},
		{"empty apiVersion", "apiVersion: \"\"\nkind: Config\n", []string{`k.yaml:1:1: apiVersion: missing: want keyhole.io/v1alpha1`}},
		{"alias", header + "expectedReaders:\n  - &g {kind: Group, name: a}\n  - *g\n",
			[]string{`k.yaml:5:5: expectedReaders[1]: aliases (*name) are not supported`}},
		{"everyone cannot be expected", header + "expectedReaders:\n  - {kind: Group, name: system:authenticated}\n",
			[]string{`k.yaml:4:5: expectedReaders[0]: Group/system:authenticated stands for everyone`}},
		{"unknown rule id", header + "rules:\n  KH999: {enabled: false}\n",
			[]string{`k.yaml:4:3: rules.KH999: unknown rule id (known: KH101,`}},
		{"rule id in lower case", header + "rules:\n  kh102: {severity: low}\n",
			[]string{`k.yaml:4:3: rules.kh102: unknown rule id: did you mean "KH102"? (names are case-sensitive)`}},
		{"bad severity", header + "rules:\n  KH102: {severity: urgent}\n",
			[]string{`k.yaml:4:11: rules.KH102.severity: unknown severity "urgent" (want one of info, low, medium, high, critical)`}},
		{"disabled with severity", header + "rules:\n  KH102: {enabled: false, severity: low}\n",
			[]string{`k.yaml:4:3: rules.KH102: a disabled rule has no severity`}},
		{"enabled not a bool", header + "rules:\n  KH102: {enabled: no}\n",
			[]string{`k.yaml:4:20: rules.KH102.enabled: want true or false, not the string "no"`}},
		{"wrong version", "apiVersion: keyhole.io/v1\nkind: Config\n",
			[]string{`k.yaml:1:1: apiVersion: "keyhole.io/v1" is not supported: want keyhole.io/v1alpha1`}},
		{"wrong kind", "apiVersion: keyhole.io/v1alpha1\nkind: Baseline\n",
			[]string{`k.yaml:2:1: kind: "Baseline" is not a keyhole config: want Config`}},
		{"missing header", "manyPrincipals: 3\n",
			[]string{`k.yaml: apiVersion: missing: want keyhole.io/v1alpha1`, `k.yaml: kind: missing: want Config`}},
		{"empty", "# nothing\n", []string{`k.yaml: empty: a config starts with apiVersion: keyhole.io/v1alpha1 and kind: Config`}},
		{"not a mapping", "- a\n", []string{`k.yaml:1:1: want a mapping with apiVersion`}},
		{"two documents", header + "---\n" + header, []string{`k.yaml:4:1: a config is a single YAML document`}},
		{"syntax error", header + "rules: {KH102: [\n", []string{`k.yaml:3: not valid YAML: did not find expected node content`}},
		{"duplicate key", header + "manyPrincipals: 3\nmanyPrincipals: 4\n",
			[]string{`k.yaml:4:1: manyPrincipals: set twice (first on line 3)`}},
		{"merge key", header + "rules:\n  <<: {KH102: {}}\n", []string{`k.yaml:4:3: rules.<<: merge keys (<<) are not supported`}},
		{"manyPrincipals not a number", header + "manyPrincipals: ten\n",
			[]string{`k.yaml:3:17: manyPrincipals: want a whole number, not the string "ten"`}},
		{"manyPrincipals zero", header + "manyPrincipals: 0\n", []string{`k.yaml:3:1: manyPrincipals: must be at least 1, not 0`}},
		{"rules is a list", header + "rules: [KH102]\n", []string{`k.yaml:3:8: rules: want a mapping, not a list`}},
		{"subject kind", header + "expectedReaders:\n  - {kind: serviceaccount, namespace: a, name: b}\n",
			[]string{`k.yaml:4:6: expectedReaders[0].kind: "serviceaccount" is not a subject kind: did you mean "ServiceAccount"?`}},
		{"subject kind unknown", header + "expectedReaders:\n  - {kind: Robot, name: b}\n",
			[]string{`k.yaml:4:6: expectedReaders[0].kind: "Robot" is not a subject kind (known: Group, ServiceAccount, User)`}},
		{"ServiceAccount without namespace", header + "expectedReaders:\n  - {kind: ServiceAccount, name: b}\n",
			[]string{`k.yaml:4:5: expectedReaders[0]: ServiceAccount "b" needs a namespace`}},
		{"Group with namespace", header + "expectedReaders:\n  - {kind: Group, namespace: a, name: b}\n",
			[]string{`k.yaml:4:19: expectedReaders[0].namespace: only a ServiceAccount has a namespace, not a Group`}},
		{"subject without name", header + "expectedReaders:\n  - {kind: Group}\n",
			[]string{`k.yaml:4:5: expectedReaders[0]: Group without a name`}},
		{"duplicate subject", header + "expectedReaders:\n  - {kind: ServiceAccount, namespace: a, name: b}\n  - {kind: User, name: \"system:serviceaccount:a:b\"}\n",
			[]string{`k.yaml:5:5: expectedReaders[1]: ServiceAccount/a/b is listed twice (also expectedReaders[0])`}},
		{"bad glob", header + "ignore:\n  paths: [\"vendor/[a\"]\n", []string{`k.yaml:4:11: ignore.paths[0]: "vendor/[a" is not a valid glob`}},
		{"absolute glob", header + "ignore:\n  paths: [\"/vendor/**\"]\n", []string{`k.yaml:4:11: ignore.paths[0]: "/vendor/**" is absolute`}},
		{"bad duration", header + "staleAfter: 3 months\n", []string{`k.yaml:3:1: staleAfter: "3 months" is not a duration (want, say, 90d or 2160h)`}},
		{"bad days", header + "staleAfter: 1.5d\n", []string{`k.yaml:3:1: staleAfter: "1.5d" is not a number of days`}},
		{"negative duration", header + "staleAfter: -1h\n", []string{`k.yaml:3:1: staleAfter: must be positive, not "-1h"`}},
		{"one environment", header + "environments:\n  - {name: prod, namespaceSelector: env=prod}\n",
			[]string{`k.yaml:3:1: environments: one environment has no lower one to be exposed to: list at least two, lowest first`}},
		{"environment problems, each with its line", header + "environments:\n" +
			"  - {namespaceSelector: env=dev}\n" +
			"  - {name: Staging, namespaceSelector: env=staging}\n" +
			"  - {name: prod}\n" +
			"  - {name: prod2, namespaceSelector: \"env in (prod\"}\n" +
			"  - {name: prod, namespaceSelector: env=prod}\n" +
			"  - {name: qa, namespaceSelector: \"\"}\n" +
			"  - {name: uat, namespaceSelector: \"env = staging\"}\n" +
			"  - {name: [x], namespaceSelector: env=x}\n" +
			"  - {name: y, namespaceSelector: env=y, selector: env=y}\n",
			[]string{
				`k.yaml:4:5: environments[0]: environment without a name`,
				`k.yaml:5:6: environments[1].name: "Staging" is not a valid name: a lowercase RFC 1123 label`,
				`k.yaml:6:5: environments[2]: environment "prod" without a namespaceSelector`,
				`k.yaml:7:19: environments[3].namespaceSelector: "env in (prod" is not a label selector`,
				`k.yaml:8:6: environments[4].name: "prod" is listed twice (also environments[2])`,
				`k.yaml:9:16: environments[5].namespaceSelector: an empty selector selects every namespace`,
				`k.yaml:10:17: environments[6].namespaceSelector: the same selector as environments[1]`,
				`k.yaml:11:12: environments[7].name: want a string, not a list`,
				`k.yaml:12:41: environments[8].selector: unknown field`,
			}},
		{"environments not a list", header + "environments: {dev: env=dev}\n",
			[]string{`k.yaml:3:15: environments: want a list, not a mapping`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("k.yaml", []byte(tc.in))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T, want *Error", err)
			}
			lines := ce.Lines()
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d:\n got %s\nwant %s...", i, lines[i], w)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "keyhole.yaml")
	if err := os.WriteFile(good, []byte(header+"manyPrincipals: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil || c.ManyPrincipalsLimit() != 3 {
		t.Fatalf("Load(%s) = %+v, %v", good, c, err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	_, err = Load(missing)
	if err == nil || err.Error() != missing+": no such file or directory" {
		t.Errorf("Load(missing) error %q", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.HasPrefix(err.Error(), big+": over ") {
		t.Errorf("Load(big) error %q", err)
	}
}

func TestIgnoreFunc(t *testing.T) {
	c, err := Parse("k.yaml", []byte(header+"ignore:\n  paths: [\"vendor/**\", \"**/*_test.yaml\", \"charts/\", \"{a,b}.json\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ignore := c.IgnoreFunc()
	for p, want := range map[string]bool{
		"vendor/x.yaml":          true,
		"vendor/deep/er/x.yaml":  true,
		"app/vendor/x.yaml":      false, // anchored at the --manifests directory
		"app_test.yaml":          true,  // **/ matches no directory too
		"deep/in/app_test.yaml":  true,
		"app_test.yml":           false,
		"charts/x/templates.yml": true, // a directory pattern ignores what is below
		"chartsx/a.yaml":         false,
		"a.json":                 true,
		"c.json":                 false,
		"app.yaml":               false,
	} {
		if got := ignore(p); got != want {
			t.Errorf("ignore(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90d":             90 * 24 * time.Hour,
		"0d":              0,
		"2160h":           2160 * time.Hour,
		"1h30m":           90 * time.Minute,
		"36h0m":           36 * time.Hour,
		"1d":              24 * time.Hour,
		"100d":            100 * 24 * time.Hour,
		"1000d":           1000 * 24 * time.Hour,
		"2h":              2 * time.Hour,
		"15m":             15 * time.Minute,
		"0.5h":            30 * time.Minute,
		"100000":          -1,
		"d":               -1,
		"+3d":             -1,
		"-3d":             -1,
		"3 d":             -1,
		"1w":              -1,
		"":                -1,
		"99999999999999d": -1,
	} {
		got, err := ParseDuration(in)
		if want < 0 {
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

// FuzzParse: no input makes Parse panic, and whatever it accepts is
// valid by its own rules (a second Parse of the same bytes agrees).
func FuzzParse(f *testing.F) {
	f.Add([]byte(Example))
	f.Add([]byte(header + "rules: {KH102: {severity: low}}\n"))
	f.Add([]byte(header + "a: &x [*x]\n"))
	f.Add([]byte(header + "expectedReaders: [&a {kind: Group, name: x}, *a]\nrules: {KH999: {}, KH102: {enabled: 1}}\nfoo: bar\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c1, err1 := Parse("f.yaml", data)
		c2, err2 := Parse("f.yaml", data)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("Parse is not deterministic: %v / %v", err1, err2)
		}
		if err1 != nil {
			if err1.Error() != err2.Error() {
				t.Fatalf("messages differ:\n%v\n%v", err1, err2)
			}
			return
		}
		if c1.APIVersion != APIVersion || c1.Kind != Kind {
			t.Fatalf("accepted apiVersion %q kind %q", c1.APIVersion, c1.Kind)
		}
		for id := range c1.Rules {
			if _, ok := finding.Lookup(id); !ok {
				t.Fatalf("accepted unknown rule %q", id)
			}
		}
		_ = c2
	})
}

func TestPathsSettings(t *testing.T) {
	c, err := Parse("k.yaml", []byte("apiVersion: keyhole.io/v1alpha1\nkind: Config\npaths:\n  maxDepth: 6\n  maxPaths: 50000000\n  podSecurityDefault: baseline\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.PathDepth() != 6 || c.PathBudget() != 50_000_000 || c.PodSecurityDefault() != "baseline" {
		t.Errorf("paths: depth %d, budget %d, default %q", c.PathDepth(), c.PathBudget(), c.PodSecurityDefault())
	}
	var unset *Config
	if unset.PathBudget() != 0 {
		t.Errorf("no config: budget %d, want 0 (the analysis's default)", unset.PathBudget())
	}
	if c, err := Parse("k.yaml", []byte(header)); err != nil || c.PathBudget() != 0 {
		t.Errorf("no paths.maxPaths: budget %d (%v), want 0 (the analysis's default)", c.PathBudget(), err)
	}
	for doc, want := range map[string]string{
		"paths:\n  maxDepth: 0\n":                "k.yaml:4:3: paths.maxDepth: must be from 1 to 10, not 0",
		"paths:\n  maxDepth: 11\n":               "k.yaml:4:3: paths.maxDepth: must be from 1 to 10, not 11",
		"paths:\n  podSecurityDefault: strict\n": `k.yaml:4:3: paths.podSecurityDefault: "strict" is not a Pod Security level: want one of privileged, baseline, restricted`,
		"paths:\n  maxdepth: 3\n":                `k.yaml:4:3: paths.maxdepth: unknown field: did you mean "maxDepth"? (names are case-sensitive)`,
		"paths:\n  maxPaths: 0\n":                "k.yaml:4:3: paths.maxPaths: must be at least 1, not 0",
		"paths:\n  maxPaths: -20\n":              "k.yaml:4:3: paths.maxPaths: must be at least 1, not -20",
		"paths:\n  maxPaths: 1.5\n":              "k.yaml:4:13: paths.maxPaths: want a whole number, not the number 1.5",
		"paths:\n  maxpaths: 3\n":                `k.yaml:4:3: paths.maxpaths: unknown field: did you mean "maxPaths"? (names are case-sensitive)`,
	} {
		_, err := Parse("k.yaml", []byte("apiVersion: keyhole.io/v1alpha1\nkind: Config\n"+doc))
		if err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", doc, err, want)
		}
	}
}
