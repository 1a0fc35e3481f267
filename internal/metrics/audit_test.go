package metrics

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keyhole-sec/keyhole/internal/report"
)

// withAudit adds an audit log source to r: a/db read by two subjects with
// one unused reader, and b/api read by nobody. complete says whether a
// whole window was observed.
func withAudit(r *report.Report, complete bool) *report.Report {
	r.Coverage.Sources = append(r.Coverage.Sources, report.SourceCoverage{Kind: "audit-log",
		AuditLog: &report.AuditLogCoverage{Window: "720h0m0s", Complete: complete}})
	for i := range r.Secrets {
		s := &r.Secrets[i]
		s.AuditWindow = "720h0m0s"
		if s.Namespace == "a" && s.Name == "db" {
			s.ActualReaders = []report.ActualReader{
				{Subject: report.Subject{Kind: "User", Name: "alice"}, Count: 3},
				{Subject: report.Subject{Kind: "User", Name: "eve"}, Count: 1, Unexplained: true},
			}
			if complete {
				s.UnusedReaders = []report.UnusedReader{{Subject: report.Subject{Kind: "User", Name: "bob"}}}
			}
		}
	}
	return r
}

const auditSeries = `
# HELP keyhole_secret_actual_readers Subjects the audit log saw reading the Secret within the audit window, by a get of it or a list or watch of its namespace (docs/audit.md). Only with an audit source (--audit-webhook-addr or --audit-log-file); a Secret nobody read has the value 0.
# TYPE keyhole_secret_actual_readers gauge
keyhole_secret_actual_readers{namespace="a",secret="db"} 2
keyhole_secret_actual_readers{namespace="b",secret="api"} 0
`

const unusedSeries = `
# HELP keyhole_secret_unused_readers Direct readers of the Secret, expected ones aside, that did not read it within the audit window: grants to remove (rule KH620). Only once the audit source has observed a whole window.
# TYPE keyhole_secret_unused_readers gauge
keyhole_secret_unused_readers{namespace="a",secret="db"} 1
keyhole_secret_unused_readers{namespace="b",secret="api"} 0
`

// TestAuditCounts: the per-Secret audit series appear with an audit
// source (unused readers once a whole window is observed) and are gone
// from the next scrape without one.
func TestAuditCounts(t *testing.T) {
	h := newHolder(withAudit(world(), true))
	c := h.collector(Options{PerSecret: true})
	names := []string{nameSecretActualReaders, nameSecretUnusedReaders}
	if err := testutil.CollectAndCompare(c, strings.NewReader(auditSeries+unusedSeries), names...); err != nil {
		t.Error(err)
	}
	h.report.Store(withAudit(world(), false))
	if err := testutil.CollectAndCompare(c, strings.NewReader(auditSeries), names...); err != nil {
		t.Errorf("before a whole window: %v", err)
	}
	h.report.Store(world())
	if n := testutil.CollectAndCount(c, names...); n != 0 {
		t.Errorf("%d audit series without an audit source", n)
	}
	if n := testutil.CollectAndCount(newHolder(withAudit(world(), true)).collector(Options{}), names...); n != 0 {
		t.Errorf("%d per-Secret audit series with --metrics.per-secret=false", n)
	}
}

func TestAuditSelf(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	evicted := uint64(4)
	a := NewAudit(reg, func() (int, uint64) { return 7, evicted })
	a.Request(200)
	a.Request(200)
	a.Request(403)
	a.Received(400, 350)
	a.Dropped(50)
	a.Unexplained(2)
	a.Persisted(nil, 3)
	a.Persisted(errors.New("conflict"), 0)
	want := `
# HELP keyhole_audit_events_dropped_total Secret reads received from the webhook but dropped because the queue to the summary was full: the webhook answers at once rather than hold up the API server. Only with an audit source.
# TYPE keyhole_audit_events_dropped_total counter
keyhole_audit_events_dropped_total 50
# HELP keyhole_audit_events_received_total Audit events received by this replica, from the webhook or the audit log file. Only with an audit source.
# TYPE keyhole_audit_events_received_total counter
keyhole_audit_events_received_total 400
# HELP keyhole_audit_persist_errors_total Failed merges of the audit summary into its ConfigMaps; the reads stay pending for the next attempt. Only with an audit source and a namespace to store in.
# TYPE keyhole_audit_persist_errors_total counter
keyhole_audit_persist_errors_total 1
# HELP keyhole_audit_secret_reads_total Secret reads among the audit events received: completed gets, lists and watches of Secrets with a code below 400. Only with an audit source.
# TYPE keyhole_audit_secret_reads_total counter
keyhole_audit_secret_reads_total 350
# HELP keyhole_audit_summary_entries (subject, Secret) entries in this replica's audit summary; bounded by --audit-max-entries. Only with an audit source.
# TYPE keyhole_audit_summary_entries gauge
keyhole_audit_summary_entries 7
# HELP keyhole_audit_summary_evictions_total Audit summary entries dropped to stay within --audit-max-entries or to fit a stored shard: reads forgotten early. Only with an audit source.
# TYPE keyhole_audit_summary_evictions_total counter
keyhole_audit_summary_evictions_total 7
# HELP keyhole_audit_webhook_requests_total Audit webhook requests by HTTP status code: 200, 400 (not an EventList), 401 (no credentials), 403 (wrong token), 405, 413 (batch too large). Only with --audit-webhook-addr.
# TYPE keyhole_audit_webhook_requests_total counter
keyhole_audit_webhook_requests_total{code="200"} 2
keyhole_audit_webhook_requests_total{code="403"} 1
# HELP keyhole_unexplained_reads_total Secret reads received that the latest report's readers do not explain: no RBAC grant, system:masters membership or Node authorizer path lets the subject read the Secret (rule KH621). Only with an audit source.
# TYPE keyhole_unexplained_reads_total counter
keyhole_unexplained_reads_total 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
