package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keyhole-sec/keyhole/internal/report"
)

// largeReport is a synthetic report of the size the issue sets the scrape
// budget for: secrets Secrets over namespaces of 40, each with six readers
// over three path kinds (one of them expected) and a finding.
func largeReport(secrets int) *report.Report {
	kinds := []string{"direct", "pod-create", "token-mint", "pod-exec", "node-authorizer"}
	severities := []string{"info", "low", "medium", "high", "critical"}
	managers := []string{"", "sealed-secrets", "external-secrets", "vault-secrets-operator", "helm"}
	r := &report.Report{APIVersion: report.APIVersion, Kind: report.Kind}
	for i := range secrets {
		ns := fmt.Sprintf("team-%03d", i/40)
		readers := []report.Reader{reader("Group", "", "system:masters", "direct", true)}
		for j := range 5 {
			readers = append(readers, reader("ServiceAccount", ns, fmt.Sprintf("app-%d", j), kinds[(i+j)%3], false))
		}
		r.Secrets = append(r.Secrets, report.Secret{
			Namespace: ns, Name: fmt.Sprintf("secret-%05d", i),
			Readers:   report.Readers(readers...),
			Exposure:  report.Exposure{Score: i % 100, Severity: severities[i%5]},
			ManagedBy: managers[i%5],
		})
		r.Findings = append(r.Findings, report.Finding{
			Rule: fmt.Sprintf("KH1%02d", i%5), Severity: severities[i%5],
			Object: report.ObjectRef{Kind: "Secret", Namespace: ns, Name: fmt.Sprintf("secret-%05d", i)},
		})
	}
	return r
}

// BenchmarkCollect measures collecting and gathering over 20,000 Secrets
// (what the registry does before encoding), and a whole scrape of
// per-Secret series through the HTTP handler, text encoding included. The
// issue's budget is under a second per scrape with per-Secret series on:
// see scrape-per-secret.
func BenchmarkCollect(b *testing.B) {
	r := largeReport(20000)
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"roll-ups", Options{}},
		{"per-secret", Options{PerSecret: true}},
		{"per-secret+reader-info", Options{PerSecret: true, ReaderInfo: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(newHolder(r).collector(bc.opts))
			series := 0
			for b.Loop() {
				families, err := reg.Gather()
				if err != nil {
					b.Fatal(err)
				}
				series = 0
				for _, mf := range families {
					series += len(mf.GetMetric())
				}
			}
			b.ReportMetric(float64(series), "series")
		})
	}
	b.Run("scrape-per-secret", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(newHolder(r).collector(Options{PerSecret: true}))
		h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("scrape: %d %s", w.Code, w.Body)
			}
			if _, err := io.Copy(io.Discard, w.Body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
