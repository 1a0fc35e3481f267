package deploytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/keyhole-sec/keyhole/internal/cli"
	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/source/auditevents/webhooktest"
	"github.com/keyhole-sec/keyhole/internal/testenv"
	"github.com/keyhole-sec/keyhole/internal/testlog"
)

const (
	// auditWebhookComponent is the kustomize component of the webhook.
	auditWebhookComponent = "../../deploy/kustomize/audit-webhook"
	// auditRoleFile is the one source of the audit summary Role's rules.
	auditRoleFile = "../../deploy/audit/role.yaml"
	// auditRole is the Role (and RoleBinding) in the chart (release
	// keyhole), the component and auditRoleFile.
	auditRole = "keyhole-audit-summary"
	// auditVolume is the volume of the webhook's Secrets in both.
	auditVolume = "audit-webhook"
	// auditTokenChart is the chart's values with the webhook on and a
	// bearer token; the component uses mTLS, so both modes are run.
	auditTokenChart = "auditWebhook: {enabled: true, auth: token}"
)

// auditRoleRules are the rules of deploy/audit/role.yaml's Role.
func auditRoleRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	b, err := os.ReadFile(auditRoleFile)
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	typed(t, objects(t, b), "Role", auditRole, &role)
	if len(role.Rules) == 0 {
		t.Fatalf("%s: Role %s has no rules", auditRoleFile, auditRole)
	}
	return role.Rules
}

// TestAuditRoleIsDeployAudit holds the audit summary Role of the chart and
// of the kustomize component to deploy/audit/role.yaml, rule for rule,
// bound to keyhole's ServiceAccount in the rendering's namespace, and
// rendered only with the webhook on.
func TestAuditRoleIsDeployAudit(t *testing.T) {
	hb, kc := helmBinary(t), kubectlBinary(t)
	want := auditRoleRules(t)
	const ns = "security"
	for name, objs := range map[string][]*unstructured.Unstructured{
		"chart mtls":  renderChart(t, hb, ns, "auditWebhook: {enabled: true}"),
		"chart token": renderChart(t, hb, ns, auditTokenChart),
		"kustomize":   objects(t, render(t, kc, overlayOf(t, ns, auditWebhookComponent))),
	} {
		t.Run(name, func(t *testing.T) {
			var role rbacv1.Role
			typed(t, objs, "Role", auditRole, &role)
			if role.Namespace != ns || !reflect.DeepEqual(role.Rules, want) {
				t.Errorf("Role %s/%s rules\n  %+v\n%s's\n  %+v", role.Namespace, role.Name, role.Rules, auditRoleFile, want)
			}
			var b rbacv1.RoleBinding
			typed(t, objs, "RoleBinding", auditRole, &b)
			wantSubject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: ns}}
			if b.Namespace != ns || b.RoleRef.Kind != "Role" || b.RoleRef.Name != auditRole || !reflect.DeepEqual(b.Subjects, wantSubject) {
				t.Errorf("RoleBinding %s/%s: %+v to %+v, want Role %s to %+v", b.Namespace, b.Name, b.RoleRef, b.Subjects, auditRole, wantSubject)
			}
			// The webhook's Service and NetworkPolicy rules are
			// TestHelmChartShape's; here the Secret's volume.
			var d appsv1.Deployment
			typed(t, objs, "Deployment", "keyhole", &d)
			mount := auditMount(t, d.Spec.Template.Spec)
			if !mount.ReadOnly {
				t.Errorf("volume %s is mounted writable", auditVolume)
			}
		})
	}
	if o := find(renderChart(t, hb, ns, ""), "Role", auditRole); o != nil {
		t.Errorf("the default rendering has Role %s; only the webhook needs it", auditRole)
	}
}

// auditMount is keyhole's mount of the webhook's volume.
func auditMount(t *testing.T, pod corev1.PodSpec) corev1.VolumeMount {
	t.Helper()
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.Name == auditVolume {
			return m
		}
	}
	t.Fatalf("keyhole mounts no volume %s: %+v", auditVolume, pod.Containers[0].VolumeMounts)
	return corev1.VolumeMount{}
}

// auditFiles are the file names the webhook's volume holds: a projected
// volume's items (the chart), or every key of a whole Secret (the
// component), here the keys a Secret for it has.
func auditFiles(t *testing.T, pod corev1.PodSpec) []string {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name != auditVolume {
			continue
		}
		switch {
		case v.Projected != nil:
			var files []string
			for _, s := range v.Projected.Sources {
				if s.Secret == nil {
					t.Fatalf("volume %s projects something other than a Secret: %+v", auditVolume, s)
				}
				for _, it := range s.Secret.Items {
					files = append(files, it.Path)
				}
			}
			return files
		case v.Secret != nil && len(v.Secret.Items) == 0:
			return []string{"tls.crt", "tls.key", "ca.crt", "token"}
		}
		t.Fatalf("volume %s: %+v, want a Secret or projected Secrets", auditVolume, v.VolumeSource)
	}
	t.Fatalf("the pod has no volume %s", auditVolume)
	return nil
}

