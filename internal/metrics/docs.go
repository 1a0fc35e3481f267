package metrics

import (
	"fmt"
	"strings"
)

// Markers delimit the part of docs/metrics.md that Reference generates;
// the prose around them is written by hand.
const (
	DocsBegin = "<!-- BEGIN GENERATED: internal/metrics Catalog; go test ./internal/metrics -run TestDocs -update -->"
	DocsEnd   = "<!-- END GENERATED -->"
)

// setHeading is a set and the heading of its table in the reference.
type setHeading struct {
	set     Set
	heading string
}

// sets are the catalog's sets in the order the reference lists them.
var sets = []setHeading{
	{PerSecret, "Per Secret: on by default; `--metrics.per-secret=false` turns them off"},
	{RollUp, "Roll-ups: always, from the replica that exports findings"},
	{ReaderInfo, "Reader info: opt-in, `--metrics.reader-info`"},
	{SelfMetrics, "Self-metrics: always, on every replica"},
}

// Reference returns the metrics reference of docs/metrics.md, between and
// including the markers: one table per set, in catalog order.
func Reference() string {
	var b strings.Builder
	b.WriteString(DocsBegin + "\n")
	for _, s := range sets {
		fmt.Fprintf(&b, "\n### %s\n\n", s.heading)
		b.WriteString("| metric | type | labels | series | description |\n|---|---|---|---|---|\n")
		for _, d := range Catalog {
			if d.Set != s.set {
				continue
			}
			labels := "none"
			if len(d.Labels) > 0 {
				labels = "`" + strings.Join(d.Labels, "`, `") + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", d.Name, d.Type, labels, d.Cardinality, strings.ReplaceAll(d.Help, "|", `\|`))
		}
	}
	b.WriteString("\n" + DocsEnd + "\n")
	return b.String()
}
