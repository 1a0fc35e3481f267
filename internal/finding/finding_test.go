package finding

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// TestEveryRuleIsDocumented keeps the catalog and docs/rules in step: each
// rule has a page, each page a rule.
func TestEveryRuleIsDocumented(t *testing.T) {
	dir := filepath.Join("..", "..", "docs", "rules")
	idFormat := regexp.MustCompile(`^KH[1-6][0-9]{2}$`)
	seen := map[string]bool{}
	for _, r := range Catalog() {
		if !idFormat.MatchString(r.ID) {
			t.Errorf("rule id %q is not KH plus three digits in a known group", r.ID)
		}
		if seen[r.ID] {
			t.Errorf("rule id %s appears twice", r.ID)
		}
		seen[r.ID] = true
		page, err := os.ReadFile(filepath.Join(dir, r.ID+".md"))
		if err != nil {
			t.Errorf("rule %s has no documentation page: %v", r.ID, err)
			continue
		}
		text := string(page)
		if !strings.HasPrefix(text, "# "+r.ID+": "+r.Title+"\n") {
			t.Errorf("docs/rules/%s.md does not start with the rule's title %q", r.ID, r.Title)
		}
		if !strings.Contains(text, "**Severity:** "+r.Severity.String()+".") {
			t.Errorf("docs/rules/%s.md does not state severity %s", r.ID, r.Severity)
		}
		for _, section := range []string{"## Why it matters", "## How to fix", "## How to exempt"} {
			if !strings.Contains(text, section) {
				t.Errorf("docs/rules/%s.md lacks %q", r.ID, section)
			}
		}
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	for _, p := range pages {
		id := strings.TrimSuffix(filepath.Base(p), ".md")
		if !seen[id] {
			t.Errorf("docs/rules/%s.md documents a rule that is not in the catalog", id)
		}
	}
	if len(pages) == 0 {
		t.Fatal("no rule pages found")
	}
}

func TestFingerprint(t *testing.T) {
	secret := inventory.Ref{Kind: "Secret", Namespace: "a", Name: "db"}
	base := Fingerprint("KH101", secret)
	if len(base) != 32 {
		t.Errorf("fingerprint %q is not 32 hex digits", base)
	}
	if Fingerprint("KH101", secret) != base {
		t.Error("fingerprint is not stable")
	}
	for name, other := range map[string]string{
		"rule":          Fingerprint("KH102", secret),
		"namespace":     Fingerprint("KH101", inventory.Ref{Kind: "Secret", Namespace: "b", Name: "db"}),
		"kind":          Fingerprint("KH101", inventory.Ref{Kind: "ConfigMap", Namespace: "a", Name: "db"}),
		"discriminator": Fingerprint("KH101", secret, "key"),
		// Length prefixes keep part boundaries apart.
		"boundaries": Fingerprint("KH101", inventory.Ref{Kind: "Secret", Namespace: "a|db", Name: ""}),
	} {
		if other == base {
			t.Errorf("changing the %s does not change the fingerprint", name)
		}
	}
}

func TestParseSeverity(t *testing.T) {
	for i, name := range Severities() {
		got, err := ParseSeverity(strings.ToUpper(name))
		if err != nil || got != Severity(i) || got.String() != name {
			t.Errorf("ParseSeverity(%q) = %v, %v", name, got, err)
		}
	}
	if _, err := ParseSeverity("urgent"); err == nil || !strings.Contains(err.Error(), "critical") {
		t.Errorf("unknown severity error %v does not list the valid ones", err)
	}
	if Critical <= High || High <= Medium || Medium <= Low || Low <= Info {
		t.Error("severities are not ordered")
	}
}
