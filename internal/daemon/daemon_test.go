package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// canary is the value of the test's Secret. It must never reach a metric,
// the report or a log line; failure messages say where it was found, never
// what it is.
const canary = "keyhole-daemon-canary-7f1c9e"

const (
	ns     = "payments"
	secret = "db"
	eve    = "eve"
)

// users of the control plane: a reader of the report endpoint and a
// caller without that right.
var (
	reporter = testenv.User{Name: "report-reader"}
	stranger = testenv.User{Name: "stranger"}
)

// TestServe runs keyhole serve against one real control plane: the
// analysis follows RBAC changes, reuses its access stage across changes
// that cannot affect it, the report needs a token, a forbidden
// resource is survived and said, two replicas export findings once and
// fail over, SIGTERM exits cleanly, and an apiserver restart is ridden
// out. The subtests share the cluster and run in order; the restart comes
// last.
func TestServe(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{Users: []testenv.User{reporter, stranger}})
	ctx := t.Context()
	admin := kubernetes.NewForConfigOrDie(cp.Config)
	seedWorld(ctx, t, admin)

	d := startInProcess(t, cp.Config, func(o *Options) { o.Metrics.ReaderInfo = true })
	waitReady(t, d)

	t.Run("binding change reaches the metrics", func(t *testing.T) { testBindingChange(ctx, t, admin, d) })
	t.Run("access stage reused, and recomputed", func(t *testing.T) { testAccessReuse(ctx, t, admin, cp.Config) })
	t.Run("report needs a bearer token", func(t *testing.T) { testReportAuth(t, cp, d) })
	t.Run("no value anywhere", func(t *testing.T) { testNoValue(t, cp, d) })
	t.Run("git repository", func(t *testing.T) { testGitRepo(t, cp) })
	t.Run("live values correlated with git", func(t *testing.T) { testGitCorrelate(ctx, t, cp, admin) })
	t.Run("TLS and basic auth from the web config", func(t *testing.T) { testWebConfig(t, cp) })
	t.Run("forbidden pods", func(t *testing.T) { testForbiddenPods(ctx, t, cp, admin) })
	t.Run("two replicas and signals", func(t *testing.T) { testReplicas(ctx, t, cp, admin) })
	t.Run("apiserver restart", func(t *testing.T) { testAPIServerRestart(ctx, t, cp, admin, d) })
}

// seedWorld creates the namespace, the Secret (holding the canary) and the
// RBAC the subtests need: a reader role for reports.keyhole.io, and a
// ClusterRole that lets a daemon watch everything but pods.
func seedWorld(ctx context.Context, t *testing.T, c kubernetes.Interface) {
	t.Helper()
	must(t, create(ctx, c.CoreV1().Namespaces(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, create(ctx, c.CoreV1().Secrets(ns), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: secret},
		StringData: map[string]string{"password": canary},
	}))
	must(t, create(ctx, c.RbacV1().ClusterRoles(), &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "keyhole-report-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"keyhole.io"}, Resources: []string{"reports"}, Verbs: []string{"get"}}},
	}))
	must(t, create(ctx, c.RbacV1().ClusterRoleBindings(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "keyhole-report-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "keyhole-report-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: reporter.Name}},
	}))
	// Everything keyhole watches except pods, plus what the report
	// endpoint's TokenReview and SubjectAccessReview need.
	must(t, create(ctx, c.RbacV1().ClusterRoles(), &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "keyhole-no-pods"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces", "secrets", "serviceaccounts", "configmaps", "nodes",
				"replicationcontrollers", "persistentvolumeclaims", "persistentvolumes"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles", "clusterroles", "rolebindings", "clusterrolebindings"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
			{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
		},
	}))
	must(t, create(ctx, c.CoreV1().ServiceAccounts(ns), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: limitedSA}}))
	must(t, create(ctx, c.RbacV1().ClusterRoleBindings(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "keyhole-no-pods"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "keyhole-no-pods"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: limitedSA}},
	}))
}

// limitedSA is the ServiceAccount of a daemon that may not list pods.
const limitedSA = "keyhole-limited"

// serviceAccountConfig is a client configuration that authenticates as
// limitedSA, with a token from the TokenRequest API, as a pod would.
func serviceAccountConfig(ctx context.Context, t *testing.T, cp *testenv.ControlPlane, c kubernetes.Interface) *rest.Config {
	t.Helper()
	tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, limitedSA, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	must(t, err)
	cfg := rest.AnonymousClientConfig(cp.Config)
	cfg.BearerToken = tr.Status.Token
	return cfg
}

