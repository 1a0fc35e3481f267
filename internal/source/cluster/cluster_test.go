package cluster

// Integration tests against a real etcd + kube-apiserver +
// kube-controller-manager from internal/testenv. One control plane serves
// the whole package; each test works in its own namespaces.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/source"
	"github.com/keyhole-sec/keyhole/internal/testenv"
	"github.com/keyhole-sec/keyhole/internal/testlog"
)

// canary is the Secret value that must never leave the API server's
// answer: not into the inventory, problems, errors or logs.
const canary = "KEYHOLE-CANARY-7f3a9c"

// Token users whose RBAC is set up by setupReaders.
var (
	userNoPods    = testenv.User{Name: "keyhole-no-pods"}
	userNoSecrets = testenv.User{Name: "keyhole-no-secrets"}
)

var (
	cpOnce sync.Once
	cp     *testenv.ControlPlane
	cpErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if cp != nil {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// controlPlane starts the package's control plane on first use; tests and
// benchmarks that need it skip under -short.
func controlPlane(tb testing.TB) *testenv.ControlPlane {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: needs a control plane")
	}
	cpOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.StartTimeout)
		defer cancel()
		cp, cpErr = testenv.Start(ctx, testenv.Options{Users: []testenv.User{userNoPods, userNoSecrets}})
		if cpErr == nil {
			cpErr = setupReaders(ctx, cp)
		}
	})
	if cpErr != nil {
		tb.Fatalf("control plane: %v", cpErr)
	}
	return cp
}

func admin(tb testing.TB) kubernetes.Interface {
	tb.Helper()
	cfg := rest.CopyConfig(controlPlane(tb).Config)
	// The server warns about the deliberately fake TLS Secret.
	cfg.WarningHandlerWithContext = rest.NoWarnings{}
	return kubernetes.NewForConfigOrDie(cfg)
}

// listable is every resource Load reads, by API group, as RBAC names them.
var listable = map[string][]string{
	"": {"namespaces", "secrets", "serviceaccounts", "pods", "replicationcontrollers", "configmaps",
		"nodes", "persistentvolumeclaims", "persistentvolumes"},
	"rbac.authorization.k8s.io": {"roles", "clusterroles", "rolebindings", "clusterrolebindings"},
	"apps":                      {"deployments", "replicasets", "statefulsets", "daemonsets"},
	"batch":                     {"jobs", "cronjobs"},
	"networking.k8s.io":         {"ingresses"},
}

// setupReaders gives each token user list on every resource but one.
func setupReaders(ctx context.Context, cp *testenv.ControlPlane) error {
	c := kubernetes.NewForConfigOrDie(cp.Config)
	for user, except := range map[string]string{userNoPods.Name: "pods", userNoSecrets.Name: "secrets"} {
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}}
		for group, res := range listable {
			var keep []string
			for _, r := range res {
				if r != except {
					keep = append(keep, r)
				}
			}
			role.Rules = append(role.Rules, rbacv1.PolicyRule{APIGroups: []string{group}, Resources: keep, Verbs: []string{"list"}})
		}
		if _, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			return err
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: user},
			Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
		}
		if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	// RBAC is served from an informer cache: wait until it allows.
	for _, u := range []testenv.User{userNoPods, userNoSecrets} {
		uc := kubernetes.NewForConfigOrDie(cp.ConfigFor(u))
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := uc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s cannot list namespaces: %w", u.Name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func createNamespace(tb testing.TB, c kubernetes.Interface, name string) {
	tb.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"team": "keyhole"}}}
	if _, err := c.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
}

