package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/metrics"
	"github.com/keyhole-sec/keyhole/internal/source/auditevents"
)

// AuditLog configures the audit log source: the webhook the apiserver
// sends audit events to, or an audit log file to tail, or both, and where
// the summary of who read which Secret is kept (docs/audit.md).
type AuditLog struct {
	// WebhookAddr is the webhook's own port (never the metrics port: the
	// apiserver is its only client); none when empty.
	WebhookAddr string
	// Listener, when set, is used instead of binding WebhookAddr: for
	// tests, whose apiserver must know the port before keyhole starts.
	Listener net.Listener
	// TLSCertFile and TLSKeyFile are the webhook's serving certificate,
	// required with a webhook: the apiserver sends a bearer token or a
	// client certificate, and events that steer keyhole's advice.
	TLSCertFile, TLSKeyFile string
	// ClientCAFile verifies client certificates (mTLS); TokenFile holds
	// the bearer token the apiserver's webhook kubeconfig presents. At
	// least one is required with a webhook.
	ClientCAFile, TokenFile string
	// LogFile is an audit log to tail (the apiserver's --audit-log-path);
	// none when empty.
	LogFile string
	// Window is how far back reads count; auditlog.DefaultWindow when 0.
	Window time.Duration
	// MaxEntries bounds the summary; auditlog.DefaultMaxEntries when 0.
	MaxEntries int
	// Namespace holds the summary's ConfigMaps; the pod's namespace when
	// empty. Without one the summary lives in memory only (a warning
	// says so).
	Namespace string
	// StoreName prefixes the ConfigMaps; auditevents.DefaultStoreName
	// when empty.
	StoreName string
	// FlushInterval is how often the summary is merged into its
	// ConfigMaps; auditevents.DefaultFlushInterval when 0.
	FlushInterval time.Duration
	// MaxBodyBytes and QueueSize bound the webhook (auditevents
	// defaults when 0).
	MaxBodyBytes int64
	QueueSize    int
}

func (a AuditLog) withDefaults() (AuditLog, error) {
	webhook := a.WebhookAddr != "" || a.Listener != nil
	if !webhook && a.LogFile == "" {
		return a, errors.New("the audit log source needs --audit-webhook-addr or --audit-log-file")
	}
	if webhook {
		if a.TLSCertFile == "" || a.TLSKeyFile == "" {
			return a, errors.New("--audit-webhook-addr needs --audit-webhook-tls-cert-file and --audit-webhook-tls-key-file: the apiserver's credentials and events must not cross the network in clear")
		}
		if a.ClientCAFile == "" && a.TokenFile == "" {
			return a, errors.New("--audit-webhook-addr needs --audit-webhook-client-ca-file or --audit-webhook-token-file: forged events would steer keyhole's advice")
		}
	}
	if a.Window <= 0 {
		a.Window = auditlog.DefaultWindow
	}
	if a.Window < time.Hour {
		return a, fmt.Errorf("--audit-window %s: must be at least 1h", a.Window)
	}
	if a.MaxEntries <= 0 {
		a.MaxEntries = auditlog.DefaultMaxEntries
	}
	if a.Namespace == "" {
		a.Namespace = podNamespace()
	}
	if a.FlushInterval <= 0 {
		a.FlushInterval = auditevents.DefaultFlushInterval
	}
	return a, nil
}

// auditSource is the running audit log source.
type auditSource struct {
	summary   *auditlog.Summary
	receiver  *auditevents.Receiver
	persister *auditevents.Persister
	server    *http.Server
	listener  net.Listener
	// explainer checks reads against the latest report.
	explainer atomic.Pointer[auditlog.Explainer]
}

