// Package remediation recommends, for each Secret, where its value should
// live and what else to change: Sealed Secrets for static configuration
// kept in git, Vault for credentials that should rotate or that too many
// can read, the Vault Agent injector or the CSI driver when the value must
// not sit in etcd at all, and a file mount instead of environment
// variables. Its rules are an ordered table (Rules), documented in
// docs/remediation.md: the first rule that matches a Secret's facts
// chooses the target; the actions add up whatever the target.
//
// It sees names, types, key names and the analysis's results, never a
// value.
package remediation

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/workload"
)

// Targets: where a value should live.
const (
	TargetSealedSecrets = "sealed-secrets"
	TargetVault         = "vault"
	// TargetVaultAgent is the Vault Agent injector or the Secrets Store
	// CSI driver: the value reaches the pod as a file and never sits in
	// etcd. The Vault Secrets Operator and External Secrets write a
	// Kubernetes Secret, so they do not meet that need.
	TargetVaultAgent = "vault-agent"
	// TargetBoundToken replaces a long-lived ServiceAccount token Secret
	// with bound, expiring tokens.
	TargetBoundToken = "bound-token"
	TargetNone       = "none"
)

// Statuses of a recommendation.
const (
	StatusSuggested = "suggested"
	StatusMigrated  = "migrated"
	StatusNotNeeded = "not-needed"
)

// Action ids.
const (
	ActionStopEnvInjection = "stop-env-injection"
	ActionRotate           = "rotate"
	ActionNarrowRBAC       = "narrow-rbac"
	ActionKeepOutOfEtcd    = "keep-out-of-etcd"
)

// Managers as the analysis names them (internal/analysis ManagedBy).
const (
	managerSealedSecrets = "sealed-secrets"
	managerESO           = "external-secrets"
	managerVSO           = "vault-secrets-operator"
)

// Secret types the rules treat apart.
const (
	typeServiceAccountToken = string(corev1.SecretTypeServiceAccountToken)
	typeHelmRelease         = "helm.sh/release.v1"
	typeDockerConfigJSON    = string(corev1.SecretTypeDockerConfigJson)
	typeDockerConfig        = string(corev1.SecretTypeDockercfg)
	typeBasicAuth           = string(corev1.SecretTypeBasicAuth)
	typeSSHAuth             = string(corev1.SecretTypeSSHAuth)
	typeTLS                 = string(corev1.SecretTypeTLS)
	typeBootstrapToken      = string(corev1.SecretTypeBootstrapToken)
)

// Facts are what the rules look at: one Secret's names and the analysis's
// results about it.
type Facts struct {
	Namespace, Name string
	Type            string
	Keys            []string
	// ManagedBy is the analysis's: "", sealed-secrets, external-secrets,
	// vault-secrets-operator or helm.
	ManagedBy string
	// Severity is the exposure severity; Principals the number of
	// non-expected subjects that can obtain the value.
	Severity   finding.Severity
	Principals int
	// EnvInjections counts the containers that take it as environment
	// variables.
	EnvInjections int
	// InGit: a plaintext value of it is in the scanned repository (its
	// history, index or working tree); LiveValueInGit: its current value
	// is (--correlate).
	InGit          bool
	LiveValueInGit bool
	// Copies counts the other namespaces that hold a Secret of the same
	// name, type and keys; Replicated says it carries a replicator's
	// annotation (reflector, kubernetes-replicator).
	Copies     int
	Replicated bool
}

// Rule is one row of the table: its name (the recommendation's rule), what
// it matches, in words for docs/remediation.md, and its decision.
type Rule struct {
	Name    string
	When    string
	decide  func(f *Facts, c class) (report.Recommendation, bool)
	Targets []string
}

// Recommend applies the rules to f: the first that matches chooses the
// target, status and reason; then the actions are added.
func Recommend(f Facts) report.Recommendation {
	c := classify(f)
	var rec report.Recommendation
	for _, r := range rules {
		if got, ok := r.decide(&f, c); ok {
			rec = got
			rec.Rule = r.Name
			break
		}
	}
	rec.Actions = actions(f, rec)
	return rec
}

// Rules returns the table, in the order it is applied.
func Rules() []Rule { return append([]Rule(nil), rules...) }

func suggest(target, format string, args ...any) (report.Recommendation, bool) {
	return report.Recommendation{Target: target, Status: StatusSuggested, Reason: fmt.Sprintf(format, args...)}, true
}

