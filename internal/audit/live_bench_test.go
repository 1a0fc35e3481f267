//go:build linux || darwin

package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/synthetic"
	"github.com/keyhole-sec/keyhole/internal/synthetic/seed"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

const liveBenchSeed = 1

// BenchmarkLiveAudit loads a synthetic world of KEYHOLE_BENCH_LIVE_SECRETS
// Secrets (default 20000, with proportional RBAC, ServiceAccounts and
// namespaces) into a real control plane, then audits it once per way of
// reading Secrets (via=table, via=full):
//
//   - in process, timing audit.Live (every LIST: list-s) and audit.Analyze
//     (analysis-s) apart, and their ratio (analysis/list); the heap's peak
//     during the LIST with GOGC=10, i.e. about what it holds at once
//     (list-peak-heap-MiB); and the JSON encoding of the report (json-s,
//     report-MiB), which the CLI does next;
//   - as `keyhole audit --format json` in a subprocess, as users run it:
//     wall time (wall-s, also ns/op) and peak RSS (rss-MiB); and again with
//     --format table (tablefmt-wall-s, tablefmt-rss-MiB), whose report is
//     small, to tell the audit's own memory from the JSON encoder's.
//
// secrets-wire-MiB is the decoded size of the Secrets responses alone,
// secrets-alloc-MiB the heap allocated reading them and secrets-pages the
// requests made (MeasureSecretsList).
// Over several iterations the RSS and heap peaks are the highest seen,
// the others the mean. Loading the world is measured and logged, not a
// target. Compare ratios within one run: absolute times depend on the
// machine and on what else runs on it.
func BenchmarkLiveAudit(b *testing.B) {
	n, err := seed.SizeFromEnv("KEYHOLE_BENCH_LIVE_SECRETS", 20_000)
	if err != nil {
		b.Fatal(err)
	}
	cp := testenv.StartT(b, testenv.Options{}) // skips under -short
	bin := buildKeyhole(b)
	world := loadLiveWorld(b, cp, n)

	// Exactly what the CLI builds from the kubeconfig, so that the
	// in-process and subprocess numbers share QPS, user agent and codec.
	cfg, err := cluster.RESTConfig(cp.KubeconfigPath, "")
	if err != nil {
		b.Fatal(err)
	}

	var rows []liveBenchRow
	for _, via := range []string{cluster.SecretsViaTable, cluster.SecretsViaFull} {
		b.Run("via="+via, func(b *testing.B) {
			var sum liveBenchRow
			for b.Loop() {
				b.StopTimer()
				r := auditInProcess(b, cfg, via)
				r.tableWall, r.tableRSSKiB = auditSubprocess(b, bin, cp.KubeconfigPath, via, "table")
				b.StartTimer()
				r.wall, r.rssKiB = auditSubprocess(b, bin, cp.KubeconfigPath, via, "json")
				sum.add(r)
			}
			r := sum.mean(b.N)
			r.via = via
			b.ReportMetric(r.list.Seconds(), "list-s")
			b.ReportMetric(r.analysis.Seconds(), "analysis-s")
			b.ReportMetric(r.analysis.Seconds()/r.list.Seconds(), "analysis/list")
			b.ReportMetric(mib(r.listPeakHeap), "list-peak-heap-MiB")
			b.ReportMetric(r.encode.Seconds(), "json-s")
			b.ReportMetric(mib(r.reportBytes), "report-MiB")
			b.ReportMetric(r.wall.Seconds(), "wall-s")
			b.ReportMetric(mib(r.rssKiB<<10), "rss-MiB")
			b.ReportMetric(r.tableWall.Seconds(), "tablefmt-wall-s")
			b.ReportMetric(mib(r.tableRSSKiB<<10), "tablefmt-rss-MiB")
			b.ReportMetric(mib(r.wire), "secrets-wire-MiB")
			b.ReportMetric(mib(r.secretsAlloc), "secrets-alloc-MiB")
			b.ReportMetric(float64(r.pages), "secrets-pages")
			b.ReportMetric(float64(r.secrets), "secrets")
			rows = append(rows, r)
			// Logged here rather than by the parent, whose log only shows
			// under -v.
			b.Logf("%s\n%s", world, liveBenchTable(rows))
		})
	}
}

