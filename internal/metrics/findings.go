package metrics

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// Findings is a prometheus.Collector that builds every findings metric at
// scrape time, as const metrics, from the latest report. Nothing outlives a
// scrape, so a Secret or finding gone from the report is gone from the next
// scrape: there is no series to delete and none goes stale. When exporting
// reports false (a follower replica, or no analysis yet) it emits nothing.
type Findings struct {
	latest    func() *report.Report
	exporting func() bool
	opts      Options

	secretReaders, secretScore, secretSeverity, secretEnv, secretManaged *prometheus.Desc
	readerInfo                                                           *prometheus.Desc
	crossEnvReaders                                                      *prometheus.Desc
	findings, findingsCluster, secrets, gitPlaintext                     *prometheus.Desc
	etcdEncryption, indirectComplete                                     *prometheus.Desc
	actualReaders, unusedReaders                                         *prometheus.Desc
}

// NewFindings returns the findings collector. latest returns the report to
// export, which must not change once returned (the daemon swaps in a new
// one); exporting says whether this replica exports findings at all. Both
// are called at every scrape.
func NewFindings(latest func() *report.Report, exporting func() bool, opts Options) *Findings {
	return &Findings{
		latest:           latest,
		exporting:        exporting,
		opts:             opts,
		secretReaders:    newDesc(nameSecretReaders),
		secretScore:      newDesc(nameSecretExposureScore),
		secretSeverity:   newDesc(nameSecretSeverity),
		secretEnv:        newDesc(nameSecretEnvInjections),
		secretManaged:    newDesc(nameSecretManaged),
		readerInfo:       newDesc(nameSecretReaderInfo),
		crossEnvReaders:  newDesc(nameCrossEnvReaders),
		findings:         newDesc(nameFindings),
		findingsCluster:  newDesc(nameFindingsCluster),
		secrets:          newDesc(nameSecrets),
		gitPlaintext:     newDesc(nameGitPlaintext),
		etcdEncryption:   newDesc(nameEtcdEncryption),
		indirectComplete: newDesc(nameIndirectComplete),
		actualReaders:    newDesc(nameSecretActualReaders),
		unusedReaders:    newDesc(nameSecretUnusedReaders),
	}
}

func newDesc(name string) *prometheus.Desc {
	d := definition(name)
	return prometheus.NewDesc(d.Name, d.Help, d.Labels, nil)
}

// Describe sends the descriptor of every metric Collect can emit with
// these options.
func (f *Findings) Describe(ch chan<- *prometheus.Desc) {
	ch <- f.findings
	ch <- f.findingsCluster
	ch <- f.secrets
	ch <- f.gitPlaintext
	ch <- f.etcdEncryption
	ch <- f.indirectComplete
	if f.opts.PerSecret {
		ch <- f.secretReaders
		ch <- f.secretScore
		ch <- f.secretSeverity
		ch <- f.secretEnv
		ch <- f.secretManaged
		ch <- f.crossEnvReaders
		ch <- f.actualReaders
		ch <- f.unusedReaders
	}
	if f.opts.ReaderInfo {
		ch <- f.readerInfo
	}
}

