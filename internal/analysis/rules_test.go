package analysis_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/config"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// rulesDir holds one directory of fixtures per rule: positive/*.yaml on
// which the rule must fire, negative/*.yaml on which it must not.
var rulesDir = filepath.Join("..", "..", "testdata", "rules")

// fixturesNow is the audit time of every fixture, so that staleness does
// not depend on the day the tests run.
var fixturesNow = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

var (
	expectRE   = regexp.MustCompile(`(?m)^# expect: ([0-9]+)\s*$`)
	severityRE = regexp.MustCompile(`(?m)^# severity: ([a-z]+)\s*$`)
)

// offlineUnreachable are the rules no offline audit can raise, so their
// positive fixtures cannot exist; their negative ones still run.
var offlineUnreachable = map[string]string{
	// KH122 compares an aggregated ClusterRole's stored rules with its
	// selectors; offline, the rules are computed from the selectors. The
	// live tests of internal/cli cover it.
	finding.AggregationDrift: "live audits only",
	// KH412 compares live Secrets' values with a git repository
	// (--correlate); internal/cli's TestCorrelateLive covers it against
	// a real control plane, and the analysis's TestGitCorrelate.
	finding.LiveSecretValueInGit: "live audits with --git --correlate only",
	// KH620 and KH621 compare RBAC with the reads of the audit log, which
	// only keyhole serve receives: this package's TestUnusedReaders and
	// TestActualReaders cover them on a summary, and internal/daemon's
	// TestAuditLogLive against a real API server's audit webhook.
	finding.UnusedSecretGrant:     "keyhole serve with an audit source only",
	finding.UnexplainedSecretRead: "keyhole serve with an audit source only",
	// KH601-KH603 come from the API server's own /metrics, which only a
	// live audit or keyhole serve reads. internal/encryption's
	// TestLiveEncryptionAtRest covers them against real control planes
	// (no EncryptionConfiguration, aescbc, identity first, /metrics
	// forbidden), in both modes, and TestResults each message.
	finding.SecretsNotEncrypted:     "live audits and keyhole serve only",
	finding.WeakEncryptionProvider:  "live audits and keyhole serve only",
	finding.EncryptionAtRestUnknown: "live audits and keyhole serve only",
}

// TestRuleFixtures audits every fixture file on its own, offline over the
// bootstrap policy as users run it, and checks that its rule fires (at
// least once, or exactly "# expect: N" times, at "# severity: S") on
// positive files and never on negative ones. Every rule of the catalog
// must have both kinds of fixtures, but for offlineUnreachable ones; no
// output may hold a fixture's value.
func TestRuleFixtures(t *testing.T) {
	seen := map[string]bool{}
	for _, rule := range finding.Catalog() {
		seen[rule.ID] = true
		if strings.HasPrefix(rule.ID, "KH3") {
			// Git rules are raised by scanning files, not by the
			// analysis: their fixtures are testdata/gitscan, held to
			// the same both-kinds requirement by internal/gitscan.
			continue
		}
		t.Run(rule.ID, func(t *testing.T) {
			for _, kind := range []string{"positive", "negative"} {
				files, err := filepath.Glob(filepath.Join(rulesDir, rule.ID, kind, "*.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				_, unreachable := offlineUnreachable[rule.ID]
				if len(files) == 0 && !unreachable {
					t.Errorf("no %s fixtures in %s", kind, filepath.Join(rulesDir, rule.ID, kind))
				}
				for _, file := range files {
					t.Run(kind+"/"+filepath.Base(file), func(t *testing.T) {
						checkFixture(t, rule.ID, file, kind == "positive")
					})
				}
			}
		})
	}
	dirs, err := os.ReadDir(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if d.IsDir() && !seen[d.Name()] {
			t.Errorf("%s has fixtures for %s, which is not in the catalog", rulesDir, d.Name())
		}
	}
}

func checkFixture(t *testing.T, rule, file string, positive bool) {
	t.Helper()
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ruleConfig(t, rule)
	in, err := audit.Offline([]string{file}, audit.OfflineOptions{Ignore: cfg.IgnoreFunc()})
	if err != nil {
		t.Fatal(err)
	}
	opts := audit.Options{Now: fixturesNow, Expected: cfg.Expected(), ManyPrincipals: cfg.ManyPrincipalsLimit(),
		Rules: cfg.Overrides(), StaleAfter: cfg.StaleAfterDuration(), MaxDepth: cfg.PathDepth(),
		PodSecurityDefault: cfg.PodSecurityDefault(), Environments: cfg.EnvironmentList()}
	rep, err := audit.Analyze(in, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Errors {
		t.Errorf("the fixture does not load cleanly: %s", e.Message)
	}
	var got []report.Finding
	for _, f := range rep.Findings {
		if f.Rule == rule {
			got = append(got, f)
		}
	}
	describe := func() string {
		var b strings.Builder
		for _, f := range got {
			b.WriteString("\n  " + f.Severity + " " + f.Object.String() + ": " + f.Message)
		}
		return b.String()
	}
	switch {
	case !positive && len(got) > 0:
		t.Errorf("%s fires on a negative fixture:%s", rule, describe())
	case positive && len(got) == 0:
		t.Errorf("%s does not fire", rule)
	}
	if m := expectRE.FindSubmatch(text); m != nil {
		if want, _ := strconv.Atoi(string(m[1])); len(got) != want {
			t.Errorf("%s fires %d times, want %d:%s", rule, len(got), want, describe())
		}
	}
	if m := severityRE.FindSubmatch(text); m != nil {
		for _, f := range got {
			if f.Severity != string(m[1]) {
				t.Errorf("%s on %s has severity %s, want %s", rule, f.Object, f.Severity, m[1])
			}
		}
	}
	for _, format := range report.Formats {
		var out bytes.Buffer
		if err := report.Write(&out, format, rep); err != nil {
			t.Fatalf("format %s: %v", format, err)
		}
		for _, leak := range canaryForms() {
			if bytes.Contains(out.Bytes(), []byte(leak)) {
				t.Errorf("format %s: the report contains %q", format, leak)
			}
		}
	}
}

// ruleConfigFile is the name of a rule directory's config: a keyhole
// config file applied to every fixture of the rule, as audit --config
// applies it, for rules that need configuration to fire (KH610's
// environments).
const ruleConfigFile = "keyhole.yaml"

// ruleConfig loads the rule's config, or returns nil (the empty config)
// when the rule has none.
func ruleConfig(t *testing.T, rule string) *config.Config {
	t.Helper()
	path := filepath.Join(rulesDir, rule, ruleConfigFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// canaryForms are the fixtures' value markers, plain and in base64 at each
// byte alignment. KEYHOLECANARY marks credentials whose format allows no
// hyphen (AWS, GitHub, Stripe).
func canaryForms() []string {
	var forms []string
	for _, c := range []string{"KEYHOLE-CANARY", "KEYHOLECANARY"} {
		forms = append(forms, c)
		for pad := 0; pad < 3; pad++ {
			enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", pad) + c))
			first, last := (pad+2)/3, (pad+len(c))/3
			forms = append(forms, enc[4*first:4*last])
		}
	}
	return forms
}
