package metrics

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// analysisBuckets run from 10 ms, a small cluster, to about 160 s, past
// what a cluster of tens of thousands of Secrets takes, doubling.
var analysisBuckets = prometheus.ExponentialBuckets(0.01, 2, 15)

// Self holds the daemon's self-metrics. Unlike the findings metrics they
// are ordinary instruments: they accumulate over the process's life and
// every replica exports them, leader or not.
type Self struct {
	duration prometheus.Histogram
	last     prometheus.Gauge
	errors   prometheus.Counter
	events   *prometheus.CounterVec
	up       *prometheus.GaugeVec
	leader   prometheus.Gauge
}

// NewSelf creates the self-metrics and registers them on reg, with
// keyhole_build_info set for version. Like MustRegister, it panics if reg
// already holds them.
func NewSelf(reg prometheus.Registerer, version string) *Self {
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: nameBuildInfo, Help: definition(nameBuildInfo).Help,
		ConstLabels: prometheus.Labels{labelVersion: labelValue(version), labelGoVersion: runtime.Version()},
	})
	build.Set(1)
	s := &Self{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: nameAnalysisDuration, Help: definition(nameAnalysisDuration).Help, Buckets: analysisBuckets,
		}),
		last:   prometheus.NewGauge(prometheus.GaugeOpts{Name: nameLastAnalysis, Help: definition(nameLastAnalysis).Help}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: nameAnalysisErrors, Help: definition(nameAnalysisErrors).Help}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameEvents, Help: definition(nameEvents).Help},
			definition(nameEvents).Labels),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: nameSourceUp, Help: definition(nameSourceUp).Help},
			definition(nameSourceUp).Labels),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: nameLeader, Help: definition(nameLeader).Help}),
	}
	reg.MustRegister(build, s.duration, s.last, s.errors, s.events, s.up, s.leader)
	return s
}

// AnalysisDone records one analysis that took took and finished at at.
// Failed analyses count in the duration too, as a slow failure is worth
// seeing, but only a success moves the last-analysis timestamp.
func (s *Self) AnalysisDone(took time.Duration, at time.Time, err error) {
	s.duration.Observe(took.Seconds())
	if err != nil {
		s.errors.Inc()
		return
	}
	s.last.Set(float64(at.UnixNano()) / 1e9)
}

// Event counts one watch event on resource (for example "secrets").
func (s *Self) Event(resource string) {
	s.events.WithLabelValues(labelValue(resource)).Inc()
}

// SourceUp records whether resource is being listed and watched.
func (s *Self) SourceUp(resource string, up bool) {
	s.up.WithLabelValues(labelValue(resource)).Set(boolValue(up))
}

// Leader records whether this replica is the leader.
func (s *Self) Leader(leader bool) {
	s.leader.Set(boolValue(leader))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
