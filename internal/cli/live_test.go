package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/encryption"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// TestLiveEqualsOffline applies the demo world to a real control plane with
// kubectl and requires `keyhole audit --kubeconfig` to find exactly the
// readers that the offline audit of the same manifests finds, with no
// value in any output (kubectl's last-applied annotation repeats every
// Secret's data, so the canary is on the wire).
//
// The one difference is by design. Offline, a workload's pod template
// stands for the pods it will run; the test control plane has neither
// kubelets nor workload controllers, so no pod ever runs there. The paths
// that need a running pod (pod-exec, node-proxy, node-escape,
// node-authorizer) are found offline only, and the test requires exactly
// the demo's two.
func TestLiveEqualsOffline(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{})
	t.Chdir(repoRoot)
	kubectl := filepath.Join(cp.BinDir, "kubectl")
	for _, path := range []string{"testdata/demo/namespaces.yaml", "testdata/demo"} {
		apply := exec.Command(kubectl, "--kubeconfig", cp.KubeconfigPath, "apply", "-R", "-f", path)
		if out, err := apply.CombinedOutput(); err != nil {
			t.Fatalf("kubectl apply -f %s: %v\n%s", path, err, out)
		}
	}

	_, offOut, _ := run(t, "", "audit", "--manifests", "testdata/demo", "--format", "json")
	code, liveOut, stderr := run(t, "", "audit", "--kubeconfig", cp.KubeconfigPath, "--format", "json")
	if code != ExitFindings {
		t.Fatalf("live audit exit %d, want %d; stderr:\n%s", code, ExitFindings, stderr)
	}
	for _, leak := range canaryForms() {
		if strings.Contains(liveOut, leak) || strings.Contains(stderr, leak) {
			t.Fatalf("live output contains %q", leak)
		}
	}
	var off, live report.Report
	if err := json.Unmarshal([]byte(offOut), &off); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(liveOut), &live); err != nil {
		t.Fatal(err)
	}
	var offlineOnly []string
	liveSecrets := map[string]report.Secret{}
	for _, s := range live.Secrets {
		liveSecrets[s.Namespace+"/"+s.Name] = s
	}
	for _, s := range off.Secrets {
		l, ok := liveSecrets[s.Namespace+"/"+s.Name]
		if !ok {
			t.Errorf("live audit lacks Secret %s/%s", s.Namespace, s.Name)
			continue
		}
		offline := readerMap(s)
		for r := range offline {
			if podPath(r) {
				offlineOnly = append(offlineOnly, s.Namespace+"/"+s.Name+": "+r)
				delete(offline, r)
			}
		}
		if got := readerMap(l); !reflect.DeepEqual(got, offline) {
			t.Errorf("%s/%s: live readers %v, offline %v", s.Namespace, s.Name, got, offline)
		}
		if !reflect.DeepEqual(l.Keys, s.Keys) || l.Type != s.Type || l.Exposure.Severity != s.Exposure.Severity {
			t.Errorf("%s/%s: live keys %v type %s severity %s, offline %v %s %s", s.Namespace, s.Name, l.Keys, l.Type, l.Exposure.Severity, s.Keys, s.Type, s.Exposure.Severity)
		}
	}
	sort.Strings(offlineOnly)
	wantOnly := []string{
		"payments/db-credentials: Group/monitoring-admins node-escape",
		"payments/db-credentials: Group/oncall pod-exec",
		"payments/stripe-api-key: Group/monitoring-admins node-escape",
		"payments/stripe-api-key: Group/oncall pod-exec",
		"search/elastic-credentials: Group/monitoring-admins node-escape",
	}
	if !reflect.DeepEqual(offlineOnly, wantOnly) {
		t.Errorf("readers through pods found offline only:\n%s\nwant:\n%s", strings.Join(offlineOnly, "\n"), strings.Join(wantOnly, "\n"))
	}
	if len(live.Errors) != 0 {
		t.Errorf("live audit errors: %+v", live.Errors)
	}
	// explain reads the cluster as audit does.
	code, explained, stderr := run(t, "", "explain", "secret", "payments/db-credentials", "--kubeconfig", cp.KubeconfigPath, "-o", "json")
	if code != ExitOK {
		t.Fatalf("live explain exit %d; stderr:\n%s", code, stderr)
	}
	if got, want := readerMap(*decodeExplanation(t, explained)), readerMap(liveSecrets["payments/db-credentials"]); !reflect.DeepEqual(got, want) {
		t.Errorf("live explain readers %v, live audit %v", got, want)
	}
	code, _, stderr = run(t, "", "explain", "secret", "payments/nope", "--kubeconfig", cp.KubeconfigPath)
	if code != ExitError || !strings.Contains(stderr, "Secret/payments/nope is not in the inventory read from cluster "+cp.Config.Host) {
		t.Errorf("live explain of a missing Secret: exit %d; stderr:\n%s", code, stderr)
	}
	// The aggregated bootstrap roles are in sync on a healthy cluster.
	for _, f := range live.Findings {
		if f.Rule == "KH122" {
			t.Errorf("aggregation drift on a fresh control plane: %s", f.Message)
		}
	}
}

