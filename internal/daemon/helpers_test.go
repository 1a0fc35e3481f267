package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/daemontest"
	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/testlog"
)

// inProcess is a daemon run by Run in this test process.
type inProcess struct {
	addr string
	logs *testlog.Buffer
}

// startInProcess runs the daemon against cfg on a free loopback port and
// stops it when t ends. edit may change the options.
func startInProcess(t *testing.T, cfg *rest.Config, edit func(*Options)) *inProcess {
	t.Helper()
	d := daemontest.Start(t, func(ctx context.Context, logger *slog.Logger, listening func(string)) error {
		opts := Options{
			Config:          cfg,
			Debounce:        200 * time.Millisecond,
			ListenAddresses: []string{"127.0.0.1:0"},
			Version:         "test",
			Logger:          logger,
			Listening:       listening,
		}
		opts.Metrics.PerSecret = true
		if edit != nil {
			edit(&opts)
		}
		return Run(ctx, opts)
	})
	return &inProcess{addr: d.Addr, logs: d.Logs}
}

func (d *inProcess) url(path string) string { return "http://" + d.addr + path }

// families are one scrape, by metric name.
type families map[string]*dto.MetricFamily

func scrape(url string) (families, []byte, error) {
	code, body, err := probe.Get(url, "")
	if err != nil {
		return nil, nil, err
	}
	if code != http.StatusOK {
		return nil, body, fmt.Errorf("GET %s: %d: %s", url, code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	return fams, body, err
}

// value is the value of the series of name whose labels include want.
func (f families) value(name string, want map[string]string) (float64, bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// findingsSeries counts the series of every keyhole_ findings family
// (everything but the self-metrics), which only a leader exports.
func (f families) findingsSeries() int {
	n := 0
	for name, fam := range f {
		if strings.HasPrefix(name, "keyhole_") && !selfMetric[name] {
			n += len(fam.GetMetric())
		}
	}
	return n
}

var selfMetric = map[string]bool{
	"keyhole_build_info":                      true,
	"keyhole_analysis_duration_seconds":       true,
	"keyhole_last_analysis_timestamp_seconds": true,
	"keyhole_analysis_errors_total":           true,
	"keyhole_events_total":                    true,
	"keyhole_source_up":                       true,
	"keyhole_leader":                          true,
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// labelsOf lists the label sets of name, for failure messages.
func (f families) labelsOf(name string) string {
	var out []string
	if fam := f[name]; fam != nil {
		for _, m := range fam.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			out = append(out, "{"+strings.Join(ls, ",")+"}")
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}
