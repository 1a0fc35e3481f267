package deploytest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/keyhole-sec/keyhole/internal/daemon"
	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/testenv"
	"github.com/keyhole-sec/keyhole/internal/testlog"
)

// The renderings under test, relative to this package.
const (
	base    = "../../deploy/kustomize/base"
	overlay = "../../deploy/kustomize/overlays/example"
)

// Names the base ships and the tests rely on.
const (
	namespace      = "keyhole"
	serviceAccount = "keyhole"
	clusterRole    = "keyhole"
	reportReader   = "keyhole-report-reader"
)

// kubectlBinary is the control plane's kubectl, whose built-in kustomize
// renders the manifests.
func kubectlBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping test that needs the control plane's kubectl")
	}
	dir, err := testenv.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "kubectl")
}

// kubectl runs the binary with stdin and returns its stdout and stderr.
func kubectl(t *testing.T, bin string, stdin []byte, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func mustKubectl(t *testing.T, bin string, stdin []byte, args ...string) string {
	t.Helper()
	out, stderr, err := kubectl(t, bin, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// render is `kubectl kustomize dir`.
func render(t *testing.T, bin, dir string) []byte {
	t.Helper()
	return []byte(mustKubectl(t, bin, nil, "kustomize", dir))
}

// objects splits a rendering into its objects.
func objects(t *testing.T, rendered []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(rendered), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("rendering is not YAML: %v", err)
		}
		if m != nil {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// typed finds the one object of kind and name in objs and converts it
// into into.
func typed(t *testing.T, objs []*unstructured.Unstructured, kind, name string, into any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
				t.Fatalf("%s/%s: %v", kind, name, err)
			}
			return
		}
	}
	t.Fatalf("the rendering has no %s/%s", kind, name)
}

// toYAML writes objs back as one multi-document stream.
func toYAML(t *testing.T, objs []*unstructured.Unstructured) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes()
}

// watched is what the daemon's informers watch, from the code itself.
func watched(t *testing.T) []string {
	t.Helper()
	w, err := cluster.NewWatcher(&rest.Config{Host: "https://127.0.0.1:1"}, cluster.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := w.Resources()
	if len(res) == 0 {
		t.Fatal("the Watcher watches nothing")
	}
	return res
}

// TestClusterRoleIsWhatTheDaemonWatches holds the shipped ClusterRole to
// the Watcher: list and watch on exactly its resources, no other verb, no
// other resource, and get on the API server's /metrics. A resource added
// to the code without the manifest (or the reverse) fails here, before any
// cluster sees it.
func TestClusterRoleIsWhatTheDaemonWatches(t *testing.T) {
	kc := kubectlBinary(t)
	var role rbacv1.ClusterRole
	typed(t, objects(t, render(t, kc, base)), "ClusterRole", clusterRole, &role)
	checkClusterRole(t, role)
}

// checkClusterRole holds a shipped ClusterRole (the kustomize base's, the
// Helm chart's) to the Watcher.
func checkClusterRole(t *testing.T, role rbacv1.ClusterRole) {
	t.Helper()
	var granted []string
	nonResource := false
	for i, r := range role.Rules {
		if len(r.NonResourceURLs) > 0 {
			if !slices.Equal(r.NonResourceURLs, []string{"/metrics"}) || !slices.Equal(r.Verbs, []string{"get"}) {
				t.Errorf("rule %d: non-resource URLs %v verbs %v, want get on /metrics only", i, r.NonResourceURLs, r.Verbs)
			}
			nonResource = true
			continue
		}
		if got := slices.Sorted(slices.Values(r.Verbs)); !slices.Equal(got, []string{"list", "watch"}) {
			t.Errorf("rule %d (%v): verbs %v, want exactly list and watch", i, r.Resources, r.Verbs)
		}
		if len(r.ResourceNames) > 0 || slices.Contains(r.APIGroups, "*") || slices.Contains(r.Resources, "*") {
			t.Errorf("rule %d: %+v: no wildcards or resource names expected", i, r)
		}
		granted = append(granted, r.Resources...)
	}
	if !nonResource {
		t.Error("no rule grants get on /metrics (the encryption-at-rest check)")
	}
	slices.Sort(granted)
	want := slices.Sorted(slices.Values(watched(t)))
	if !slices.Equal(granted, want) {
		t.Errorf("ClusterRole %s grants list/watch on\n  %v\nthe daemon watches\n  %v", role.Name, granted, want)
	}
}

// TestDeploymentShape checks what a server-side dry run cannot: the
// daemon's flags, probes and the hardening beyond Pod Security's
// restricted level.
func TestDeploymentShape(t *testing.T) {
	kc := kubectlBinary(t)
	for _, dir := range []string{base, overlay} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			checkDeploymentShape(t, objects(t, render(t, kc, dir)), 3)
		})
	}
}

