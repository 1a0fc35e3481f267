// Package metrics owns keyhole's Prometheus metrics: the catalog that
// defines every metric (docs/metrics.md is generated from it), the Findings
// collector, which builds the findings metrics at scrape time from the
// latest report, and the daemon's self-metrics. Like every sink it only
// formats what the report already holds, and it never touches the global
// registry: the daemon passes its own.
package metrics

import (
	"strings"
	"unicode/utf8"
)

// Options choose the optional findings metrics. The two are independent.
type Options struct {
	// PerSecret exports the per-Secret series (on by default in the CLI;
	// --metrics.per-secret=false turns them off for very large clusters).
	PerSecret bool
	// ReaderInfo exports keyhole_secret_reader_info (opt-in,
	// --metrics.reader-info).
	ReaderInfo bool
}

// labelValue makes a report string safe as a label value. The client
// library rejects a label value that is not UTF-8 by panicking, which the
// registry turns into a failed scrape that loses every series after it:
// too much to pay for one name no Kubernetes API would accept anyway.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
