// Package finding owns keyhole's rule catalog (stable ids, titles, default
// severities, documentation links), severities, and finding fingerprints.
// Rule ids are KH plus three digits, grouped by hundreds: 1xx RBAC, 2xx
// workloads, 3xx git, 4xx hygiene, 5xx posture, 6xx what the cluster
// itself says (encryption at rest, environments, the audit log). An id is
// never reused.
package finding

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// Severity orders findings and Secrets by urgency.
type Severity int

// Severities, lowest first.
const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < Info || s > Critical {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// Severities returns every severity name, lowest first.
func Severities() []string { return append([]string(nil), severityNames[:]...) }

// ParseSeverity accepts a severity name, case-insensitively.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(s, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want one of %s)", s, strings.Join(severityNames[:], ", "))
}

// Rule is one entry of the catalog.
type Rule struct {
	ID       string
	Title    string
	Severity Severity
	// Summary is one sentence on why the rule matters.
	Summary string
}

// DocsBase is where rule pages live, relative to the repository.
const DocsBase = "https://github.com/keyhole-sec/keyhole/blob/main/docs/rules/"

// HelpURI is the rule's documentation page.
func (r Rule) HelpURI() string { return DocsBase + r.ID + ".md" }

// Rule ids. Keep them in catalog order.
const (
	SecretReadableByEveryone = "KH101"
	SecretReadableOutsideNS  = "KH102"
	SecretReadableByMany     = "KH103"
	SecretReadableIndirectly = "KH104"
	ClusterWideSecretRead    = "KH110"
	DanglingBinding          = "KH120"
	InvalidSubject           = "KH121"
	AggregationDrift         = "KH122"

	SecretInEnvironment          = "KH201"
	HardcodedEnvCredential       = "KH202"
	AutomountedSecretReaderToken = "KH210"
	MissingSecretReference       = "KH220"

	PlaintextSecretInGit     = "KH301"
	PlaintextSecretInChart   = "KH302"
	ConfigMapCredentialInGit = "KH303"
	PlaceholderSecretInGit   = "KH310"

	ConfigMapCredential       = "KH401"
	LegacyServiceAccountToken = "KH402"
	UnusedSecret              = "KH410"
	StaleSecret               = "KH411"
	LiveSecretValueInGit      = "KH412"

	MigrationSuggested = "KH501"

	SecretsNotEncrypted     = "KH601"
	WeakEncryptionProvider  = "KH602"
	EncryptionAtRestUnknown = "KH603"

	CrossEnvironmentRead = "KH610"

	UnusedSecretGrant     = "KH620"
	UnexplainedSecretRead = "KH621"
)