// newAuditSource validates the options, reads the token and the TLS
// material and binds the webhook's port, so that a bad file or a port in
// use fails the start.
func (d *daemon) newAuditSource(reg prometheus.Registerer, cs kubernetes.Interface) (*auditSource, error) {
	o := *d.opts.AuditLog
	src := &auditSource{summary: auditlog.NewSummary(auditlog.Options{Window: o.Window, MaxEntries: o.MaxEntries})}
	rec := metrics.NewAudit(reg, func() (int, uint64) {
		st := src.summary.Stats()
		return st.Entries, st.Evicted
	})
	var token []byte
	if o.TokenFile != "" {
		b, err := os.ReadFile(o.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("--audit-webhook-token-file: %w", err)
		}
		if token = []byte(strings.TrimSpace(string(b))); len(token) == 0 {
			return nil, fmt.Errorf("--audit-webhook-token-file %s is empty", o.TokenFile)
		}
	}
	var err error
	src.receiver, err = auditevents.NewReceiver(auditevents.ReceiverOptions{
		Summary: src.summary, Token: token, MaxBodyBytes: o.MaxBodyBytes, QueueSize: o.QueueSize,
		Explainer: src.explainer.Load, Recorder: rec, Logger: d.log,
	})
	if err != nil {
		return nil, err
	}
	src.persister = &auditevents.Persister{Summary: src.summary, Interval: o.FlushInterval, OnChange: d.markChanged, Recorder: rec, Logger: d.log}
	if o.Namespace != "" {
		src.persister.Store, err = auditevents.NewStore(auditevents.StoreOptions{
			Client: cs, Namespace: o.Namespace, Name: o.StoreName, Window: o.Window, Logger: d.log,
		})
		if err != nil {
			return nil, err
		}
	} else {
		d.log.Warn("audit log: no namespace to keep the summary in (set --audit-namespace or POD_NAMESPACE); a restart forgets who read what")
	}
	if o.WebhookAddr == "" && o.Listener == nil {
		return src, nil
	}
	tlsConfig, err := webhookTLS(o)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(auditevents.Path, src.receiver)
	src.server = &http.Server{
		Handler:           mux,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		// A batch is read and decoded well within this; a slow sender
		// only holds its own connection.
		ReadTimeout: 30 * time.Second,
		ErrorLog:    slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	src.listener = o.Listener
	if src.listener == nil {
		if src.listener, err = net.Listen("tcp", o.WebhookAddr); err != nil {
			return nil, fmt.Errorf("--audit-webhook-addr %s: %w", o.WebhookAddr, err)
		}
	}
	d.log.Info("audit webhook listening", "address", src.listener.Addr().String(), "path", auditevents.Path)
	return src, nil
}

// webhookTLS loads the serving certificate, and the client CA when mTLS
// is on. A client certificate is asked for but not required when a token
// is accepted too; the handler checks that one or the other is there.
// The certificate is read again when its files change, so that a
// rotation by cert-manager needs no restart.
func webhookTLS(o AuditLog) (*tls.Config, error) {
	certs := &certReloader{certFile: o.TLSCertFile, keyFile: o.TLSKeyFile}
	if _, err := certs.get(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.get() },
	}
	if o.ClientCAFile != "" {
		pem, err := os.ReadFile(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("--audit-webhook-client-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--audit-webhook-client-ca-file %s holds no PEM certificate", o.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if o.TokenFile != "" {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return cfg, nil
}

// certReloader serves a key pair from files, loading it again when a
// file's modification time changes (checked at most every 10 s).
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	mtime   time.Time
	checked time.Time
}

func (c *certReloader) get() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && time.Since(c.checked) < 10*time.Second {
		return c.cert, nil
	}
	c.checked = time.Now()
	var newest time.Time
	for _, f := range []string{c.certFile, c.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			if c.cert != nil {
				return c.cert, nil
			}
			return nil, fmt.Errorf("audit webhook TLS: %w", err)
		}
		if st.ModTime().After(newest) {
			newest = st.ModTime()
		}
	}
	if c.cert != nil && !newest.After(c.mtime) {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil
		}
		return nil, fmt.Errorf("audit webhook TLS: %w", err)
	}
	c.cert, c.mtime = &cert, newest
	return c.cert, nil
}

// run starts the source's goroutines and returns a function that stops
// them: the webhook stops taking requests, queued reads are applied, and
// the summary is flushed a last time.
func (src *auditSource) run(ctx context.Context, d *daemon) (stop func(ctx context.Context)) {
	workerCtx, stopWorker := context.WithCancel(context.Background())
	var worker, others sync.WaitGroup
	worker.Go(func() { src.receiver.Run(workerCtx) })
	persistCtx, stopPersist := context.WithCancel(context.Background())
	others.Go(func() { src.persister.Run(persistCtx) })
	if o := d.opts.AuditLog; o.LogFile != "" {
		others.Go(func() {
			if err := src.receiver.Tail(ctx, auditevents.TailOptions{Path: o.LogFile}); err != nil {
				d.log.Error("audit log: tail stopped", "path", o.LogFile, "err", err)
			}
		})
	}
	if src.server != nil {
		go func() {
			if err := src.server.ServeTLS(src.listener, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("audit webhook server failed", "err", err)
			}
		}()
	}
	return func(sctx context.Context) {
		if src.server != nil {
			if err := src.server.Shutdown(sctx); err != nil {
				d.log.Warn("audit webhook: in-flight requests did not finish in time", "err", err)
			}
		}
		// The worker drains the queue; then the last flush stores it.
		stopWorker()
		worker.Wait()
		stopPersist()
		done := make(chan struct{})
		go func() { others.Wait(); close(done) }()
		select {
		case <-done:
		case <-sctx.Done():
			d.log.Warn("audit log: the last flush of the summary did not finish in time")
		}
	}
}

// auditSnapshot is the summary for an analysis; nil without an audit
// source.
func (d *daemon) auditSnapshot() *auditlog.Snapshot {
	if d.audit == nil {
		return nil
	}
	return d.audit.summary.Snapshot()
}
