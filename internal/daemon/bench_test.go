//go:build linux

package daemon

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/synthetic"
	"github.com/keyhole-sec/keyhole/internal/synthetic/seed"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

const serveBenchSeed = 1

// BenchmarkServe loads a synthetic world of KEYHOLE_BENCH_SERVE_SECRETS
// Secrets (default 20000) and as many pods on a node per 100 pods into a
// real control plane (KEYHOLE_BENCH_SERVE_INDIRECT=1 adds what the
// indirect analysis follows: Pod Security labels, the roles indirect paths
// rest on), then runs `keyhole serve` on it once per way of watching
// Secrets (via=table, via=full), and once more watching by Table with
// --analysis.keep-access, and measures, per run:
//
//   - ready-s: start to the first analysis published (/readyz);
//   - latency-s: a new RoleBinding granting one Secret's read, until
//     keyhole_secret_readers counts it on /metrics (the mean of three);
//   - reuse-s: the analysis after a new ConfigMap, which reuses the
//     access stage (analysis.Access) when it is kept, and runs it anew
//     when not;
//   - scrape-s and series: one GET of /metrics with per-Secret series on;
//   - rss-MiB: the resident set at rest (VmRSS) after those analyses and
//     a minute of scrapes every 15 s, as a Prometheus would scrape, and
//     peak-rss-MiB, the highest it ever was (VmHWM).
//
// The table logged at the end compares the runs. Compare ratios
// within one run: absolute times depend on the machine and its load.
func BenchmarkServe(b *testing.B) {
	n, err := seed.SizeFromEnv("KEYHOLE_BENCH_SERVE_SECRETS", 20_000)
	must(b, err)
	size := synthetic.Scale(n)
	size.Pods, size.Nodes, size.Indirect = n, max(1, n/100), os.Getenv("KEYHOLE_BENCH_SERVE_INDIRECT") == "1"
	cp := testenv.StartT(b, testenv.Options{}) // skips under -short
	bin := keyholeBinary(b)
	objs := synthetic.Generate(serveBenchSeed, size)
	st, err := seed.Load(b.Context(), cp.Config, objs, serveBenchSeed)
	must(b, err)
	c := kubernetes.NewForConfigOrDie(cp.Config)
	wctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	must(b, cp.WaitForAggregation(wctx))
	must(b, seed.WaitForTokens(wctx, c))
	world := fmt.Sprintf("world: %d Secrets, %d pods on %d nodes, indirect extras %v; %s", n, size.Pods, size.Nodes, size.Indirect, st)
	b.Log(world)

	var target *corev1.Secret
	for _, o := range objs {
		if s, ok := o.(*corev1.Secret); ok && s.Type == corev1.SecretTypeOpaque {
			target = s
			break
		}
	}
	if target == nil {
		b.Fatal("the synthetic world has no Opaque Secret")
	}

	var rows []serveBenchRow
	probes := 0
	runs := []struct {
		via        string
		keepAccess bool
	}{{cluster.SecretsViaTable, false}, {cluster.SecretsViaFull, false}, {cluster.SecretsViaTable, true}}
	for _, run := range runs {
		name := "via=" + run.via
		if run.keepAccess {
			name += "/keep-access"
		}
		b.Run(name, func(b *testing.B) {
			var row serveBenchRow
			for b.Loop() {
				row = runServeBench(b, bin, cp, c, run.via, run.keepAccess, target, &probes)
			}
			b.ReportMetric(row.ready.Seconds(), "ready-s")
			b.ReportMetric(row.latency.Seconds(), "latency-s")
			b.ReportMetric(row.reuse, "reuse-s")
			b.ReportMetric(row.scrape.Seconds(), "scrape-s")
			b.ReportMetric(float64(row.series), "series")
			b.ReportMetric(float64(row.rssKiB)/1024, "rss-MiB")
			b.ReportMetric(float64(row.hwmKiB)/1024, "peak-rss-MiB")
			rows = append(rows, row)
			b.Logf("%s\n%s", world, serveBenchTable(rows))
		})
	}
}

type serveBenchRow struct {
	via                    string
	keepAccess             bool
	ready, latency, scrape time.Duration
	analysis               float64 // seconds, from keyhole_analysis_duration_seconds
	reuse                  float64 // seconds, the analysis on a reused access stage
	series, rssKiB, hwmKiB int
}

