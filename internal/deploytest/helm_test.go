package deploytest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// HelmVersion is the helm.sh/helm/v3 module whose helm build-helm.sh
// builds; keep the two equal.
const HelmVersion = "v3.22.0"

// The chart and the kustomize component it is held to, relative to this
// package.
const (
	chart                = "../../deploy/helm/keyhole"
	chartAlerts          = chart + "/files/alerts.yaml"
	chartReadme          = chart + "/README.md"
	correlationComponent = "../../deploy/kustomize/correlation"
	gitSyncComponent     = "../../deploy/kustomize/git-sync"
	// release is the release name of every rendering: the chart then
	// names its objects as the kustomize base does.
	release = "keyhole"
	// correlationRole is the opt-in ClusterRole, in the chart (release
	// keyhole) and in the kustomize component.
	correlationRole = "keyhole-correlation"
)

// allOn switches every optional part of the chart on.
const allOn = `
monitoring:
  serviceMonitor: {enabled: true, labels: {release: prometheus}}
  prometheusRule: {enabled: true, labels: {release: prometheus}}
gitSync:
  enabled: true
  repo: https://git.example.com/org/gitops.git
  sshSecretName: git-creds
correlation: {enabled: true}
auditWebhook: {enabled: true}
reportReaders:
  - {kind: ServiceAccount, name: prometheus, namespace: monitoring}
networkPolicy:
  metricsFrom:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
  apiServer: {cidrs: [10.0.0.1/32]}
metrics: {perSecret: false, readerInfo: true}
extraArgs: [--debounce=5s]
`

// helmBinary is $KEYHOLE_HELM, else the helm that build-helm.sh caches
// (`make helm`).
func helmBinary(t *testing.T) string {
	t.Helper()
	return cachedTool(t, "helm", HelmVersion, "KEYHOLE_HELM", "a few minutes")
}

