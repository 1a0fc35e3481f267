package deploytest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/daemon"
	"github.com/keyhole-sec/keyhole/internal/daemontest"
	"github.com/keyhole-sec/keyhole/internal/diff/gittest"
	"github.com/keyhole-sec/keyhole/internal/environment"
	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/source/auditevents"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// dashboardMetrics are the keyhole_ metric names dashboards/keyhole.json
// names, as PromQL names them (a histogram by its _bucket series).
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bkeyhole_[a-z0-9_]+\b`).FindAllString(string(b), -1) {
		seen[m] = true
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// TestDashboardMetricsAreScraped runs keyhole serve with every source the
// dashboard shows: a cluster with a prod Secret that a staging
// ServiceAccount reads, a git repository holding a plaintext Secret, and
// an audit log watched for longer than its window. Every metric a panel
// or variable of the dashboard queries must be in one scrape of it; a
// histogram's _bucket, _sum and _count series count as its family.
func TestDashboardMetricsAreScraped(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{})
	admin := kubernetes.NewForConfigOrDie(cp.Config)
	ctx := t.Context()
	mustCreate := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for ns, env := range map[string]string{"payments": "prod", "checkout": "staging", "keyhole": ""} {
		labels := map[string]string{}
		if env != "" {
			labels["environment"] = env
		}
		_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{})
		mustCreate(err)
	}
	_, err := admin.CoreV1().Secrets("payments").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		StringData: map[string]string{"password": "KEYHOLE-CANARY-scrape"}}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = admin.CoreV1().ServiceAccounts("checkout").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = admin.RbacV1().Roles("payments").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-db"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"db"}, Verbs: []string{"get"}}}},
		metav1.CreateOptions{})
	mustCreate(err)
	_, err = admin.RbacV1().RoleBindings("payments").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "checkout-reads-db"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "app", Namespace: "checkout"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-db"}}, metav1.CreateOptions{})
	mustCreate(err)

	// keyhole has watched the audit log for two windows already, so
	// unused grants may be judged.
	const window = time.Hour
	store, err := auditevents.NewStore(auditevents.StoreOptions{Client: admin, Namespace: "keyhole", Window: window})
	mustCreate(err)
	_, err = store.Save(ctx, &auditlog.State{Version: auditlog.StateVersion, Since: time.Now().Add(-2 * window)})
	mustCreate(err)
	logFile := filepath.Join(t.TempDir(), "audit.log")
	mustCreate(os.WriteFile(logFile, nil, 0o600))

	repo := gittest.New(t)
	repo.Write(map[string]string{"deploy/api.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: api, namespace: payments}\nstringData:\n  token: KEYHOLE-CANARY-scrape-git-token-value\n"})
	repo.Commit("api")

	var envs []environment.Environment
	for _, e := range [][2]string{{"staging", "environment=staging"}, {"prod", "environment=prod"}} {
		env, err := environment.Parse(e[0], e[1])
		mustCreate(err)
		envs = append(envs, env)
	}
	d := daemontest.Start(t, func(ctx context.Context, logger *slog.Logger, listening func(string)) error {
		opts := daemon.Options{
			Config: cp.Config, Debounce: 200 * time.Millisecond, ListenAddresses: []string{"127.0.0.1:0"},
			Version: "test", Logger: logger, Listening: listening,
			Git:      &daemon.Git{Path: repo.Dir, Name: "gitops", Interval: time.Minute},
			AuditLog: &daemon.AuditLog{LogFile: logFile, Window: window, Namespace: "keyhole"},
		}
		opts.Metrics.PerSecret = true // keyhole serve's default
		opts.Analysis.Environments = envs
		return daemon.Run(ctx, opts)
	})
	probe.Eventually(t, 60*time.Second, "keyhole ready", func() (bool, string) {
		code, body, err := probe.Get(d.URL("/readyz"), "")
		return code == http.StatusOK, string(body) + errString(err)
	})

	want := dashboardMetrics(t)
	events := 0
	probe.Eventually(t, 90*time.Second, "every metric of the dashboard in a scrape", func() (bool, string) {
		code, body, err := probe.Get(d.URL("/metrics"), "")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprint(code, err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			return false, err.Error()
		}
		var missing []string
		for _, m := range want {
			if fams[m] == nil && fams[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")] == nil {
				missing = append(missing, m)
			}
		}
		if len(missing) > 0 && fams["keyhole_audit_secret_reads_total"] == nil {
			// The tail starts at the log's end once it opens the file:
			// read the Secret again until a read is counted.
			events++
			appendAuditRead(t, logFile, events)
		}
		if bytes.Contains(body, []byte("KEYHOLE-CANARY")) {
			t.Fatal("a Secret value is in the metrics")
		}
		return len(missing) == 0, "missing " + strings.Join(missing, ", ")
	})
	if strings.Contains(d.Logs.String(), "KEYHOLE-CANARY") {
		t.Error("a Secret value is in the daemon's logs")
	}
}

// appendAuditRead appends to the audit log one Metadata-level event: user
// alice, whom no grant explains, got Secret payments/db.
func appendAuditRead(t *testing.T, path string, n int) {
	t.Helper()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	line := fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"scrape-%d","stage":"ResponseComplete",`+
		`"requestURI":"/api/v1/namespaces/payments/secrets/db","verb":"get","user":{"username":"alice","groups":["system:authenticated"]},`+
		`"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.34.4","objectRef":{"resource":"secrets","namespace":"payments","name":"db","apiVersion":"v1"},`+
		`"responseStatus":{"code":200},"requestReceivedTimestamp":%q,"stageTimestamp":%q}`+"\n", n, now, now)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
}
