// Package daemon is `keyhole serve`: informers keep an inventory of the
// cluster current, a debounced loop re-runs the analysis when it changes,
// an atomic pointer holds the latest report, and the HTTP server's
// collectors and handlers read that pointer. With leader election, every
// replica watches and analyses (so failover is instant) but only the
// leader exports findings metrics, so that sum() over replicas never
// counts a finding twice. The package is wiring only: it owns no analysis
// logic and no metric definitions.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/encryption"
	"github.com/keyhole-sec/keyhole/internal/httpauth"
	"github.com/keyhole-sec/keyhole/internal/metrics"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
)

// Defaults for Options.
const (
	DefaultDebounce      = 2 * time.Second
	DefaultTelemetryPath = "/metrics"
	DefaultListenAddress = ":9090"
	// ShutdownTimeout bounds the drain of in-flight requests and the
	// release of the lease, so that the process exits well within the 30 s
	// a kubelet grants by default (and within 10 s in practice).
	ShutdownTimeout = 8 * time.Second
	// maxDebounceFactor bounds how long a steady stream of events (pods
	// churning) can postpone an analysis: at most this many debounce
	// periods after the first change.
	maxDebounceFactor = 5
)

// Options configure Run.
type Options struct {
	// Config reaches the cluster; required.
	Config *rest.Config
	// SecretsVia is how Secrets are watched (cluster.SecretsViaTable when
	// empty).
	SecretsVia string
	// Analysis configures each analysis, exactly as for keyhole audit.
	Analysis audit.Options
	// DropAccess keeps no access stage between analyses (analysis.Access,
	// reused while nothing it reads changes): each analysis runs it anew,
	// and the daemon holds only its report between analyses.
	DropAccess bool
	// Debounce is how long the cluster must be quiet after a change
	// before the analysis runs again; DefaultDebounce when 0.
	Debounce time.Duration
	// ListenAddresses are the HTTP server's addresses
	// ([DefaultListenAddress] when empty); ":0" picks a free port, which
	// is logged and sent on Listening.
	ListenAddresses []string
	// WebConfigFile is exporter-toolkit's web configuration (TLS, basic
	// auth); none when empty.
	WebConfigFile string
	// TelemetryPath serves the metrics; DefaultTelemetryPath when empty.
	TelemetryPath string
	// Metrics chooses the optional findings series.
	Metrics metrics.Options
	// LeaderElection, when non-nil, runs leader election; without it this
	// replica is always the leader.
	LeaderElection *LeaderElection
	// Git, when non-nil, scans a repository mounted into the pod for
	// plaintext Secrets, into the same report.
	Git *Git
	// EncryptionInterval is how often the API server's /metrics is read
	// for encryption at rest; DefaultEncryptionInterval when 0.
	EncryptionInterval time.Duration
	// ReportAuth configures the authentication of /api/v1/report.
	ReportAuth httpauth.Options
	// AuditLog, when non-nil, receives audit events (a webhook, a log
	// file) and adds who did read each Secret to the report.
	AuditLog *AuditLog
	// Version is keyhole's version, for keyhole_build_info.
	Version string
	// Logger receives the daemon's logs; required.
	Logger *slog.Logger
	// Listening, when set, receives each listener's address once it is
	// bound (for tests and for ":0").
	Listening func(addr string)

	// analyzed, when set, is called after each successful analysis, on
	// the analysis goroutine (for tests).
	analyzed func(analysisRun)
}