// helm runs the binary with values (YAML, none when empty) as its -f file,
// helm's own state kept in a temporary directory, and returns its stdout
// and stderr.
func helm(t *testing.T, bin, values string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	if values != "" {
		f := filepath.Join(dir, "values.yaml")
		if err := os.WriteFile(f, []byte(values), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-f", f)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HELM_DATA_HOME="+filepath.Join(dir, "data"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// renderChart is `helm template keyhole chart --namespace ns` with values.
func renderChart(t *testing.T, bin, ns, values string) []*unstructured.Unstructured {
	t.Helper()
	out, stderr, err := helm(t, bin, values, "template", release, chart, "--namespace", ns)
	if err != nil {
		t.Fatalf("helm template (values %q): %v\n%s", values, err, stderr)
	}
	return objects(t, []byte(out))
}

// find is the one object of kind and name in objs, or nil.
func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// TestHelmVersion keeps the version the tests look for equal to the one
// build-helm.sh builds.
func TestHelmVersion(t *testing.T) {
	b, err := os.ReadFile("build-helm.sh")
	if err != nil {
		t.Fatal(err)
	}
	if want := "HELM_VERSION=${HELM_VERSION:-" + HelmVersion + "}"; !bytes.Contains(b, []byte(want)) {
		t.Errorf("build-helm.sh does not build %s (want a line %s)", HelmVersion, want)
	}
}

// TestHelmLint runs `helm lint --strict` (which also validates the values
// against values.schema.json) with the default values and with everything
// on.
func TestHelmLint(t *testing.T) {
	hb := helmBinary(t)
	for name, values := range map[string]string{"defaults": "", "all on": allOn} {
		t.Run(name, func(t *testing.T) {
			out, stderr, err := helm(t, hb, values, "lint", "--strict", chart)
			if err != nil {
				t.Errorf("helm lint --strict: %v\n%s%s", err, out, stderr)
			}
		})
	}
}

// TestHelmSchemaRejects requires values.schema.json to refuse bad values
// at render time: each bad value fails `helm template` with a schema
// error, and a good value for the same key renders, so that the failure
// is the value's.
func TestHelmSchemaRejects(t *testing.T) {
	hb := helmBinary(t)
	for _, c := range []struct{ name, bad, good string }{
		{"wrong type", "replicas: two", "replicas: 3"},
		{"unknown key", "replica: 2", "replicas: 2"},
		{"unknown nested key", "gitSync: {repoURL: https://git.example.com/a.git}", "gitSync: {repo: https://git.example.com/a.git}"},
		{"enum", "service: {type: Ingress}", "service: {type: NodePort}"},
		{"boolean", `monitoring: {serviceMonitor: {enabled: "yes"}}`, "monitoring: {serviceMonitor: {enabled: false}}"},
		{"git-sync without a repository", "gitSync: {enabled: true}", "gitSync: {enabled: true, repo: https://git.example.com/a.git}"},
		{"latest image", "image: {tag: latest}", "image: {tag: v0.1.1}"},
		{"digest", "image: {digest: sha256:abc}", "image: {digest: sha256:" + strings.Repeat("ab", 32) + "}"},
		{"audit webhook on the metrics port", "auditWebhook: {enabled: true, port: 9090}", "auditWebhook: {enabled: true, port: 9443}"},
		{"audit webhook auth", "auditWebhook: {enabled: true, auth: basic}", "auditWebhook: {enabled: true, auth: token}"},
		{"audit webhook token Secret with mtls", "auditWebhook: {enabled: true, auth: mtls, tokenSecretName: t}", "auditWebhook: {enabled: true, auth: token, tokenSecretName: t}"},
		{"audit window under an hour", "auditWebhook: {enabled: true, window: 30m}", "auditWebhook: {enabled: true, window: 1h}"},
		{"not a flag", "extraArgs: [debounce=5s]", "extraArgs: [--debounce=5s]"},
		{"not a CIDR", "networkPolicy: {apiServer: {cidrs: [api.example.com]}}", "networkPolicy: {apiServer: {cidrs: [192.0.2.1/32]}}"},
		{"service account subject without namespace", "reportReaders: [{kind: ServiceAccount, name: prometheus}]", "reportReaders: [{kind: ServiceAccount, name: prometheus, namespace: monitoring}]"},
		{"repository name not a label", "gitSync: {repoName: https://git.example.com/a.git}", "gitSync: {repoName: gitops}"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, err := helm(t, hb, c.bad, "template", release, chart, "--namespace", namespace)
			if err == nil {
				t.Errorf("%s: helm template succeeded", c.bad)
			} else if !strings.Contains(stderr, "values don't meet the specifications of the schema") {
				t.Errorf("%s: helm template failed, but not on the schema:\n%s", c.bad, stderr)
			}
			if _, stderr, err := helm(t, hb, c.good, "template", release, chart, "--namespace", namespace); err != nil {
				t.Errorf("%s: %v\n%s", c.good, err, stderr)
			}
		})
	}
}

// TestHelmChartShape holds both renderings to what deploy_test.go requires
// of the kustomize ones, and checks what each switch adds, and that the
// default adds nothing optional.
func TestHelmChartShape(t *testing.T) {
	hb := helmBinary(t)
	t.Run("defaults", func(t *testing.T) {
		objs := renderChart(t, hb, namespace, "")
		checkDeploymentShape(t, objs, 3)
		checkChartNamespace(t, objs, namespace)
		for _, o := range objs {
			if strings.HasPrefix(o.GetAPIVersion(), "monitoring.coreos.com/") {
				t.Errorf("the default rendering holds %s/%s: it must install without prometheus-operator", o.GetKind(), o.GetName())
			}
		}
		if find(objs, "ClusterRole", correlationRole) != nil {
			t.Errorf("ClusterRole %s is rendered by default; it is opt-in", correlationRole)
		}
		if find(objs, "ClusterRoleBinding", reportReader) != nil {
			t.Errorf("ClusterRoleBinding %s is rendered without reportReaders", reportReader)
		}
		var d appsv1.Deployment
		typed(t, objs, "Deployment", "keyhole", &d)
		c := d.Spec.Template.Spec.Containers[0]
		for _, a := range c.Args {
			if strings.HasPrefix(a, "--audit-webhook-addr") || strings.HasPrefix(a, "--git-repo") || strings.HasPrefix(a, "--metrics.") {
				t.Errorf("default args hold %s", a)
			}
		}
		if len(c.Ports) != 1 || len(d.Spec.Template.Spec.Containers) != 1 {
			t.Errorf("default pod: %d containers, keyhole's ports %+v; want keyhole alone, with http-metrics", len(d.Spec.Template.Spec.Containers), c.Ports)
		}

		// The image is the chart's appVersion, which is the kustomize
		// base's tag.
		var meta struct {
			AppVersion string `json:"appVersion"`
			Version    string `json:"version"`
		}
		readYAML(t, chart+"/Chart.yaml", &meta)
		var kust struct {
			Images []struct {
				Name   string `json:"name"`
				NewTag string `json:"newTag"`
			} `json:"images"`
		}
		readYAML(t, base+"/kustomization.yaml", &kust)
		if len(kust.Images) != 1 || kust.Images[0].NewTag != meta.AppVersion {
			t.Errorf("Chart.yaml appVersion %q, the kustomize base's images %+v: want the same tag", meta.AppVersion, kust.Images)
		}
		if want := "ghcr.io/keyhole-sec/keyhole:" + meta.AppVersion; c.Image != want {
			t.Errorf("image %q, want %q", c.Image, want)
		}

		// The NetworkPolicy is the base's: same ingress and egress.
		var chartNP, kustNP networkingv1.NetworkPolicy
		typed(t, objs, "NetworkPolicy", "keyhole", &chartNP)
		typed(t, objects(t, render(t, kubectlBinary(t), base)), "NetworkPolicy", "keyhole", &kustNP)
		if !reflect.DeepEqual(chartNP.Spec.Ingress, kustNP.Spec.Ingress) || !reflect.DeepEqual(chartNP.Spec.Egress, kustNP.Spec.Egress) ||
			!reflect.DeepEqual(chartNP.Spec.PolicyTypes, kustNP.Spec.PolicyTypes) {
			t.Errorf("NetworkPolicy differs from the kustomize base's:\n%+v\nvs\n%+v", chartNP.Spec, kustNP.Spec)
		}
	})

	t.Run("all on", func(t *testing.T) {
		// Another namespace, as the example overlay: every subject and
		// namespaced object must follow it.
		const ns = "security"
		objs := renderChart(t, hb, ns, allOn)
		checkDeploymentShape(t, objs, 5) // and the correlation and audit summary roles
		checkChartNamespace(t, objs, ns)

		var d appsv1.Deployment
		typed(t, objs, "Deployment", "keyhole", &d)
		pod := d.Spec.Template.Spec
		c := pod.Containers[0]
		for _, a := range []string{"--audit-webhook-addr=:9443", "--metrics.per-secret=false", "--metrics.reader-info", "--debounce=5s", "--git-repo-name=gitops", "--git-correlate"} {
			if !slices.Contains(c.Args, a) {
				t.Errorf("args %v lack %s", c.Args, a)
			}
		}
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "audit-webhook" && p.ContainerPort == 9443 }) {
			t.Errorf("keyhole's ports %+v lack audit-webhook 9443", c.Ports)
		}
		if len(pod.Containers) != 2 {
			t.Fatalf("%d containers, want keyhole and git-sync", len(pod.Containers))
		}
		sync := pod.Containers[1]
		if !slices.ContainsFunc(sync.Env, func(e corev1.EnvVar) bool {
			return e.Name == "GITSYNC_REPO" && e.Value == "https://git.example.com/org/gitops.git"
		}) {
			t.Errorf("git-sync env %+v lacks GITSYNC_REPO", sync.Env)
		}
		if !slices.ContainsFunc(sync.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/etc/git-secret" && m.ReadOnly }) ||
			!slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == "git-creds" }) {
			t.Error("the SSH Secret git-creds is not mounted read-only at /etc/git-secret in git-sync")
		}

		var svc corev1.Service
		typed(t, objs, "Service", "keyhole", &svc)
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
			return p.Name == "audit-webhook" && p.Port == 9443 && p.TargetPort.String() == "audit-webhook"
		}) {
			t.Errorf("service ports %+v lack audit-webhook 9443", svc.Spec.Ports)
		}

		var np networkingv1.NetworkPolicy
		typed(t, objs, "NetworkPolicy", "keyhole", &np)
		hasPort := func(ports []networkingv1.NetworkPolicyPort, port string) bool {
			return slices.ContainsFunc(ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port != nil && p.Port.String() == port })
		}
		if !slices.ContainsFunc(np.Spec.Ingress, func(r networkingv1.NetworkPolicyIngressRule) bool { return hasPort(r.Ports, "audit-webhook") }) {
			t.Errorf("NetworkPolicy ingress %+v admits nothing to audit-webhook", np.Spec.Ingress)
		}
		if len(np.Spec.Ingress) == 0 || len(np.Spec.Ingress[0].From) != 1 {
			t.Errorf("NetworkPolicy ingress %+v: the scrape rule does not take networkPolicy.metricsFrom", np.Spec.Ingress)
		}
		var git, api bool
		for _, r := range np.Spec.Egress {
			git = git || hasPort(r.Ports, "22")
			api = api || (hasPort(r.Ports, "6443") && len(r.To) == 1 && r.To[0].IPBlock != nil && r.To[0].IPBlock.CIDR == "10.0.0.1/32")
		}
		if !git || !api {
			t.Errorf("NetworkPolicy egress %+v: git remote (22) %v, API server narrowed to 10.0.0.1/32 %v; want both", np.Spec.Egress, git, api)
		}

		var readers rbacv1.ClusterRoleBinding
		typed(t, objs, "ClusterRoleBinding", reportReader, &readers)
		if readers.RoleRef.Name != reportReader || len(readers.Subjects) != 1 || readers.Subjects[0].Name != "prometheus" {
			t.Errorf("ClusterRoleBinding %s: %+v, want %s bound to serviceaccount monitoring/prometheus", reportReader, readers, reportReader)
		}
		checkMonitoringObjects(t, objs)
		for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
			if o := find(objs, kind, "keyhole"); o == nil || o.GetLabels()["release"] != "prometheus" {
				t.Errorf("%s lacks the label release=prometheus from monitoring.*.labels", kind)
			}
		}
	})
}

