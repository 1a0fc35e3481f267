package metrics

// Type is a metric's Prometheus type.
type Type string

// The types keyhole exports.
const (
	Gauge     Type = "gauge"
	Counter   Type = "counter"
	Histogram Type = "histogram"
)

// Set says what turns a metric on.
type Set string

// The sets, in the order docs/metrics.md lists them.
const (
	// PerSecret metrics have series per Secret. On by default;
	// Options.PerSecret (--metrics.per-secret=false) turns them off.
	PerSecret Set = "per-secret"
	// RollUp metrics are always exported by the replica that exports
	// findings.
	RollUp Set = "roll-up"
	// ReaderInfo is opt-in: Options.ReaderInfo (--metrics.reader-info).
	ReaderInfo Set = "reader-info"
	// SelfMetrics describe the daemon itself, on every replica.
	SelfMetrics Set = "self"
)

// Definition is one metric: the single source of its descriptor, of the
// instrument that records it and of its row in docs/metrics.md.
type Definition struct {
	Name   string
	Type   Type
	Help   string
	Labels []string
	Set    Set
	// Cardinality bounds the number of series, for people sizing a
	// Prometheus.
	Cardinality string
}

// Label names. They are bounded identifiers only: never a value, a file
// path, a digest, a commit or free text.
const (
	labelNamespace   = "namespace"
	labelSecret      = "secret"
	labelFromEnv     = "from_environment"
	labelPath        = "path"
	labelSeverity    = "severity"
	labelManager     = "manager"
	labelRule        = "rule"
	labelSubjectKind = "subject_kind"
	labelSubject     = "subject"
	labelResource    = "resource"
	labelVersion     = "version"
	labelGoVersion   = "goversion"
	labelRepo        = "repo"
	labelState       = "state"
	labelProvider    = "provider"
	labelCode        = "code"
)

// Metric names.
const (
	nameSecretReaders       = "keyhole_secret_readers"
	nameSecretExposureScore = "keyhole_secret_exposure_score"
	nameSecretSeverity      = "keyhole_secret_severity"
	nameSecretEnvInjections = "keyhole_secret_env_injections"
	nameSecretManaged       = "keyhole_secret_managed"
	nameCrossEnvReaders     = "keyhole_cross_environment_readers"
	nameSecretReaderInfo    = "keyhole_secret_reader_info"
	nameFindings            = "keyhole_findings"
	nameGitPlaintext        = "keyhole_git_plaintext_secrets"
	nameFindingsCluster     = "keyhole_findings_cluster"
	nameEtcdEncryption      = "keyhole_etcd_encryption"
	nameSecrets             = "keyhole_secrets"
	nameIndirectComplete    = "keyhole_indirect_analysis_complete"
	nameBuildInfo           = "keyhole_build_info"
	nameAnalysisDuration    = "keyhole_analysis_duration_seconds"
	nameLastAnalysis        = "keyhole_last_analysis_timestamp_seconds"
	nameAnalysisErrors      = "keyhole_analysis_errors_total"
	nameEvents              = "keyhole_events_total"
	nameSourceUp            = "keyhole_source_up"
	nameLeader              = "keyhole_leader"

	nameSecretActualReaders = "keyhole_secret_actual_readers"
	nameSecretUnusedReaders = "keyhole_secret_unused_readers"
	nameUnexplainedReads    = "keyhole_unexplained_reads_total"
	nameAuditEvents         = "keyhole_audit_events_received_total"
	nameAuditSecretReads    = "keyhole_audit_secret_reads_total" //nolint:gosec // G101: a metric name, not a credential
	nameAuditDropped        = "keyhole_audit_events_dropped_total"
	nameAuditRequests       = "keyhole_audit_webhook_requests_total"
	nameAuditEntries        = "keyhole_audit_summary_entries"
	nameAuditEvictions      = "keyhole_audit_summary_evictions_total"
	nameAuditPersistErrors  = "keyhole_audit_persist_errors_total"
)

// noManager is keyhole_secret_managed's manager for a Secret no known tool
// writes (an empty ManagedBy in the report).
const noManager = "none"