var catalog = []Rule{
	{SecretReadableByEveryone, "Secret readable by everyone", Critical,
		"Every authenticated user, every ServiceAccount or anonymous requests can read the Secret's value."},
	{SecretReadableOutsideNS, "Secret readable from outside its namespace", High,
		"A principal that belongs to another namespace, or that can read Secrets in every namespace, can read the Secret's value."},
	{SecretReadableByMany, "Secret readable by many principals", Medium,
		"More distinct principals than the configured limit can read the Secret's value."},
	{SecretReadableIndirectly, "Secret obtainable through an indirect path", Medium,
		"A principal that RBAC does not let read the Secret can still obtain its value: by creating or exec'ing into a pod, patching the Secret, minting or stealing a token, impersonating, or binding a role."},
	{ClusterWideSecretRead, "Binding grants Secret reads in every namespace", High,
		"A ClusterRoleBinding lets a non-system subject get, list or watch every Secret of the cluster."},
	{DanglingBinding, "Binding to a role that does not exist", Low,
		"The binding grants nothing today, and grants whatever a role created later under that name holds."},
	{InvalidSubject, "Binding subject that matches no one", Low,
		"The subject can never match a request, so the binding does not do what its author meant."},
	{AggregationDrift, "Aggregated ClusterRole differs from its selectors", Medium,
		"The rules stored in an aggregated ClusterRole are not the union its selectors select, so the authorizer uses rules nobody declared."},

	{SecretInEnvironment, "Secret injected as an environment variable", Low,
		"Environment variables leak into child processes, crash reports, logs and /proc, where a mounted file would not."},
	{HardcodedEnvCredential, "Hard-coded credential in a container's environment", High,
		"The credential is written in the pod specification, which everyone who can read pods or workloads (the view role) can read, and which is kept in Git."},
	{AutomountedSecretReaderToken, "ServiceAccount token that can read Secrets mounted by default", Medium,
		"Whoever runs code in the pod can use the mounted token to read Secrets through the API."},
	{MissingSecretReference, "Reference to a Secret that does not exist", Low,
		"Pods that need the Secret cannot start, and whoever later creates a Secret under that name decides what they receive."},

	{PlaintextSecretInGit, "Plaintext Secret value committed to git", High,
		"Everyone who can clone the repository can read the value, in every copy of its history, even after the file is deleted."},
	{PlaintextSecretInChart, "Plaintext Secret value in a Helm chart or kustomize generator", High,
		"The value that the chart or kustomization turns into a Secret is committed as it is, readable by everyone who can clone the repository."},
	{ConfigMapCredentialInGit, "Credential in a ConfigMap committed to git", High,
		"A ConfigMap is committed as it is, so the credential it holds is readable by everyone who can clone the repository, forever."},
	{PlaceholderSecretInGit, "Placeholder Secret value committed to git", Info,
		"A Secret manifest holds a placeholder such as changeme: harmless as written, but a sign that real values may be filled in and committed next."},

	{ConfigMapCredential, "Credential stored in a ConfigMap", High,
		"ConfigMaps are not treated as confidential: the view role and many controllers read them, and they are kept in Git."},
	{LegacyServiceAccountToken, "Long-lived ServiceAccount token Secret", Medium,
		"A legacy ServiceAccount token never expires: a copy stays valid until the Secret is deleted."},
	{UnusedSecret, "Secret not referenced by any workload", Low,
		"A credential nobody uses can still be read by everyone who can read Secrets in its namespace, and is rarely rotated."},
	{StaleSecret, "Secret not rotated", Low,
		"The Secret's data has not changed for longer than the rotation limit, so a leaked copy stays valid."},
	{LiveSecretValueInGit, "Live Secret value found in git history", Critical,
		"The value the Secret holds now is in the repository, readable by everyone who can clone it: rotate it now."},

	{MigrationSuggested, "Secret should move to Sealed Secrets or Vault", Info,
		"Where the value lives adds to its exposure: a plaintext manifest in git, a credential that never rotates, a value every reader of etcd-backed Secrets can read. The recommendation names the target and why."},

	{SecretsNotEncrypted, "Secrets not encrypted at rest", Critical,
		"The API server stores Secrets in etcd as plain base64: whoever reads etcd, its disk or its backups reads every Secret's value, without any Kubernetes permission."},
	{WeakEncryptionProvider, "Secrets encrypted with a provider upstream does not recommend", Low,
		"Secrets are encrypted in etcd, but with a local key kept in a file on the control-plane hosts (aescbc, aesgcm, secretbox) or through the deprecated KMS v1 API, where KMS v2 keeps the key encryption key in an external KMS."},
	{EncryptionAtRestUnknown, "Encryption at rest of Secrets unknown", Info,
		"keyhole could not tell from the API server's metrics whether Secrets are encrypted in etcd (forbidden, unreadable, or no Secret transformation reported yet): it never assumes they are."},

	{CrossEnvironmentRead, "Secret readable from a lower environment", High,
		"An identity of a lower environment (a staging ServiceAccount, a subject bound only in dev namespaces) can read a Secret of a higher one, directly or through an indirect path: a compromise of the less protected environment reaches the more protected one."},

	{UnusedSecretGrant, "Secret read grant unused for the whole audit window", Low,
		"A subject that RBAC lets read Secrets read none of them for the whole audit window: the grant only adds exposure, and the suggested change removes it without taking a read from anyone who made one."},
	{UnexplainedSecretRead, "Secret read that no known grant explains", High,
		"The audit log shows a subject reading a Secret that, by keyhole's analysis of RBAC, it cannot read: a webhook or cloud authorizer granted it, the grant was removed since, or the model is wrong."},
}

// Catalog returns every rule, sorted by id.
func Catalog() []Rule {
	out := append([]Rule(nil), catalog...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Lookup returns the rule with the given id.
func Lookup(id string) (Rule, bool) {
	for _, r := range catalog {
		if r.ID == id {
			return r, true
		}
	}
	return Rule{}, false
}

// Fingerprint identifies a finding across runs: the rule, the object, and
// a discriminator that is stable when files move (a subject, a key name),
// never a value. It is never a file path either, except for git findings
// (KH3xx), whose repository-relative path is where the leak is: the
// discriminator is then the path and the key (see the analysis's git
// rules and docs/configuration.md).
func Fingerprint(rule string, obj inventory.Ref, discriminator ...string) string {
	h := sha256.New()
	for _, part := range append([]string{rule, obj.Kind, obj.Namespace, obj.Name}, discriminator...) {
		// Length-prefix each part so that no two part lists collide.
		fmt.Fprintf(h, "%d:%s|", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Result is what an analyzer reports: one rule violated by one object. The
// analysis turns results into report findings (title, location,
// fingerprint, suppression), so analyzers stay pure and small.
type Result struct {
	Rule string
	// Severity overrides the rule's default when set; most results leave
	// it nil.
	Severity *Severity
	Object   inventory.Ref
	Message  string
	// Discriminator tells apart results of one rule on one object (a
	// container and key name, a subject). It feeds the fingerprint, so it
	// must be stable across runs and file moves, and never a value.
	Discriminator []string
	// Key is the Secret or ConfigMap key concerned, if any (never a value).
	Key string
}