// podPath reports whether a readerMap key's path needs a running pod.
func podPath(key string) bool {
	for _, kind := range []string{" pod-exec", " node-proxy", " node-escape", " node-authorizer"} {
		if strings.HasSuffix(key, kind) {
			return true
		}
	}
	return false
}

func readerMap(s report.Secret) map[string]string {
	m := map[string]string{}
	for r := range s.Readers.All() {
		m[r.Subject.String()+" "+r.Path] = strings.Join(r.Verbs, ",")
	}
	return m
}

// TestLiveForbiddenList runs the live audit as a user who may list
// everything but pods: the report names the gap and its impact, everything
// else is still analysed, and the exit code is 2.
func TestLiveForbiddenList(t *testing.T) {
	limited := testenv.User{Name: "keyhole-no-pods"}
	cp := testenv.StartT(t, testenv.Options{Users: []testenv.User{limited}})
	t.Chdir(repoRoot)
	kubectl := filepath.Join(cp.BinDir, "kubectl")
	mustKubectl(t, kubectl, "--kubeconfig", cp.KubeconfigPath, "create", "secret", "generic", "s", "--from-literal=k=KEYHOLE-CANARY-forbidden")
	// The shipped ClusterRole, minus pods, bound to the limited user.
	mustKubectl(t, kubectl, "--kubeconfig", cp.KubeconfigPath, "create", "clusterrole", "no-pods",
		"--verb=list", "--resource=namespaces,secrets,serviceaccounts,replicationcontrollers,configmaps,nodes,persistentvolumeclaims,persistentvolumes,roles,clusterroles,rolebindings,clusterrolebindings,deployments,replicasets,statefulsets,daemonsets,jobs,cronjobs,ingresses")
	mustKubectl(t, kubectl, "--kubeconfig", cp.KubeconfigPath, "create", "clusterrolebinding", "no-pods", "--clusterrole=no-pods", "--user="+limited.Name)
	kubeconfig, err := cp.KubeconfigFor(limited)
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "", "audit", "--kubeconfig", kubeconfig, "--format", "json")
	if code != ExitError {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitError, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("no report despite the gap: %v", err)
	}
	if len(r.Errors) != 1 || r.Errors[0].Resource != "pods" || !strings.Contains(r.Errors[0].Message, "forbidden") || r.Errors[0].Impact == "" {
		t.Fatalf("errors %+v, want one forbidden error for pods with its impact", r.Errors)
	}
	if len(r.Secrets) == 0 || r.Coverage.Sources[0].Objects["ClusterRole"] == 0 {
		t.Errorf("the rest was not analysed: %d secrets, coverage %+v", len(r.Secrets), r.Coverage.Sources)
	}
	if !strings.Contains(stderr, "pods") {
		t.Errorf("stderr does not name the forbidden resource:\n%s", stderr)
	}
}