// TestAuditWebhookAsRendered runs keyhole serve, through the command line,
// with the keyhole container's args exactly as each rendering has them
// (the chart with a bearer token, the kustomize component with mTLS): only
// the listen addresses become free loopback ports and the Secret's mount
// a directory of test files. It runs as the rendering's ServiceAccount
// under the rendering's RBAC, applied for real after a server-side dry
// run. The webhook must refuse a caller without credentials, take one
// EventList with them, and keep its summary in ConfigMaps the Role
// allows; no forbidden error, and the token in no output.
func TestAuditWebhookAsRendered(t *testing.T) {
	hb, kc := helmBinary(t), kubectlBinary(t)
	cp := testenv.StartT(t, testenv.Options{})
	admin := []string{"--kubeconfig", cp.KubeconfigPath}
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	// The chart's release namespace; the kustomize base brings its own.
	mustKubectl(t, kc, nil, append(admin, "create", "namespace", namespace)...)
	mustKubectl(t, kc, nil, append(admin, "label", "namespace", namespace,
		"pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted")...)
	mustKubectl(t, kc, nil, append(admin, "-n", "default", "create", "secret", "generic", "db", "--from-literal=password=KEYHOLE-CANARY-audit")...)
	// What keyhole's pod would have: its namespace from the downward API.
	t.Setenv("POD_NAMESPACE", namespace)

	for _, c := range []struct {
		name  string
		token bool
		objs  func(t *testing.T) []*unstructured.Unstructured
	}{
		{"chart token", true, func(t *testing.T) []*unstructured.Unstructured { return renderChart(t, hb, namespace, auditTokenChart) }},
		{"kustomize mtls", false, func(t *testing.T) []*unstructured.Unstructured {
			return objects(t, render(t, kc, overlayOf(t, namespace, auditWebhookComponent)))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			objs := c.objs(t)
			var apply []*unstructured.Unstructured
			for _, o := range objs {
				if o.GetKind() == "Namespace" {
					continue // created above, with the same labels
				}
				apply = append(apply, o)
			}
			serverDryRun(t, kc, admin, apply)
			mustKubectl(t, kc, toYAML(t, apply), append(admin, "apply", "-f", "-")...)
			// The next rendering starts from nothing of this one's (a
			// defer: kubectl runs under t.Context, done before cleanups).
			defer func() {
				mustKubectl(t, kc, toYAML(t, apply), append(admin, "delete", "--ignore-not-found", "-f", "-")...)
				if err := cs.CoreV1().ConfigMaps(namespace).DeleteCollection(t.Context(), metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
					t.Error(err)
				}
			}()
			var d appsv1.Deployment
			typed(t, objs, "Deployment", "keyhole", &d)
			runAuditWebhook(t, cp, cs, d.Spec.Template.Spec, c.token)
		})
	}
}

