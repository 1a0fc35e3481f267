package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/keyhole-sec/keyhole/internal/httpauth"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// ReportPath serves the latest report as JSON, to authenticated and
// authorized callers only (see docs/api.md).
const ReportPath = "/api/v1/report"

// server is the daemon's one HTTP port.
type server struct {
	http      *http.Server
	listeners []net.Listener
	flags     *web.FlagConfig
	log       *slog.Logger
}

// newServer validates the web config and binds every address, so that a
// bad file or a port in use fails the start rather than a goroutine.
func (d *daemon) newServer(reg *prometheus.Registry, auth *httpauth.Filter) (*server, error) {
	if d.opts.WebConfigFile != "" {
		if err := web.Validate(d.opts.WebConfigFile); err != nil {
			return nil, fmt.Errorf("--web.config.file %s: %w", d.opts.WebConfigFile, err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle(d.opts.TelemetryPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelError),
		Registry: reg,
		// A scrape builds every findings series from the snapshot; two
		// Prometheus servers and a curl are plenty in parallel.
		MaxRequestsInFlight: 4,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("/readyz", d.serveReady)
	mux.Handle(ReportPath, auth.Wrap(http.HandlerFunc(d.serveReport)))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "keyhole serve\n\n"+d.opts.TelemetryPath+"  Prometheus metrics\n/healthz  liveness\n/readyz   readiness (after the first analysis)\n"+ReportPath+"  the JSON report (bearer token; see docs/api.md)")
	})

	s := &server{
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
		},
		flags: &web.FlagConfig{
			WebListenAddresses: &d.opts.ListenAddresses,
			WebSystemdSocket:   new(bool),
			WebConfigFile:      &d.opts.WebConfigFile,
		},
		log: d.log,
	}
	for _, addr := range d.opts.ListenAddresses {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("--web.listen-address %s: %w", addr, err)
		}
		s.listeners = append(s.listeners, l)
		if d.opts.Listening != nil {
			d.opts.Listening(l.Addr().String())
		}
	}
	return s, nil
}

func (s *server) closeListeners() {
	for _, l := range s.listeners {
		_ = l.Close()
	}
}

// serve serves until shutdown; nil after a shutdown.
func (s *server) serve() error {
	err := web.ServeMultiple(s.listeners, s.http, s.flags, s.log)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// shutdown stops accepting connections and waits for in-flight requests
// (a scrape, a report download) until ctx ends.
func (s *server) shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	s.closeListeners()
	return err
}

// serveReady is 200 once an analysis of something read from the cluster
// is published: a replica that has not analysed yet, or could read
// nothing at all (the apiserver unreachable since it started), has
// nothing to say. A replica that was ready stays ready when the
// apiserver goes away: the informers keep what they had listed, so the
// reports go on covering it, and keyhole_source_up says what is missing.
func (d *daemon) serveReady(w http.ResponseWriter, _ *http.Request) {
	switch s := d.latest.Load(); {
	case s == nil:
		writeText(w, http.StatusServiceUnavailable, "not ready: the first analysis has not finished")
	case s.empty:
		writeText(w, http.StatusServiceUnavailable, "not ready: nothing could be read from the cluster yet (keyhole_source_up and the logs say why)")
	default:
		writeText(w, http.StatusOK, "ok")
	}
}

func (d *daemon) serveReport(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeText(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	snap := d.latest.Load()
	if snap == nil {
		w.Header().Set("Retry-After", "5")
		writeText(w, http.StatusServiceUnavailable, "no report yet: the first analysis has not finished")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Last-Modified", snap.at.UTC().Format(http.TimeFormat))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	// Streamed: the status is sent, so a failure (the client went away)
	// can only be logged.
	if err := report.WriteJSON(w, snap.report); err != nil {
		d.log.Debug("sending the report failed", "err", err, "remote", r.RemoteAddr)
	}
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}