var rules = []Rule{
	{
		Name: "migrated", Targets: []string{TargetNone},
		When: "a SealedSecret, an ExternalSecret or a Vault Secrets Operator resource writes the Secret (owner reference or the manager's labels and annotations)",
		decide: func(f *Facts, _ class) (report.Recommendation, bool) {
			source, ok := map[string]string{
				managerSealedSecrets: "its SealedSecret",
				managerESO:           "its ExternalSecret's store",
				managerVSO:           "its Vault path",
			}[f.ManagedBy]
			if !ok {
				return report.Recommendation{}, false
			}
			return report.Recommendation{Target: TargetNone, Status: StatusMigrated,
				Reason: fmt.Sprintf("already migrated: %s writes this Secret, so change the value at %s, not here", f.ManagedBy, source)}, true
		},
	},
	{
		Name: "helm-release", Targets: []string{TargetNone},
		When: "Helm's own release record (type helm.sh/release.v1)",
		decide: func(f *Facts, _ class) (report.Recommendation, bool) {
			if f.Type != typeHelmRelease {
				return report.Recommendation{}, false
			}
			return report.Recommendation{Target: TargetNone, Status: StatusNotNeeded,
				Reason: "Helm's release record: it holds the chart's values, so keep credentials out of values files (see the chart's own Secrets)"}, true
		},
	},
	{
		Name: "service-account-token", Targets: []string{TargetBoundToken},
		When: "a long-lived ServiceAccount token Secret (type kubernetes.io/service-account-token)",
		decide: func(f *Facts, _ class) (report.Recommendation, bool) {
			if f.Type != typeServiceAccountToken {
				return report.Recommendation{}, false
			}
			return suggest(TargetBoundToken, "a ServiceAccount token that never expires: delete it and let pods use bound, expiring tokens (projected volumes, TokenRequest); no store makes a non-expiring token safe")
		},
	},
	{
		Name: "readable-by-everyone", Targets: []string{TargetVaultAgent, TargetVault},
		When: "critical exposure: every authenticated user, every ServiceAccount or anonymous requests can read it. Image pull credentials and TLS certificates, which the kubelet or an ingress controller reads through the API, get vault instead",
		decide: func(f *Facts, _ class) (report.Recommendation, bool) {
			if f.Severity < finding.Critical {
				return report.Recommendation{}, false
			}
			switch f.Type {
			case typeDockerConfigJSON, typeDockerConfig:
				return suggest(TargetVault, "readable by everyone, and the kubelet reads it through the API: narrow RBAC now, and keep the registry credential short-lived from Vault (synced by VSO or ESO)")
			case typeTLS:
				return suggest(TargetVault, "readable by everyone, and its consumers (ingress controllers) read it through the API: narrow RBAC now, and issue the certificate short-lived from Vault's PKI engine (VSO's VaultPKISecret, or cert-manager's Vault issuer)")
			}
			return suggest(TargetVaultAgent, "readable by everyone: keep the value out of etcd with the Vault Agent injector or the CSI driver (VSO and ESO would still write a Secret these readers can read)")
		},
	},
	{
		Name: "dynamic-credential", Targets: []string{TargetVault},
		When: "a database or cloud credential (by key and Secret names), which Vault's secrets engines can issue short-lived",
		decide: func(f *Facts, c class) (report.Recommendation, bool) {
			if c.engine == "" {
				return report.Recommendation{}, false
			}
			return suggest(TargetVault, "%s: Vault's %s secrets engine issues short-lived credentials in place of this standing one", c.what, c.engine)
		},
	},
	{
		Name: "shared-across-namespaces", Targets: []string{TargetVault},
		When: "a credential copied into other namespaces: a Secret of the same name, type and keys in another namespace, or a replicator's annotation",
		decide: func(f *Facts, c class) (report.Recommendation, bool) {
			if !c.credential || (f.Copies == 0 && !f.Replicated) {
				return report.Recommendation{}, false
			}
			if f.Copies == 0 {
				return suggest(TargetVault, "replicated into other namespaces: keep one copy in Vault, synced to each namespace, so it rotates in one place")
			}
			return suggest(TargetVault, "the same credential is in %d other namespace(s): keep one copy in Vault, synced to each, so it rotates in one place", f.Copies)
		},
	},
	{
		Name: "exposed-credential", Targets: []string{TargetVault},
		When: "a credential readable from outside its namespace (high exposure)",
		decide: func(f *Facts, c class) (report.Recommendation, bool) {
			if f.Severity < finding.High || !c.credential {
				return report.Recommendation{}, false
			}
			return suggest(TargetVault, "%s readable from outside its namespace: narrow RBAC now, and serve it from Vault so that it rotates and a copy expires", c.what)
		},
	},
	{
		Name: "plaintext-in-git", Targets: []string{TargetSealedSecrets},
		When: "a plaintext value of it is in the git repository (with --git)",
		decide: func(f *Facts, _ class) (report.Recommendation, bool) {
			if !f.InGit && !f.LiveValueInGit {
				return report.Recommendation{}, false
			}
			return suggest(TargetSealedSecrets, "a plaintext manifest of it is in git: commit a SealedSecret instead, so that the repository holds only ciphertext")
		},
	},
	{
		Name: "exposed", Targets: []string{TargetNone},
		When: "readable from outside its namespace, by many principals, or by an indirect path, and none of the above",
		decide: func(f *Facts, _ class) (report.Recommendation, bool) {
			if f.Severity < finding.Medium {
				return report.Recommendation{}, false
			}
			return suggest(TargetNone, "where the value lives is not the problem: who can read it is; narrow RBAC")
		},
	},
	{
		Name: "env-injection", Targets: []string{TargetNone},
		When: "taken as environment variables, and none of the above",
		decide: func(f *Facts, _ class) (report.Recommendation, bool) {
			if f.EnvInjections == 0 {
				return report.Recommendation{}, false
			}
			return suggest(TargetNone, "injected as environment variables: mount it as a file instead")
		},
	},
	{
		Name: "low-exposure", Targets: []string{TargetNone},
		When: "everything else",
		decide: func(*Facts, class) (report.Recommendation, bool) {
			return report.Recommendation{Target: TargetNone, Status: StatusNotNeeded, Reason: "exposure limited to its own namespace's expected readers"}, true
		},
	},
}