// checkDeploymentShape checks a rendering (kustomize's or the Helm
// chart's) whose ServiceAccount is bound bindings times: the ClusterRole,
// auth-delegator and the Lease, and whatever a rendering adds.
func checkDeploymentShape(t *testing.T, objs []*unstructured.Unstructured, bindings int) {
	t.Helper()
	var d appsv1.Deployment
	typed(t, objs, "Deployment", "keyhole", &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != serviceAccount || pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		t.Errorf("pod runs as %q with automount %v, want %q with its token", pod.ServiceAccountName, pod.AutomountServiceAccountToken, serviceAccount)
	}
	// keyhole itself, and the git-sync sidecar where an overlay
	// adds the component; nothing else.
	if len(pod.Containers) == 0 || pod.Containers[0].Name != "keyhole" {
		t.Fatalf("the first container is not keyhole: %d containers", len(pod.Containers))
	}
	for _, extra := range pod.Containers[1:] {
		if extra.Name != "git-sync" {
			t.Errorf("unexpected container %q", extra.Name)
			continue
		}
		checkGitSync(t, pod)
	}
	c := pod.Containers[0]
	for _, a := range []string{"serve", "--leader-elect", "--web.listen-address=:9090"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args %v lack %s", c.Args, a)
		}
	}
	if name, tag, ok := strings.Cut(c.Image, ":"); !ok || tag == "" || tag == "latest" || name != "ghcr.io/keyhole-sec/keyhole" {
		t.Errorf("image %q, want ghcr.io/keyhole-sec/keyhole with a version tag", c.Image)
	}
	podNS := false
	for _, e := range c.Env {
		podNS = podNS || (e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace")
	}
	if !podNS {
		t.Error("no POD_NAMESPACE from the downward API: --leader-elect would not know where its Lease is")
	}
	probe := func(p *corev1.Probe, path, what string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http-metrics" {
			t.Errorf("%s probe %+v, want GET %s on http-metrics", what, p, path)
		}
	}
	probe(c.ReadinessProbe, "/readyz", "readiness")
	probe(c.LivenessProbe, "/healthz", "liveness")
	if c.SecurityContext == nil || c.SecurityContext.RunAsUser == nil || *c.SecurityContext.RunAsUser != 65532 {
		t.Error("keyhole does not run as the image's non-root user 65532")
	}
	for _, c := range pod.Containers {
		checkHardened(t, c)
	}

	// An overlay's namespace must reach the bindings' subjects,
	// or the pods run as an account nothing is granted to.
	bound := 0
	for _, o := range objs {
		if o.GetKind() != "ClusterRoleBinding" && o.GetKind() != "RoleBinding" {
			continue
		}
		var b rbacv1.RoleBinding // the fields read are common to both
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b); err != nil {
			t.Fatal(err)
		}
		for _, s := range b.Subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Name == serviceAccount {
				bound++
				if s.Namespace != d.Namespace {
					t.Errorf("%s/%s binds serviceaccount %s/%s, but the pods run in %s", o.GetKind(), o.GetName(), s.Namespace, s.Name, d.Namespace)
				}
			}
		}
	}
	if bound != bindings {
		t.Errorf("%d bindings of serviceaccount %s, want %d (ClusterRole, auth-delegator, Lease, and any opt-in role)", bound, serviceAccount, bindings)
	}

	var svc corev1.Service
	typed(t, objs, "Service", "keyhole", &svc)
	if len(svc.Spec.Ports) == 0 || svc.Spec.Ports[0].Name != "http-metrics" || svc.Spec.Ports[0].Port != 9090 {
		t.Errorf("service ports %+v, want http-metrics 9090 first", svc.Spec.Ports)
	}
	var pdb policyv1.PodDisruptionBudget
	typed(t, objs, "PodDisruptionBudget", "keyhole", &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget minAvailable %v, want 1", pdb.Spec.MinAvailable)
	}
}