// runAuditWebhook runs keyhole serve with the pod's keyhole args as
// described for TestAuditWebhookAsRendered.
func runAuditWebhook(t *testing.T, cp *testenv.ControlPlane, cs kubernetes.Interface, pod corev1.PodSpec, token bool) {
	t.Helper()
	pki, err := webhooktest.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const secretToken = "KEYHOLE-CANARY-webhook-token"
	// The Secret's files, as the kubelet would mount them.
	mounted := t.TempDir()
	for name, from := range map[string]string{"tls.crt": pki.ServerCertFile, "tls.key": pki.ServerKeyFile, "ca.crt": pki.CAFile} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mounted, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(mounted, "token"), []byte(secretToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mountPath := auditMount(t, pod).MountPath + "/"
	files := auditFiles(t, pod)

	webAddr, hookAddr := freeAddr(t), freeAddr(t)
	var args []string
	var sawHook, sawWeb bool
	for _, a := range pod.Containers[0].Args {
		name, value, _ := strings.Cut(a, "=")
		switch {
		case name == "--audit-webhook-addr":
			a, sawHook = name+"="+hookAddr, true
		case name == "--web.listen-address":
			a, sawWeb = name+"="+webAddr, true
		case strings.HasPrefix(value, mountPath):
			file := strings.TrimPrefix(value, mountPath)
			if !slices.Contains(files, file) {
				t.Errorf("%s: the volume %s holds no %s (only %v)", a, auditVolume, file, files)
			}
			a = name + "=" + filepath.Join(mounted, file)
		}
		args = append(args, a)
	}
	if !sawHook || !sawWeb || len(args) == 0 || args[0] != "serve" {
		t.Fatalf("args %v: want serve with --audit-webhook-addr and --web.listen-address", pod.Containers[0].Args)
	}
	args = append(args, "--kubeconfig="+serviceAccountKubeconfig(t, cs, cp))

	stdout, stderr := &testlog.Buffer{}, &testlog.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	go func() { exit <- cli.Run(ctx, args, strings.NewReader(""), stdout, stderr) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-exit:
			if code != cli.ExitOK {
				t.Errorf("keyhole %s: exit %d", strings.Join(args, " "), code)
			}
		case <-time.After(15 * time.Second):
			t.Error("keyhole serve did not stop within 15 s of its context's end")
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("keyhole %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout, stderr)
		}
	})

	url := "https://" + hookAddr + "/audit/webhook"
	batch := webhooktest.EventList([]map[string]any{webhooktest.Event(1, "alice", "default", "db", time.Now())})
	post := func(cert *tls.Certificate, bearer string) (int, error) {
		cfg := &tls.Config{RootCAs: pki.Pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer client.CloseIdleConnections()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(batch))
		if err != nil {
			return 0, err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	probe.Eventually(t, 60*time.Second, "/readyz 200", func() (bool, string) {
		select {
		case code := <-exit:
			stopped = true
			t.Fatalf("keyhole serve exited %d:\n%s", code, stderr)
		default:
		}
		code, body, err := probe.Get("http://"+webAddr+"/readyz", "")
		return code == http.StatusOK, string(body) + errString(err)
	})

	// No credentials: 401 with a token accepted; with mTLS alone the
	// handshake itself requires a client certificate.
	code, err := post(nil, "")
	switch {
	case token && (err != nil || code != http.StatusUnauthorized):
		t.Errorf("POST without credentials: %d %v, want 401", code, err)
	case !token && err == nil && code != http.StatusUnauthorized:
		t.Errorf("POST without a client certificate: %d, want a refused handshake or 401", code)
	}
	if code, err := post(nil, "not-the-token"); token && (err != nil || code != http.StatusForbidden) {
		t.Errorf("POST with a wrong token: %d %v, want 403", code, err)
	}
	var good int
	if token {
		good, err = post(nil, secretToken)
	} else {
		good, err = post(&pki.Client, "")
	}
	if err != nil || good != http.StatusOK {
		t.Errorf("POST one EventList with credentials: %d %v, want 200", good, err)
	}
	_, metricsText, err := probe.Get("http://"+webAddr+"/metrics", "")
	if err != nil || !bytes.Contains(metricsText, []byte(`keyhole_audit_webhook_requests_total{code="200"} 1`)) {
		t.Errorf("metrics lack keyhole_audit_webhook_requests_total{code=\"200\"} 1 (%v)", err)
	}

	// At shutdown the summary is merged into its ConfigMaps: a create
	// and an update under the rendering's Role.
	stop()
	cms, err := cs.CoreV1().ConfigMaps(namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var shards []string
	for _, cm := range cms.Items {
		if strings.HasPrefix(cm.Name, "keyhole-audit-reads-") {
			shards = append(shards, cm.Name)
		}
	}
	if len(shards) == 0 {
		t.Errorf("no ConfigMap keyhole-audit-reads-N in %s after a read was received", namespace)
	}
	out := stdout.String() + stderr.String()
	if strings.Contains(out, secretToken) || strings.Contains(out, "KEYHOLE-CANARY-audit") {
		t.Error("keyhole's output holds the webhook token or a Secret value")
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(strings.ToLower(line), "forbidden") {
			t.Errorf("forbidden under the rendering's RBAC: %s", line)
		}
	}
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// serviceAccountKubeconfig writes a kubeconfig, in a temporary directory,
// for keyhole's ServiceAccount (serviceAccountConfig's token), as
// keyhole serve's --kubeconfig.
func serviceAccountKubeconfig(t *testing.T, cs kubernetes.Interface, cp *testenv.ControlPlane) string {
	t.Helper()
	cfg := serviceAccountConfig(t, cs, cp.Config)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["cp"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData, CertificateAuthority: cfg.CAFile}
	kc.AuthInfos["keyhole"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["keyhole"] = &clientcmdapi.Context{Cluster: "cp", AuthInfo: "keyhole"}
	kc.CurrentContext = "keyhole"
	path := filepath.Join(t.TempDir(), "keyhole.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(fmt.Errorf("kubeconfig of serviceaccount/%s/%s: %w", namespace, serviceAccount, err))
	}
	return path
}