// actions are the changes asked for besides the target.
func actions(f Facts, rec report.Recommendation) []report.Action {
	var out []report.Action
	if f.EnvInjections > 0 {
		out = append(out, report.Action{ID: ActionStopEnvInjection, Text: fmt.Sprintf(
			"%d container(s) take it as environment variables, which leak into child processes, crash dumps and /proc: mount it as a file instead", f.EnvInjections)})
	}
	if f.LiveValueInGit {
		out = append(out, report.Action{ID: ActionRotate, Text: "its current value is in git history: rotate it now; moving it elsewhere does not take it out of the clones"})
	} else if f.InGit && rec.Status != StatusMigrated {
		out = append(out, report.Action{ID: ActionRotate, Text: "git history keeps the committed value: rotate it once the new source is in place"})
	}
	if f.Severity >= finding.Medium && rec.Status == StatusMigrated && f.ManagedBy != managerSealedSecrets {
		out = append(out, report.Action{ID: ActionKeepOutOfEtcd, Text: f.ManagedBy + " still writes a Kubernetes Secret that these readers can read: if they must not, deliver the value with the Vault Agent injector or the CSI driver"})
	}
	if f.Severity >= finding.Medium {
		out = append(out, report.Action{ID: ActionNarrowRBAC, Text: fmt.Sprintf("%d principal(s) beyond its expected readers can obtain it: narrow the grants keyhole explain lists", f.Principals)})
	}
	return out
}

// class is what the type and the names say a Secret holds.
type class struct {
	// credential: a password, token, key or certificate key, not plain
	// configuration.
	credential bool
	// engine names the Vault secrets engine that can issue it short-lived
	// ("database", "AWS"...), what describes it ("a database credential").
	engine, what string
}

var databaseWords = wordSet("db", "database", "postgres", "postgresql", "pg", "pgpass", "mysql", "mariadb", "mongo", "mongodb",
	"redis", "dsn", "jdbc", "sql", "mssql", "sqlserver", "oracle", "cassandra", "couchbase", "elasticsearch", "clickhouse", "snowflake")

var cloudWords = map[string]string{"aws": "AWS", "s3": "AWS", "iam": "AWS", "gcp": "Google Cloud", "google": "Google Cloud", "gcloud": "Google Cloud", "gcs": "Google Cloud", "azure": "Azure"}