// Catalog is every metric keyhole exports. docs/metrics.md is generated
// from it (go test ./internal/metrics -run TestDocs -update), and tests
// hold the collectors to it.
var Catalog = []Definition{
	{
		Name: nameSecretReaders, Type: Gauge, Set: PerSecret,
		Labels: []string{labelNamespace, labelSecret, labelPath},
		Help: "Subjects that can obtain the Secret's value, by the kind of their shortest path: direct, or the first step of an indirect path (docs/paths.md). " +
			"Expected readers (system:masters, control-plane identities, the allowlist) are not counted; a path kind with no other reader has no series.",
		Cardinality: "Secrets × path kinds that reach them; at most Secrets × the path kinds of docs/paths.md",
	},
	{
		Name: nameSecretExposureScore, Type: Gauge, Set: PerSecret,
		Labels:      []string{labelNamespace, labelSecret},
		Help:        "The Secret's exposure score (docs/scoring.md).",
		Cardinality: "Secrets",
	},
	{
		Name: nameSecretSeverity, Type: Gauge, Set: PerSecret,
		Labels:      []string{labelNamespace, labelSecret, labelSeverity},
		Help:        "The Secret's exposure severity, in the severity label; one series per Secret, value 1.",
		Cardinality: "Secrets",
	},
	{
		Name: nameSecretEnvInjections, Type: Gauge, Set: PerSecret,
		Labels:      []string{labelNamespace, labelSecret},
		Help:        "Containers that take the Secret as environment variables.",
		Cardinality: "Secrets",
	},
	{
		Name: nameSecretManaged, Type: Gauge, Set: PerSecret,
		Labels:      []string{labelNamespace, labelSecret, labelManager},
		Help:        "The tool that writes the Secret, in the manager label: sealed-secrets, external-secrets, vault-secrets-operator, helm, or none; one series per Secret, value 1.",
		Cardinality: "Secrets",
	},
	{
		Name: nameCrossEnvReaders, Type: Gauge, Set: PerSecret,
		Labels: []string{labelNamespace, labelSecret, labelFromEnv},
		Help: "Distinct readers of the Secret that come from an environment lower than the Secret's, by that environment (rule KH610, docs/environments.md): " +
			"identities of the lower environment, and readers of no environment whose indirect path starts there. Expected readers are not counted. " +
			"Only with environments in the config; a Secret with no such reader has no series.",
		Cardinality: "Secrets readable from a lower environment × those environments (at most the configured environments but one)",
	},
	{
		Name: nameSecretActualReaders, Type: Gauge, Set: PerSecret,
		Labels: []string{labelNamespace, labelSecret},
		Help: "Subjects the audit log saw reading the Secret within the audit window, by a get of it or a list or watch of its namespace (docs/audit.md). " +
			"Only with an audit source (--audit-webhook-addr or --audit-log-file); a Secret nobody read has the value 0.",
		Cardinality: "Secrets",
	},
	{
		Name: nameSecretUnusedReaders, Type: Gauge, Set: PerSecret,
		Labels: []string{labelNamespace, labelSecret},
		Help: "Direct readers of the Secret, expected ones aside, that did not read it within the audit window: grants to remove (rule KH620). " +
			"Only once the audit source has observed a whole window.",
		Cardinality: "Secrets",
	},
	{
		Name: nameSecretReaderInfo, Type: Gauge, Set: ReaderInfo,
		Labels: []string{labelNamespace, labelSecret, labelSubjectKind, labelSubject, labelPath},
		Help: "A subject that can obtain the Secret's value, and the kind of its shortest path; value 1. " +
			"subject is namespace/name for a ServiceAccount, the name for a User or Group. Expected readers are left out, as in keyhole_secret_readers.",
		Cardinality: "Secrets × their readers other than expected ones: can reach millions in a large cluster, hence opt-in",
	},
	{
		Name: nameFindings, Type: Gauge, Set: RollUp,
		Labels: []string{labelNamespace, labelRule, labelSeverity},
		Help: "Findings by the namespace of their object, rule and severity; namespace is empty for cluster-scoped objects. " +
			"Suppressed findings (exemption annotation, baseline) are not counted; a combination with no finding has no series.",
		Cardinality: "namespaces × rules × severities that have findings",
	},
	{
		Name: nameFindingsCluster, Type: Gauge, Set: RollUp,
		Labels:      []string{labelRule, labelSeverity},
		Help:        "Findings in the whole cluster by rule and severity, suppressed findings not counted; a combination with no finding has no series.",
		Cardinality: "rules × severities that have findings",
	},
	{
		Name: nameSecrets, Type: Gauge, Set: RollUp,
		Labels:      []string{labelNamespace},
		Help:        "Secrets analysed, by namespace.",
		Cardinality: "namespaces that hold Secrets",
	},
	{
		Name: nameGitPlaintext, Type: Gauge, Set: RollUp,
		Labels: []string{labelRepo, labelState},
		Help: "Plaintext Secret values in a scanned git repository (rules KH301 and KH302; placeholders and ConfigMap credentials not counted, " +
			"suppressed findings neither): state=\"present\" for those HEAD still holds, state=\"history\" for those only its history holds. " +
			"repo is the repository's configured short name (--git-repo-name), never a path or URL. Only when a repository is scanned.",
		Cardinality: "2 per scanned repository",
	},
	{
		Name: nameEtcdEncryption, Type: Gauge, Set: RollUp,
		Labels: []string{labelProvider},
		Help: "How the API server stores Secrets in etcd, from its own /metrics (docs/rules/KH601.md): one series, value 1, whose provider is " +
			"identity (plain base64, not encrypted), aescbc, aesgcm, secretbox, kms-v1, kms-v2, other (a provider keyhole does not know), " +
			"or unknown (/metrics forbidden or unreadable, or no Secret transformation reported yet). Re-read every --encryption-interval; absent before the first read.",
		Cardinality: "1",
	},
	{
		Name: nameIndirectComplete, Type: Gauge, Set: RollUp,
		Help: "1 when the latest analysis followed indirect paths to Secrets (docs/paths.md) to the end; 0 when that search passed its budget " +
			"(--max-paths, paths.maxPaths) and was stopped, so that readers, exposure, findings and the other findings metrics are those of direct reads only " +
			"(the report's coverage.indirectStopped). A larger --max-paths lets the search finish, a lower --max-depth shortens it.",
		Cardinality: "1",
	},
	{
		Name: nameBuildInfo, Type: Gauge, Set: SelfMetrics,
		Labels:      []string{labelVersion, labelGoVersion},
		Help:        "keyhole's version and the Go version that built it; value 1.",
		Cardinality: "1",
	},
	{
		Name: nameAnalysisDuration, Type: Histogram, Set: SelfMetrics,
		Help:        "Time one analysis of the inventory took, failed analyses included.",
		Cardinality: "1 histogram: 15 buckets doubling from 10 ms to 164 s, and +Inf",
	},
	{
		Name: nameLastAnalysis, Type: Gauge, Set: SelfMetrics,
		Help:        "When the last successful analysis finished, in seconds since the Unix epoch; 0 before the first.",
		Cardinality: "1",
	},
	{
		Name: nameAnalysisErrors, Type: Counter, Set: SelfMetrics,
		Help:        "Analyses that failed.",
		Cardinality: "1",
	},
	{
		Name: nameEvents, Type: Counter, Set: SelfMetrics,
		Labels:      []string{labelResource},
		Help:        "Watch events received, by resource.",
		Cardinality: "resources watched",
	},
	{
		Name: nameSourceUp, Type: Gauge, Set: SelfMetrics,
		Labels:      []string{labelResource},
		Help:        "1 while the resource is listed and watched, 0 while it cannot be (forbidden, failing).",
		Cardinality: "resources watched",
	},
	{
		Name: nameLeader, Type: Gauge, Set: SelfMetrics,
		Help:        "1 while this replica is the leader, else 0; only the leader exports the findings metrics.",
		Cardinality: "1",
	},
	{
		Name: nameAuditEvents, Type: Counter, Set: SelfMetrics,
		Help:        "Audit events received by this replica, from the webhook or the audit log file. Only with an audit source.",
		Cardinality: "1",
	},
	{
		Name: nameAuditSecretReads, Type: Counter, Set: SelfMetrics,
		Help:        "Secret reads among the audit events received: completed gets, lists and watches of Secrets with a code below 400. Only with an audit source.",
		Cardinality: "1",
	},
	{
		Name: nameAuditDropped, Type: Counter, Set: SelfMetrics,
		Help:        "Secret reads received from the webhook but dropped because the queue to the summary was full: the webhook answers at once rather than hold up the API server. Only with an audit source.",
		Cardinality: "1",
	},
	{
		Name: nameUnexplainedReads, Type: Counter, Set: SelfMetrics,
		Help: "Secret reads received that the latest report's readers do not explain: no RBAC grant, system:masters membership or Node authorizer path lets the subject read the Secret (rule KH621). " +
			"Only with an audit source.",
		Cardinality: "1",
	},
	{
		Name: nameAuditRequests, Type: Counter, Set: SelfMetrics,
		Labels:      []string{labelCode},
		Help:        "Audit webhook requests by HTTP status code: 200, 400 (not an EventList), 401 (no credentials), 403 (wrong token), 405, 413 (batch too large). Only with --audit-webhook-addr.",
		Cardinality: "status codes answered, at most 6",
	},
	{
		Name: nameAuditEntries, Type: Gauge, Set: SelfMetrics,
		Help:        "(subject, Secret) entries in this replica's audit summary; bounded by --audit-max-entries. Only with an audit source.",
		Cardinality: "1",
	},
	{
		Name: nameAuditEvictions, Type: Counter, Set: SelfMetrics,
		Help:        "Audit summary entries dropped to stay within --audit-max-entries or to fit a stored shard: reads forgotten early. Only with an audit source.",
		Cardinality: "1",
	},
	{
		Name: nameAuditPersistErrors, Type: Counter, Set: SelfMetrics,
		Help:        "Failed merges of the audit summary into its ConfigMaps; the reads stay pending for the next attempt. Only with an audit source and a namespace to store in.",
		Cardinality: "1",
	},
}

// definition returns the catalog entry of a metric. The names are
// constants of this package, so a miss is a programming error.
func definition(name string) Definition {
	for _, d := range Catalog {
		if d.Name == name {
			return d
		}
	}
	panic("metrics: " + name + " is not in the catalog")
}
