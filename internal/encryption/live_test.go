package encryption_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/daemon"
	"github.com/keyhole-sec/keyhole/internal/encryption"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/testenv"
	"github.com/keyhole-sec/keyhole/internal/testlog"
)

var update = flag.Bool("update", false, "rewrite the samples in testdata/ from the live control planes")

// samplesDir holds /metrics samples captured from the control plane's
// kube-apiserver by TestLiveEncryptionAtRest -update.
var samplesDir = filepath.Join("testdata", "kube-apiserver-"+testenv.KubeVersion)

// keyName names the test keys of the EncryptionConfiguration: the
// per-key transformers record it as a transformer_prefix of their own,
// which keyhole must drop.
const keyName = "keyhole-key-name-canary"

// canary is every test Secret's value.
const canary = "KEYHOLE-CANARY-encryption-at-rest"

// TestLiveEncryptionAtRest runs real control planes with and without an
// EncryptionConfiguration and checks, in a live audit (audit.Live, as
// `keyhole audit` runs it) and in keyhole serve (keyhole_etcd_encryption),
// what keyhole concludes: identity without one, aescbc with one, identity
// for an identity-first one and for Secrets left in plain base64 after
// encryption was enabled, unknown (never encrypted) for a user forbidden
// /metrics. No Secret value, encryption key or key name reaches a report,
// a metric or a log. With -update, it rewrites the /metrics samples the
// parser's unit tests read.
func TestLiveEncryptionAtRest(t *testing.T) {
	t.Run("no configuration", testNoConfiguration)
	t.Run("aescbc", testAESCBC)
	t.Run("identity first, then aescbc", testMigration)
}

