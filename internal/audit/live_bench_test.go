//go:build linux || darwin

package audit_test

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/synthetic"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

const (
	liveBenchSeed = 1
	// liveBenchWorkers bounds the concurrent creates while loading: enough
	// to keep a two-core apiserver busy, far under its 400 in-flight
	// requests.
	liveBenchWorkers = 16
)

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
	n := liveBenchEnv(b, "KEYHOLE_BENCH_LIVE_SECRETS", 20_000)
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

func liveBenchEnv(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// loadLiveWorld creates the synthetic world in the cluster and waits for
// the controller manager to settle on it, so that nothing changes while
// the audits run. It returns a line describing the world and its loading.
func loadLiveWorld(b *testing.B, cp *testenv.ControlPlane, secrets int) string {
	b.Helper()
	ctx := b.Context()
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}

	objs := synthetic.Generate(liveBenchSeed, synthetic.Scale(secrets))
	certs, err := newCertPool(8)
	if err != nil {
		b.Fatal(err)
	}
	// Namespaces first, then the ServiceAccounts that token Secrets name
	// (the token controller deletes a token Secret whose ServiceAccount
	// it cannot find), then everything else.
	var phases [3][]kruntime.Object
	for _, o := range objs {
		switch o.(type) {
		case *corev1.Namespace:
			phases[0] = append(phases[0], o)
		case *corev1.ServiceAccount:
			phases[1] = append(phases[1], o)
		default:
			phases[2] = append(phases[2], o)
		}
	}

	start := time.Now()
	var st loadStats
	for _, p := range phases {
		if err := createAll(ctx, c, p, certs, &st); err != nil {
			b.Fatalf("loading the synthetic world: %v", err)
		}
	}
	load := time.Since(start)
	start = time.Now()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := cp.WaitForAggregation(wctx); err != nil {
		b.Fatal(err)
	}
	if err := waitForTokens(wctx, c); err != nil {
		b.Fatal(err)
	}
	settle := time.Since(start)
	return fmt.Sprintf("world: %d objects (%d Secrets, %.1f MiB of Secret data; %d already existed, %d invalid subjects dropped) loaded in %.1fs (%.0f objects/s), controllers settled in %.1fs",
		len(objs), secrets, float64(st.dataBytes.Load())/(1<<20), st.existed.Load(), st.dropped.Load(), load.Seconds(),
		float64(len(objs))/load.Seconds(), settle.Seconds())
}

type loadStats struct {
	existed   atomic.Int64
	dataBytes atomic.Int64
	dropped   atomic.Int64 // subjects the apiserver would reject
}