func (o Options) withDefaults() (Options, error) {
	if o.Config == nil {
		return o, errors.New("no cluster configuration")
	}
	if o.Logger == nil {
		return o, errors.New("no logger")
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if len(o.ListenAddresses) == 0 {
		o.ListenAddresses = []string{DefaultListenAddress}
	}
	if o.TelemetryPath == "" {
		o.TelemetryPath = DefaultTelemetryPath
	}
	if o.EncryptionInterval <= 0 {
		o.EncryptionInterval = DefaultEncryptionInterval
	}
	if o.Git != nil {
		g, err := o.Git.withDefaults()
		if err != nil {
			return o, err
		}
		o.Git = &g
	}
	if o.AuditLog != nil {
		a, err := o.AuditLog.withDefaults()
		if err != nil {
			return o, err
		}
		o.AuditLog = &a
	}
	if o.LeaderElection != nil {
		le, err := o.LeaderElection.withDefaults()
		if err != nil {
			return o, err
		}
		o.LeaderElection = &le
	}
	return o, nil
}

// daemon is one running keyhole serve.
type daemon struct {
	opts    Options
	log     *slog.Logger
	self    *metrics.Self
	watcher *cluster.Watcher
	// latest is the newest analysis; nil until the first one.
	latest atomic.Pointer[snapshot]
	// git is the newest scan of the repository; nil until the first one,
	// or without one.
	git atomic.Pointer[analysis.GitInput]
	// encryption is the latest read of the API server's /metrics; nil
	// until the first.
	encryption atomic.Pointer[encryption.Status]
	// leader is true while this replica holds the lease (always, without
	// leader election).
	leader atomic.Bool
	// audit is the audit log source; nil without one.
	audit *auditSource
	// changed has a token when the cluster changed since the last
	// analysis started.
	changed chan struct{}
	// access records what changed since the last analysis started, and
	// keeps its access stage while it may be reused.
	access *accessLog

	sourcesMu sync.Mutex
	// down holds the resources whose list or watch currently fails, so
	// that an outage is logged once, when it starts, and once when it
	// ends.
	down map[string]bool
}

// Run runs the daemon until ctx is cancelled, then drains in-flight
// requests, releases the lease and stops the informers. It returns nil
// after a clean shutdown; an error when it cannot start (a bad option, a
// port in use, an unreadable web config) or when the HTTP server fails.
func Run(ctx context.Context, opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	d := &daemon{opts: opts, log: opts.Logger, changed: make(chan struct{}, 1), access: newAccessLog(opts.DropAccess), down: map[string]bool{}}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	d.self = metrics.NewSelf(reg, opts.Version)
	reg.MustRegister(metrics.NewFindings(d.report, d.exporting, opts.Metrics))

	d.watcher, err = cluster.NewWatcher(opts.Config, cluster.WatchOptions{
		SecretsVia: opts.SecretsVia,
		OnChange:   d.onChange,
		OnSourceUp: d.onSourceUp,
	})
	if err != nil {
		return err
	}
	for _, r := range d.watcher.Resources() {
		// Up until proven otherwise: a resource is only down once its
		// list or watch failed.
		d.self.SourceUp(r, true)
	}
	cs, err := kubernetes.NewForConfig(opts.Config)
	if err != nil {
		return fmt.Errorf("cannot use the Kubernetes API: %w", err)
	}
	if opts.AuditLog != nil {
		if d.audit, err = d.newAuditSource(reg, cs); err != nil {
			return err
		}
	}
	srv, err := d.newServer(reg, httpauth.New(cs, opts.ReportAuth))
	if err != nil {
		if d.audit != nil && d.audit.listener != nil {
			_ = d.audit.listener.Close()
		}
		return err
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { d.watcher.Run(runCtx) })
	if opts.LeaderElection != nil {
		wg.Go(func() { d.elect(runCtx, cs) })
	} else {
		d.setLeader(true)
	}
	// The analysis is not cancellable mid-way; it is not waited for at
	// shutdown, so that a long one cannot hold the process past its grace
	// period. It only ever swaps a pointer.
	go d.analyzeLoop(runCtx)
	if opts.Git != nil {
		// Not waited for either: a scan in progress ends with its git
		// processes when runCtx does.
		go d.gitLoop(runCtx)
	}
	// Nor this one: a read in progress ends with runCtx.
	go d.encryptionLoop(runCtx)

	stopAudit := func(context.Context) {}
	if d.audit != nil {
		stopAudit = d.audit.run(runCtx, d)
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.serve() }()

	select {
	case <-ctx.Done():
		d.log.Info("shutting down")
		err = nil
	case err = <-serveErr:
		d.log.Error("HTTP server failed", "err", err)
	}
	// A fresh context: the run's is cancelled already.
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if serr := srv.shutdown(sctx); serr != nil && err == nil {
		d.log.Warn("in-flight requests did not finish in time", "err", serr)
	}
	stop()
	// After the informers' context: the audit log's last flush stores
	// what the webhook received until it stopped.
	stopAudit(sctx)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		d.log.Warn("informers or leader election did not stop in time; exiting anyway")
	}
	return err
}

// onChange is called by the informers for every change. It records a
// change the access stage reads before it leaves the token, so that the
// analysis that takes the token sees the record.
func (d *daemon) onChange(c cluster.Change) {
	d.self.Event(c.Resource)
	if accessReads(c) {
		d.access.record(c.Resource + " " + c.Op.String())
	}
	d.markChanged()
}

// onSourceUp is called by the informers when a resource's list or watch
// starts or stops failing. The outage is logged once, with the missing
// permission when the apiserver forbade it (the error says so), and the
// analysis reruns so that the report's errors follow.
func (d *daemon) onSourceUp(resource string, up bool, err error) {
	d.self.SourceUp(resource, up)
	d.sourcesMu.Lock()
	wasDown := d.down[resource]
	if up {
		delete(d.down, resource)
	} else {
		d.down[resource] = true
	}
	d.sourcesMu.Unlock()
	switch {
	case !up && !wasDown:
		msg := "unknown error"
		if err != nil {
			msg = err.Error()
		}
		d.log.Warn("cannot watch "+resource+"; the analysis continues without it until it recovers",
			"resource", resource, "reason", msg, "impact", cluster.Impact(resource))
	case up && wasDown:
		d.log.Info("watching "+resource+" again", "resource", resource)
	default:
		return
	}
	// A source that goes down or comes back may take objects away or
	// bring them back, or say the ones kept are stale: whatever its kind,
	// the access stage runs anew.
	state := "down"
	if up {
		state = "up"
	}
	d.access.record(resource + " source " + state)
	d.markChanged()
}

func (d *daemon) markChanged() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

func (d *daemon) setLeader(leader bool) {
	d.leader.Store(leader)
	d.self.Leader(leader)
}

// exporting says whether this replica exports findings metrics: only the
// leader, and only once it has a report of something it could read. An
// empty world's zeros would resolve every alert while keyhole sees
// nothing; no series at all lets the alerts on keyhole itself speak.
func (d *daemon) exporting() bool {
	s := d.latest.Load()
	return d.leader.Load() && s != nil && !s.empty
}
