package deploytest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/daemon"
	"github.com/keyhole-sec/keyhole/internal/daemontest"
	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// prometheusBinary is $KEYHOLE_PROMETHEUS, else the server that
// build-prometheus.sh caches (`make prometheus`).
func prometheusBinary(t *testing.T) string {
	t.Helper()
	return cachedTool(t, "prometheus", PrometheusVersion, "KEYHOLE_PROMETHEUS", "several minutes")
}

// alertState is one alert of Prometheus's /api/v1/alerts.
type alertState struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// TestAlertsEndToEnd runs the real pipeline: keyhole serve against the
// control plane, a real Prometheus scraping it every second with the
// shipped rules file, and a ClusterRoleBinding that makes a Secret
// readable by every authenticated user. The critical alert must go
// pending (its for: then runs to firing) for that Secret and no other,
// and must not be active before the binding exists.
func TestAlertsEndToEnd(t *testing.T) {
	prom := prometheusBinary(t)
	cp := testenv.StartT(t, testenv.Options{})
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const ns, name = "payments", "db"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
		StringData: map[string]string{"password": "KEYHOLE-CANARY-e2e"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	d := daemontest.Start(t, func(ctx context.Context, logger *slog.Logger, listening func(string)) error {
		opts := daemon.Options{
			Config: cp.Config, Debounce: 200 * time.Millisecond, ListenAddresses: []string{"127.0.0.1:0"},
			Version: "test", Logger: logger, Listening: listening,
		}
		opts.Metrics.PerSecret = true // keyhole serve's default
		return daemon.Run(ctx, opts)
	})
	probe.Eventually(t, 60*time.Second, "keyhole ready", func() (bool, string) {
		code, body, err := probe.Get(d.URL("/readyz"), "")
		return code == http.StatusOK, string(body) + errString(err)
	})

	api := startPrometheus(t, prom, d.Addr)
	// Prometheus has scraped keyhole and evaluated the rules over the
	// Secret's series before the binding: no critical alert.
	probe.Eventually(t, 60*time.Second, "Prometheus sees the Secret's severity", func() (bool, string) {
		var res struct {
			Result []json.RawMessage `json:"result"`
		}
		err := promAPI(api+"/api/v1/query?query="+`keyhole_secret_severity{namespace="payments",secret="db"}`, &res)
		return err == nil && len(res.Result) == 1, fmt.Sprint(err, res.Result)
	})
	time.Sleep(3 * time.Second) // three evaluation rounds
	if active := criticalAlerts(t, api); len(active) > 0 {
		t.Fatalf("critical alerts before the binding: %+v", active)
	}

	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "read-db"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{name}, Verbs: []string{"get"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "everyone-reads-db"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:authenticated"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "read-db"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	probe.Eventually(t, 90*time.Second, "KeyholeCriticalSecretExposure pending or firing for payments/db", func() (bool, string) {
		active := criticalAlerts(t, api)
		for _, a := range active {
			if a.Labels["namespace"] == ns && a.Labels["secret"] == name && a.Labels["severity"] == "critical" &&
				(a.State == "pending" || a.State == "firing") {
				return len(active) == 1, fmt.Sprintf("%+v", active)
			}
		}
		return false, fmt.Sprintf("%+v", active)
	})
	// HA-safe: the alert's labels carry neither instance nor pod, so a
	// failover to another replica continues the same alert.
	for _, a := range criticalAlerts(t, api) {
		if _, ok := a.Labels["instance"]; ok {
			t.Errorf("the alert keeps the instance label: %v", a.Labels)
		}
	}
}

// criticalAlerts are the active KeyholeCriticalSecretExposure alerts.
func criticalAlerts(t *testing.T, api string) []alertState {
	t.Helper()
	var res struct {
		Alerts []alertState `json:"alerts"`
	}
	if err := promAPI(api+"/api/v1/alerts", &res); err != nil {
		t.Fatalf("Prometheus alerts: %v", err)
	}
	var out []alertState
	for _, a := range res.Alerts {
		if a.Labels["alertname"] == "KeyholeCriticalSecretExposure" {
			out = append(out, a)
		}
	}
	return out
}

// promAPI GETs a Prometheus API URL and decodes its data field into v.
func promAPI(url string, v any) error {
	code, body, err := probe.Get(url, "")
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil || code != http.StatusOK || env.Status != "success" {
		return fmt.Errorf("GET %s: %d %s %v: %.300s", url, code, env.Error, err, body)
	}
	return json.Unmarshal(env.Data, v)
}

// startPrometheus runs Prometheus on a free loopback port, scraping
// target every second with the shipped rules file, and returns its URL
// once it is ready. It is killed when t ends.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: keyhole
    static_configs:
      - targets: [%q]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logFile.Close()
		if t.Failed() {
			if data, err := os.ReadFile(logPath); err == nil {
				t.Logf("prometheus log:\n%s", data)
			}
		}
	})
	api := "http://" + addr
	probe.Eventually(t, 60*time.Second, "Prometheus ready", func() (bool, string) {
		code, body, err := probe.Get(api+"/-/ready", "")
		return code == http.StatusOK, strings.TrimSpace(string(body)) + errString(err)
	})
	return api
}
