package remediation

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/docsync"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/report"
)

var update = flag.Bool("update", false, "rewrite the generated rule table in docs/remediation.md")

var docsPath = filepath.Join("..", "..", "docs", "remediation.md")

// TestDocs keeps docs/remediation.md's rule table equal to the code's;
// -update rewrites it.
func TestDocs(t *testing.T) {
	docsync.Check(t, docsPath, DocsBegin, DocsEnd, Reference(), *update, "go test ./internal/remediation -run TestDocs -update after an intended change")
}

// TestRecommend drives every rule of the table, in order, from facts that
// match it and would match later rules too, so that a reordering or a
// broken condition shows.
func TestRecommend(t *testing.T) {
	dbSecret := Facts{Namespace: "pay", Name: "payments-db", Type: "Opaque", Keys: []string{"password", "username"}}
	for _, tc := range []struct {
		name   string
		facts  Facts
		rule   string
		target string
		status string
		reason string // a fragment
	}{
		{"sealed-secrets owner", with(dbSecret, func(f *Facts) { f.ManagedBy = "sealed-secrets"; f.InGit = true; f.Severity = finding.Critical }),
			"migrated", TargetNone, StatusMigrated, "change the value at its SealedSecret"},
		{"external-secrets", with(dbSecret, func(f *Facts) { f.ManagedBy = "external-secrets" }),
			"migrated", TargetNone, StatusMigrated, "external-secrets writes this Secret"},
		{"vault secrets operator", with(dbSecret, func(f *Facts) { f.ManagedBy = "vault-secrets-operator" }),
			"migrated", TargetNone, StatusMigrated, "at its Vault path"},
		{"helm-managed is not migrated", with(dbSecret, func(f *Facts) { f.ManagedBy = "helm" }),
			"dynamic-credential", TargetVault, StatusSuggested, "database secrets engine"},
		{"helm release", Facts{Name: "sh.helm.release.v1.web.v1", Type: "helm.sh/release.v1", Keys: []string{"release"}, Severity: finding.High},
			"helm-release", TargetNone, StatusNotNeeded, "release record"},
		{"service account token", Facts{Name: "db-token", Type: "kubernetes.io/service-account-token", Keys: []string{"token"}, Severity: finding.Critical},
			"service-account-token", TargetBoundToken, StatusSuggested, "bound, expiring tokens"},
		{"readable by everyone", with(dbSecret, func(f *Facts) { f.Severity = finding.Critical; f.InGit = true }),
			"readable-by-everyone", TargetVaultAgent, StatusSuggested, "out of etcd"},
		{"pull secret readable by everyone", Facts{Name: "regcred", Type: "kubernetes.io/dockerconfigjson", Keys: []string{".dockerconfigjson"}, Severity: finding.Critical},
			"readable-by-everyone", TargetVault, StatusSuggested, "kubelet reads it through the API"},
		{"TLS readable by everyone", Facts{Name: "wildcard", Type: "kubernetes.io/tls", Keys: []string{"tls.crt", "tls.key"}, Severity: finding.Critical},
			"readable-by-everyone", TargetVault, StatusSuggested, "PKI engine"},
		{"database key name", Facts{Name: "app", Type: "Opaque", Keys: []string{"DATABASE_URL"}},
			"dynamic-credential", TargetVault, StatusSuggested, "a database credential"},
		{"database by Secret name", with(dbSecret, func(f *Facts) { f.Copies = 2; f.Severity = finding.High }),
			"dynamic-credential", TargetVault, StatusSuggested, "a database credential"},
		{"AWS key", Facts{Name: "uploader", Type: "Opaque", Keys: []string{"aws-secret-access-key"}},
			"dynamic-credential", TargetVault, StatusSuggested, "Vault's AWS secrets engine"},
		{"GCP key file", Facts{Name: "exporter", Type: "Opaque", Keys: []string{"key.json"}},
			"dynamic-credential", TargetVault, StatusSuggested, "Google Cloud"},
		{"db host is not a credential", Facts{Name: "cfg", Type: "Opaque", Keys: []string{"db-host", "db-port"}},
			"low-exposure", TargetNone, StatusNotNeeded, "own namespace"},
		{"copied credential", Facts{Name: "partner-api", Type: "Opaque", Keys: []string{"api-token"}, Copies: 3, InGit: true},
			"shared-across-namespaces", TargetVault, StatusSuggested, "in 3 other namespace(s)"},
		{"replicated credential", Facts{Name: "smtp", Type: "kubernetes.io/basic-auth", Keys: []string{"password", "username"}, Replicated: true},
			"shared-across-namespaces", TargetVault, StatusSuggested, "replicated into other namespaces"},
		{"copied configuration", Facts{Name: "flags", Type: "Opaque", Keys: []string{"flags.json"}, Copies: 3},
			"low-exposure", TargetNone, StatusNotNeeded, "own namespace"},
		{"exposed credential", Facts{Name: "signing", Type: "Opaque", Keys: []string{"private-key"}, Severity: finding.High, InGit: true},
			"exposed-credential", TargetVault, StatusSuggested, "readable from outside its namespace"},
		{"plaintext in git", Facts{Name: "signing", Type: "Opaque", Keys: []string{"private-key"}, Severity: finding.Medium, InGit: true},
			"plaintext-in-git", TargetSealedSecrets, StatusSuggested, "SealedSecret"},
		{"live value in git", Facts{Name: "flags", Type: "Opaque", Keys: []string{"flags.json"}, LiveValueInGit: true},
			"plaintext-in-git", TargetSealedSecrets, StatusSuggested, "only ciphertext"},
		{"exposed configuration", Facts{Name: "flags", Type: "Opaque", Keys: []string{"flags.json"}, Severity: finding.High, EnvInjections: 1},
			"exposed", TargetNone, StatusSuggested, "narrow RBAC"},
		{"env injection", Facts{Name: "flags", Type: "Opaque", Keys: []string{"flags.json"}, Severity: finding.Low, EnvInjections: 2},
			"env-injection", TargetNone, StatusSuggested, "mount it as a file"},
		{"nothing", Facts{Name: "flags", Type: "Opaque", Keys: []string{"flags.json"}, Severity: finding.Low},
			"low-exposure", TargetNone, StatusNotNeeded, "own namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Recommend(tc.facts)
			if got.Rule != tc.rule || got.Target != tc.target || got.Status != tc.status {
				t.Errorf("rule %s, target %s, status %s; want %s, %s, %s (%q)", got.Rule, got.Target, got.Status, tc.rule, tc.target, tc.status, got.Reason)
			}
			if !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", got.Reason, tc.reason)
			}
			if strings.Contains(got.Reason, "\n") {
				t.Errorf("reason %q is not one line", got.Reason)
			}
		})
	}
}