// connectionWords name keys that hold a whole connection (a URL or DSN,
// with its password).
var connectionWords = wordSet("url", "uri", "dsn", "connection", "conn", "connstr")

func wordSet(ws ...string) map[string]bool {
	m := make(map[string]bool, len(ws))
	for _, w := range ws {
		m[w] = true
	}
	return m
}

// classify reads the type, the key names and the Secret's name.
func classify(f Facts) class {
	var c class
	credKeys := false
	for _, k := range f.Keys {
		if workload.IsCredentialName(k) {
			credKeys = true
		}
	}
	switch f.Type {
	case typeBasicAuth, typeSSHAuth, typeDockerConfigJSON, typeDockerConfig, typeTLS, typeBootstrapToken:
		c.credential = true
	default:
		c.credential = credKeys
	}
	nameWords := workload.NameWords(f.Name)
	for _, k := range f.Keys {
		ws := workload.NameWords(k)
		// A key names its database or cloud, or the Secret does and the
		// key is a credential or a connection.
		if c.engine == "" {
			c.engine, c.what = dynamicKind(ws, ws, connectionWords)
		}
		if c.engine == "" && (workload.IsCredentialName(k) || anyIn(ws, connectionWords)) {
			c.engine, c.what = dynamicKind(nameWords, ws, connectionWords)
		}
		if c.engine == "" && (k == "key.json" || k == "credentials.json" || k == "service-account.json") {
			c.engine, c.what = "Google Cloud", "a Google Cloud service account key"
		}
	}
	if c.engine != "" {
		c.credential = true
	}
	if c.what == "" && c.credential {
		c.what = "a credential"
	}
	return c
}

// dynamicKind finds a database or cloud word in subject; key must be a
// credential or connection key for a database.
func dynamicKind(subject, key []string, conn map[string]bool) (engine, what string) {
	keyIsSecret := anyIn(key, conn) || workload.IsCredentialName(strings.Join(key, "_"))
	for _, w := range subject {
		if databaseWords[w] && keyIsSecret {
			return "database", "a database credential"
		}
		if cloud, ok := cloudWords[w]; ok && keyIsSecret {
			return cloud, "a " + cloud + " credential"
		}
	}
	return "", ""
}

func anyIn(ws []string, set map[string]bool) bool {
	for _, w := range ws {
		if set[w] {
			return true
		}
	}
	return false
}

// Copies counts, for each Secret, the other namespaces that hold a Secret
// of the same name, type and key names: a credential copied by hand or by
// a replicator. Secrets without keys, ServiceAccount tokens and Helm
// releases never count (their names repeat by construction).
func Copies(secrets []Facts) map[[2]string]int {
	type shape struct{ name, typ, keys string }
	byShape := map[shape][]string{}
	for _, f := range secrets {
		if len(f.Keys) == 0 || f.Type == typeServiceAccountToken || f.Type == typeHelmRelease {
			continue
		}
		keys := append([]string(nil), f.Keys...)
		sort.Strings(keys)
		sh := shape{f.Name, f.Type, strings.Join(keys, "\x00")}
		byShape[sh] = append(byShape[sh], f.Namespace)
	}
	out := map[[2]string]int{}
	for sh, nss := range byShape {
		if len(nss) < 2 {
			continue
		}
		for _, ns := range nss {
			out[[2]string{ns, sh.name}] = len(nss) - 1
		}
	}
	return out
}

// replicatorAnnotations are set by the tools that copy a Secret into
// other namespaces.
var replicatorAnnotations = []string{
	"reflector.v1.k8s.emberstack.com/reflects",
	"reflector.v1.k8s.emberstack.com/reflection-allowed",
	"reflector.v1.k8s.emberstack.com/reflection-auto-enabled",
	"replicator.v1.mittwald.de/replicate-from",
	"replicator.v1.mittwald.de/replicate-to",
	"replicator.v1.mittwald.de/replicate-to-matching",
}

// Replicated reports whether a Secret's annotations say a replicator
// copies it, or that it is such a copy.
func Replicated(annotations map[string]string) bool {
	for _, a := range replicatorAnnotations {
		if v, ok := annotations[a]; ok && v != "" && v != "false" {
			return true
		}
	}
	return false
}