// Collect emits the metrics of the latest report.
func (f *Findings) Collect(ch chan<- prometheus.Metric) {
	if !f.exporting() {
		return
	}
	r := f.latest()
	if r == nil {
		return
	}
	f.rollUps(ch, r)
	if f.opts.PerSecret {
		f.perSecret(ch, r)
	}
	if f.opts.ReaderInfo {
		f.readerInfos(ch, r)
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

type findingKey struct{ namespace, rule, severity string }

// rollUps emits the namespace and cluster roll-ups. Suppressed findings do
// not count, as in the report's summary: someone decided they do not
// matter, and an alert on them would say otherwise.
func (f *Findings) rollUps(ch chan<- prometheus.Metric, r *report.Report) {
	byNamespace := map[findingKey]int{}
	cluster := map[findingKey]int{}
	for i := range r.Findings {
		fd := &r.Findings[i]
		if fd.Suppressed != nil {
			continue
		}
		byNamespace[findingKey{fd.Object.Namespace, fd.Rule, fd.Severity}]++
		cluster[findingKey{"", fd.Rule, fd.Severity}]++
	}
	for k, n := range byNamespace {
		gauge(ch, f.findings, float64(n), labelValue(k.namespace), labelValue(k.rule), labelValue(k.severity))
	}
	for k, n := range cluster {
		gauge(ch, f.findingsCluster, float64(n), labelValue(k.rule), labelValue(k.severity))
	}
	secrets := map[string]int{}
	for i := range r.Secrets {
		secrets[r.Secrets[i].Namespace]++
	}
	for ns, n := range secrets {
		gauge(ch, f.secrets, float64(n), labelValue(ns))
	}
	f.gitRollUp(ch, r)
	if r.Posture != nil && r.Posture.EncryptionAtRest != nil {
		gauge(ch, f.etcdEncryption, 1, labelValue(r.Posture.EncryptionAtRest.Provider))
	}
	// Always one series, so that a dashboard or an alert can tell a
	// search that was stopped (0) from one that finished (1); every
	// other findings metric looks the same either way.
	complete := 1.0
	if r.Coverage.IndirectStopped {
		complete = 0
	}
	gauge(ch, f.indirectComplete, complete)
}

// gitRollUp emits keyhole_git_plaintext_secrets for each repository the
// report read, both states even at zero, so that an alert can tell "none"
// from "not scanned". The report names a daemon's repository by its
// configured short name (coverage target), never its path.
func (f *Findings) gitRollUp(ch chan<- prometheus.Metric, r *report.Report) {
	var repos []string
	for _, src := range r.Coverage.Sources {
		if src.Kind == "git" {
			repos = append(repos, src.Target)
		}
	}
	if len(repos) == 0 {
		return
	}
	var present, history int
	for i := range r.Findings {
		fd := &r.Findings[i]
		if fd.Suppressed != nil || (fd.Rule != finding.PlaintextSecretInGit && fd.Rule != finding.PlaintextSecretInChart) {
			continue
		}
		if fd.Location != nil && fd.Location.PresentAtHead != nil && *fd.Location.PresentAtHead {
			present++
		} else {
			history++
		}
	}
	// One repository per report: a daemon scans one. Were there several,
	// the findings could not be told apart by repository, so each would
	// be counted under the first.
	repo := labelValue(repos[0])
	gauge(ch, f.gitPlaintext, float64(history), repo, "history")
	gauge(ch, f.gitPlaintext, float64(present), repo, "present")
}

// perSecret emits the per-Secret families, each in the order the registry
// sorts series into (by label values, labels taken by name): the registry
// sorts every family of every scrape, and a sorted family costs it one
// pass instead of n log n comparisons, which at 20,000 Secrets had been a
// third of the time to gather (BenchmarkCollect). The report lists Secrets
// by namespace and name,
// which is that order already for the families whose labels sort as
// namespace, secret; the others are put in order here. Order is only about
// speed: the series are the same in any order.
func (f *Findings) perSecret(ch chan<- prometheus.Metric, r *report.Report) {
	// Label values of managers, each with its Secrets in report order.
	byManager := map[string][]int{}
	for i := range r.Secrets {
		s := &r.Secrets[i]
		ns, name := labelValue(s.Namespace), labelValue(s.Name)
		gauge(ch, f.secretScore, float64(s.Exposure.Score), ns, name)
		gauge(ch, f.secretSeverity, 1, ns, name, labelValue(s.Exposure.Severity))
		gauge(ch, f.secretEnv, float64(s.EnvInjections), ns, name)
		manager := s.ManagedBy
		if manager == "" {
			manager = noManager
		}
		manager = labelValue(manager)
		byManager[manager] = append(byManager[manager], i)
	}
	for _, manager := range slices.Sorted(maps.Keys(byManager)) {
		for _, i := range byManager[manager] {
			s := &r.Secrets[i]
			gauge(ch, f.secretManaged, 1, labelValue(s.Namespace), labelValue(s.Name), manager)
		}
	}
	f.readerCounts(ch, r)
	f.crossEnvCounts(ch, r)
	f.auditCounts(ch, r)
}

// crossEnvCounts emits keyhole_cross_environment_readers: per Secret, the
// readers of each lower environment. The report lists a reader once per
// Secret, so each entry is a distinct reader.
func (f *Findings) crossEnvCounts(ch chan<- prometheus.Metric, r *report.Report) {
	for i := range r.Secrets {
		s := &r.Secrets[i]
		if len(s.CrossEnv) == 0 {
			continue
		}
		counts := map[string]int{}
		for _, c := range s.CrossEnv {
			counts[c.FromEnvironment]++
		}
		ns, name := labelValue(s.Namespace), labelValue(s.Name)
		for _, from := range slices.Sorted(maps.Keys(counts)) {
			gauge(ch, f.crossEnvReaders, float64(counts[from]), ns, name, labelValue(from))
		}
	}
}

// namespaceRuns calls fn with each run of consecutive Secrets of one
// namespace: with the report's order, each namespace's Secrets.
func namespaceRuns(r *report.Report, fn func(ns string, secrets []report.Secret)) {
	for start := 0; start < len(r.Secrets); {
		end := start + 1
		for end < len(r.Secrets) && r.Secrets[end].Namespace == r.Secrets[start].Namespace {
			end++
		}
		fn(labelValue(r.Secrets[start].Namespace), r.Secrets[start:end])
		start = end
	}
}

// pathCount is one keyhole_secret_readers series of a namespace.
type pathCount struct {
	path, secret string
	n            int
}

// readerCounts emits keyhole_secret_readers, a namespace at a time sorted
// by path kind, then Secret.
func (f *Findings) readerCounts(ch chan<- prometheus.Metric, r *report.Report) {
	var counts []pathCount
	namespaceRuns(r, func(ns string, secrets []report.Secret) {
		counts = counts[:0]
		for i := range secrets {
			s := &secrets[i]
			name := labelValue(s.Name)
			// A Secret has few path kinds: a search of its own entries
			// beats a map per Secret.
			own := len(counts)
		readers:
			for rd := range s.Readers.All() {
				if rd.Expected {
					continue
				}
				path := labelValue(rd.Path)
				for k := own; k < len(counts); k++ {
					if counts[k].path == path {
						counts[k].n++
						continue readers
					}
				}
				counts = append(counts, pathCount{path, name, 1})
			}
		}
		slices.SortFunc(counts, func(a, b pathCount) int {
			return cmp.Or(strings.Compare(a.path, b.path), strings.Compare(a.secret, b.secret))
		})
		for _, c := range counts {
			gauge(ch, f.secretReaders, float64(c.n), ns, c.secret, c.path)
		}
	})
}

// subjectLabel names a subject in one label value: namespace/name for a
// ServiceAccount, whose name alone is ambiguous across namespaces (the
// namespace label is the Secret's), and the name for a User or Group.
func subjectLabel(s report.Subject) string {
	if s.Namespace != "" {
		return s.Namespace + "/" + s.Name
	}
	return s.Name
}

// readerInfo is one keyhole_secret_reader_info series of a namespace.
type readerInfo struct{ path, secret, subject, kind string }

func compareReaderInfo(a, b readerInfo) int {
	return cmp.Or(strings.Compare(a.path, b.path), strings.Compare(a.secret, b.secret),
		strings.Compare(a.subject, b.subject), strings.Compare(a.kind, b.kind))
}

// readerInfos emits keyhole_secret_reader_info, a namespace at a time in
// the registry's order (path, secret, subject, subject_kind), as
// perSecret explains.
func (f *Findings) readerInfos(ch chan<- prometheus.Metric, r *report.Report) {
	var infos []readerInfo
	namespaceRuns(r, func(ns string, secrets []report.Secret) {
		infos = infos[:0]
		for i := range secrets {
			s := &secrets[i]
			name := labelValue(s.Name)
			for rd := range s.Readers.All() {
				if rd.Expected {
					continue
				}
				infos = append(infos, readerInfo{labelValue(rd.Path), name, labelValue(subjectLabel(rd.Subject)), labelValue(rd.Subject.Kind)})
			}
		}
		slices.SortFunc(infos, compareReaderInfo)
		// The report lists a subject once per Secret, by its shortest
		// path. Were it ever to list one twice by the same path, the same
		// series twice would fail the whole scrape.
		infos = slices.Compact(infos)
		for _, in := range infos {
			gauge(ch, f.readerInfo, 1, ns, in.secret, in.kind, in.subject, in.path)
		}
	})
}