func mib[T int64 | uint64](n T) float64 { return float64(n) / (1 << 20) }

// liveBenchTable formats the rows measured so far, and how full compares
// with table once both are in.
func liveBenchTable(rows []liveBenchRow) string {
	var t strings.Builder
	fmt.Fprintf(&t, "%-5s %7s %7s %10s %13s %7s %8s %8s %23s %24s\n",
		"via", "secrets", "LIST s", "analysis s", "analysis/LIST", "JSON s", "wall s", "RSS MiB",
		"wall s (--format table)", "RSS MiB (--format table)")
	for _, r := range rows {
		fmt.Fprintf(&t, "%-5s %7d %7.2f %10.2f %13.3f %7.2f %8.2f %8.0f %23.2f %24.0f\n",
			r.via, r.secrets, r.list.Seconds(), r.analysis.Seconds(), r.analysis.Seconds()/r.list.Seconds(),
			r.encode.Seconds(), r.wall.Seconds(), mib(r.rssKiB<<10), r.tableWall.Seconds(), mib(r.tableRSSKiB<<10))
	}
	fmt.Fprintf(&t, "%-5s %16s %21s %18s %18s %22s %10s %9s\n",
		"via", "Secrets wire MiB", "Secrets allocated MiB", "LIST allocated MiB", "LIST peak heap MiB", "analysis allocated MiB", "report MiB", "findings")
	for _, r := range rows {
		fmt.Fprintf(&t, "%-5s %16.1f %21.0f %18.0f %18.0f %22.0f %10.1f %9d\n",
			r.via, mib(r.wire), mib(r.secretsAlloc), mib(r.listAlloc), mib(r.listPeakHeap), mib(r.analysisAlloc),
			mib(r.reportBytes), r.findings)
	}
	if len(rows) == 2 && rows[0].rssKiB > 0 && rows[0].listPeakHeap > 0 {
		x := func(full, table float64) float64 { return full / table }
		fmt.Fprintf(&t, "full/table: LIST ×%.2f, LIST peak heap ×%.2f, RSS ×%.2f (--format table: ×%.2f), wall ×%.2f (--format table: ×%.2f), Secrets on the wire ×%.1f, allocated ×%.1f\n",
			x(rows[1].list.Seconds(), rows[0].list.Seconds()), x(mib(rows[1].listPeakHeap), mib(rows[0].listPeakHeap)),
			x(float64(rows[1].rssKiB), float64(rows[0].rssKiB)), x(float64(rows[1].tableRSSKiB), float64(rows[0].tableRSSKiB)),
			x(rows[1].wall.Seconds(), rows[0].wall.Seconds()), x(rows[1].tableWall.Seconds(), rows[0].tableWall.Seconds()),
			x(mib(rows[1].wire), mib(rows[0].wire)), x(mib(rows[1].secretsAlloc), mib(rows[0].secretsAlloc)))
	}
	return t.String()
}

// liveBenchRow is one audit of the loaded world.
type liveBenchRow struct {
	via                          string
	list, analysis, encode, wall time.Duration
	rssKiB                       int64
	tableWall                    time.Duration // --format table
	tableRSSKiB                  int64
	wire, reportBytes            int64
	// Heap allocated (runtime TotalAlloc) by the Secrets LIST alone, by
	// the whole live load, and by the analysis; the heap's peak above its
	// starting point during the live load.
	secretsAlloc, listAlloc, analysisAlloc, listPeakHeap uint64
	secrets, findings                                    int
	// pages counts the Secrets LIST's requests: more than
	// secrets/PageSize means a continue token expired (410) and the LIST
	// started over.
	pages int
}