// checkChartNamespace requires no Namespace object (helm install -n, or
// --create-namespace, makes it) and every namespaced object in ns.
func checkChartNamespace(t *testing.T, objs []*unstructured.Unstructured, ns string) {
	t.Helper()
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace":
			t.Errorf("the chart renders Namespace/%s; the release's namespace is not the chart's to create", o.GetName())
		case "ClusterRole", "ClusterRoleBinding":
			if o.GetNamespace() != "" {
				t.Errorf("%s/%s has a namespace", o.GetKind(), o.GetName())
			}
		default:
			if o.GetNamespace() != ns {
				t.Errorf("%s/%s is in namespace %q, want the release's %q", o.GetKind(), o.GetName(), o.GetNamespace(), ns)
			}
		}
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestHelmRBACIsTheBase holds the chart's roles to the kustomize base's,
// rule for rule, and its ClusterRole to what the daemon watches.
func TestHelmRBACIsTheBase(t *testing.T) {
	hb, kc := helmBinary(t), kubectlBinary(t)
	chartObjs := renderChart(t, hb, namespace, "")
	baseObjs := objects(t, render(t, kc, base))
	for _, r := range []struct{ kind, name string }{
		{"ClusterRole", clusterRole},
		{"ClusterRole", reportReader},
		{"Role", "keyhole-leader-election"},
	} {
		var got, want rbacv1.ClusterRole // a Role's rules read the same
		typed(t, chartObjs, r.kind, r.name, &got)
		typed(t, baseObjs, r.kind, r.name, &want)
		if !reflect.DeepEqual(got.Rules, want.Rules) {
			t.Errorf("the chart's %s/%s rules\n  %+v\nthe kustomize base's\n  %+v", r.kind, r.name, got.Rules, want.Rules)
		}
	}
	var role rbacv1.ClusterRole
	typed(t, chartObjs, "ClusterRole", clusterRole, &role)
	checkClusterRole(t, role)
	for _, b := range []struct{ kind, name, role string }{
		{"ClusterRoleBinding", clusterRole, clusterRole},
		{"ClusterRoleBinding", "keyhole-auth-delegator", "system:auth-delegator"},
		{"RoleBinding", "keyhole-leader-election", "keyhole-leader-election"},
	} {
		var rb rbacv1.RoleBinding
		typed(t, chartObjs, b.kind, b.name, &rb)
		if rb.RoleRef.Name != b.role {
			t.Errorf("%s/%s binds %s, want %s", b.kind, b.name, rb.RoleRef.Name, b.role)
		}
	}
}