// creator is any typed client's Create.
type creator[T any] interface {
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
}

func create[T any](ctx context.Context, c creator[T], obj T) error {
	_, err := c.Create(ctx, obj, metav1.CreateOptions{})
	return err
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitReady(t *testing.T, d *inProcess) {
	t.Helper()
	probe.Eventually(t, 60*time.Second, "readyz", func() (bool, string) {
		code, body, err := probe.Get(d.url("/readyz"), "")
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %s %v", code, body, err)
	})
}

var (
	secretLabels = map[string]string{"namespace": ns, "secret": secret}
	eveInfo      = map[string]string{"namespace": ns, "secret": secret, "subject_kind": "User", "subject": eve, "path": "direct"}
)

// testBindingChange grants eve a read of the Secret, sees it in the
// metrics within 10 s, deletes the grant and sees the series go.
func testBindingChange(ctx context.Context, t *testing.T, c kubernetes.Interface, d *inProcess) {
	fams, _, err := scrape(d.url("/metrics"))
	must(t, err)
	if _, ok := fams.value("keyhole_secret_exposure_score", secretLabels); !ok {
		t.Fatalf("no keyhole_secret_exposure_score for %s/%s before any change: %s", ns, secret, fams.labelsOf("keyhole_secret_exposure_score"))
	}
	if _, ok := fams.value("keyhole_secret_reader_info", eveInfo); ok {
		t.Fatalf("eve is a reader before any grant")
	}
	before, _ := fams.value("keyhole_secret_readers", map[string]string{"namespace": ns, "secret": secret, "path": "direct"})

	must(t, create(ctx, c.RbacV1().Roles(ns), &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "read-db"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{secret}, Verbs: []string{"get"}}},
	}))
	must(t, create(ctx, c.RbacV1().RoleBindings(ns), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "eve-reads-db"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-db"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: eve}},
	}))
	took := probe.Eventually(t, 10*time.Second, "eve's read in the metrics", func() (bool, string) {
		fams, _, err := scrape(d.url("/metrics"))
		if err != nil {
			return false, err.Error()
		}
		_, ok := fams.value("keyhole_secret_reader_info", eveInfo)
		n, _ := fams.value("keyhole_secret_readers", map[string]string{"namespace": ns, "secret": secret, "path": "direct"})
		return ok && n == before+1, fmt.Sprintf("reader_info %v, direct readers %v (was %v)", ok, n, before)
	})
	t.Logf("a RoleBinding reached /metrics in %s", took.Round(10*time.Millisecond))

	must(t, c.RbacV1().RoleBindings(ns).Delete(ctx, "eve-reads-db", metav1.DeleteOptions{}))
	probe.Eventually(t, 10*time.Second, "eve's read gone from the metrics", func() (bool, string) {
		fams, _, err := scrape(d.url("/metrics"))
		if err != nil {
			return false, err.Error()
		}
		_, ok := fams.value("keyhole_secret_reader_info", eveInfo)
		n, _ := fams.value("keyhole_secret_readers", map[string]string{"namespace": ns, "secret": secret, "path": "direct"})
		return !ok && n == before, fmt.Sprintf("reader_info %v, direct readers %v (was %v)", ok, n, before)
	})
}

// testReportAuth reads /api/v1/report as an authorized token user, and is
// refused without a token, with a bad one, and as a user without the
// grant.
func testReportAuth(t *testing.T, cp *testenv.ControlPlane, d *inProcess) {
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"unknown token", "not-a-token", http.StatusUnauthorized},
		{"no grant", tokenOf(cp, stranger), http.StatusForbidden},
		{"granted", tokenOf(cp, reporter), http.StatusOK},
	} {
		code, body, err := probe.Get(d.url(ReportPath), c.token)
		must(t, err)
		if code != c.want {
			t.Errorf("%s: status %d, want %d: %.200s", c.name, code, c.want, body)
			continue
		}
		if code != http.StatusOK {
			continue
		}
		var rep report.Report
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatalf("%s: the body is not a report: %v", c.name, err)
		}
		found := false
		for _, s := range rep.Secrets {
			found = found || (s.Namespace == ns && s.Name == secret)
		}
		if rep.Kind != report.Kind || !found {
			t.Errorf("%s: report of kind %q without %s/%s", c.name, rep.Kind, ns, secret)
		}
	}
}

