package analysis

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/gitscan"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/git"
)

// digestOf stands for a value's HMAC in these tests: any bytes do, since
// the analysis only compares them.
func digestOf(v string) []byte { return []byte("digest of " + v) }

func leakAt(path string, obj inventory.Ref, key, value string, line int, commit string, atHead bool) git.Finding {
	return git.Finding{
		Leak: gitscan.Leak{Rule: finding.PlaintextSecretInGit, Severity: finding.High, Line: line, Object: obj, Key: key,
			Form: gitscan.FormStringData, LengthClass: "under 16 characters", Digest: digestOf(value)},
		Path: path, Origin: git.OriginHistory, Commit: commit, CommitTime: time.Unix(1700000000, 0), PresentAtHead: atHead,
	}
}

var dbRef = inventory.Ref{Kind: "Secret", Namespace: "a", Name: "db"}

func runGit(t *testing.T, gi *GitInput, objs ...any) *report.Report {
	t.Helper()
	b := inventory.NewBuilder()
	for _, o := range objs {
		if _, _, err := b.Add(o, inventory.Location{Layer: "cluster"}); err != nil {
			t.Fatal(err)
		}
	}
	return Run(Input{Inventory: b.Build(), Git: gi}, Options{})
}

func findingsOf(r *report.Report, rule string) []report.Finding {
	var out []report.Finding
	for _, f := range r.Findings {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

// TestGitFingerprint pins what identifies a git finding: rule, object,
// path and key; not the value, the line, the form, the commit, nor what
// was read (history, index, working tree).
func TestGitFingerprint(t *testing.T) {
	base := leakAt("deploy/db.yaml", dbRef, "password", "v1", 7, "c1", true)
	fp := func(f git.Finding) string {
		t.Helper()
		fs := findingsOf(runGit(t, &GitInput{Result: &git.Result{Findings: []git.Finding{f}}}), f.Leak.Rule)
		if len(fs) != 1 {
			t.Fatalf("findings %+v", fs)
		}
		return fs[0].Fingerprint
	}
	want := fp(base)
	same := map[string]func(*git.Finding){
		"value":  func(f *git.Finding) { f.Leak.Digest = digestOf("v2") },
		"line":   func(f *git.Finding) { f.Leak.Line = 70 },
		"form":   func(f *git.Finding) { f.Leak.Form = gitscan.FormData },
		"commit": func(f *git.Finding) { f.Commit, f.RemovedIn, f.PresentAtHead = "c9", "c10", false },
		"origin": func(f *git.Finding) { f.Origin, f.Commit = git.OriginIndex, "" },
	}
	differ := map[string]func(*git.Finding){
		"path":   func(f *git.Finding) { f.Path = "deploy/database.yaml" },
		"key":    func(f *git.Finding) { f.Leak.Key = "user" },
		"object": func(f *git.Finding) { f.Leak.Object.Namespace = "b" },
		"rule":   func(f *git.Finding) { f.Leak.Rule = finding.PlaceholderSecretInGit },
	}
	for name, change := range same {
		f := base
		change(&f)
		if got := fp(f); got != want {
			t.Errorf("changing the %s changes the fingerprint", name)
		}
	}
	for name, change := range differ {
		f := base
		change(&f)
		if got := fp(f); got == want {
			t.Errorf("changing the %s does not change the fingerprint", name)
		}
	}
}

// TestGitCorrelate: a live Secret key whose current value is in git
// raises KH412 and marks the Secret; one rotated since does not; the
// severity follows what leaked.
func TestGitCorrelate(t *testing.T) {
	api := inventory.Ref{Kind: "Secret", Namespace: "a", Name: "api"}
	ca := inventory.Ref{Kind: "Secret", Namespace: "a", Name: "ca"}
	chart := inventory.Ref{Kind: "HelmValues", Name: "values.yaml"}
	caLeak := leakAt("certs/ca.yaml", ca, "ca.crt", "ca-pem", 4, "c2", true)
	caLeak.Leak.Severity = finding.Low
	gi := &GitInput{
		Result: &git.Result{Findings: []git.Finding{
			leakAt("deploy/db.yaml", dbRef, "password", "old-password", 7, "c1", false),
			// The same value under a chart: found by value, not by name.
			leakAt("chart/values.yaml", chart, "apiToken", "live-token", 3, "c3", true),
			caLeak,
		}},
		LiveValues: map[inventory.Ref]map[string][]byte{
			dbRef: {"password": digestOf("new-password")}, // rotated since
			api:   {"token": digestOf("live-token"), "user": digestOf("nobody-committed-me")},
			ca:    {"ca.crt": digestOf("ca-pem")},
		},
	}
	secret := func(ref inventory.Ref) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: meta(ref.Namespace, ref.Name)}
	}
	r := runGit(t, gi, secret(dbRef), secret(api), secret(ca))
	got := findingsOf(r, finding.LiveSecretValueInGit)
	if len(got) != 2 {
		t.Fatalf("KH412 findings %+v, want a/api token and a/ca ca.crt", got)
	}
	byObject := map[string]report.Finding{}
	for _, f := range got {
		byObject[f.Object.Name+" "+f.Key] = f
	}
	tok := byObject["api token"]
	if tok.Severity != "critical" || tok.Location == nil || tok.Location.Path != "chart/values.yaml" || tok.ValueHash != "" ||
		!strings.HasPrefix(tok.Message, `Secret/a/api key "token": its current value is in git at chart/values.yaml:3 in commit c3; still present at HEAD: rotate it now`) {
		t.Errorf("a/api token: %+v", tok)
	}
	if f := byObject["ca ca.crt"]; f.Severity != "low" {
		t.Errorf("a live ca.crt found in git: severity %q, want the leak's (low)", f.Severity)
	}
	for _, s := range r.Secrets {
		switch s.Name {
		case "db":
			if s.Git == nil || s.Git.LiveValueInGit || s.Git.PresentAtHead || !s.Git.Plaintext {
				t.Errorf("a/db (rotated since its commit): git %+v", s.Git)
			}
		case "api":
			if s.Git == nil || !s.Git.LiveValueInGit || !s.Git.Plaintext || !s.Git.PresentAtHead {
				t.Errorf("a/api: git %+v", s.Git)
			}
		}
	}
	if c := r.Coverage.Sources[len(r.Coverage.Sources)-1].Git; c == nil || !c.Correlated {
		t.Errorf("coverage %+v", c)
	}

	// Under the operator's key, the live value's digest is printed.
	gi.ValueHashes = true
	for _, f := range findingsOf(runGit(t, gi, secret(api)), finding.LiveSecretValueInGit) {
		if f.ValueHash != hex.EncodeToString(digestOf("live-token")) {
			t.Errorf("valueHash %q", f.ValueHash)
		}
	}
}