func (s *liveBenchRow) add(r liveBenchRow) {
	s.list += r.list
	s.analysis += r.analysis
	s.encode += r.encode
	s.wall += r.wall
	s.tableWall += r.tableWall
	s.rssKiB = max(s.rssKiB, r.rssKiB)
	s.tableRSSKiB = max(s.tableRSSKiB, r.tableRSSKiB)
	s.listPeakHeap = max(s.listPeakHeap, r.listPeakHeap)
	s.wire += r.wire
	s.secretsAlloc += r.secretsAlloc
	s.listAlloc += r.listAlloc
	s.analysisAlloc += r.analysisAlloc
	s.reportBytes, s.secrets, s.findings = r.reportBytes, r.secrets, r.findings
	s.pages = max(s.pages, r.pages)
}

func (s liveBenchRow) mean(n int) liveBenchRow {
	d := time.Duration(n)
	s.list, s.analysis, s.encode, s.wall, s.tableWall = s.list/d, s.analysis/d, s.encode/d, s.wall/d, s.tableWall/d
	s.wire /= int64(n)
	s.secretsAlloc /= uint64(n)
	s.listAlloc /= uint64(n)
	s.analysisAlloc /= uint64(n)
	return s
}

// auditInProcess lists the Secrets once untimed (it warms the apiserver's
// caches for this way of reading, and measures the wire size), loads the
// cluster once untimed to find the heap's peak, then times the whole
// LIST, the analysis and the JSON encoding apart.
func auditInProcess(b *testing.B, cfg *rest.Config, via string) liveBenchRow {
	b.Helper()
	ctx := context.Background()
	opts := cluster.Options{SecretsVia: via}
	st, err := cluster.MeasureSecretsList(ctx, cfg, opts)
	if err != nil {
		b.Fatal(err)
	}

	// The heap's peak during a LIST, with the collector kept tight
	// (GOGC=10) so that the peak follows what the LIST holds at once, not
	// when the collector happened to run. Untimed: it slows the LIST.
	runtime.GC()
	gogc := debug.SetGCPercent(10)
	peak := sampleHeap()
	_, err = audit.Live(ctx, cfg, opts)
	peakHeap := peak()
	debug.SetGCPercent(gogc)
	if err != nil {
		b.Fatal(err)
	}

	var m0, m1, m2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	start := time.Now()
	in, err := audit.Live(ctx, cfg, opts)
	list := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	if len(in.Problems) > 0 {
		b.Fatalf("live audit via=%s: %d problem(s), first: %s", via, len(in.Problems), in.Problems[0].Message)
	}
	start = time.Now()
	rep, err := audit.Analyze(in, audit.Options{ToolVersion: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	analysis := time.Since(start)
	runtime.ReadMemStats(&m2)
	var w countingWriter
	start = time.Now()
	if err := report.WriteJSON(&w, rep); err != nil {
		b.Fatal(err)
	}
	encode := time.Since(start)
	findings := 0
	for _, c := range rep.Summary.FindingsBySeverity {
		findings += c
	}
	return liveBenchRow{list: list, analysis: analysis, encode: encode, wire: st.BytesRead, reportBytes: int64(w),
		secretsAlloc: st.Allocated, listAlloc: m1.TotalAlloc - m0.TotalAlloc, analysisAlloc: m2.TotalAlloc - m1.TotalAlloc,
		listPeakHeap: peakHeap, secrets: in.Inventory.Counts()["Secret"], findings: findings, pages: st.Pages}
}

// sampleHeap samples the heap (live objects and garbage not yet swept)
// every millisecond; the function it returns stops sampling and returns
// the highest value seen above the heap at the start.
func sampleHeap() func() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	base := read()
	peak := base
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				peak = max(peak, read())
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-stopped
		return max(peak, read()) - base
	}
}

