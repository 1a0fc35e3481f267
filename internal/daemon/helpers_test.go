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

	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/testlog"
)

// inProcess is a daemon run by Run in this test process.
type inProcess struct {
	addr   string
	logs   *testlog.Buffer
	cancel context.CancelFunc
	done   chan error
}

// startInProcess runs the daemon against cfg on a free loopback port and
// stops it when t ends. edit may change the options.
func startInProcess(t *testing.T, cfg *rest.Config, edit func(*Options)) *inProcess {
	t.Helper()
	logs := &testlog.Buffer{}
	addrs := make(chan string, 1)
	opts := Options{
		Config:          cfg,
		Debounce:        200 * time.Millisecond,
		ListenAddresses: []string{"127.0.0.1:0"},
		Version:         "test",
		Logger:          slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Listening:       func(a string) { addrs <- a },
	}
	opts.Metrics.PerSecret = true
	if edit != nil {
		edit(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &inProcess{logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- Run(ctx, opts) }()
	select {
	case d.addr = <-addrs:
	case err := <-d.done:
		cancel()
		t.Fatalf("daemon did not start: %v\nlogs:\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("daemon did not bind its port within 30 s")
	}
	t.Cleanup(func() {
		d.cancel()
		select {
		case err := <-d.done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("daemon did not stop within 15 s of its context's end")
		}
		if t.Failed() {
			t.Logf("daemon logs:\n%s", logs)
		}
	})
	return d
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