func with(f Facts, change func(*Facts)) Facts {
	f.Keys = append([]string(nil), f.Keys...)
	change(&f)
	return f
}

func TestActions(t *testing.T) {
	ids := func(r report.Recommendation) string {
		var out []string
		for _, a := range r.Actions {
			out = append(out, a.ID)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		name  string
		facts Facts
		want  string
	}{
		{"none", Facts{Name: "x", Keys: []string{"a"}, Severity: finding.Low}, ""},
		{"env", Facts{Name: "x", Keys: []string{"a"}, EnvInjections: 1}, ActionStopEnvInjection},
		{"git history", Facts{Name: "x", Keys: []string{"a"}, InGit: true}, ActionRotate},
		{"migrated since it was committed", Facts{Name: "x", Keys: []string{"a"}, InGit: true, ManagedBy: "sealed-secrets"}, ""},
		{"live value in git, even migrated", Facts{Name: "x", Keys: []string{"a"}, LiveValueInGit: true, ManagedBy: "sealed-secrets"}, ActionRotate},
		{"exposed", Facts{Name: "x", Keys: []string{"a"}, Severity: finding.Medium, Principals: 7}, ActionNarrowRBAC},
		{"ESO-managed and exposed", Facts{Name: "x", Keys: []string{"a"}, Severity: finding.High, ManagedBy: "external-secrets"}, ActionKeepOutOfEtcd + "," + ActionNarrowRBAC},
		{"sealed and exposed", Facts{Name: "x", Keys: []string{"a"}, Severity: finding.High, ManagedBy: "sealed-secrets"}, ActionNarrowRBAC},
		{"all", Facts{Name: "x", Keys: []string{"a"}, Severity: finding.Critical, EnvInjections: 3, InGit: true}, ActionStopEnvInjection + "," + ActionRotate + "," + ActionNarrowRBAC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(Recommend(tc.facts)); got != tc.want {
				t.Errorf("actions %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCopies(t *testing.T) {
	got := Copies([]Facts{
		{Namespace: "a", Name: "api", Type: "Opaque", Keys: []string{"token"}},
		{Namespace: "b", Name: "api", Type: "Opaque", Keys: []string{"token"}},
		{Namespace: "c", Name: "api", Type: "Opaque", Keys: []string{"token"}},
		{Namespace: "d", Name: "api", Type: "Opaque", Keys: []string{"other"}},
		{Namespace: "e", Name: "api", Type: "kubernetes.io/basic-auth", Keys: []string{"token"}},
		{Namespace: "a", Name: "default-token", Type: "kubernetes.io/service-account-token", Keys: []string{"token"}},
		{Namespace: "b", Name: "default-token", Type: "kubernetes.io/service-account-token", Keys: []string{"token"}},
		{Namespace: "a", Name: "empty", Type: "Opaque"},
		{Namespace: "b", Name: "empty", Type: "Opaque"},
	})
	want := map[[2]string]int{{"a", "api"}: 2, {"b", "api"}: 2, {"c", "api"}: 2}
	if len(got) != len(want) {
		t.Fatalf("copies %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("copies of %v = %d, want %d", k, got[k], n)
		}
	}
}

func TestReplicated(t *testing.T) {
	for _, tc := range []struct {
		ann  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"reflector.v1.k8s.emberstack.com/reflection-allowed": "true"}, true},
		{map[string]string{"reflector.v1.k8s.emberstack.com/reflection-allowed": "false"}, false},
		{map[string]string{"replicator.v1.mittwald.de/replicate-from": "infra/smtp"}, true},
		{map[string]string{"example.com/replicate-to": "x"}, false},
	} {
		if got := Replicated(tc.ann); got != tc.want {
			t.Errorf("Replicated(%v) = %v, want %v", tc.ann, got, tc.want)
		}
	}
}