// auditSubprocess runs `keyhole audit` on the cluster and returns its wall
// time and peak RSS in KiB. Exit 1 (findings at or above the threshold)
// is the expected outcome; 2 means keyhole could not audit.
//
// keyhole is started by a fresh copy of this test binary (see init), not
// by this process: Go starts children with clone(CLONE_VM), and Linux
// then counts the parent's own peak RSS, gigabytes here after the
// in-process audit, in the child's ru_maxrss.
func auditSubprocess(b *testing.B, bin, kubeconfig, via, format string) (time.Duration, int64) {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	result := filepath.Join(b.TempDir(), "rusage")
	cmd := exec.Command(self, bin, "audit", "--kubeconfig", kubeconfig, "--format", format,
		"--output", os.DevNull, "--secrets-via="+via, "--verbose")
	cmd.Env = append(withoutKeyholeEnv(os.Environ()), launcherEnv+"="+result)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if findingsOnly := errors.As(err, &exit) && exit.ExitCode() == 1; err != nil && !findingsOnly {
		b.Fatalf("keyhole audit --secrets-via=%s --format %s: %v\n%s", via, format, err, tail(stderr.String(), 20))
	}
	raw, err := os.ReadFile(result)
	if err != nil {
		b.Fatal(err)
	}
	var wall time.Duration
	var rss int64
	if _, err := fmt.Sscan(string(raw), &wall, &rss); err != nil {
		b.Fatalf("launcher result %q: %v", raw, err)
	}
	if format == "json" {
		for _, line := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(line, "inventory built") {
				b.Logf("keyhole audit --secrets-via=%s: %s", via, line)
			}
		}
	}
	return wall, rss
}

// launcherEnv, when set, makes the test binary a launcher: it runs its
// arguments as a command, writes the command's wall time (ns) and peak RSS
// (KiB) to the file the variable names, and exits with its exit code. A
// freshly started launcher is small, so what it passes on to the child's
// ru_maxrss is less than keyhole's own footprint.
const launcherEnv = "KEYHOLE_LIVE_BENCH_LAUNCHER"

func init() {
	if result := os.Getenv(launcherEnv); result != "" {
		os.Exit(launch(result, os.Args[1:]))
	}
}

func launch(result string, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "launcher: no command")
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = withoutKeyholeEnv(os.Environ())
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintf(os.Stderr, "launcher: %v\n", err)
		return 2
	}
	if err := os.WriteFile(result, fmt.Appendf(nil, "%d %d\n", int64(wall), maxRSSKiB(cmd.ProcessState)), 0o600); err != nil {
		fmt.Fprintf(os.Stderr, "launcher: %v\n", err)
		return 2
	}
	return cmd.ProcessState.ExitCode()
}

// maxRSSKiB is the peak resident set of a finished process. Linux reports
// ru_maxrss in KiB, Darwin in bytes.
func maxRSSKiB(ps *os.ProcessState) int64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss) / 1024
	}
	return int64(ru.Maxrss)
}

// withoutKeyholeEnv drops KEYHOLE_ variables, which keyhole reads as flags
// and would make the benchmark measure something else.
func withoutKeyholeEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "KEYHOLE_") {
			out = append(out, kv)
		}
	}
	return out
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// buildKeyhole builds cmd/keyhole once, as users run it.
func buildKeyhole(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "keyhole")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/keyhole-sec/keyhole/cmd/keyhole")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/keyhole: %v\n%s", err, out)
	}
	return bin
}

// loadLiveWorld creates the synthetic world in the cluster and waits for
// the controller manager to settle on it, so that nothing changes while
// the audits run. It returns a line describing the world and its loading.
func loadLiveWorld(b *testing.B, cp *testenv.ControlPlane, secrets int) string {
	b.Helper()
	ctx := b.Context()
	st, err := seed.Load(ctx, cp.Config, synthetic.Generate(liveBenchSeed, synthetic.Scale(secrets)), liveBenchSeed)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := cp.WaitForAggregation(wctx); err != nil {
		b.Fatal(err)
	}
	if err := seed.WaitForTokens(wctx, kubernetes.NewForConfigOrDie(cp.Config)); err != nil {
		b.Fatal(err)
	}
	return fmt.Sprintf("world: %d Secrets; %s; controllers settled in %.1fs", secrets, st, time.Since(start).Seconds())
}

type countingWriter int64

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}