// testNoValue looks for the canary, raw and base64, in everything the
// daemon exposes and logs.
func testNoValue(t *testing.T, cp *testenv.ControlPlane, d *inProcess) {
	_, metricsBody, err := scrape(d.url("/metrics"))
	must(t, err)
	code, reportBody, err := probe.Get(d.url(ReportPath), tokenOf(cp, reporter))
	if err != nil || code != http.StatusOK {
		t.Fatalf("report: %d %v", code, err)
	}
	places := map[string]string{"metrics": string(metricsBody), "report": string(reportBody), "logs": d.logs.String()}
	for where, text := range places {
		if containsValue(text) {
			t.Errorf("the Secret's value is in the %s", where)
		}
	}
}

// containsValue says whether text holds the canary, plain or base64.
func containsValue(text string) bool {
	return strings.Contains(text, canary) || strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(canary)))
}

// tokenOf is u's bearer token on cp.
func tokenOf(cp *testenv.ControlPlane, u testenv.User) string {
	for _, c := range cp.Users {
		if c.Name == u.Name {
			return c.Token
		}
	}
	return ""
}

// testForbiddenPods runs a second daemon as a ServiceAccount that may
// watch everything but pods: it becomes ready, says once what it lacks,
// and reports the gap in keyhole_source_up and in the report's errors.
func testForbiddenPods(ctx context.Context, t *testing.T, cp *testenv.ControlPlane, c kubernetes.Interface) {
	d := startInProcess(t, serviceAccountConfig(ctx, t, cp, c), nil)
	waitReady(t, d)
	fams, _, err := scrape(d.url("/metrics"))
	must(t, err)
	if v, ok := fams.value("keyhole_source_up", map[string]string{"resource": "pods"}); !ok || v != 0 {
		t.Errorf("keyhole_source_up{resource=pods} = %v (present %v), want 0", v, ok)
	}
	for _, r := range []string{"secrets", "rolebindings", "nodes"} {
		if v, ok := fams.value("keyhole_source_up", map[string]string{"resource": r}); !ok || v != 1 {
			t.Errorf("keyhole_source_up{resource=%s} = %v (present %v), want 1", r, v, ok)
		}
	}
	// The analysis of everything else goes on: the Secret is there.
	if _, ok := fams.value("keyhole_secret_exposure_score", secretLabels); !ok {
		t.Errorf("no exposure score for %s/%s without pods", ns, secret)
	}
	code, body, err := probe.Get(d.url(ReportPath), tokenOf(cp, reporter))
	if err != nil || code != http.StatusOK {
		t.Fatalf("report: %d %v", code, err)
	}
	var rep report.Report
	must(t, json.Unmarshal(body, &rep))
	found := false
	for _, e := range rep.Errors {
		found = found || strings.Contains(e.Message, "list pods") && strings.Contains(e.Message, "forbidden")
	}
	if !found {
		t.Errorf("the report's errors do not say that listing pods is forbidden: %+v", rep.Errors)
	}
	// Give the reflector time to retry, then count the log lines: the gap
	// is said once, not once per retry.
	must(t, create(ctx, c.CoreV1().ConfigMaps(ns), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "nudge"}}))
	time.Sleep(3 * time.Second)
	var lines []string
	for _, l := range strings.Split(d.logs.String(), "\n") {
		if strings.Contains(l, "cannot watch pods") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("the pods gap was logged %d times, want once:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[0], `cannot list resource \"pods\"`) {
		t.Errorf("the log line does not name the missing permission: %s", lines[0])
	}
}