func must[T any](tb testing.TB) func(T, error) T {
	return func(v T, err error) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

// world is what createWorld made in its namespace.
type world struct {
	ns string
	// secrets maps each Secret's name to its type and sorted key names.
	secrets map[string]secretWant
}

type secretWant struct {
	typ  corev1.SecretType
	keys []string
}

// createWorld creates one object of every kind Load reads in namespace ns
// (and a few cluster-scoped ones), with the canary in every place a Secret
// value can be: data, stringData and the last-applied annotation.
func createWorld(t *testing.T, ns string) world {
	t.Helper()
	ctx := context.Background()
	c := admin(t)
	createNamespace(t, c, ns)
	create := metav1.CreateOptions{}
	lastApplied := fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":%q},"data":{"password":%q},"stringData":{"user":%q}}`,
		ns, base64.StdEncoding.EncodeToString([]byte(canary)), canary)

	secrets := []*corev1.Secret{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Labels: map[string]string{"app": "db"},
				Annotations: map[string]string{inventory.LastAppliedAnnotation: lastApplied, "owner": "team-a"}},
			Data:       map[string][]byte{"password": []byte(canary)},
			StringData: map[string]string{"user": canary + "-user"},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "tls"},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{"tls.crt": []byte(canary + "-crt"), "tls.key": []byte(canary + "-key")},
		},
		{ObjectMeta: metav1.ObjectMeta{Name: "empty"}},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1.app.v1", Labels: map[string]string{"owner": "helm"}},
			Type:       "helm.sh/release.v1",
			Data:       map[string][]byte{"release": []byte(canary + "-release")},
		},
	}
	for _, s := range secrets {
		must[*corev1.Secret](t)(c.CoreV1().Secrets(ns).Create(ctx, s, create))
	}
	// Server-side apply records keys under its own field manager.
	applied := fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"applied"},"stringData":{"token":%q}}`, canary+"-applied")
	must[*corev1.Secret](t)(c.CoreV1().Secrets(ns).Patch(ctx, "applied", "application/apply-patch+yaml", []byte(applied),
		metav1.PatchOptions{FieldManager: "keyhole-test"}))

	labels := map[string]string{"app": "web"}
	podSpec := corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyAlways,
		Containers: []corev1.Container{{
			Name: "web", Image: "example.invalid/web:1",
			Env: []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}}},
		}},
		Volumes: []corev1.Volume{{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}}}},
	}
	template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec}
	jobTemplate := template
	jobTemplate.Spec.RestartPolicy = corev1.RestartPolicyNever
	selector := &metav1.LabelSelector{MatchLabels: labels}

	// Pods need the "default" ServiceAccount, which a controller creates.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := controlPlane(t).WaitForServiceAccount(wctx, ns); err != nil {
		t.Fatal(err)
	}
	must[*corev1.ServiceAccount](t)(c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, create))
	must[*corev1.Pod](t)(c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Labels: labels}, Spec: podSpec}, create))
	must[*appsv1.Deployment](t)(c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Selector: selector, Template: template}}, create))
	must[*appsv1.ReplicaSet](t)(c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-rs"},
		Spec: appsv1.ReplicaSetSpec{Selector: selector, Template: template}}, create))
	must[*appsv1.StatefulSet](t)(c.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "web-ss"},
		Spec: appsv1.StatefulSetSpec{Selector: selector, Template: template}}, create))
	must[*appsv1.DaemonSet](t)(c.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "web-ds"},
		Spec: appsv1.DaemonSetSpec{Selector: selector, Template: template}}, create))
	must[*batchv1.Job](t)(c.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "once"},
		Spec: batchv1.JobSpec{Template: jobTemplate}}, create))
	must[*batchv1.CronJob](t)(c.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: jobTemplate}}}}, create))
	must[*corev1.ReplicationController](t)(c.CoreV1().ReplicationControllers(ns).Create(ctx, &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "web-rc"},
		Spec: corev1.ReplicationControllerSpec{Selector: labels, Template: &template}}, create))
	must[*corev1.ConfigMap](t)(c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data: map[string]string{"mode": "prod"}}, create))
	must[*networkingv1.Ingress](t)(c.NetworkingV1().Ingresses(ns).Create(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: networkingv1.IngressSpec{TLS: []networkingv1.IngressTLS{{Hosts: []string{"web.example"}, SecretName: "tls"}},
			DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}, create))
	must[*corev1.PersistentVolumeClaim](t)(c.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: apiresource.MustParse("1Gi")}}}}, create))
	must[*corev1.PersistentVolume](t)(c.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: ns + "-pv"},
		Spec: corev1.PersistentVolumeSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Capacity: corev1.ResourceList{corev1.ResourceStorage: apiresource.MustParse("1Gi")},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "example.csi", VolumeHandle: "v1",
				NodePublishSecretRef: &corev1.SecretReference{Namespace: ns, Name: "db"}}}}}, create))
	must[*corev1.Node](t)(c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: ns + "-node"}}, create))
	must[*rbacv1.Role](t)(c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secret-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}}}}, create))
	must[*rbacv1.RoleBinding](t)(c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "web-reads"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "secret-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "web", Namespace: ns}}}, create))
	must[*rbacv1.ClusterRole](t)(c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-all-secrets"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}, create))
	must[*rbacv1.ClusterRoleBinding](t)(c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: ns + "-all-secrets"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: ns + "-all-secrets"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "web", Namespace: ns}}}, create))

	return world{ns: ns, secrets: map[string]secretWant{
		"db":                        {corev1.SecretTypeOpaque, []string{"password", "user"}},
		"tls":                       {corev1.SecretTypeTLS, []string{"tls.crt", "tls.key"}},
		"empty":                     {corev1.SecretTypeOpaque, []string{}},
		"sh.helm.release.v1.app.v1": {"helm.sh/release.v1", []string{"release"}},
		"applied":                   {corev1.SecretTypeOpaque, []string{"token"}},
	}}
}

// serverCounts lists every resource as the admin, for comparison with
// Coverage.Objects.
func serverCounts(t *testing.T) map[string]int {
	t.Helper()
	ctx := context.Background()
	c := admin(t)
	all := metav1.ListOptions{}
	n := map[string]int{}
	n["Namespace"] = len(must[*corev1.NamespaceList](t)(c.CoreV1().Namespaces().List(ctx, all)).Items)
	n["Secret"] = len(must[*corev1.SecretList](t)(c.CoreV1().Secrets("").List(ctx, all)).Items)
	n["ServiceAccount"] = len(must[*corev1.ServiceAccountList](t)(c.CoreV1().ServiceAccounts("").List(ctx, all)).Items)
	n["Role"] = len(must[*rbacv1.RoleList](t)(c.RbacV1().Roles("").List(ctx, all)).Items)
	n["ClusterRole"] = len(must[*rbacv1.ClusterRoleList](t)(c.RbacV1().ClusterRoles().List(ctx, all)).Items)
	n["RoleBinding"] = len(must[*rbacv1.RoleBindingList](t)(c.RbacV1().RoleBindings("").List(ctx, all)).Items)
	n["ClusterRoleBinding"] = len(must[*rbacv1.ClusterRoleBindingList](t)(c.RbacV1().ClusterRoleBindings().List(ctx, all)).Items)
	n["Pod"] = len(must[*corev1.PodList](t)(c.CoreV1().Pods("").List(ctx, all)).Items)
	n["Deployment"] = len(must[*appsv1.DeploymentList](t)(c.AppsV1().Deployments("").List(ctx, all)).Items)
	n["ReplicaSet"] = len(must[*appsv1.ReplicaSetList](t)(c.AppsV1().ReplicaSets("").List(ctx, all)).Items)
	n["StatefulSet"] = len(must[*appsv1.StatefulSetList](t)(c.AppsV1().StatefulSets("").List(ctx, all)).Items)
	n["DaemonSet"] = len(must[*appsv1.DaemonSetList](t)(c.AppsV1().DaemonSets("").List(ctx, all)).Items)
	n["Job"] = len(must[*batchv1.JobList](t)(c.BatchV1().Jobs("").List(ctx, all)).Items)
	n["CronJob"] = len(must[*batchv1.CronJobList](t)(c.BatchV1().CronJobs("").List(ctx, all)).Items)
	n["ReplicationController"] = len(must[*corev1.ReplicationControllerList](t)(c.CoreV1().ReplicationControllers("").List(ctx, all)).Items)
	n["ConfigMap"] = len(must[*corev1.ConfigMapList](t)(c.CoreV1().ConfigMaps("").List(ctx, all)).Items)
	n["Node"] = len(must[*corev1.NodeList](t)(c.CoreV1().Nodes().List(ctx, all)).Items)
	n["Ingress"] = len(must[*networkingv1.IngressList](t)(c.NetworkingV1().Ingresses("").List(ctx, all)).Items)
	n["PersistentVolumeClaim"] = len(must[*corev1.PersistentVolumeClaimList](t)(c.CoreV1().PersistentVolumeClaims("").List(ctx, all)).Items)
	n["PersistentVolume"] = len(must[*corev1.PersistentVolumeList](t)(c.CoreV1().PersistentVolumes().List(ctx, all)).Items)
	for k, v := range n {
		if v == 0 {
			delete(n, k)
		}
	}
	return n
}

// load runs Load and builds the inventory.
func load(t *testing.T, cfg *rest.Config, opts Options) (*inventory.Inventory, source.Coverage, []source.Problem) {
	t.Helper()
	b := inventory.NewBuilder()
	cov, problems, err := Load(context.Background(), cfg, b, opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return b.Build(), cov, problems
}

// assertNoCanary fails when the canary, in clear or base64, is anywhere
// in what Load returned.
func assertNoCanary(t *testing.T, what ...any) {
	t.Helper()
	raw, err := json.Marshal(what)
	if err != nil {
		t.Fatal(err)
	}
	// "KEYHOLE-CANARY-7f3a9c" in base64, at each of the three alignments
	// it can take inside a longer encoded value.
	needles := []string{canary, base64.StdEncoding.EncodeToString([]byte(canary))[:20]}
	for _, pre := range []string{"x", "xy"} {
		enc := base64.StdEncoding.EncodeToString([]byte(pre + canary))
		needles = append(needles, enc[4:20])
	}
	for _, n := range needles {
		if bytes.Contains(raw, []byte(n)) {
			i := bytes.Index(raw, []byte(n))
			t.Errorf("canary %q found in Load's output: …%s…", n, raw[max(0, i-200):min(len(raw), i+100)])
		}
	}
}

func TestLoad(t *testing.T) {
	w := createWorld(t, "kh-load")
	cp := controlPlane(t)
	want := serverCounts(t)

	byVia := map[string][]*inventory.Secret{}
	for _, via := range []string{SecretsViaTable, SecretsViaFull} {
		t.Run(via, func(t *testing.T) {
			inv, cov, problems := load(t, cp.Config, Options{SecretsVia: via})
			if len(problems) != 0 {
				t.Errorf("problems: %+v", problems)
			}
			if cov.Kind != "cluster" || cov.Target != cp.Config.Host {
				t.Errorf("coverage kind %q target %q, want cluster %q", cov.Kind, cov.Target, cp.Config.Host)
			}
			if !reflect.DeepEqual(cov.Objects, want) {
				t.Errorf("coverage objects\n got %v\nwant %v", cov.Objects, want)
			}
			if !reflect.DeepEqual(inv.Counts(), want) {
				t.Errorf("inventory counts\n got %v\nwant %v", inv.Counts(), want)
			}
			for _, kind := range []string{"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController",
				"Pod", "ConfigMap", "Ingress", "PersistentVolumeClaim", "Role", "RoleBinding", "ServiceAccount"} {
				if want[kind] == 0 {
					t.Errorf("no %s in the cluster: the world was not created", kind)
				}
			}

			got := map[string]secretWant{}
			for _, s := range inv.SecretsIn(w.ns) {
				got[s.Name] = secretWant{s.Type, s.Keys}
				if !s.KeysKnown {
					t.Errorf("%s: keys not known", s.Name)
				}
				if s.DataWrittenAt.IsZero() && s.Name != "empty" {
					t.Errorf("%s: no data write time", s.Name)
				}
				if s.CreatedAt.IsZero() {
					t.Errorf("%s: no creation time", s.Name)
				}
				if loc := inv.Location(s.Ref()); loc != (inventory.Location{Layer: "cluster"}) {
					t.Errorf("%s: location %+v", s.Name, loc)
				}
			}
			if !reflect.DeepEqual(got, w.secrets) {
				t.Errorf("secrets in %s\n got %v\nwant %v", w.ns, got, w.secrets)
			}
			db := inv.Secret(w.ns, "db")
			if db == nil || !db.HadLastApplied || db.Annotations[inventory.LastAppliedAnnotation] != "" ||
				db.Annotations["owner"] != "team-a" || db.Labels["app"] != "db" {
				t.Errorf("db metadata: %+v", db)
			}
			for _, p := range inv.Pods {
				if len(p.ManagedFields) != 0 {
					t.Errorf("pod %s/%s kept managedFields", p.Namespace, p.Name)
				}
			}
			if inv.Namespace(w.ns) == nil || inv.ClusterRole(w.ns+"-all-secrets") == nil || inv.Role(w.ns, "secret-reader") == nil {
				t.Errorf("namespace or roles missing")
			}
			assertNoCanary(t, inv, cov, problems)
			byVia[via] = inv.SecretsIn(w.ns)
		})
	}
	// Both strategies see the same Secrets, field for field.
	if a, b := byVia[SecretsViaTable], byVia[SecretsViaFull]; a != nil && b != nil {
		ja, _ := json.MarshalIndent(a, "", " ")
		jb, _ := json.MarshalIndent(b, "", " ")
		if !bytes.Equal(ja, jb) {
			t.Errorf("table and full disagree:\ntable %s\nfull %s", ja, jb)
		}
	}
}

// TestLoadLogsNoValues turns client-go's logging up to where it prints
// response bodies and checks that no Secret body is among them.
func TestLoadLogsNoValues(t *testing.T) {
	cp := controlPlane(t)
	c := admin(t)
	createNamespace(t, c, "kh-log")
	must[*corev1.Secret](t)(c.CoreV1().Secrets("kh-log").Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s"}, Data: map[string][]byte{"k": []byte(strings.Repeat(canary, 10))}}, metav1.CreateOptions{}))

	logs := testlog.Klog(t, 10)
	for _, via := range []string{SecretsViaTable, SecretsViaFull} {
		inv, _, problems := load(t, cp.Config, Options{SecretsVia: via})
		klog.Flush()
		if inv.Secret("kh-log", "s") == nil || len(problems) != 0 {
			t.Fatalf("%s: secret not loaded, problems %v", via, problems)
		}
	}
	if !strings.Contains(logs.String(), "Response Body") {
		t.Fatalf("client-go logged no bodies at -v=10: the test proves nothing")
	}
	// Typed clients read protobuf, which client-go logs as a hex dump of
	// 16 bytes a line: the repeated value puts "CANARY" whole on some line.
	for _, needle := range []string{"CANARY", base64.StdEncoding.EncodeToString([]byte(canary))[:20]} {
		if strings.Contains(logs.String(), needle) {
			t.Errorf("a Secret value was logged (%q found)", needle)
		}
	}
}

func TestLoadPaginates(t *testing.T) {
	cp := controlPlane(t)
	c := admin(t)
	ns := "kh-page"
	createNamespace(t, c, ns)
	for i := range 7 {
		must[*corev1.Secret](t)(c.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "s" + strconv.Itoa(i)},
			Data:       map[string][]byte{"k": []byte(canary)}}, metav1.CreateOptions{}))
	}
	total := serverCounts(t)["Secret"]
	for _, via := range []string{SecretsViaTable, SecretsViaFull} {
		t.Run(via, func(t *testing.T) {
			inv, cov, problems := load(t, cp.Config, Options{SecretsVia: via, PageSize: 2})
			if len(problems) != 0 {
				t.Errorf("problems: %+v", problems)
			}
			if n := len(inv.SecretsIn(ns)); n != 7 {
				t.Errorf("%d secrets in %s, want 7", n, ns)
			}
			if cov.Objects["Secret"] != total {
				t.Errorf("%d secrets, want %d", cov.Objects["Secret"], total)
			}
			assertNoCanary(t, inv, cov, problems)

			st, err := MeasureSecretsList(context.Background(), cp.Config, Options{SecretsVia: via, PageSize: 2})
			if err != nil {
				t.Fatal(err)
			}
			if wantPages := int(math.Ceil(float64(total) / 2)); st.Objects != total || st.Pages != wantPages {
				t.Errorf("measured %d objects in %d pages, want %d in %d", st.Objects, st.Pages, total, wantPages)
			}
			t.Logf("%+v", st)
		})
	}
}

func TestLoadForbidden(t *testing.T) {
	cp := controlPlane(t)
	createWorld(t, "kh-forbidden")
	want := serverCounts(t)
	for _, tc := range []struct {
		user     testenv.User
		resource string
		kind     string
		impact   string
	}{
		{userNoPods, "pods", "Pod", "Pods not inventoried: Secret use by bare Pods (env injection, mounted tokens, references) not analysed"},
		{userNoSecrets, "secrets", "Secret", "Secrets not inventoried: no reader analysis possible"},
	} {
		for _, via := range []string{SecretsViaTable, SecretsViaFull} {
			t.Run(tc.resource+"/"+via, func(t *testing.T) {
				inv, cov, problems := load(t, cp.ConfigFor(tc.user), Options{SecretsVia: via})
				wantProblem := source.Problem{
					Source:   "cluster",
					Location: inventory.Location{Layer: "cluster"},
					Resource: tc.resource,
					Message: fmt.Sprintf(`list %s: forbidden: User %q cannot list resource %q in API group "" at the cluster scope`,
						tc.resource, tc.user.Name, tc.resource),
					Impact: tc.impact,
				}
				if len(problems) != 1 || !reflect.DeepEqual(problems[0], wantProblem) {
					t.Fatalf("problems\n got %+v\nwant [%+v]", problems, wantProblem)
				}
				t.Logf("%s | %s", problems[0].Message, problems[0].Impact)
				wantLoaded := maps(want)
				delete(wantLoaded, tc.kind)
				if !reflect.DeepEqual(cov.Objects, wantLoaded) {
					t.Errorf("coverage objects\n got %v\nwant %v", cov.Objects, wantLoaded)
				}
				if inv.Counts()[tc.kind] != 0 {
					t.Errorf("%s loaded though forbidden", tc.kind)
				}
				assertNoCanary(t, inv, cov, problems)
			})
		}
	}
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestLoadFatalAgainstControlPlane(t *testing.T) {
	cp := controlPlane(t)
	t.Run("bad token", func(t *testing.T) {
		cfg := rest.CopyConfig(cp.Config)
		cfg.BearerToken = canary + "-token"
		err := loadErr(t, cfg, Options{})
		want := "the Kubernetes API at " + cp.Config.Host + " rejected the credentials (401 Unauthorized): the token may be expired"
		if err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
	})
	t.Run("unknown authority", func(t *testing.T) {
		cfg := rest.CopyConfig(cp.Config)
		cfg.CAData = nil
		err := loadErr(t, cfg, Options{})
		want := "the Kubernetes API at " + cp.Config.Host + " presented a certificate signed by an unknown authority (x509): check certificate-authority in the kubeconfig"
		if err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
	})
	t.Run("kubeconfig", func(t *testing.T) {
		cfg, err := RESTConfig(cp.KubeconfigPath, "")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.UserAgent != UserAgent() {
			t.Errorf("user agent %q", cfg.UserAgent)
		}
		inv, _, problems := load(t, cfg, Options{})
		if len(problems) != 0 || len(inv.Namespaces) == 0 {
			t.Errorf("%d namespaces, problems %v", len(inv.Namespaces), problems)
		}
		_, err = RESTConfig(cp.KubeconfigPath, "foo")
		if want := `context "foo" not found in kubeconfig ` + cp.KubeconfigPath; err == nil || err.Error() != want {
			t.Errorf("error = %v, want %q", err, want)
		}
	})
}

// TestLoadAPIServerStopped runs last: it stops kube-apiserver, then
// starts it again for anything that follows.
func TestLoadAPIServerStopped(t *testing.T) {
	cp := controlPlane(t)
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := cp.StartAPIServer(ctx); err != nil {
			t.Errorf("restarting kube-apiserver: %v", err)
		}
	})
	err := loadErr(t, cp.Config, Options{})
	if want := "cannot reach the Kubernetes API at " + cp.Config.Host + ": connection refused"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

// BenchmarkLoadSecrets lists every Secret of the cluster each way, after
// creating (once per process) KEYHOLE_BENCH_SECRETS of them (default
// 2000), each with two keys of KEYHOLE_BENCH_VALUE_BYTES (default 1024);
// one in KEYHOLE_BENCH_LAST_APPLIED_EVERY (default 4; 0 for none) also
// carries kubectl's last-applied annotation, which repeats the values even
// in a Table. B/op is everything allocated reading and converting;
// wire-B/op is the decoded size of the responses.
func BenchmarkLoadSecrets(b *testing.B) {
	cp := controlPlane(b)
	benchSecretsOnce.Do(func() {
		n, size, every := benchEnv(b, "KEYHOLE_BENCH_SECRETS", 2000), benchEnv(b, "KEYHOLE_BENCH_VALUE_BYTES", 1024),
			benchEnv(b, "KEYHOLE_BENCH_LAST_APPLIED_EVERY", 4)
		benchSecretsErr = createBenchSecrets(cp, n, size, every)
	})
	if benchSecretsErr != nil {
		b.Fatal(benchSecretsErr)
	}
	for _, via := range []string{SecretsViaTable, SecretsViaFull} {
		b.Run(via, func(b *testing.B) {
			b.ReportAllocs()
			var wire int64
			var objects int
			for b.Loop() {
				st, err := MeasureSecretsList(context.Background(), cp.Config, Options{SecretsVia: via})
				if err != nil {
					b.Fatal(err)
				}
				wire += st.BytesRead
				objects = st.Objects
			}
			b.ReportMetric(float64(wire)/float64(b.N), "wire-B/op")
			b.ReportMetric(float64(objects), "secrets")
		})
	}
}

var (
	benchSecretsOnce sync.Once
	benchSecretsErr  error
)

func benchEnv(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a number", name, v)
	}
	return n
}

func createBenchSecrets(cp *testenv.ControlPlane, n, size, lastAppliedEvery int) error {
	ctx := context.Background()
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = 1000, 1000
	c := kubernetes.NewForConfigOrDie(cfg)
	ns := "kh-bench"
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	value := []byte(strings.Repeat("x", size))
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				name := fmt.Sprintf("bench-%05d", i)
				s := &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
					Data:       map[string][]byte{"username": value, "password": value},
				}
				if lastAppliedEvery > 0 && i%lastAppliedEvery == 0 {
					applied, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret",
						"metadata": map[string]any{"name": name, "namespace": ns}, "data": s.Data})
					s.Annotations = map[string]string{inventory.LastAppliedAnnotation: string(applied)}
				}
				if _, err := c.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	return nil
}