// createAll creates objs with a bounded pool of workers. Objects that
// already exist (the bootstrap ClusterRoles, default namespaces and
// ServiceAccounts the controller got to first) are kept as they are.
func createAll(ctx context.Context, c kubernetes.Interface, objs []kruntime.Object, certs *certPool, st *loadStats) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan int)
	var wg sync.WaitGroup
	for range liveBenchWorkers {
		wg.Go(func() {
			for i := range work {
				err := create(ctx, c, objs[i], i, certs, st)
				if apierrors.IsAlreadyExists(err) {
					st.existed.Add(1)
					err = nil
				}
				if err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range objs {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func create(ctx context.Context, c kubernetes.Interface, o kruntime.Object, i int, certs *certPool, st *loadStats) error {
	opts := metav1.CreateOptions{}
	var err error
	// A server under load answers 429 or times out now and then; retry
	// those rather than fail the whole load.
	for attempt := 0; attempt < 5; attempt++ {
		switch o := o.(type) {
		case *corev1.Namespace:
			_, err = c.CoreV1().Namespaces().Create(ctx, o, opts)
		case *corev1.ServiceAccount:
			_, err = c.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
		case *corev1.Secret:
			s := withValues(o, i, certs)
			_, err = c.CoreV1().Secrets(o.Namespace).Create(ctx, s, opts)
			if err == nil {
				st.dataBytes.Add(dataBytes(s))
			}
		case *rbacv1.ClusterRole:
			_, err = c.RbacV1().ClusterRoles().Create(ctx, o, opts)
		case *rbacv1.Role:
			_, err = c.RbacV1().Roles(o.Namespace).Create(ctx, o, opts)
		case *rbacv1.ClusterRoleBinding:
			_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, storable(o, st), opts)
		case *rbacv1.RoleBinding:
			_, err = c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts)
		case *corev1.Node:
			_, err = c.CoreV1().Nodes().Create(ctx, o, opts)
		case *corev1.Pod:
			_, err = c.CoreV1().Pods(o.Namespace).Create(ctx, o, opts)
		default:
			return fmt.Errorf("synthetic object of unexpected type %T", o)
		}
		if !apierrors.IsTooManyRequests(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsTimeout(err) {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		m, _ := o.(metav1.Object)
		return fmt.Errorf("create %s %s/%s: %w", o.GetObjectKind().GroupVersionKind().Kind, m.GetNamespace(), m.GetName(), err)
	}
	return err
}

// withValues gives a synthetic Secret values of realistic sizes, so that
// reading Secrets in full costs what it costs in a real cluster: a few
// hundred bytes per key for credentials, ~8 KiB certificate chains and an
// RSA key for TLS, 64 KiB for Helm releases (gzipped, base64'd charts and
// values in real life; random text here, as incompressible). Token
// Secrets are left empty for the token controller to fill, and name the
// namespace's default ServiceAccount, which always exists. Values are
// pseudo-random from i, so every run loads the same bytes.
func withValues(s *corev1.Secret, i int, certs *certPool) *corev1.Secret {
	s = s.DeepCopy()
	r := rand.New(rand.NewPCG(liveBenchSeed, uint64(i)))
	switch s.Type {
	case corev1.SecretTypeTLS:
		// A leaf and its chain, about 8 KiB, and the leaf's key.
		leaf := r.IntN(len(certs.certs))
		var chain []byte
		for k := range 4 {
			chain = append(chain, certs.certs[(leaf+k)%len(certs.certs)]...)
		}
		s.Data[corev1.TLSCertKey] = chain
		s.Data[corev1.TLSPrivateKeyKey] = certs.keys[leaf]
	case corev1.SecretTypeDockerConfigJson:
		s.Data[corev1.DockerConfigJsonKey] = fmt.Appendf(nil, `{"auths":{"registry-%d.example.com":{"auth":"%s"}}}`,
			r.IntN(20), text(r, 120))
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[corev1.ServiceAccountNameKey] = "default"
		s.Data = nil
	case "helm.sh/release.v1":
		s.Data["release"] = text(r, 64<<10)
	default:
		for k := range s.Data {
			s.Data[k] = text(r, 150+r.IntN(100))
		}
	}
	return s
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func text(r *rand.Rand, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = alphabet[r.IntN(len(alphabet))]
	}
	return out
}

// storable drops the ServiceAccount subjects without a namespace that
// synthetic puts in a few ClusterRoleBindings: manifests may hold them,
// but the apiserver rejects them, so no cluster does.
func storable(crb *rbacv1.ClusterRoleBinding, st *loadStats) *rbacv1.ClusterRoleBinding {
	var keep []rbacv1.Subject
	for _, sub := range crb.Subjects {
		if sub.Kind == rbacv1.ServiceAccountKind && sub.Namespace == "" {
			st.dropped.Add(1)
			continue
		}
		keep = append(keep, sub)
	}
	if len(keep) == len(crb.Subjects) {
		return crb
	}
	crb = crb.DeepCopy()
	crb.Subjects = keep
	return crb
}

// certPool is a few real certificates and their keys. TLS Secrets hold
// chains of them: the apiserver warns about a tls.crt that does not parse,
// and real ones are the right size.
type certPool struct {
	certs [][]byte // PEM
	keys  [][]byte // PEM; keys[i] is certs[i]'s
}

// newCertPool makes n self-signed RSA 2048 certificates with 30 DNS names
// each, as an ingress certificate might have: about 2 KiB of PEM each.
func newCertPool(n int) (*certPool, error) {
	p := &certPool{}
	for i := range n {
		key, err := rsa.GenerateKey(crand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 1)),
			Subject:      pkix.Name{CommonName: fmt.Sprintf("bench-%d.example.com", i), Organization: []string{"keyhole bench"}},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(90 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		for k := range 30 {
			tmpl.DNSNames = append(tmpl.DNSNames, fmt.Sprintf("service-%02d.team-%d.apps.example.com", k, i))
		}
		der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		p.certs = append(p.certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		p.keys = append(p.keys, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	}
	return p, nil
}

type countingWriter int64

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}

func dataBytes(s *corev1.Secret) int64 {
	var n int64
	for _, v := range s.Data {
		n += int64(len(v))
	}
	return n
}

// waitForTokens waits until the token controller has filled every
// ServiceAccount token Secret, so that it does not write while the
// audits run.
func waitForTokens(ctx context.Context, c kubernetes.Interface) error {
	var pending int
	for {
		l, err := c.CoreV1().Secrets("").List(ctx, metav1.ListOptions{
			FieldSelector: "type=" + string(corev1.SecretTypeServiceAccountToken)})
		if err == nil {
			pending = 0
			for _, s := range l.Items {
				if len(s.Data[corev1.ServiceAccountTokenKey]) == 0 {
					pending++
				}
			}
			if pending == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the token controller: %d token Secret(s) still empty: %w", pending, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}