// TestLiveShippedRBACIsEnough validates deploy/audit-job with a
// server-side dry run, applies it, and audits as its ServiceAccount: the
// least-privilege ClusterRole must leave no resource forbidden.
func TestLiveShippedRBACIsEnough(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{})
	t.Chdir(repoRoot)
	kubectl := filepath.Join(cp.BinDir, "kubectl")
	// The Namespace must exist before a dry run of namespaced objects.
	mustKubectl(t, kubectl, "--kubeconfig", cp.KubeconfigPath, "create", "namespace", "keyhole")
	mustKubectl(t, kubectl, "--kubeconfig", cp.KubeconfigPath, "apply", "--dry-run=server", "-k", "deploy/audit-job")
	mustKubectl(t, kubectl, "--kubeconfig", cp.KubeconfigPath, "apply", "-f", "deploy/audit-job/rbac.yaml")
	token := strings.TrimSpace(mustKubectl(t, kubectl, "--kubeconfig", cp.KubeconfigPath, "-n", "keyhole", "create", "token", "keyhole-audit"))
	kubeconfig := filepath.Join(t.TempDir(), "sa.kubeconfig")
	mustKubectl(t, kubectl, "--kubeconfig", kubeconfig, "config", "set-cluster", "c", "--server", cp.Config.Host, "--certificate-authority", writeCA(t, cp), "--embed-certs")
	mustKubectl(t, kubectl, "--kubeconfig", kubeconfig, "config", "set-credentials", "sa", "--token", token)
	mustKubectl(t, kubectl, "--kubeconfig", kubeconfig, "config", "set-context", "c", "--cluster", "c", "--user", "sa")
	mustKubectl(t, kubectl, "--kubeconfig", kubeconfig, "config", "use-context", "c")

	// As the Job runs it. This control plane has no EncryptionConfiguration,
	// which the ClusterRole's get on /metrics lets keyhole see: KH601, the
	// one critical finding, and exit 1.
	code, out, stderr := run(t, "", "audit", "--kubeconfig", kubeconfig, "--format", "json", "--fail-on", "critical")
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d (KH601); stderr:\n%s", code, ExitFindings, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) != 0 {
		t.Errorf("the shipped ClusterRole leaves gaps: %+v", r.Errors)
	}
	// A forbidden /metrics is no input error, only an unknown provider.
	if r.Posture == nil || r.Posture.EncryptionAtRest == nil {
		t.Fatal("the report has no encryption at rest")
	}
	if e := r.Posture.EncryptionAtRest; e.Provider != encryption.Identity || e.Error != "" {
		t.Errorf("encryption at rest under the shipped ClusterRole: provider %q (error %q), want %q", e.Provider, e.Error, encryption.Identity)
	}
	var critical []string
	for _, f := range r.Findings {
		if f.Severity == "critical" {
			critical = append(critical, f.Rule)
		}
	}
	if !reflect.DeepEqual(critical, []string{finding.SecretsNotEncrypted}) {
		t.Errorf("critical findings %v, want only %s", critical, finding.SecretsNotEncrypted)
	}
}

// TestLiveAggregationDrift: with no aggregation controller, an aggregated
// ClusterRole keeps rules its selectors would replace (they select a
// member with rules); the live audit reports KH122 and uses the stored
// rules, as the authorizer does, while offline the selectors win.
func TestLiveAggregationDrift(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{NoControllerManager: true})
	kubectl := filepath.Join(cp.BinDir, "kubectl")
	manifest := filepath.Join(t.TempDir(), "drift.yaml")
	world := `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: drifted}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {example.com/aggregate-to-drifted: "true"}}]
rules:
- {apiGroups: [""], resources: ["secrets"], verbs: ["get"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: drifted-member
  labels: {example.com/aggregate-to-drifted: "true"}
rules:
- {apiGroups: [""], resources: ["configmaps"], verbs: ["get"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: drifted}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: drifted}
subjects: [{kind: User, name: dora, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: default}
stringData: {k: KEYHOLE-CANARY-drift}
`
	if err := os.WriteFile(manifest, []byte(world), 0o600); err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, kubectl, "--kubeconfig", cp.KubeconfigPath, "create", "-f", manifest)
	_, out, stderr := run(t, "", "audit", "--kubeconfig", cp.KubeconfigPath, "--format", "json")
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr)
	}
	drift := false
	for _, f := range r.Findings {
		drift = drift || (f.Rule == "KH122" && f.Object.Name == "drifted")
	}
	if !drift {
		t.Errorf("no KH122 finding for ClusterRole/drifted: %+v", r.Findings)
	}
	dora := false
	for _, s := range r.Secrets {
		for rd := range s.Readers.All() {
			dora = dora || (s.Name == "s" && rd.Subject.Name == "dora")
		}
	}
	if !dora {
		t.Error("live audit ignored the stored rules of the aggregated role (the authorizer uses them)")
	}
	// Offline, the same manifest aggregates from selectors: dora reads nothing.
	_, offOut, _ := run(t, "", "audit", "--manifests", manifest, "--format", "json")
	if strings.Contains(offOut, `"dora"`) {
		t.Error("offline audit kept the aggregated role's own rules; they are replaced by its selectors' union")
	}
}

func mustKubectl(t *testing.T, kubectl string, args ...string) string {
	t.Helper()
	out, err := exec.Command(kubectl, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeCA(t *testing.T, cp *testenv.ControlPlane) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(path, cp.Config.CAData, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
