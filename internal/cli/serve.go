package cli

import (
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/daemon"
	"github.com/keyhole-sec/keyhole/internal/httpauth"
	"github.com/keyhole-sec/keyhole/internal/source/auditevents"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
)

type serveOptions struct {
	kubeconfig     string
	context        string
	secretsVia     string
	analysis       analysisOptions
	gate           gateOptions
	listen         []string
	webConfig      string
	telemetryPath  string
	debounce       time.Duration
	perSecret      bool
	readerInfo     bool
	leaderElect    bool
	leaseNamespace string
	leaseName      string
	leaseDuration  time.Duration
	renewDeadline  time.Duration
	retryPeriod    time.Duration
	gitRepo        string
	gitName        string
	gitInterval    time.Duration
	gitCorrelate   bool
	encInterval    time.Duration
	audiences      []string
	authCacheTTL   time.Duration
	audit          daemon.AuditLog
	keepAccess     bool
	autoMemLimit   bool
	memLimitRatio  float64
}

func newServeCommand(g *globals) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run in the cluster: keep the analysis current and export it as Prometheus metrics",
		Long: `Serve watches the cluster with informers (Secrets as metadata only: no
value is ever read), analyses it once every resource has synced, and again
after each quiet period (--debounce) following a change. It serves, on one
port:

  ` + daemon.DefaultTelemetryPath + `         Prometheus metrics (docs/metrics.md)
  /healthz         liveness
  /readyz          200 once the first analysis is done
  ` + daemon.ReportPath + `   the JSON report of keyhole audit, for a bearer token
                   allowed to get reports.keyhole.io (docs/api.md)

With --audit-webhook-addr (a port of its own, TLS, mTLS or a bearer token)
or --audit-log-file, it receives the apiserver's audit events and adds who
did read each Secret, next to who could (docs/audit.md).

With --leader-elect, run several replicas: each analyses, and only the
holder of the Lease exports findings metrics, so that nothing is counted
twice. SIGTERM drains in-flight requests and releases the Lease.`,
		Example: `  keyhole serve --leader-elect
  keyhole serve --kubeconfig ~/.kube/config --web.listen-address 127.0.0.1:9090 --config keyhole.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: the in-cluster config in a pod, else the usual kubeconfig rules)")
	f.StringVar(&o.context, "context", "", "kubeconfig context to use")
	f.StringVar(&o.secretsVia, "secrets-via", cluster.SecretsViaTable, "how to watch Secrets without their values: table (server-side Table, metadata only) or full (values dropped as each object arrives)")
	_ = f.MarkHidden("secrets-via")
	o.analysis.addPathFlags(f)
	o.gate.addConfigFlag(f)
	f.StringArrayVar(&o.listen, "web.listen-address", []string{daemon.DefaultListenAddress}, "address to serve metrics, probes and the report on (repeatable)")
	f.StringVar(&o.webConfig, "web.config.file", "", "exporter-toolkit web configuration file: TLS and basic authentication")
	f.StringVar(&o.telemetryPath, "web.telemetry-path", daemon.DefaultTelemetryPath, "path of the metrics")
	f.DurationVar(&o.debounce, "debounce", daemon.DefaultDebounce, "quiet time after a change before the analysis reruns")
	f.BoolVar(&o.keepAccess, "analysis.keep-access", false, "keep the access stage (RBAC and the indirect-path search) between analyses and reuse it while nothing it reads changes: faster analyses after changes of ConfigMaps or Secret metadata, for the memory the stage holds, about as much again as the daemon holds without it (docs/benchmarks.md)")
	f.BoolVar(&o.autoMemLimit, "auto-gomemlimit", true, "set the Go runtime's soft memory limit (GOMEMLIMIT) to --auto-gomemlimit.ratio of the container's memory limit (cgroup), as Prometheus does, so that the collector works harder before the limit kills the pod; an explicit GOMEMLIMIT wins, and AUTOMEMLIMIT=off turns it off")
	f.Float64Var(&o.memLimitRatio, "auto-gomemlimit.ratio", defaultMemLimitRatio, "the share of the container's memory limit --auto-gomemlimit gives the Go runtime, in (0, 1]")
	f.BoolVar(&o.perSecret, "metrics.per-secret", true, "export per-Secret series (turn off for very large clusters; roll-ups stay)")
	f.BoolVar(&o.readerInfo, "metrics.reader-info", false, "export keyhole_secret_reader_info, one series per Secret and reader (high cardinality)")
	f.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader through a coordination.k8s.io Lease; only the leader exports findings metrics")
	f.StringVar(&o.leaseNamespace, "leader-elect-namespace", "", "namespace of the Lease (default: the pod's namespace)")
	f.StringVar(&o.leaseName, "leader-elect-lease-name", daemon.DefaultLeaseName, "name of the Lease")
	f.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", daemon.DefaultLeaseDuration, "how long followers wait before taking over a Lease that is not renewed")
	f.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", daemon.DefaultRenewDeadline, "how long the leader retries renewing before it stops leading")
	f.DurationVar(&o.retryPeriod, "leader-elect-retry-period", daemon.DefaultRetryPeriod, "how often candidates try to acquire or renew the Lease")
	f.StringVar(&o.gitRepo, "git-repo", "", "git repository mounted into the pod (by a git-sync sidecar) to scan for plaintext Secrets, its whole history, into the same report")
	f.StringVar(&o.gitName, "git-repo-name", "repo", "the repository's short name, the repo label of keyhole_git_plaintext_secrets (never its path or URL)")
	f.DurationVar(&o.gitInterval, "git-interval", daemon.DefaultGitInterval, "how often the repository is checked for new commits; history is scanned again only when its refs moved")
	f.BoolVar(&o.gitCorrelate, "git-correlate", false, "with --git-repo: at every --git-interval, compare the live Secrets' current values with the repository (KH412): a list of every Secret with its data, each value hashed as it arrives and dropped")
	f.DurationVar(&o.encInterval, "encryption-interval", daemon.DefaultEncryptionInterval, "how often the API server's /metrics is read for encryption at rest of Secrets (keyhole_etcd_encryption, KH601-KH603; needs get on /metrics)")
	f.StringArrayVar(&o.audiences, "report.audience", nil, "accept on "+daemon.ReportPath+" only bearer tokens the API server confirms were issued for this audience (repeatable; default: the API server's own)")
	f.DurationVar(&o.authCacheTTL, "report.auth-cache-ttl", httpauth.DefaultCacheTTL, "how long an allowed caller of "+daemon.ReportPath+" is not checked again; 0 checks every request")
	addAuditFlags(f, &o.audit)
	return cmd
}

func runServe(ctx context.Context, g *globals, o *serveOptions) error {
	if err := o.analysis.check(); err != nil {
		return err
	}
	if !(o.memLimitRatio > 0 && o.memLimitRatio <= 1) {
		return usageError("--auto-gomemlimit.ratio: must be in (0, 1], not %v", o.memLimitRatio)
	}
	if o.autoMemLimit {
		setMemoryLimit(g.logger, o.memLimitRatio, memlimit.FromCgroup)
	}
	gt, err := o.gate.load()
	if err != nil {
		return err
	}
	cfg, err := cluster.RESTConfig(o.kubeconfig, o.context)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	// client-go's own logs (leader election, reflectors) go through the
	// same handler as keyhole's.
	klog.SetSlogLogger(g.logger)

	opts := daemon.Options{
		Config:          cfg,
		SecretsVia:      o.secretsVia,
		Analysis:        o.analysis.options(gt),
		Debounce:        o.debounce,
		ListenAddresses: o.listen,
		WebConfigFile:   o.webConfig,
		TelemetryPath:   o.telemetryPath,
		Version:         Version,
		Logger:          g.logger,
	}
	opts.EncryptionInterval = o.encInterval
	opts.ReportAuth.Audiences = o.audiences
	opts.ReportAuth.CacheTTL = o.authCacheTTL
	if o.authCacheTTL <= 0 {
		opts.ReportAuth.CacheTTL = -1 // httpauth: no cache
	}
	opts.Metrics.PerSecret = o.perSecret
	opts.DropAccess = !o.keepAccess
	opts.Metrics.ReaderInfo = o.readerInfo
	if o.gitRepo != "" {
		opts.Git = &daemon.Git{Path: o.gitRepo, Name: o.gitName, Interval: o.gitInterval, Correlate: o.gitCorrelate}
	} else if o.gitCorrelate {
		return usageError("--git-correlate needs --git-repo")
	}
	if o.audit.WebhookAddr != "" || o.audit.LogFile != "" {
		opts.AuditLog = &o.audit
	}
	if o.leaderElect {
		opts.LeaderElection = &daemon.LeaderElection{
			Namespace:     o.leaseNamespace,
			Name:          o.leaseName,
			LeaseDuration: o.leaseDuration,
			RenewDeadline: o.renewDeadline,
			RetryPeriod:   o.retryPeriod,
		}
	}
	if err := daemon.Run(ctx, opts); err != nil {
		return &exitError{code: ExitError, err: err}
	}
	return nil
}

// addAuditFlags adds the flags of the audit log source (docs/audit.md).
func addAuditFlags(f *pflag.FlagSet, a *daemon.AuditLog) {
	f.StringVar(&a.WebhookAddr, "audit-webhook-addr", "", "address of the audit webhook ("+auditevents.Path+", its own port, TLS): the apiserver's --audit-webhook-config-file points at it; off when empty")
	f.StringVar(&a.TLSCertFile, "audit-webhook-tls-cert-file", "", "serving certificate of the audit webhook (PEM)")
	f.StringVar(&a.TLSKeyFile, "audit-webhook-tls-key-file", "", "private key of the audit webhook's certificate (PEM)")
	f.StringVar(&a.ClientCAFile, "audit-webhook-client-ca-file", "", "CA that signs the apiserver's client certificate (mTLS)")
	f.StringVar(&a.TokenFile, "audit-webhook-token-file", "", "file holding the bearer token of the apiserver's webhook kubeconfig")
	f.StringVar(&a.LogFile, "audit-log-file", "", "audit log file to follow (the apiserver's --audit-log-path, JSON lines), rotation included; off when empty")
	f.DurationVar(&a.Window, "audit-window", auditlog.DefaultWindow, "how far back reads count: a reader with no read for this long is an unused grant (KH620)")
	f.IntVar(&a.MaxEntries, "audit-max-entries", auditlog.DefaultMaxEntries, "most (subject, Secret) pairs the audit summary keeps; the least recently read go first")
	f.StringVar(&a.Namespace, "audit-namespace", "", "namespace of the ConfigMaps that keep the audit summary across restarts and replicas (default: the pod's namespace)")
	f.DurationVar(&a.FlushInterval, "audit-flush-interval", auditevents.DefaultFlushInterval, "how often the audit summary is merged into its ConfigMaps")
}

// defaultMemLimitRatio is Prometheus's --auto-gomemlimit.ratio: room for
// what the Go runtime does not count, such as the binary's pages.
const defaultMemLimitRatio = 0.9

// setMemoryLimit sets the Go runtime's soft memory limit to ratio of what
// limit (the cgroup's, in production) reports, through automemlimit. No
// limit leaves the runtime unlimited; a limit that cannot be read is
// logged and leaves it as it was: the daemon runs either way.
func setMemoryLimit(log *slog.Logger, ratio float64, limit memlimit.Provider) {
	before := debug.SetMemoryLimit(-1)
	set, err := memlimit.Set(memlimit.WithRatio(ratio), memlimit.WithProvider(limit))
	if err != nil {
		log.Warn("the container's memory limit could not be read; the Go runtime's soft memory limit is left as it was", "err", err)
		return
	}
	if set != before && set < math.MaxInt64 {
		log.Info("Go runtime soft memory limit set from the container's", "GOMEMLIMIT", set)
	}
}
