// Package report owns keyhole's single result type, the keyhole.io/v1alpha1
// Report, and the sinks that format it (table, JSON, SARIF, Markdown).
// Sinks only format: everything they print is already in the Report, apart
// from the static rule catalog (titles, help links) that SARIF describes its
// rules with. The schema is documented in docs/report-format.md; fields are
// only ever added, never renamed.
package report

import (
	"slices"
	"strings"
)

// APIVersion and Kind identify the report schema.
const (
	APIVersion = "keyhole.io/v1alpha1"
	Kind       = "Report"
)

// Report is the result of one audit.
type Report struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Tool       Tool      `json:"tool"`
	Coverage   Coverage  `json:"coverage"`
	Summary    Summary   `json:"summary"`
	Secrets    []Secret  `json:"secrets"`
	Findings   []Finding `json:"findings"`
	Errors     []Error   `json:"errors"`
	// Posture holds cluster-wide facts (encryption at rest); filled by
	// the posture analyzers.
	Posture *Posture `json:"posture,omitempty"`
}

// Tool names the program that wrote the report.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Coverage says what was read and what was not analysed.
type Coverage struct {
	Sources     []SourceCoverage `json:"sources"`
	NotAnalysed []string         `json:"notAnalysed"`
	Authorizers string           `json:"authorizers"`
	// IndirectStopped is set when the search for indirect paths passed
	// its budget (--max-paths, paths.maxPaths) and was stopped: readers,
	// exposure and findings are then those of direct reads only. It is
	// the machine-readable twin of the warning in NotAnalysed, for the
	// metrics (keyhole_indirect_analysis_complete) and other programs.
	IndirectStopped bool `json:"indirectStopped,omitempty"`
}

// AuthorizersNote is the fixed statement of what the analysis can see.
const AuthorizersNote = "RBAC and Node only: webhook and cloud IAM authorizers are not visible"

// SourceCoverage is one source's contribution.
type SourceCoverage struct {
	Kind    string         `json:"kind"`
	Target  string         `json:"target,omitempty"`
	Files   int            `json:"files,omitempty"`
	Objects map[string]int `json:"objects"`
	Ignored map[string]int `json:"ignored,omitempty"`
	// Git is set for a git source: what was read of the repository.
	Git *GitCoverage `json:"git,omitempty"`
	// AuditLog is set for the audit log source: what its summary covers.
	AuditLog *AuditLogCoverage `json:"auditLog,omitempty"`
}

// GitCoverage is what a git source read.
type GitCoverage struct {
	// Read is "history" (commits), "index" (--staged) or "worktree".
	Read string `json:"read"`
	// Branches is "all" or "current", and Since the --since revision,
	// for a history scan.
	Branches string `json:"branches,omitempty"`
	Since    string `json:"since,omitempty"`
	// Head is HEAD's commit, absent for a repository without commits.
	Head string `json:"head,omitempty"`
	// Commits is the number of commits walked, Blobs the number of
	// distinct file versions read.
	Commits int `json:"commits"`
	Blobs   int `json:"blobs"`
	// Shallow marks a shallow clone, whose history is incomplete.
	Shallow bool `json:"shallow,omitempty"`
	// Correlated says that the live Secrets' values were compared with
	// the values found (--correlate).
	Correlated bool `json:"correlated,omitempty"`
}

// AuditLogCoverage is what the audit log summary covers (docs/audit.md).
type AuditLogCoverage struct {
	// Since is when observation started (RFC 3339), Window how far back
	// reads count (a Go duration, "720h0m0s").
	Since  string `json:"since"`
	Window string `json:"window"`
	// Complete is set once a whole window has been observed: only then
	// are unused readers (KH620) reported.
	Complete bool `json:"complete"`
	// Entries are the (subject, target) pairs kept; Evicted those dropped
	// to stay within the bound.
	Entries int    `json:"entries"`
	Evicted uint64 `json:"evicted,omitempty"`
}