func testNoConfiguration(t *testing.T) {
	limited := testenv.User{Name: "keyhole-no-metrics"}
	cp := testenv.StartT(t, testenv.Options{NoControllerManager: true, Users: []testenv.User{limited}})
	cs := kubernetes.NewForConfigOrDie(cp.Config)
	createSecret(t, cs, "db")

	rep, st := liveAudit(t, cp.Config)
	checkPosture(t, rep, encryption.Identity, ptr(false), nil)
	checkRules(t, rep, finding.SecretsNotEncrypted)
	if f := findingOf(rep, finding.SecretsNotEncrypted); f == nil || f.Severity != "critical" || !strings.Contains(f.Message, "runs without an EncryptionConfiguration") {
		t.Errorf("KH601: %+v", f)
	}
	capture(t, cp.Config, "no-configuration", st)

	// The same world, for a user who may list Secrets and namespaces but
	// not read /metrics: unknown, and why, never encrypted.
	grant(t, cs, limited.Name, "list-and-watch", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces", "secrets"}, Verbs: []string{"list", "watch"}}})
	limitedCfg := cp.ConfigFor(limited)
	rep, _ = liveAudit(t, limitedCfg)
	checkPosture(t, rep, encryption.Unknown, nil, nil)
	e := rep.Posture.EncryptionAtRest
	for _, want := range []string{`cannot get path "/metrics"`, limited.Name, "system:monitoring"} {
		if !strings.Contains(e.Error, want) {
			t.Errorf("forbidden: error %q does not say %q", e.Error, want)
		}
	}
	checkRules(t, rep, finding.EncryptionAtRestUnknown)
	if f := findingOf(rep, finding.EncryptionAtRestUnknown); f == nil || f.Severity != "info" || !strings.Contains(f.Message, "system:monitoring") {
		t.Errorf("KH603: %+v", f)
	}
	for _, e := range rep.Errors {
		// The user's forbidden LISTs are; /metrics is not.
		if strings.Contains(e.Message, "/metrics") {
			t.Errorf("a forbidden /metrics is no input error: %+v", e)
		}
	}

	// keyhole serve, as the admin: identity.
	d := startDaemon(t, cp.Config)
	d.waitProvider(t, encryption.Identity)

	// As the limited user: unknown, logged once with the permission
	// however often /metrics is read; then granted system:monitoring,
	// the next read says identity.
	ld := startDaemon(t, limitedCfg)
	ld.waitProvider(t, encryption.Unknown)
	probe.Eventually(t, time.Minute, "three reads of /metrics", func() (bool, string) {
		n := ld.reads.Load()
		return n >= 3, fmt.Sprintf("%d reads", n)
	})
	if n := strings.Count(ld.logs.String(), "cannot read the API server's /metrics"); n != 1 {
		t.Errorf("the forbidden read is logged %d times, want once:\n%s", n, ld.logs)
	}
	if !strings.Contains(ld.logs.String(), "system:monitoring") {
		t.Errorf("the log does not name the missing permission:\n%s", ld.logs)
	}
	bindMonitoring(t, cs, limited.Name)
	ld.waitProvider(t, encryption.Identity)
	if !strings.Contains(ld.logs.String(), "reading the API server's /metrics again") {
		t.Errorf("the recovery is not logged:\n%s", ld.logs)
	}
}

func testAESCBC(t *testing.T) {
	cfg, key := encryptionConfig(t, "aescbc", "identity")
	cp := testenv.StartT(t, testenv.Options{NoControllerManager: true, ExtraAPIServerFlags: []string{"--encryption-provider-config=" + cfg}})
	cs := kubernetes.NewForConfigOrDie(cp.Config)

	// Configured, but no Secret read or written yet: unknown, honestly.
	rep, st := liveAudit(t, cp.Config)
	checkPosture(t, rep, encryption.Unknown, ptr(true), nil)
	checkRules(t, rep, finding.EncryptionAtRestUnknown)
	if f := findingOf(rep, finding.EncryptionAtRestUnknown); f == nil || !strings.Contains(f.Message, "runs with an EncryptionConfiguration") {
		t.Errorf("KH603: %+v", f)
	}
	capture(t, cp.Config, "aescbc-no-secret", st)

	createSecret(t, cs, "db")
	rep, st = liveAudit(t, cp.Config)
	checkPosture(t, rep, encryption.AESCBC, ptr(true), []string{encryption.AESCBC})
	checkRules(t, rep, finding.WeakEncryptionProvider)
	if f := findingOf(rep, finding.WeakEncryptionProvider); f == nil || f.Severity != "low" || !strings.Contains(f.Message, "aescbc") {
		t.Errorf("KH602: %+v", f)
	}
	capture(t, cp.Config, "aescbc", st)
	noLeak(t, "aescbc report", renderAll(t, rep), key)

	d := startDaemon(t, cp.Config)
	d.waitProvider(t, encryption.AESCBC)
	_, body, err := probe.Get(d.url+"/metrics", "")
	if err != nil {
		t.Fatal(err)
	}
	noLeak(t, "daemon metrics", string(body), key)
	noLeak(t, "daemon logs", d.logs.String(), key)

	// A restarted apiserver has written nothing yet; its watch cache read
	// the stored Secret, which says aescbc.
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	if err := cp.StartAPIServer(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep, st = liveAudit(t, cp.Config)
	checkPosture(t, rep, encryption.AESCBC, ptr(true), []string{encryption.AESCBC})
	if len(rep.Posture.EncryptionAtRest.WrittenWith) != 0 {
		t.Errorf("restarted apiserver: written with %v, want nothing", rep.Posture.EncryptionAtRest.WrittenWith)
	}
	checkRules(t, rep, finding.WeakEncryptionProvider)
	capture(t, cp.Config, "aescbc-restarted", st)
}

// testMigration starts with identity first (Secrets written in plain
// base64 although a configuration is loaded), then puts aescbc first: new
// Secrets are encrypted, the old one is still stored in plain base64.
func testMigration(t *testing.T) {
	cfg, key := encryptionConfig(t, "identity", "aescbc")
	cp := testenv.StartT(t, testenv.Options{NoControllerManager: true, ExtraAPIServerFlags: []string{"--encryption-provider-config=" + cfg}})
	cs := kubernetes.NewForConfigOrDie(cp.Config)
	createSecret(t, cs, "old")

	rep, st := liveAudit(t, cp.Config)
	checkPosture(t, rep, encryption.Identity, ptr(true), []string{encryption.Identity})
	checkRules(t, rep, finding.SecretsNotEncrypted)
	if f := findingOf(rep, finding.SecretsNotEncrypted); f == nil || !strings.Contains(f.Message, "lists identity first") {
		t.Errorf("KH601: %+v", f)
	}
	capture(t, cp.Config, "identity-first", st)
	d := startDaemon(t, cp.Config)
	d.waitProvider(t, encryption.Identity)

	// aescbc first, with the same key, and a restart.
	writeEncryptionConfig(t, cfg, key, "aescbc", "identity")
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	if err := cp.StartAPIServer(t.Context()); err != nil {
		t.Fatal(err)
	}
	createSecret(t, cs, "new")
	rep, st = liveAudit(t, cp.Config)
	checkPosture(t, rep, encryption.AESCBC, ptr(true), []string{encryption.Identity, encryption.AESCBC})
	checkRules(t, rep, finding.SecretsNotEncrypted, finding.WeakEncryptionProvider)
	if f := findingOf(rep, finding.SecretsNotEncrypted); f == nil || !strings.Contains(f.Message, "still stored in etcd unencrypted") || !strings.Contains(f.Message, "kubectl replace") {
		t.Errorf("KH601: %+v", f)
	}
	capture(t, cp.Config, "aescbc-with-plaintext", st)
	noLeak(t, "migration report", renderAll(t, rep), key)
	// The daemon reads /metrics again on its own and follows.
	d.waitProvider(t, encryption.AESCBC)
	noLeak(t, "daemon logs", d.logs.String(), key)
}

func ptr[T any](v T) *T { return &v }

// encryptionConfig writes an EncryptionConfiguration for secrets with the
// given providers, in order, and a random 32-byte key, to a file of
// t.TempDir, and returns its path and the key (base64).
func encryptionConfig(t *testing.T, providers ...string) (path, key string) {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	key = base64.StdEncoding.EncodeToString(raw)
	path = filepath.Join(t.TempDir(), "encryption-configuration.yaml")
	writeEncryptionConfig(t, path, key, providers...)
	return path, key
}

func writeEncryptionConfig(t *testing.T, path, key string, providers ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n")
	for _, p := range providers {
		if p == "identity" {
			b.WriteString("      - identity: {}\n")
			continue
		}
		fmt.Fprintf(&b, "      - %s:\n          keys:\n            - name: %s\n              secret: %s\n", p, keyName, key)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func createSecret(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, StringData: map[string]string{"password": canary}}
	if _, err := cs.CoreV1().Secrets("default").Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating Secret default/%s: %v", name, err)
	}
}

func grant(t *testing.T, cs kubernetes.Interface, user, name string, rules []rbacv1.PolicyRule) {
	t.Helper()
	ctx := t.Context()
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind(t, cs, user, name)
}

// bindMonitoring binds the bootstrap ClusterRole that grants get on
// /metrics, as docs/rules/KH603.md advises.
func bindMonitoring(t *testing.T, cs kubernetes.Interface, user string) {
	t.Helper()
	bind(t, cs, user, "system:monitoring")
}

func bind(t *testing.T, cs kubernetes.Interface, user, role string) {
	t.Helper()
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user + "-" + strings.ReplaceAll(role, ":", "-")},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(t.Context(), b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// liveAudit runs the live audit as `keyhole audit` does, and returns the
// report and what encryption.Read says on its own.
func liveAudit(t *testing.T, cfg *rest.Config) (*report.Report, encryption.Status) {
	t.Helper()
	in, err := audit.Live(t.Context(), cfg, cluster.Options{})
	if err != nil {
		t.Fatalf("live audit: %v", err)
	}
	if in.Encryption == nil {
		t.Fatal("the live audit did not read encryption at rest")
	}
	rep, err := audit.Analyze(in, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	noLeak(t, "report", renderAll(t, rep), "")
	return rep, *in.Encryption
}

func checkPosture(t *testing.T, rep *report.Report, provider string, configured *bool, stored []string) {
	t.Helper()
	if rep.Posture == nil || rep.Posture.EncryptionAtRest == nil {
		t.Fatal("the report has no encryptionAtRest")
	}
	e := rep.Posture.EncryptionAtRest
	if e.Provider != provider {
		t.Errorf("provider %q, want %q (evidence: %s; error: %s)", e.Provider, provider, e.Evidence, e.Error)
	}
	if (e.Configured == nil) != (configured == nil) || (configured != nil && *e.Configured != *configured) {
		t.Errorf("configured %v, want %v", deref(e.Configured), deref(configured))
	}
	if fmt.Sprint(e.StoredWith) != fmt.Sprint(stored) {
		t.Errorf("stored with %v, want %v", e.StoredWith, stored)
	}
	if e.Source != encryption.Source || e.Evidence == "" {
		t.Errorf("source %q, evidence %q", e.Source, e.Evidence)
	}
	if provider != encryption.Unknown && e.APIServerVersion != testenv.KubeVersion {
		t.Errorf("apiserver version %q, want %s", e.APIServerVersion, testenv.KubeVersion)
	}
}

func deref(b *bool) string {
	if b == nil {
		return "unknown"
	}
	return fmt.Sprint(*b)
}

// checkRules requires exactly the given rules of KH601-KH603 to fire, once
// each, on Resource/secrets.
func checkRules(t *testing.T, rep *report.Report, want ...string) {
	t.Helper()
	got := map[string]int{}
	for _, f := range rep.Findings {
		if strings.HasPrefix(f.Rule, "KH60") {
			got[f.Rule]++
			if f.Object.String() != "Resource/secrets" {
				t.Errorf("%s on %s, want Resource/secrets", f.Rule, f.Object)
			}
		}
	}
	for _, rule := range want {
		if got[rule] != 1 {
			t.Errorf("%s fired %d times, want once", rule, got[rule])
		}
		delete(got, rule)
	}
	for rule, n := range got {
		t.Errorf("%s fired %d times, want never", rule, n)
	}
}

func findingOf(rep *report.Report, rule string) *report.Finding {
	for i := range rep.Findings {
		if rep.Findings[i].Rule == rule {
			return &rep.Findings[i]
		}
	}
	return nil
}

func renderAll(t *testing.T, rep *report.Report) string {
	t.Helper()
	var all bytes.Buffer
	for _, format := range report.Formats {
		if err := report.Write(&all, format, rep); err != nil {
			t.Fatalf("format %s: %v", format, err)
		}
	}
	// The table must show it.
	var table bytes.Buffer
	if err := report.WriteTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	if e := rep.Posture.EncryptionAtRest; !strings.Contains(table.String(), "ENCRYPTION AT REST") || !strings.Contains(table.String(), "provider: "+e.Provider) {
		t.Errorf("the table does not show encryption at rest:\n%s", table.String())
	}
	return all.String()
}

// noLeak fails when text holds the canary (plain or base64), the key
// name, or the encryption key.
func noLeak(t *testing.T, what, text, key string) {
	t.Helper()
	leaks := []string{canary, base64.StdEncoding.EncodeToString([]byte(canary)), keyName}
	if key != "" {
		leaks = append(leaks, key)
	}
	for _, leak := range leaks {
		if strings.Contains(text, leak) {
			t.Errorf("%s contains %q", what, leak)
		}
	}
}

// sampleFamilies are the families a sample keeps: those the parser reads,
// their neighbours (other encryption families, and the per-resource
// apiserver_storage_objects, whose resource="secrets" series must not be
// mistaken for a transformation).
var sampleFamilies = []string{
	"apiserver_storage_transformation_",
	"apiserver_encryption_config_controller_",
	"apiserver_envelope_encryption_",
	"apiserver_storage_envelope_",
	"apiserver_storage_objects",
	"kubernetes_build_info",
}

// capture reads /metrics as the admin and checks that its sample says
// what the audit's own read said; with -update, it writes the sample.
func capture(t *testing.T, cfg *rest.Config, name string, read encryption.Status) {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(cfg)
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").SetHeader("Accept", "text/plain;version=0.0.4").DoRaw(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var sample bytes.Buffer
	for _, line := range bytes.SplitAfter(body, []byte("\n")) {
		name := encryption.LineName(line)
		for _, prefix := range sampleFamilies {
			if name != "" && strings.HasPrefix(name, prefix) {
				sample.Write(line)
				break
			}
		}
	}
	// The apiserver's own text names the test key (a per-key
	// transformer_prefix): that is what the unit tests prove keyhole
	// drops. It never holds a value.
	for _, leak := range []string{canary, base64.StdEncoding.EncodeToString([]byte(canary))} {
		if strings.Contains(sample.String(), leak) {
			t.Errorf("sample %s contains %q", name, leak)
		}
	}
	st, err := encryption.Parse(bytes.NewReader(sample.Bytes()))
	if err != nil {
		t.Fatalf("sample %s: %v", name, err)
	}
	if !st.Same(read) {
		t.Errorf("sample %s says %+v, the audit read %+v", name, st, read)
	}
	if !*update {
		return
	}
	if err := os.MkdirAll(samplesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(samplesDir, name+".txt"), sample.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// liveDaemon is keyhole serve run in this process.
type liveDaemon struct {
	url   string
	logs  *testlog.Buffer
	reads *atomic.Int64
}

// startDaemon runs keyhole serve against cfg, reading /metrics every
// 200 ms, and stops it when t ends. It counts the daemon's GETs of
// /metrics.
func startDaemon(t *testing.T, cfg *rest.Config) *liveDaemon {
	t.Helper()
	d := &liveDaemon{logs: &testlog.Buffer{}, reads: &atomic.Int64{}}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.URL.Path == encryption.MetricsPath {
				d.reads.Add(1)
			}
			return rt.RoundTrip(req)
		})
	})
	addrs := make(chan string, 1)
	opts := daemon.Options{
		Config:             cfg,
		Debounce:           100 * time.Millisecond,
		ListenAddresses:    []string{"127.0.0.1:0"},
		EncryptionInterval: 200 * time.Millisecond,
		Version:            "test",
		Logger:             slog.New(slog.NewTextHandler(d.logs, nil)),
		Listening:          func(a string) { addrs <- a },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, opts) }()
	select {
	case addr := <-addrs:
		d.url = "http://" + addr
	case err := <-done:
		cancel()
		t.Fatalf("daemon did not start: %v\n%s", err, d.logs)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon logs:\n%s", d.logs)
		}
	})
	return d
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// waitProvider waits until keyhole_etcd_encryption has exactly one
// series, for provider.
func (d *liveDaemon) waitProvider(t *testing.T, provider string) {
	t.Helper()
	want := `keyhole_etcd_encryption{provider="` + provider + `"} 1`
	probe.Eventually(t, time.Minute, "keyhole_etcd_encryption for "+provider, func() (bool, string) {
		code, body, err := probe.Get(d.url+"/metrics", "")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("%d %v", code, err)
		}
		var series []string
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, "keyhole_etcd_encryption{") {
				series = append(series, line)
			}
		}
		noLeak(t, "daemon metrics", string(body), "")
		return len(series) == 1 && series[0] == want, strings.Join(series, "; ")
	})
}
