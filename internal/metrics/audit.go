package metrics

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyhole-sec/keyhole/internal/report"
)

// AuditSizes returns what an audit summary holds: its entries and the
// entries it evicted, ever.
type AuditSizes func() (entries int, evicted uint64)

// Audit holds the self-metrics of the audit log source. Like Self they
// are ordinary instruments on every replica: each counts the events it
// received, so sum() over replicas counts each event once.
type Audit struct {
	requests      *prometheus.CounterVec
	events        prometheus.Counter
	reads         prometheus.Counter
	dropped       prometheus.Counter
	unexplained   prometheus.Counter
	persistErrors prometheus.Counter
	storeDropped  atomic.Uint64
}

// NewAudit creates the audit self-metrics and registers them on reg;
// sizes is read at every scrape. Like MustRegister, it panics if reg
// already holds them.
func NewAudit(reg prometheus.Registerer, sizes AuditSizes) *Audit {
	counter := func(name string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: definition(name).Help})
	}
	a := &Audit{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameAuditRequests, Help: definition(nameAuditRequests).Help},
			definition(nameAuditRequests).Labels),
		events:        counter(nameAuditEvents),
		reads:         counter(nameAuditSecretReads),
		dropped:       counter(nameAuditDropped),
		unexplained:   counter(nameUnexplainedReads),
		persistErrors: counter(nameAuditPersistErrors),
	}
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: nameAuditEntries, Help: definition(nameAuditEntries).Help}, func() float64 {
		n, _ := sizes()
		return float64(n)
	})
	evictions := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: nameAuditEvictions, Help: definition(nameAuditEvictions).Help}, func() float64 {
		_, n := sizes()
		return float64(n + a.storeDropped.Load())
	})
	reg.MustRegister(a.requests, a.events, a.reads, a.dropped, a.unexplained, a.persistErrors, entries, evictions)
	return a
}

// Request counts one webhook request by its status code.
func (a *Audit) Request(code int) { a.requests.WithLabelValues(strconv.Itoa(code)).Inc() }

// Received counts events received and the Secret reads among them.
func (a *Audit) Received(events, reads int) {
	a.events.Add(float64(events))
	a.reads.Add(float64(reads))
}

// Dropped counts Secret reads dropped on a full queue.
func (a *Audit) Dropped(reads int) { a.dropped.Add(float64(reads)) }

// Unexplained counts Secret reads no reader of the latest report
// explains.
func (a *Audit) Unexplained(reads int) { a.unexplained.Add(float64(reads)) }

// Persisted records one flush of the summary into its store.
func (a *Audit) Persisted(err error, dropped int) {
	if err != nil {
		a.persistErrors.Inc()
	}
	if dropped > 0 {
		a.storeDropped.Add(uint64(dropped))
	}
}

// auditCounts emits keyhole_secret_actual_readers for every Secret when
// the report read an audit log, and keyhole_secret_unused_readers once
// that log covers a whole window: without them, "nobody read it" could
// not be told from "nobody looked".
func (f *Findings) auditCounts(ch chan<- prometheus.Metric, r *report.Report) {
	var cov *report.AuditLogCoverage
	for i := range r.Coverage.Sources {
		if c := r.Coverage.Sources[i].AuditLog; c != nil {
			cov = c
		}
	}
	if cov == nil {
		return
	}
	for i := range r.Secrets {
		s := &r.Secrets[i]
		ns, name := labelValue(s.Namespace), labelValue(s.Name)
		gauge(ch, f.actualReaders, float64(len(s.ActualReaders)), ns, name)
		if cov.Complete {
			gauge(ch, f.unusedReaders, float64(len(s.UnusedReaders)), ns, name)
		}
	}
}