// Summary holds the counts people and dashboards look at first.
type Summary struct {
	Secrets            int            `json:"secrets"`
	FindingsBySeverity map[string]int `json:"findingsBySeverity"`
	FindingsByRule     map[string]int `json:"findingsByRule"`
	SecretsBySeverity  map[string]int `json:"secretsBySeverity"`
	Suppressed         int            `json:"suppressed"`
}

// Secret is one Secret with everything known about its exposure. It never
// holds a value.
type Secret struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Keys      []string `json:"keys"`
	// KeysUnknown is set when the source could not learn the key names.
	KeysUnknown    bool           `json:"keysUnknown,omitempty"`
	Readers        ReaderList     `json:"readers"`
	Exposure       Exposure       `json:"exposure"`
	Recommendation Recommendation `json:"recommendation"`
	ManagedBy      string         `json:"managedBy,omitempty"`
	EnvInjections  int            `json:"envInjections,omitempty"`
	Git            *SecretGit     `json:"git,omitempty"`
	// ActualReaders are the subjects the audit log saw reading the Secret
	// within the window (docs/audit.md), sorted by subject; absent when
	// no audit log was read.
	ActualReaders []ActualReader `json:"actualReaders,omitempty"`
	// UnusedReaders are the direct readers that did not read it within
	// the window, each with the RBAC change that removes it (KH620).
	UnusedReaders []UnusedReader `json:"unusedReaders,omitempty"`
	// AuditWindow is set whenever an audit log was read, to the window
	// of ActualReaders (a Go duration): an empty list then means nobody
	// read the Secret, not that nobody looked.
	AuditWindow string `json:"auditWindow,omitempty"`
	// Environment is the environment of the Secret's namespace, when the
	// config defines environments and one selects it.
	Environment string `json:"environment,omitempty"`
	// CrossEnv are the readers from lower environments than Environment
	// (KH610, docs/environments.md), in reader order.
	CrossEnv []CrossEnvRead `json:"crossEnvironment,omitempty"`
	Location *Location      `json:"location,omitempty"`
}

// Subject is a User, Group or ServiceAccount.
type Subject struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	// Covers describes who a well-known group stands for.
	Covers string `json:"covers,omitempty"`
}

// ObjectRef names an object.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// Via is one grant behind a reader or a step: a binding and its role,
// superuser, or another authorizer than RBAC.
type Via struct {
	Binding   *ObjectRef `json:"binding,omitempty"`
	Role      *ObjectRef `json:"role,omitempty"`
	Superuser bool       `json:"superuser,omitempty"`
	// Authorizer names the authorizer that allows the step when it is not
	// RBAC: "Node" for the kubelet's reads of what its pods use.
	Authorizer string `json:"authorizer,omitempty"`
}

// Reader is one subject that can obtain the Secret's value, by its
// shortest path.
type Reader struct {
	Subject Subject `json:"subject"`
	// Verbs are the verbs of the last step's request on the Secret (get,
	// list, watch; patch for secret-patch); empty when the last step is
	// not a request on the Secret (a pod or kubelet delivers the value).
	Verbs []string `json:"verbs"`
	// Path is "direct" for an RBAC grant or system:masters, else the kind
	// of the first step (docs/paths.md).
	Path string `json:"path"`
	// Via are the grants behind the path's first permission.
	Via []Via `json:"via"`
	// Steps are the chain of an indirect path, in order, ending with the
	// step that obtains the Secret; empty for direct readers.
	Steps []Step `json:"steps"`
	// Expected is set for readers that do not raise severity:
	// system:masters, control-plane identities, the allowlist.
	Expected bool `json:"expected,omitempty"`
}