// TestShippedManifests validates both renderings against kube-apiserver,
// then runs keyhole serve as the shipped ServiceAccount under exactly the
// shipped RBAC.
func TestShippedManifests(t *testing.T) {
	kc := kubectlBinary(t)
	cp := testenv.StartT(t, testenv.Options{Users: []testenv.User{{Name: "alice"}, {Name: "bob"}}})
	admin := []string{"--kubeconfig", cp.KubeconfigPath}

	t.Run("server dry run", func(t *testing.T) {
		// The example overlay includes the monitoring component, whose
		// ServiceMonitor and PrometheusRule need the operator's CRDs.
		installOperatorCRDs(t, kc, admin)
		for _, dir := range []string{base, overlay} {
			t.Run(filepath.Base(dir), func(t *testing.T) {
				objs := objects(t, render(t, kc, dir))
				// A dry run cannot create objects in a namespace that
				// does not exist, and the namespace's Pod Security labels
				// must be live for admission to judge the Deployment.
				var nss []*unstructured.Unstructured
				for _, o := range objs {
					if o.GetKind() == "Namespace" {
						nss = append(nss, o)
					}
				}
				if len(nss) != 1 {
					t.Fatalf("%d Namespaces in the rendering, want 1", len(nss))
				}
				mustKubectl(t, kc, toYAML(t, nss), append(admin, "apply", "-f", "-")...)
				serverDryRun(t, kc, admin, objs)
			})
		}
	})

	t.Run("daemon under the shipped RBAC", func(t *testing.T) {
		runUnderShippedRBAC(t, kc, cp, objects(t, render(t, kc, base)))
	})
}

// serverDryRun has the API server validate every object of a rendering
// with a server-side dry run, and fails on any warning: warnings include
// Pod Security violations of the namespace's level, so the namespace (and
// its labels) must exist beforehand.
func serverDryRun(t *testing.T, kc string, admin []string, objs []*unstructured.Unstructured) {
	t.Helper()
	out, stderr, err := kubectl(t, kc, toYAML(t, objs), append(admin, "apply", "--dry-run=server", "-f", "-")...)
	if err != nil {
		t.Fatalf("server-side dry run: %v\n%s", err, stderr)
	}
	if strings.Contains(stderr, "Warning") {
		t.Errorf("the API server warns:\n%s", stderr)
	}
	if n := strings.Count(out, "(server dry run)"); n != len(objs) {
		t.Errorf("%d of %d objects dry-run:\n%s", n, len(objs), out)
	}
}