// TestHelmAlertsAreTheRulesFile holds the chart's copy of the rules to
// dashboards/alerts.yaml, byte for byte; -update copies it.
func TestHelmAlertsAreTheRulesFile(t *testing.T) {
	want, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(chartAlerts, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(chartAlerts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s; run go test ./internal/deploytest -run TestHelmAlertsAreTheRulesFile -update", chartAlerts, rulesFile)
	}
}

// TestHelmValuesDocumented requires every value of values.yaml to be in
// the chart's README, and every property of values.schema.json to be a
// value of values.yaml: the three cannot drift apart. (helm lint, with the
// schema's additionalProperties, already refuses a value the schema lacks.)
func TestHelmValuesDocumented(t *testing.T) {
	var values map[string]any
	readYAML(t, chart+"/values.yaml", &values)
	var paths []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 && !freeForm(prefix+k) {
				walk(prefix+k+".", sub)
				continue
			}
			paths = append(paths, prefix+k)
		}
	}
	walk("", values)
	slices.Sort(paths)
	readme, err := os.ReadFile(chartReadme)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if !bytes.Contains(readme, []byte("| `"+p+"` |")) {
			t.Errorf("%s has no row for the value %s", chartReadme, p)
		}
	}

	var schema map[string]any
	readYAML(t, chart+"/values.schema.json", &schema)
	var walkSchema func(prefix string, s map[string]any)
	walkSchema = func(prefix string, s map[string]any) {
		props, _ := s["properties"].(map[string]any)
		for k, v := range props {
			path := prefix + k
			if !slices.Contains(paths, path) && !slices.ContainsFunc(paths, func(p string) bool { return strings.HasPrefix(p, path+".") }) {
				t.Errorf("values.schema.json has %s, which values.yaml lacks", path)
			}
			if sub, ok := v.(map[string]any); ok && !freeForm(path) {
				walkSchema(path+".", sub)
			}
		}
	}
	walkSchema("", schema)
}