// Step is one hop of an indirect path: Subject uses Permission, granted
// by Via, and so acts as, or obtains, Reaches.
type Step struct {
	// Kind is the step's path kind (docs/paths.md); "direct" for a final
	// RBAC read.
	Kind       string     `json:"kind"`
	Subject    Subject    `json:"subject"`
	Permission Permission `json:"permission"`
	Via        []Via      `json:"via"`
	// Reaches is what the step yields: an identity (User, Group,
	// ServiceAccount, Node, or a Role bound to the subject) or, for the
	// last step, the Secret. In memory the last step's Reaches may be
	// left empty, meaning the Secret whose reader it is: a chain is then
	// shared by every Secret it reaches instead of copied per Secret,
	// which is most of a large report's memory. Every sink writes it out
	// (WithReaches).
	Reaches Subject `json:"reaches"`
	// Detail says why the step works where the permission alone does not
	// tell: the pod's token, the namespace's Pod Security level.
	Detail string `json:"detail,omitempty"`
}

// Permission is the request a step makes. Resource includes the
// subresource ("pods/exec"); APIGroup is empty for the core group.
type Permission struct {
	Verb      string `json:"verb"`
	APIGroup  string `json:"apiGroup,omitempty"`
	Resource  string `json:"resource"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// Exposure scores how exposed a Secret is; see docs/scoring.md.
type Exposure struct {
	Score    int    `json:"score"`
	Severity string `json:"severity"`
	Direct   int    `json:"direct"`
	Indirect int    `json:"indirect"`
	// Principals counts the distinct non-expected subjects that can
	// read the Secret, by any path.
	Principals int `json:"principals"`
	// Reasons explain the severity, most severe first.
	Reasons []string `json:"reasons,omitempty"`
	// Top lists the most exposing non-expected readers, worst first (at
	// most five): the ones people should look at.
	Top []Subject `json:"top,omitempty"`
}

// Recommendation is the suggested remediation for a Secret: where its
// value should live, why, and what else to change. The rules that choose
// it are internal/remediation's, documented in docs/remediation.md.
type Recommendation struct {
	// Target is where the value should live: sealed-secrets, vault,
	// vault-agent (the Vault Agent injector or the Secrets Store CSI
	// driver: never in etcd), bound-token, or none.
	Target string `json:"target"`
	// Status is suggested (a move or a change is recommended), migrated
	// (a Sealed Secrets, External Secrets or Vault Secrets Operator
	// resource writes the Secret) or not-needed.
	Status string `json:"status"`
	// Rule names the remediation rule that chose the target.
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
	// Actions are further changes, whatever the target.
	Actions []Action `json:"actions,omitempty"`
}

// Short is the recommendation in a word or two, for tables: the target
// when one is suggested ("vault", "none (narrow-rbac)"), "migrated" or "-".
func (r Recommendation) Short() string {
	switch r.Status {
	case "migrated":
		return "migrated"
	case "suggested":
		if r.Target != "none" || len(r.Actions) == 0 {
			return r.Target
		}
		return r.Target + " (" + r.Actions[0].ID + ")"
	}
	return "-"
}

// Action is one change a Recommendation asks for besides its target.
type Action struct {
	// ID is stable: stop-env-injection, rotate, narrow-rbac or
	// keep-out-of-etcd.
	ID   string `json:"id"`
	Text string `json:"text"`
}

// SecretGit summarises what git holds of a Secret.
type SecretGit struct {
	Plaintext      bool `json:"plaintext"`
	PresentAtHead  bool `json:"presentAtHead"`
	LiveValueInGit bool `json:"liveValueInGit,omitempty"`
}

// ActualReader is a subject seen reading the Secret in the audit log,
// within the window: by a get of it, or a list or watch of its namespace
// (or of every namespace) since it was created.
type ActualReader struct {
	Subject Subject `json:"subject"`
	// LastSeen is the newest read, RFC 3339.
	LastSeen string `json:"lastSeen"`
	// Count is the number of reads in the window (to a day).
	Count int `json:"count"`
	// Verbs are the verbs it read with: get, list, watch.
	Verbs []string `json:"verbs"`
	// Listed is set when no get named the Secret: only lists or watches
	// of its namespace, or of every namespace, reached it.
	Listed bool `json:"listed,omitempty"`
	// UserAgents and SourceIPs are the most frequent ones, most frequent
	// first (at most three).
	UserAgents []string `json:"userAgents,omitempty"`
	SourceIPs  []string `json:"sourceIPs,omitempty"`
	// Unexplained is set when no reader of the Secret (an RBAC grant,
	// system:masters, the Node authorizer) lets the subject read it
	// (KH621).
	Unexplained bool `json:"unexplained,omitempty"`
}

// UnusedReader is a direct reader that did not read the Secret within the
// window, with the RBAC changes that remove it without taking away a read
// anyone made: one per grant (Via) behind it.
type UnusedReader struct {
	Subject Subject `json:"subject"`
	// Changes remove every grant; empty when one cannot be removed safely,
	// and Reason says why.
	Changes []RBACChange `json:"changes"`
	Reason  string       `json:"reason,omitempty"`
}

// Actions of an RBACChange.
const (
	ChangeRemoveSubject       = "remove-subject"
	ChangeDeleteBinding       = "delete-binding"
	ChangeNarrowResourceNames = "narrow-resource-names"
	ChangeDropVerbs           = "drop-verbs"
)

// RBACChange is one suggested edit of a binding or a role.
type RBACChange struct {
	// Action is remove-subject, delete-binding, narrow-resource-names or
	// drop-verbs.
	Action string `json:"action"`
	// Object is the binding or role to edit.
	Object ObjectRef `json:"object"`
	// Grant is the binding and role whose Secret reads the change removes.
	Grant Via `json:"grant"`
	// Subject is the subject to remove (remove-subject, delete-binding).
	Subject *Subject `json:"subject,omitempty"`
	// Rules are the role's rules once changed (narrow-resource-names,
	// drop-verbs): what to apply.
	Rules []PolicyRule `json:"rules,omitempty"`
	// Affects are the other subjects whose Secret reads the change
	// narrows; none of them made a read it takes away.
	Affects []Subject `json:"affects,omitempty"`
	Text    string    `json:"text"`
}

// PolicyRule is an RBAC rule, as in rbac.authorization.k8s.io/v1.
type PolicyRule struct {
	Verbs           []string `json:"verbs"`
	APIGroups       []string `json:"apiGroups,omitempty"`
	Resources       []string `json:"resources,omitempty"`
	ResourceNames   []string `json:"resourceNames,omitempty"`
	NonResourceURLs []string `json:"nonResourceURLs,omitempty"`
}

// CrossEnvRead is a reader of the Secret that comes from a lower
// environment than the Secret's. Its path is the reader's entry in
// Readers.
type CrossEnvRead struct {
	FromEnvironment string  `json:"fromEnvironment"`
	Subject         Subject `json:"subject"`
	// Path is the reader's path: "direct", or the kind of its first step.
	Path string `json:"path"`
	// Basis says why the reader belongs to FromEnvironment: "namespace"
	// (a ServiceAccount of one of its namespaces, or the group of one's
	// ServiceAccounts), "bindings" (a User or Group bound only by
	// RoleBindings in its namespaces) or "path" (a reader of no
	// environment whose indirect path starts with a request in one of
	// its namespaces).
	Basis string `json:"basis"`
	// Namespaces are the namespaces of FromEnvironment that place the
	// reader there.
	Namespaces []string `json:"namespaces"`
}

// BasisText says, for people, why a cross-environment reader belongs to
// its environment: "namespace staging", "bound only in dev-a, dev-b",
// "path starts in dev".
func (c CrossEnvRead) BasisText() string {
	ns := strings.Join(c.Namespaces, ", ")
	switch c.Basis {
	case "namespace":
		return "namespace " + ns
	case "bindings":
		return "bound only in " + ns
	case "path":
		return "path starts in " + ns
	}
	return c.Basis + " " + ns
}

// Finding is one rule violation.
type Finding struct {
	Rule        string      `json:"rule"`
	Severity    string      `json:"severity"`
	Title       string      `json:"title"`
	Message     string      `json:"message"`
	Object      ObjectRef   `json:"object"`
	Location    *Location   `json:"location,omitempty"`
	Fingerprint string      `json:"fingerprint"`
	Suppressed  *Suppressed `json:"suppressed,omitempty"`
	// ValueHash is HMAC-SHA256 of a leaked value under the operator's
	// key; only present when a key was given.
	ValueHash string `json:"valueHash,omitempty"`
	// Key is the Secret key a finding concerns, never its value.
	Key string `json:"key,omitempty"`
}

// Location is where a finding's input lives. For a git finding, Path is
// relative to the repository's top level; Commit is the commit that
// introduced the value (absent for the index and the working tree);
// PresentAtHead says whether HEAD still holds it at Path; RemovedIn is
// the commit that dropped it, when one did.
type Location struct {
	Path          string `json:"path,omitempty"`
	Line          int    `json:"line,omitempty"`
	Commit        string `json:"commit,omitempty"`
	PresentAtHead *bool  `json:"presentAtHead,omitempty"`
	RemovedIn     string `json:"removedIn,omitempty"`
}

// Suppressed says why a finding does not count.
type Suppressed struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
}

// Error is an input that could not be read or analysed.
type Error struct {
	Source   string     `json:"source"`
	Message  string     `json:"message"`
	Location *Location  `json:"location,omitempty"`
	Object   *ObjectRef `json:"object,omitempty"`
	Resource string     `json:"resource,omitempty"`
	Impact   string     `json:"impact,omitempty"`
}

// Posture holds cluster-wide facts.
type Posture struct {
	EncryptionAtRest *EncryptionAtRest `json:"encryptionAtRest,omitempty"`
}

// EncryptionAtRest is how the apiserver stores Secrets in etcd, as its
// own metrics tell (internal/encryption; docs/report-format.md).
type EncryptionAtRest struct {
	// Provider is identity (plain base64), aescbc, aesgcm, secretbox,
	// kms-v1, kms-v2, other, or unknown when it cannot be told.
	Provider string `json:"provider"`
	// Configured says whether the apiserver runs with an
	// EncryptionConfiguration; absent when that cannot be told.
	Configured *bool `json:"configured,omitempty"`
	// Source is where this was read: apiserver-metrics.
	Source string `json:"source"`
	// APIServerVersion is the version of the apiserver that answered.
	APIServerVersion string `json:"apiserverVersion,omitempty"`
	// WrittenWith and StoredWith are the providers the apiserver wrote
	// Secrets with, and read them from etcd with, since it started,
	// weakest first.
	WrittenWith []string `json:"writtenWith,omitempty"`
	StoredWith  []string `json:"storedWith,omitempty"`
	// Evidence says in a sentence what the metrics showed.
	Evidence string `json:"evidence"`
	// Error says why the metrics could not be read, naming the missing
	// permission when they were forbidden.
	Error string `json:"error,omitempty"`
}

// WithReaches returns s with every reader's last step naming s where the
// analysis left it implicit (see Step.Reaches). s itself is not modified:
// readers and steps are copied only where one is filled in.
func (s *Secret) WithReaches() *Secret {
	secret := Subject{Kind: "Secret", Namespace: s.Namespace, Name: s.Name}
	var readers []Reader
	i := 0
	for r := range s.Readers.All() {
		n := len(r.Steps)
		if n > 0 && r.Steps[n-1].Reaches == (Subject{}) {
			if readers == nil {
				readers = s.Readers.Slice()
			}
			steps := slices.Clone(r.Steps)
			steps[n-1].Reaches = secret
			readers[i].Steps = steps
		}
		i++
	}
	if readers == nil {
		return s
	}
	out := *s
	out.Readers = Readers(readers...)
	return &out
}