// TestGitDeterministic: the same scan in another order gives the same
// report.
func TestGitDeterministic(t *testing.T) {
	fs := []git.Finding{
		leakAt("a.yaml", dbRef, "password", "1", 1, "c1", true),
		leakAt("a.yaml", dbRef, "password", "2", 1, "c2", false),
		leakAt("b.yaml", dbRef, "user", "3", 2, "c1", true),
	}
	render := func(fs []git.Finding) string {
		var b strings.Builder
		for _, f := range runGit(t, &GitInput{Result: &git.Result{Findings: fs}}).Findings {
			b.WriteString(f.Fingerprint + " " + f.Message + "\n")
		}
		return b.String()
	}
	want := render(fs)
	if got := render([]git.Finding{fs[2], fs[1], fs[0]}); got != want {
		t.Errorf("order changes the report:\n%s\nwant:\n%s", got, want)
	}
}

// TestGitRecommendation: a Secret of the report that leaked into git gets
// Sealed Secrets (static configuration) with a rotate action; a committed
// object that is no Secret of the report gets KH501 at its place in git;
// a placeholder recommends nothing.
func TestGitRecommendation(t *testing.T) {
	flags := inventory.Ref{Kind: "Secret", Namespace: "a", Name: "flags"}
	gitOnlyDB := inventory.Ref{Kind: "Secret", Namespace: "b", Name: "orders-db"}
	gitOnlyFlags := inventory.Ref{Kind: "Secret", Namespace: "b", Name: "banner"}
	placeholder := leakAt("deploy/tmpl.yaml", inventory.Ref{Kind: "Secret", Namespace: "b", Name: "template"}, "motd", "changeme", 3, "c4", true)
	placeholder.Leak.Placeholder, placeholder.Leak.Rule = true, finding.PlaceholderSecretInGit
	gi := &GitInput{Result: &git.Result{Findings: []git.Finding{
		leakAt("deploy/flags.yaml", flags, "flags.json", "on", 5, "c1", false),
		leakAt("deploy/orders.yaml", gitOnlyDB, "password", "pw", 9, "c2", true),
		leakAt("deploy/orders.yaml", gitOnlyDB, "username", "orders", 8, "c2", true),
		leakAt("deploy/banner.yaml", gitOnlyFlags, "motd", "hello", 4, "c3", true),
		placeholder,
	}}}
	live := &corev1.Secret{ObjectMeta: meta(flags.Namespace, flags.Name), StringData: map[string]string{"flags.json": "KEYHOLE-CANARY"}}
	r := runGit(t, gi, live)

	if len(r.Secrets) != 1 {
		t.Fatalf("secrets %+v", r.Secrets)
	}
	rec := r.Secrets[0].Recommendation
	if rec.Target != "sealed-secrets" || rec.Rule != "plaintext-in-git" || len(rec.Actions) != 1 || rec.Actions[0].ID != "rotate" {
		t.Errorf("recommendation of the committed live Secret: %+v", rec)
	}
	got := map[string]report.Finding{}
	for _, f := range findingsOf(r, finding.MigrationSuggested) {
		got[f.Object.String()] = f
	}
	want := map[string]struct{ target, path string }{
		"Secret/a/flags":     {"Sealed Secrets", ""},
		"Secret/b/orders-db": {"Vault", "deploy/orders.yaml"},
		"Secret/b/banner":    {"Sealed Secrets", "deploy/banner.yaml"},
	}
	if len(got) != len(want) {
		t.Errorf("KH501 on %v, want on %v", keys(got), want)
	}
	for obj, w := range want {
		f, ok := got[obj]
		if !ok {
			t.Errorf("no KH501 on %s", obj)
			continue
		}
		if !strings.Contains(f.Message, "should move to "+w.target+" (") {
			t.Errorf("KH501 on %s: %q does not recommend %s", obj, f.Message, w.target)
		}
		path := ""
		if f.Location != nil {
			path = f.Location.Path
		}
		if path != w.path {
			t.Errorf("KH501 on %s located at %q, want %q", obj, path, w.path)
		}
	}
}