// freeForm values are maps whose keys are the user's (resources, labels),
// documented as a whole.
func freeForm(path string) bool {
	return path == "resources" || strings.HasSuffix(path, ".resources") || path == "global"
}

// correlationValues switch correlation on, with the git-sync sidecar it
// needs.
const correlationValues = "gitSync: {enabled: true, repo: https://git.example.com/org/gitops.git}\ncorrelation: {enabled: true}"

// TestCorrelationRole holds the opt-in get-on-secrets role to one shape in
// the chart and in the kustomize component: get on secrets and nothing
// else, bound to keyhole's ServiceAccount in its namespace; and keyhole
// runs with --git-correlate on the repository git-sync clones. The chart
// refuses correlation without git-sync.
func TestCorrelationRole(t *testing.T) {
	hb, kc := helmBinary(t), kubectlBinary(t)
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}
	if _, stderr, err := helm(t, hb, "correlation: {enabled: true}", "template", release, chart); err == nil || !strings.Contains(stderr, "correlation.enabled needs gitSync.enabled") {
		t.Errorf("correlation without git-sync rendered: %v\n%s", err, stderr)
	}
	for name, objs := range map[string][]*unstructured.Unstructured{
		"chart":     renderChart(t, hb, "security", correlationValues),
		"kustomize": objects(t, render(t, kc, overlayOf(t, "security", gitSyncComponent, correlationComponent))),
	} {
		t.Run(name, func(t *testing.T) {
			var d appsv1.Deployment
			typed(t, objs, "Deployment", "keyhole", &d)
			if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--git-correlate") || !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--git-repo=") }) {
				t.Errorf("keyhole args %v: want --git-correlate with --git-repo", args)
			}
			var role rbacv1.ClusterRole
			typed(t, objs, "ClusterRole", correlationRole, &role)
			if !reflect.DeepEqual(role.Rules, want) {
				t.Errorf("rules %+v, want %+v", role.Rules, want)
			}
			var b rbacv1.ClusterRoleBinding
			typed(t, objs, "ClusterRoleBinding", correlationRole, &b)
			wantSubject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: "security"}}
			if b.RoleRef.Name != correlationRole || !reflect.DeepEqual(b.Subjects, wantSubject) {
				t.Errorf("binding %+v to %+v, want %s to %+v", b.RoleRef, b.Subjects, correlationRole, wantSubject)
			}
		})
	}
}