// runUnderShippedRBAC applies a rendering for real (the kustomize base's,
// or the Helm chart's, whose namespace must exist), then runs keyhole serve
// as its ServiceAccount keyhole/keyhole under exactly its RBAC, on a
// control plane with users alice and bob. It requires the API server's
// answers on what the account may do, every source up, the Lease, the
// report for a bound reader and a 403 for anyone else, and no forbidden
// error in any log.
func runUnderShippedRBAC(t *testing.T, kc string, cp *testenv.ControlPlane, objs []*unstructured.Unstructured) {
	t.Helper()
	admin := []string{"--kubeconfig", cp.KubeconfigPath}
	mustKubectl(t, kc, toYAML(t, objs), append(admin, "apply", "-f", "-")...)
	mustKubectl(t, kc, nil, append(admin, "-n", "default", "create", "secret", "generic", "db", "--from-literal=password=KEYHOLE-CANARY-deploy")...)

	// What the account may and may not do, as the API server decides.
	as := "system:serviceaccount:" + namespace + ":" + serviceAccount
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "secrets", "-A"}, "yes"},
		{[]string{"watch", "secrets", "-A"}, "yes"},
		{[]string{"get", "secrets", "-n", "default"}, "no"},
		{[]string{"get", "/metrics"}, "yes"},
		{[]string{"create", "tokenreviews.authentication.k8s.io"}, "yes"},
		{[]string{"create", "subjectaccessreviews.authorization.k8s.io"}, "yes"},
		{[]string{"create", "leases.coordination.k8s.io", "-n", namespace}, "yes"},
		{[]string{"update", "leases.coordination.k8s.io/keyhole", "-n", namespace}, "yes"},
		{[]string{"update", "leases.coordination.k8s.io/other", "-n", namespace}, "no"},
		{[]string{"create", "leases.coordination.k8s.io", "-n", "default"}, "no"},
	} {
		out, _, _ := kubectl(t, kc, nil, append(append(admin, "auth", "can-i", "--as", as), c.args...)...)
		if got := strings.TrimSpace(out); got != c.want {
			t.Errorf("can %s %v? %q, want %q", as, c.args, got, c.want)
		}
	}

	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := serviceAccountConfig(t, cs, cp.Config)

	klogs := testlog.Klog(t, 2)
	logs := &testlog.Buffer{}
	addrs := make(chan string, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{
			Config:          cfg,
			Debounce:        200 * time.Millisecond,
			ListenAddresses: []string{"127.0.0.1:0"},
			Version:         "test",
			Logger:          slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Listening:       func(a string) { addrs <- a },
			// The shipped Role names the default Lease, so the
			// name is left to its default.
			LeaderElection: &daemon.LeaderElection{Namespace: namespace,
				LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond},
		})
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("daemon did not stop within 15 s of its context's end")
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("daemon logs:\n%s\nklog:\n%s", logs, klogs)
		}
	})
	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		stopped = true
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not bind its port within 30 s")
	}
	url := "http://" + addr

	probe.Eventually(t, 60*time.Second, "/readyz 200", func() (bool, string) {
		code, body, err := probe.Get(url+"/readyz", "")
		return code == http.StatusOK, string(body) + errString(err)
	})
	resources := watched(t)
	probe.Eventually(t, 30*time.Second, "every source up and this replica leading", func() (bool, string) {
		code, body, err := probe.Get(url+"/metrics", "")
		if err != nil || code != http.StatusOK {
			return false, string(body) + errString(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			return false, err.Error()
		}
		up := map[string]float64{}
		for _, m := range fams["keyhole_source_up"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "resource" {
					up[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
		for _, r := range resources {
			if up[r] != 1 {
				return false, "keyhole_source_up " + r + " is not 1"
			}
		}
		leader := fams["keyhole_leader"].GetMetric()
		if len(leader) != 1 || leader[0].GetGauge().GetValue() != 1 {
			return false, "keyhole_leader is not 1"
		}
		return true, ""
	})

	// The report: alice is bound to the shipped reader role, bob to
	// nothing; keyhole's own auth-delegator binding decides both.
	mustKubectl(t, kc, nil, append(admin, "create", "clusterrolebinding", "alice-reads-reports", "--clusterrole="+reportReader, "--user=alice")...)
	tokens := map[string]string{}
	for _, u := range cp.Users {
		tokens[u.Name] = u.Token
	}
	if code, body, err := probe.Get(url+"/api/v1/report", tokens["alice"]); err != nil || code != http.StatusOK {
		t.Errorf("GET /api/v1/report as alice: %d %v: %s", code, err, body)
	} else if !bytes.Contains(body, []byte(`"db"`)) || bytes.Contains(body, []byte("KEYHOLE-CANARY")) {
		t.Errorf("the report lacks Secret default/db, or holds its value:\n%s", body)
	}
	if code, body, err := probe.Get(url+"/api/v1/report", tokens["bob"]); err != nil || code != http.StatusForbidden {
		t.Errorf("GET /api/v1/report as bob: %d %v, want 403: %s", code, err, body)
	}

	// Stopping releases the Lease: an update under the Role too.
	stop()
	if _, err := cs.CoordinationV1().Leases(namespace).Get(t.Context(), daemon.DefaultLeaseName, metav1.GetOptions{}); err != nil {
		t.Errorf("no Lease %s/%s: %v", namespace, daemon.DefaultLeaseName, err)
	}
	for _, line := range strings.Split(logs.String()+klogs.String(), "\n") {
		if strings.Contains(line, `msg="httpauth: forbidden"`) && strings.Contains(line, "user=bob") {
			continue // bob's refusal, expected
		}
		if strings.Contains(strings.ToLower(line), "forbidden") {
			t.Errorf("forbidden under the shipped RBAC: %s", line)
		}
	}
}

// serviceAccountConfig is admin with a fresh token of the ServiceAccount
// keyhole/keyhole instead of admin's credentials, as the pod would have.
func serviceAccountConfig(t *testing.T, cs kubernetes.Interface, admin *rest.Config) *rest.Config {
	t.Helper()
	exp := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(t.Context(), serviceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for serviceaccount/%s/%s: %v", namespace, serviceAccount, err)
	}
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = tr.Status.Token
	return cfg
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return " " + err.Error()
}

// checkHardened requires of a container what goes beyond Pod Security's
// restricted level: a read-only root, no escalation, a non-root user,
// every capability dropped, RuntimeDefault seccomp and a memory limit.
func checkHardened(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Errorf("%s: no securityContext", c.Name)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: root filesystem is writable", c.Name)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: privilege escalation allowed", c.Name)
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0:
		t.Errorf("%s: not run as a non-root user", c.Name)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("%s: capabilities %+v, want drop ALL", c.Name, sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("%s: seccomp profile is not RuntimeDefault", c.Name)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: no memory request and limit", c.Name)
	}
}

// checkGitSync requires the git-sync component's wiring: a full-history
// clone (--depth=0, or deleted values would be missed) into a volume that
// keyhole reads, read-only, as its --git-repo.
func checkGitSync(t *testing.T, pod corev1.PodSpec) {
	t.Helper()
	keyhole, sync := pod.Containers[0], pod.Containers[1]
	if !slices.Contains(sync.Args, "--depth=0") || !slices.Contains(sync.Args, "--root=/git") || !slices.Contains(sync.Args, "--link=repo") {
		t.Errorf("git-sync args %v, want --depth=0 (full history), --root=/git, --link=repo", sync.Args)
	}
	if !slices.Contains(keyhole.Args, "--git-repo=/git/repo") {
		t.Errorf("keyhole args %v lack --git-repo=/git/repo", keyhole.Args)
	}
	mount := func(c corev1.Container) *corev1.VolumeMount {
		for i := range c.VolumeMounts {
			if c.VolumeMounts[i].MountPath == "/git" {
				return &c.VolumeMounts[i]
			}
		}
		return nil
	}
	k, g := mount(keyhole), mount(sync)
	if k == nil || g == nil || k.Name != g.Name || !k.ReadOnly || g.ReadOnly {
		t.Errorf("/git mounts: keyhole %+v, git-sync %+v; want one volume, read-only for keyhole", k, g)
	}
}
