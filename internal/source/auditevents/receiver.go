// Package auditevents is the audit log source of keyhole serve: the
// Kubernetes audit webhook backend it receives events on (an EventList
// per POST, authenticated by a client certificate or a bearer token), the
// tail of an audit log file (following rotation), and the store that
// persists the summary in ConfigMaps of keyhole's namespace, merged across
// replicas with resourceVersion checks. Events become auditlog.Reads on
// arrival and only the bounded auditlog.Summary outlives them: no request
// or response body is ever decoded, kept, logged or stored. It does not
// own the summary's model (internal/auditlog) nor the HTTP server's
// listener and TLS settings beyond what the handler checks.
package auditevents

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
)

// Path is where the webhook receives events.
const Path = "/audit/webhook"

// Defaults of ReceiverOptions.
const (
	// DefaultMaxBodyBytes bounds one POST. The apiserver's batches are
	// 400 events by default (--audit-webhook-batch-max-size), about
	// 1 KiB each at Metadata level: this leaves a margin of twenty.
	DefaultMaxBodyBytes = 8 << 20
	// DefaultQueueSize bounds the batches of reads waiting for the
	// summary. A full queue drops, and counts, rather than grows or
	// makes the apiserver wait.
	DefaultQueueSize = 256
)

// Recorder counts what the receiver does; internal/metrics implements it.
type Recorder interface {
	// Request counts one webhook request by its status code.
	Request(code int)
	// Received counts events decoded, and the Secret reads among them.
	Received(events, reads int)
	// Dropped counts Secret reads dropped because the queue was full.
	Dropped(reads int)
	// Unexplained counts reads that the latest report's readers do not
	// explain (KH621).
	Unexplained(reads int)
}

type nopRecorder struct{}

func (nopRecorder) Request(int)       {}
func (nopRecorder) Received(int, int) {}
func (nopRecorder) Dropped(int)       {}
func (nopRecorder) Unexplained(int)   {}

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	// Summary receives the reads; required.
	Summary *auditlog.Summary
	// Token is the bearer token the apiserver presents (from its webhook
	// kubeconfig). Empty: only a client certificate that the TLS layer
	// verified against the client CA is accepted.
	Token []byte
	// MaxBodyBytes bounds one request; DefaultMaxBodyBytes when zero.
	MaxBodyBytes int64
	// QueueSize bounds the batches waiting; DefaultQueueSize when zero.
	QueueSize int
	// Explainer returns the check of the latest report, or nil before
	// the first one; called once per batch.
	Explainer func() *auditlog.Explainer
	Recorder  Recorder
	Logger    *slog.Logger
}

// Receiver turns audit events into reads of the summary: an
// http.Handler for the webhook, and a worker (Run) that applies queued
// reads.
type Receiver struct {
	opts    ReceiverOptions
	token   [sha256.Size]byte
	queue   chan []auditlog.Read
	pending atomic.Int64
}

// NewReceiver returns a receiver. Start its worker with Run.
func NewReceiver(opts ReceiverOptions) (*Receiver, error) {
	if opts.Summary == nil {
		return nil, errors.New("auditevents: no summary")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Recorder == nil {
		opts.Recorder = nopRecorder{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Receiver{opts: opts, queue: make(chan []auditlog.Read, opts.QueueSize)}
	if len(opts.Token) > 0 {
		r.token = sha256.Sum256(opts.Token)
	}
	return r, nil
}

// Run applies queued reads to the summary until ctx ends, then applies
// what is still queued.
func (r *Receiver) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case batch := <-r.queue:
					r.apply(batch)
				default:
					return
				}
			}
		case batch := <-r.queue:
			r.apply(batch)
		}
	}
}

// Idle reports whether no batch waits for the worker, for tests and
// benchmarks that feed the receiver and then look at the summary.
func (r *Receiver) Idle() bool { return r.pending.Load() == 0 }

func (r *Receiver) apply(batch []auditlog.Read) {
	defer r.pending.Add(-1)
	var x *auditlog.Explainer
	if r.opts.Explainer != nil {
		x = r.opts.Explainer()
	}
	unexplained := 0
	for i := range batch {
		r.opts.Summary.Add(batch[i])
		if x != nil && !x.Explained(&batch[i]) {
			unexplained++
		}
	}
	if unexplained > 0 {
		r.opts.Recorder.Unexplained(unexplained)
	}
}

// offer queues a batch without waiting; false when the queue is full.
func (r *Receiver) offer(batch []auditlog.Read) bool {
	r.pending.Add(1)
	select {
	case r.queue <- batch:
		return true
	default:
		r.pending.Add(-1)
		return false
	}
}

// push queues a batch, waiting for room: for the file tail, which may
// fall behind without holding anyone up.
func (r *Receiver) push(ctx context.Context, batch []auditlog.Read) error {
	r.pending.Add(1)
	select {
	case r.queue <- batch:
		return nil
	case <-ctx.Done():
		r.pending.Add(-1)
		return ctx.Err()
	}
}

// ServeHTTP receives one EventList. It answers as soon as the body is
// decoded: the reads are queued for the worker, or dropped and counted
// when the queue is full, so that the apiserver (which in blocking mode
// waits for this answer before it answers its own client) never waits
// on the summary.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	code := r.serve(w, req)
	r.opts.Recorder.Request(code)
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) int {
	if code := r.authenticate(req); code != 0 {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="keyhole audit webhook"`)
		}
		return reply(w, code, http.StatusText(code))
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return reply(w, http.StatusMethodNotAllowed, "POST an audit.k8s.io/v1 EventList")
	}
	body := http.MaxBytesReader(w, req.Body, r.opts.MaxBodyBytes)
	list, err := auditlog.DecodeEventList(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			r.opts.Logger.Warn("audit webhook: batch larger than the limit; lower --audit-webhook-batch-max-size on the apiserver",
				"limit", r.opts.MaxBodyBytes, "remote", req.RemoteAddr)
			return reply(w, http.StatusRequestEntityTooLarge, "batch too large")
		}
		// The decoder's message names a position and a type, never
		// the content.
		r.opts.Logger.Warn("audit webhook: bad request", "err", err, "remote", req.RemoteAddr)
		return reply(w, http.StatusBadRequest, "not an audit.k8s.io/v1 EventList")
	}
	var reads []auditlog.Read
	for i := range list.Items {
		if rd, ok := auditlog.ReadOf(&list.Items[i]); ok {
			reads = append(reads, rd)
		}
	}
	r.opts.Recorder.Received(len(list.Items), len(reads))
	if len(reads) > 0 && !r.offer(reads) {
		r.opts.Recorder.Dropped(len(reads))
	}
	return reply(w, http.StatusOK, "")
}

// authenticate returns 0 for a caller with a verified client certificate
// or the expected bearer token, 401 for one with neither, 403 for a wrong
// token. The token is compared by its digest in constant time.
func (r *Receiver) authenticate(req *http.Request) int {
	if req.TLS != nil && len(req.TLS.VerifiedChains) > 0 {
		return 0
	}
	if len(r.opts.Token) == 0 {
		return http.StatusUnauthorized
	}
	auth := req.Header.Get("Authorization")
	given, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || given == "" {
		return http.StatusUnauthorized
	}
	sum := sha256.Sum256([]byte(given))
	if subtle.ConstantTimeCompare(sum[:], r.token[:]) != 1 {
		return http.StatusForbidden
	}
	return 0
}

func reply(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	if msg != "" {
		_, _ = w.Write([]byte(msg + "\n"))
	}
	return code
}