// overlayOf writes a kustomization of the base with components into
// namespace ns, in a temporary directory, and returns it. kustomize takes
// no absolute base, so the paths are relative.
func overlayOf(t *testing.T, ns string, components ...string) string {
	t.Helper()
	dir := t.TempDir()
	rel := func(p string) string {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := filepath.Rel(dir, abs)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: " + ns +
		"\nresources:\n  - " + rel(base) + "\ncomponents:\n"
	for _, c := range components {
		k += "  - " + rel(c) + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestHelmChartOnTheControlPlane has kube-apiserver validate the chart's
// renderings (and the kustomize base with the correlation component), runs
// keyhole serve under the chart's RBAC exactly as the kustomize base's is
// run, and proves the correlation role is what reading live values needs.
func TestHelmChartOnTheControlPlane(t *testing.T) {
	hb, kc := helmBinary(t), kubectlBinary(t)
	cp := testenv.StartT(t, testenv.Options{Users: []testenv.User{{Name: "alice"}, {Name: "bob"}}})
	admin := []string{"--kubeconfig", cp.KubeconfigPath}
	// The release's namespace comes first (helm install -n, or
	// --create-namespace), with the restricted Pod Security level live
	// for admission to judge the Deployment.
	createNamespace := func(t *testing.T, ns string) {
		t.Helper()
		mustKubectl(t, kc, nil, append(admin, "create", "namespace", ns)...)
		mustKubectl(t, kc, nil, append(admin, "label", "namespace", ns,
			"pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted")...)
	}
	createNamespace(t, namespace)
	createNamespace(t, "security")
	// Everything on includes a ServiceMonitor and a PrometheusRule.
	installOperatorCRDs(t, kc, admin)

	t.Run("server dry run", func(t *testing.T) {
		t.Run("defaults", func(t *testing.T) {
			serverDryRun(t, kc, admin, renderChart(t, hb, namespace, ""))
		})
		t.Run("all on", func(t *testing.T) {
			serverDryRun(t, kc, admin, renderChart(t, hb, "security", allOn))
		})
		t.Run("kustomize git-sync and correlation components", func(t *testing.T) {
			// The base's Namespace, with its Pod Security labels, first.
			const ns = "keyhole-correlation"
			objs := objects(t, render(t, kc, overlayOf(t, ns, gitSyncComponent, correlationComponent)))
			nsObj := find(objs, "Namespace", ns)
			if nsObj == nil {
				t.Fatalf("the rendering has no Namespace %s", ns)
			}
			mustKubectl(t, kc, toYAML(t, []*unstructured.Unstructured{nsObj}), append(admin, "apply", "-f", "-")...)
			serverDryRun(t, kc, admin, objs)
		})
	})

	t.Run("daemon under the chart's RBAC", func(t *testing.T) {
		runUnderShippedRBAC(t, kc, cp, renderChart(t, hb, namespace, ""))
	})

	t.Run("correlation role", func(t *testing.T) {
		const value = "KEYHOLE-CANARY-correlation"
		mustKubectl(t, kc, nil, append(admin, "-n", "default", "create", "secret", "generic", "corr", "--from-literal=token="+value)...)
		cs, err := kubernetes.NewForConfig(cp.Config)
		if err != nil {
			t.Fatal(err)
		}
		as := "system:serviceaccount:" + namespace + ":" + serviceAccount
		canGet := func() string {
			out, _, _ := kubectl(t, kc, nil, append(admin, "auth", "can-i", "--as", as, "get", "secrets", "-n", "default")...)
			return strings.TrimSpace(out)
		}
		// What keyhole audit --correlate reads values with
		// (cluster.SecretValueDigests, a LIST), as keyhole's account:
		// the list on secrets of the main ClusterRole already returns
		// every value. That is why keyhole reports itself a reader of
		// every Secret, and what the chart's README says.
		readsValues := func() bool {
			t.Helper()
			digests, problems, err := cluster.SecretValueDigests(t.Context(), serviceAccountConfig(t, cs, cp.Config), func(v []byte) []byte {
				s := sha256.Sum256(v)
				return s[:]
			})
			if err != nil {
				t.Fatalf("reading Secret values as %s: %v", as, err)
			}
			for ref, keys := range digests {
				for k, d := range keys {
					if bytes.Contains(d, []byte(value)) {
						t.Errorf("%s key %s: the value itself came back, not its digest", ref, k)
					}
				}
			}
			d := digests[inventory.Ref{Kind: "Secret", Namespace: "default", Name: "corr"}]["token"]
			sum := sha256.Sum256([]byte(value))
			return len(problems) == 0 && bytes.Equal(d, sum[:])
		}
		if got := canGet(); got != "no" {
			t.Fatalf("before correlation.enabled, can %s get secrets? %q, want no", as, got)
		}
		if !readsValues() {
			t.Errorf("without correlation.enabled, %s cannot list Secret values; the README's warning is wrong", as)
		}

		objs := renderChart(t, hb, namespace, correlationValues)
		out, stderr, err := kubectl(t, kc, toYAML(t, objs), append(admin, "apply", "-f", "-")...)
		if err != nil {
			t.Fatalf("kubectl apply: %v\n%s%s", err, out, stderr)
		}
		if got := canGet(); got != "yes" {
			t.Errorf("with correlation.enabled, can %s get secrets? %q, want yes", as, got)
		}
		if !readsValues() {
			t.Errorf("with correlation.enabled, %s cannot read Secret values", as)
		}

		// Switching it off again removes the grant (helm upgrade would
		// delete the objects; here, by name).
		mustKubectl(t, kc, nil, append(admin, "delete", "clusterrolebinding", correlationRole)...)
		if got := canGet(); got != "no" {
			t.Errorf("without the binding, can %s get secrets? %q, want no", as, got)
		}
	})

	// helm's own path: a real install, everything on, under another
	// release name (whose objects are then named kh-keyhole), its notes,
	// and an uninstall that leaves no cluster-scoped object behind.
	t.Run("helm install", func(t *testing.T) {
		const ns = "security"
		kube := []string{"--kubeconfig", cp.KubeconfigPath, "--namespace", ns}
		out, stderr, err := helm(t, hb, allOn, append([]string{"install", "kh", chart}, kube...)...)
		if err != nil {
			t.Fatalf("helm install: %v\n%s%s", err, out, stderr)
		}
		for _, want := range []string{"keyhole serve runs in namespace security", "svc/kh-keyhole", "ClusterRole kh-keyhole-correlation grants get on every Secret"} {
			if !strings.Contains(out, want) {
				t.Errorf("helm install's notes lack %q:\n%s", want, out)
			}
		}
		mustKubectl(t, kc, nil, append(admin, "-n", ns, "get", "deployment/kh-keyhole", "servicemonitor/kh-keyhole", "prometheusrule/kh-keyhole")...)
		clusterScoped := func() []string {
			out := mustKubectl(t, kc, nil, append(admin, "get", "clusterroles,clusterrolebindings", "-l", "app.kubernetes.io/instance=kh", "-o", "name")...)
			return strings.Fields(out)
		}
		want := []string{
			"clusterrole.rbac.authorization.k8s.io/kh-keyhole",
			"clusterrole.rbac.authorization.k8s.io/kh-keyhole-correlation",
			"clusterrole.rbac.authorization.k8s.io/kh-keyhole-report-reader",
			"clusterrolebinding.rbac.authorization.k8s.io/kh-keyhole",
			"clusterrolebinding.rbac.authorization.k8s.io/kh-keyhole-auth-delegator",
			"clusterrolebinding.rbac.authorization.k8s.io/kh-keyhole-correlation",
			"clusterrolebinding.rbac.authorization.k8s.io/kh-keyhole-report-reader",
		}
		if got := clusterScoped(); !slices.Equal(got, want) {
			t.Errorf("installed cluster-scoped objects\n  %v\nwant\n  %v", got, want)
		}
		if out, stderr, err := helm(t, hb, "", append([]string{"uninstall", "kh"}, kube...)...); err != nil {
			t.Fatalf("helm uninstall: %v\n%s%s", err, out, stderr)
		}
		if got := clusterScoped(); len(got) != 0 {
			t.Errorf("after helm uninstall: %v", got)
		}
	})
}