func serveBenchTable(rows []serveBenchRow) string {
	var t strings.Builder
	fmt.Fprintf(&t, "%-5s %-11s %8s %10s %11s %8s %9s %8s %8s %13s\n", "via", "keep access", "ready s", "latency s", "analysis s", "reuse s", "scrape s", "series", "RSS MiB", "peak RSS MiB")
	for _, r := range rows {
		fmt.Fprintf(&t, "%-5s %-11v %8.1f %10.2f %11.2f %8.2f %9.2f %8d %8.0f %13.0f\n", r.via, r.keepAccess, r.ready.Seconds(), r.latency.Seconds(), r.analysis,
			r.reuse, r.scrape.Seconds(), r.series, float64(r.rssKiB)/1024, float64(r.hwmKiB)/1024)
	}
	if len(rows) >= 2 && rows[0].rssKiB > 0 {
		fmt.Fprintf(&t, "full/table: RSS ×%.2f, peak RSS ×%.2f\n", float64(rows[1].rssKiB)/float64(rows[0].rssKiB), float64(rows[1].hwmKiB)/float64(rows[0].hwmKiB))
	}
	return t.String()
}

// runServeBench runs one keyhole serve through start, three binding
// changes and a scrape, and stops it.
func runServeBench(b *testing.B, bin string, cp *testenv.ControlPlane, c kubernetes.Interface, via string, keepAccess bool, target *corev1.Secret, probes *int) serveBenchRow {
	b.Helper()
	row := serveBenchRow{via: via, keepAccess: keepAccess}
	start := time.Now()
	r := startReplica(b, "keyhole-serve-"+via, bin, "serve", "--kubeconfig", cp.KubeconfigPath,
		"--web.listen-address", "127.0.0.1:0", "--secrets-via="+via, "--analysis.keep-access="+strconv.FormatBool(keepAccess))
	defer func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		b.Logf("%s stopped: %v", r.name, <-r.done)
	}()
	probe.Eventually(b, 30*time.Minute, "ready", func() (bool, string) {
		code, _, err := probe.Get(r.url("/readyz"), "")
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %v", code, err)
	})
	row.ready = time.Since(start)

	labels := map[string]string{"namespace": target.Namespace, "secret": target.Name, "path": "direct"}
	const changes = 3
	var total time.Duration
	for range changes {
		fams, _, err := scrape(r.url("/metrics"))
		must(b, err)
		before, _ := fams.value("keyhole_secret_readers", labels)
		*probes++
		name := fmt.Sprintf("latency-probe-%d", *probes)
		changed := time.Now()
		grantRead(b, c, target, name)
		probe.Eventually(b, 30*time.Minute, "the new reader on /metrics", func() (bool, string) {
			fams, _, err := scrape(r.url("/metrics"))
			if err != nil {
				return false, err.Error()
			}
			v, _ := fams.value("keyhole_secret_readers", labels)
			return v == before+1, fmt.Sprintf("%v readers, want %v", v, before+1)
		})
		total += time.Since(changed)
	}
	row.latency = total / changes

	analyses := func() (sum float64, count uint64) {
		fams, _, err := scrape(r.url("/metrics"))
		must(b, err)
		if h := fams["keyhole_analysis_duration_seconds"]; h != nil && len(h.GetMetric()) > 0 {
			hist := h.GetMetric()[0].GetHistogram()
			return hist.GetSampleSum(), hist.GetSampleCount()
		}
		return 0, 0
	}
	sum, count := analyses()
	if count > 0 {
		row.analysis = sum / float64(count)
	}
	// A change the access stage does not read: the next analysis reuses it.
	*probes++
	must(b, create(b.Context(), c.CoreV1().ConfigMaps(target.Namespace), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("reuse-probe-%d", *probes)}}))
	probe.Eventually(b, 30*time.Minute, "the analysis after a ConfigMap", func() (bool, string) {
		_, n := analyses()
		return n > count, fmt.Sprintf("%d analyses, want %d", n, count+1)
	})
	after, _ := analyses()
	row.reuse = after - sum

	t0 := time.Now()
	fams, body, err := scrape(r.url("/metrics"))
	row.scrape = time.Since(t0)
	must(b, err)
	row.series = bytes.Count(body, []byte("\n")) - 2*len(fams) // minus HELP and TYPE lines
	// At rest: the collector's and the scavenger's pace, not the moment
	// right after an analysis, is what a memory request must cover.
	for range 4 {
		time.Sleep(15 * time.Second)
		_, _, err := scrape(r.url("/metrics"))
		must(b, err)
	}
	row.rssKiB, row.hwmKiB = procMemory(b, r.cmd.Process.Pid)
	return row
}

// grantRead lets User name get the Secret, through a Role and a
// RoleBinding of their own.
func grantRead(b *testing.B, c kubernetes.Interface, s *corev1.Secret, name string) {
	ctx := b.Context()
	must(b, create(ctx, c.RbacV1().Roles(s.Namespace), &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{s.Name}, Verbs: []string{"get"}}},
	}))
	must(b, create(ctx, c.RbacV1().RoleBindings(s.Namespace), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}},
	}))
}

// procMemory reads a process's resident set now and at its peak, in KiB.
func procMemory(b *testing.B, pid int) (rss, hwm int) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	must(b, err)
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			rss = kib
		case "VmHWM":
			hwm = kib
		}
	}
	return rss, hwm
}