// testAPIServerRestart stops the apiserver under the running daemon: the
// daemon keeps serving its last report, keyhole_source_up shows the
// outage, and after the restart the sources come back and changes flow
// again, with no restart of keyhole.
func testAPIServerRestart(ctx context.Context, t *testing.T, cp *testenv.ControlPlane, c kubernetes.Interface, d *inProcess) {
	must(t, cp.StopAPIServer())
	probe.Eventually(t, 60*time.Second, "a source down during the outage", func() (bool, string) {
		fams, _, err := scrape(d.url("/metrics"))
		if err != nil {
			return false, err.Error()
		}
		v, ok := fams.value("keyhole_source_up", map[string]string{"resource": "secrets"})
		return ok && v == 0, fams.labelsOf("keyhole_source_up")
	})
	if code, _, err := probe.Get(d.url("/readyz"), ""); err != nil || code != http.StatusOK {
		t.Errorf("readyz during the outage: %d %v, want 200 (the last report stands)", code, err)
	}
	must(t, cp.StartAPIServer(ctx))
	probe.Eventually(t, 90*time.Second, "every source up after the restart", func() (bool, string) {
		fams, _, err := scrape(d.url("/metrics"))
		if err != nil {
			return false, err.Error()
		}
		fam := fams["keyhole_source_up"]
		if fam == nil {
			return false, "no keyhole_source_up"
		}
		for _, m := range fam.GetMetric() {
			if m.GetGauge().GetValue() != 1 {
				return false, fams.labelsOf("keyhole_source_up") + " (some 0)"
			}
		}
		return true, ""
	})
	must(t, create(ctx, c.RbacV1().RoleBindings(ns), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "eve-reads-db-again"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-db"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: eve}},
	}))
	probe.Eventually(t, 20*time.Second, "a change after the restart in the metrics", func() (bool, string) {
		fams, _, err := scrape(d.url("/metrics"))
		if err != nil {
			return false, err.Error()
		}
		_, ok := fams.value("keyhole_secret_reader_info", eveInfo)
		return ok, fams.labelsOf("keyhole_secret_reader_info")
	})
}

// testWebConfig serves over TLS with basic auth from an exporter-toolkit
// web config file: a scrape needs both, and a plain-HTTP or anonymous one
// is refused.
func testWebConfig(t *testing.T, cp *testenv.ControlPlane) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-pass"), bcrypt.MinCost)
	must(t, err)
	webConfig := filepath.Join(dir, "web.yaml")
	must(t, os.WriteFile(webConfig, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prometheus: %s\n",
		certFile, keyFile, hash), 0o600))
	d := startInProcess(t, cp.Config, func(o *Options) { o.WebConfigFile = webConfig })

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	scrapeTLS := func(user, pass string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "https://"+d.addr+"/metrics", nil)
		must(t, err)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		must(t, err)
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	probe.Eventually(t, 60*time.Second, "a TLS scrape with basic auth", func() (bool, string) {
		code, body := scrapeTLS("prometheus", "scrape-pass")
		return code == http.StatusOK && strings.Contains(body, "keyhole_build_info"), fmt.Sprintf("%d %.100s", code, body)
	})
	if code, _ := scrapeTLS("", ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous TLS scrape: %d, want 401", code)
	}
	if code, _ := scrapeTLS("prometheus", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if code, _, err := probe.Get(d.url("/metrics"), ""); err == nil && code == http.StatusOK {
		t.Errorf("a plain-HTTP scrape succeeded on a TLS port")
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key into dir.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "keyhole-test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	must(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestNotReadyWithoutACluster: a daemon whose apiserver cannot be reached
// analyses (its report says why) but is not ready, and says so.
func TestNotReadyWithoutACluster(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	must(t, l.Close()) // nothing listens there now
	cfg := &rest.Config{Host: "https://" + addr, BearerToken: "x", TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	d := startInProcess(t, cfg, nil)
	probe.Eventually(t, 30*time.Second, "the first analysis", func() (bool, string) {
		return strings.Contains(d.logs.String(), "analysis done"), "no analysis yet"
	})
	code, body, err := probe.Get(d.url("/readyz"), "")
	must(t, err)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "nothing could be read") {
		t.Errorf("readyz: %d %s, want 503 saying nothing could be read", code, body)
	}
	fams, _, err := scrape(d.url("/metrics"))
	must(t, err)
	if v, ok := fams.value("keyhole_source_up", map[string]string{"resource": "secrets"}); !ok || v != 0 {
		t.Errorf("keyhole_source_up{resource=secrets} = %v (present %v), want 0", v, ok)
	}
}

// TestExportingNeedsSomethingRead: the leader exports findings only from a
// report of something read; an empty world's zeros would resolve alerts.
func TestExportingNeedsSomethingRead(t *testing.T) {
	d := &daemon{}
	d.leader.Store(true)
	if d.exporting() {
		t.Errorf("exporting before any analysis")
	}
	d.latest.Store(&snapshot{report: &report.Report{}, empty: true})
	if d.exporting() {
		t.Errorf("exporting a report of nothing read")
	}
	d.latest.Store(&snapshot{report: &report.Report{}})
	if !d.exporting() {
		t.Errorf("the leader does not export a report of what it read")
	}
	d.leader.Store(false)
	if d.exporting() {
		t.Errorf("a follower exports")
	}
}
