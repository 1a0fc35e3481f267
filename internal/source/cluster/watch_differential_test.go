package cluster_test

// The Watcher's transforms drop most of what the cluster sends. This test
// proves they drop nothing the analysis reads: on a world that exercises
// every field they keep, the report from a Watcher's Fill must equal, byte
// for byte, the report from Load, which keeps whole objects. It lives in
// an external package because it runs the analysis (internal/audit), which
// imports this package.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
	"k8s.io/utils/ptr"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
)

func TestWatcherDifferential(t *testing.T) {
	cp := cluster.SharedControlPlane(t)
	cfg := rest.CopyConfig(cp.Config)
	cfg.WarningHandlerWithContext = rest.NoWarnings{}
	c := kubernetes.NewForConfigOrDie(cfg)
	createDiffWorld(t, c, func(ctx context.Context, ns string) error { return cp.WaitForServiceAccount(ctx, ns) })
	// Far enough ahead that every Secret is stale: the data write times
	// are compared too.
	now := time.Now().Add(200 * 24 * time.Hour).Truncate(time.Second)

	for _, via := range []string{cluster.SecretsViaTable, cluster.SecretsViaFull} {
		t.Run(via, func(t *testing.T) {
			w := cluster.StartWatcher(t, cp.Config, via)
			// Controllers still write (the token controller fills the
			// legacy token, the aggregation controller the aggregated
			// role): compare until both sides have seen the same world.
			var loaded, watched []byte
			var rep *report.Report
			deadline := time.Now().Add(time.Minute)
			for {
				b := inventory.NewBuilder()
				cov, problems, err := cluster.Load(context.Background(), cp.Config, b, cluster.Options{SecretsVia: via})
				if err != nil {
					t.Fatal(err)
				}
				rep, loaded = analyse(t, b, cov, problems, now)
				b = inventory.NewBuilder()
				cov, problems = w.Fill(b)
				_, watched = analyse(t, b, cov, problems, now)
				if bytes.Equal(loaded, watched) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the reports of Load and of the Watcher differ:\n%s", firstDifference(loaded, watched))
				}
				time.Sleep(time.Second)
			}
			requireRichWorld(t, rep)
		})
	}
}

func analyse(t *testing.T, b *inventory.Builder, cov source.Coverage, problems []source.Problem, now time.Time) (*report.Report, []byte) {
	t.Helper()
	rep, err := audit.Analyze(analysis.Input{Inventory: b.Build(), Coverage: []source.Coverage{cov}, Problems: problems,
		Aggregation: rbac.AggregationStored}, audit.Options{Now: now, ToolVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.MarshalIndent(rep, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return rep, raw
}

// requireRichWorld fails when the report lacks what the world was built
// to produce: without it, equal reports would prove little.
func requireRichWorld(t *testing.T, rep *report.Report) {
	t.Helper()
	for _, rule := range []string{"KH104", "KH201", "KH202", "KH210", "KH220", "KH401", "KH402", "KH410", "KH411"} {
		if rep.Summary.FindingsByRule[rule] == 0 {
			t.Errorf("no %s finding: the world does not exercise what it should", rule)
		}
	}
	if rep.Summary.Suppressed == 0 {
		t.Error("no finding suppressed by annotation")
	}
	if len(rep.Errors) != 0 {
		t.Errorf("errors: %+v", rep.Errors)
	}
	node, exec := false, false
	for _, s := range rep.Secrets {
		if s.Namespace != diffNS {
			continue
		}
		for r := range s.Readers.All() {
			if strings.HasPrefix(r.Subject.Name, "system:node:"+diffNode) {
				node = true
			}
			for _, st := range r.Steps {
				if strings.Contains(st.Kind, "exec") {
					exec = true
				}
			}
		}
	}
	if !node || !exec {
		t.Errorf("readers through the node (%v) and through exec (%v) expected", node, exec)
	}
}

// firstDifference shows the lines around where two reports part.
func firstDifference(a, b []byte) string {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	i := 0
	for i < len(la) && i < len(lb) && la[i] == lb[i] {
		i++
	}
	from := max(0, i-8)
	show := func(l []string) string { return strings.Join(l[min(from, len(l)):min(i+8, len(l))], "\n") }
	return fmt.Sprintf("from line %d, Load:\n%s\n\nWatcher:\n%s", from+1, show(la), show(lb))
}

const (
	diffNS   = "kh-diff"
	diffNode = "kh-diff-node"
)

// createDiffWorld makes objects of every kind, using every field the
// transforms keep in a way that changes the report, and fields they drop.
func createDiffWorld(t *testing.T, c kubernetes.Interface, waitForServiceAccount func(context.Context, string) error) {
	t.Helper()
	ctx := context.Background()
	create := metav1.CreateOptions{}
	check := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ns := diffNS
	lastApplied := map[string]string{inventory.LastAppliedAnnotation: `{"kind":"Whatever"}`}

	// Pods may be created in a privileged namespace: creating pods there
	// reaches every Secret of it. Its unknown exemption is warned about.
	check(c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels:      map[string]string{"pod-security.kubernetes.io/enforce": "privileged"},
		Annotations: map[string]string{"keyhole.io/ignore": "KH999", inventory.LastAppliedAnnotation: "{}"}}}, create))
	check(c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns + "-locked",
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "baseline"}}}, create))
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, n := range []string{ns, ns + "-locked"} {
		if err := waitForServiceAccount(wctx, n); err != nil {
			t.Fatal(err)
		}
	}

	check(c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, create))
	check(c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"},
		AutomountServiceAccountToken: ptr.To(false),
		ImagePullSecrets:             []corev1.LocalObjectReference{{Name: "regcred"}},
		Secrets:                      []corev1.ObjectReference{{Name: "builder-token-gone"}}}, create))

	opaque := func(name string, labels, annotations map[string]string, keys ...string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}, Data: map[string][]byte{}}
		for _, k := range keys {
			s.Data[k] = []byte("value-of-" + k)
		}
		return s
	}
	for _, s := range []*corev1.Secret{
		opaque("db", nil, lastApplied, "password", "user"),
		{ObjectMeta: metav1.ObjectMeta{Name: "api"}, StringData: map[string]string{"token": "t0k3n"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": []byte("crt"), "tls.key": []byte("key")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{".dockerconfigjson": []byte(`{"auths":{}}`)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "web-token", Annotations: map[string]string{"kubernetes.io/service-account.name": "web"}},
			Type: corev1.SecretTypeServiceAccountToken},
		{ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1.app.v1", Labels: map[string]string{"owner": "helm", "name": "app"}},
			Type: "helm.sh/release.v1", Data: map[string][]byte{"release": bytes.Repeat([]byte("payload"), 1000)}},
		opaque("sidecar-only", nil, nil, "k"),
		opaque("done-only", nil, nil, "k"),
		opaque("csi-creds", nil, nil, "k"),
		opaque("pv-creds", nil, nil, "k"),
		opaque("auth", nil, nil, "auth"),
		{ObjectMeta: metav1.ObjectMeta{Name: "ingress-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": []byte("crt"), "tls.key": []byte("key")}},
		opaque("eso", map[string]string{"reconcile.external-secrets.io/managed": "true"}, nil, "k"),
		opaque("unused", nil, nil, "k"),
		opaque("ignored", nil, map[string]string{"keyhole.io/ignore": "KH410", "keyhole.io/ignore-reason": "kept for the test"}, "k"),
	} {
		check(c.CoreV1().Secrets(ns).Create(ctx, s, create))
	}
	check(c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Annotations: lastApplied},
		Data: map[string]string{"mode": "prod", "app.properties": "db.url=jdbc:postgresql://db/app\ndb.password=Zq9vL2mN8pR4tYw"}}, create))

	role := func(name string, rules ...rbacv1.PolicyRule) {
		check(c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: lastApplied}, Rules: rules}, create))
	}
	bind := func(name, roleKind, roleName string, subjects ...rbacv1.Subject) {
		check(c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: roleKind, Name: roleName}, Subjects: subjects}, create))
	}
	sa := func(name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: "ServiceAccount", Name: name, Namespace: ns}
	}
	user := func(name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: name}
	}
	role("secret-reader", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}})
	role("debugger", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create"}})
	role("pod-maker", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}})
	bind("web-reads", "Role", "secret-reader", sa("web"))
	bind("dev-debugs", "Role", "debugger", user("dev"))
	bind("builder-makes-pods", "Role", "pod-maker", sa("builder"))
	bind("dangling", "Role", "no-such-role", user("nobody"))
	check(c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "kh-diff-aggregated"},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"kh-diff/aggregate": "true"}}}}}, create))
	check(c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "kh-diff-part", Labels: map[string]string{"kh-diff/aggregate": "true"}},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{"tls"}}}}, create))
	check(c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "kh-diff-team"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kh-diff-aggregated"},
		Subjects: []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "kh-diff-team"}}}, create))

	// The node, with a status the transform drops.
	node := must[*corev1.Node](t)(c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: diffNode, Labels: map[string]string{"zone": "a"}},
		Spec: corev1.NodeSpec{PodCIDR: "10.0.0.0/24"}}, create))
	node.Status.Images = []corev1.ContainerImage{{Names: []string{"example.invalid/app:1"}, SizeBytes: 1 << 20}}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}}
	check(c.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}))

	check(c.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "kh-diff-pv"},
		Spec: corev1.PersistentVolumeSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: apiresource.MustParse("1Gi")},
			ClaimRef:    &corev1.ObjectReference{Namespace: ns, Name: "data"},
			// No namespace: the claim's is meant.
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "example.csi", VolumeHandle: "v1",
				NodeStageSecretRef: &corev1.SecretReference{Name: "pv-creds"}}},
			MountOptions: []string{"ro"},
		}}, create))
	check(c.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "kh-diff-pv", AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: apiresource.MustParse("1Gi")}}}}, create))
	check(c.NetworkingV1().Ingresses(ns).Create(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web",
		Annotations: map[string]string{"nginx.ingress.kubernetes.io/auth-secret": "auth"}},
		Spec: networkingv1.IngressSpec{TLS: []networkingv1.IngressTLS{{Hosts: []string{"web.example"}, SecretName: "ingress-tls"}},
			DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}, create))

	secretKey := func(name, key string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}
	}
	secretVolume := func(name, secret string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}
	}
	// Fields the transforms drop, on every container.
	dropped := func(c corev1.Container) corev1.Container {
		c.Image, c.Command, c.Args = "example.invalid/app:1", []string{"/app"}, []string{"--password-file=/run/db"}
		c.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: apiresource.MustParse("64Mi")}}
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		c.SecurityContext = &corev1.SecurityContext{RunAsNonRoot: ptr.To(true)}
		return c
	}
	appSpec := corev1.PodSpec{
		ServiceAccountName: "web",
		NodeName:           diffNode,
		InitContainers: []corev1.Container{
			dropped(corev1.Container{Name: "sidecar", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
				VolumeMounts: []corev1.VolumeMount{{Name: "side", MountPath: "/side"}}}),
		},
		Containers: []corev1.Container{dropped(corev1.Container{Name: "app",
			Env: []corev1.EnvVar{
				{Name: "DB_PASSWORD", Value: "Tr0ub4dor&3-horse-battery"},
				{Name: "DB_USER", ValueFrom: secretKey("db", "user")},
				{Name: "NOT_THERE", ValueFrom: secretKey("db", "no-such-key")},
			},
			EnvFrom:      []corev1.EnvFromSource{{Prefix: "API_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "api"}}}},
			VolumeMounts: []corev1.VolumeMount{{Name: "tls", MountPath: "/tls"}, {Name: "proj", MountPath: "/proj"}, {Name: "data", MountPath: "/data"}},
		})},
		Volumes: []corev1.Volume{
			{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls",
				Items: []corev1.KeyToPath{{Key: "tls.crt", Path: "crt"}}}}},
			{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}},
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
			}}}},
			{Name: "csi", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "example.csi",
				NodePublishSecretRef: &corev1.LocalObjectReference{Name: "csi-creds"}}}},
			{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}},
			secretVolume("side", "sidecar-only"),
		},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "missing-pull"}},
		NodeSelector:     map[string]string{"zone": "a"},
	}
	check(c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: map[string]string{
		"keyhole.io/ignore": "KH202", "keyhole.io/ignore-reason": "a test fixture"}}, Spec: appSpec}, create))
	// kubectl debug adds an ephemeral container through its subresource.
	app := must[*corev1.Pod](t)(c.CoreV1().Pods(ns).Get(ctx, "app", metav1.GetOptions{}))
	app.Spec.EphemeralContainers = []corev1.EphemeralContainer{{TargetContainerName: "app", EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debug", Image: "example.invalid/debug:1", Env: []corev1.EnvVar{{Name: "PW", ValueFrom: secretKey("db", "password")}}}}}
	check(c.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, "app", app, metav1.UpdateOptions{}))

	// A pod that has ended: its Secret cannot be reached by exec.
	done := must[*corev1.Pod](t)(c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "done"},
		Spec: corev1.PodSpec{NodeName: diffNode, RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{dropped(corev1.Container{Name: "job", VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/v"}}})},
			Volumes:    []corev1.Volume{secretVolume("v", "done-only")}}}, create))
	done.Status.Phase = corev1.PodSucceeded
	check(c.CoreV1().Pods(ns).UpdateStatus(ctx, done, metav1.UpdateOptions{}))

	// A pod that does not mount its token, though its ServiceAccount
	// reads Secrets.
	check(c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "quiet"},
		Spec: corev1.PodSpec{ServiceAccountName: "web", AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{dropped(corev1.Container{Name: "c"})}}}, create))

	// In a namespace whose Pod Security level forbids privileged pods, a
	// pod on the same node: pod creators of kh-diff take it over through
	// the node; those of kh-diff-locked cannot take over the node.
	locked := ns + "-locked"
	check(c.CoreV1().Secrets(locked).Create(ctx, opaque("locked-secret", nil, nil, "k"), create))
	check(c.CoreV1().Pods(locked).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "locked"},
		Spec: corev1.PodSpec{NodeName: diffNode, Containers: []corev1.Container{dropped(corev1.Container{Name: "c",
			VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/v"}}})},
			Volumes: []corev1.Volume{secretVolume("v", "locked-secret")}}}, create))
	check(c.RbacV1().Roles(locked).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-maker"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}}}, create))
	check(c.RbacV1().RoleBindings(locked).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "locked-dev-makes-pods"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-maker"}, Subjects: []rbacv1.Subject{user("locked-dev")}}, create))

	// A Deployment, and a ReplicaSet and a pod it controls: rules about the
	// spec are reported on the Deployment only, which takes the owner
	// references and UIDs.
	labels := map[string]string{"app": "web"}
	template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{ServiceAccountName: "web",
		Containers: []corev1.Container{dropped(corev1.Container{Name: "web",
			Env:     []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: secretKey("db", "password")}, {Name: "API_TOKEN", Value: "ghp_Zq9vL2mN8pR4tYwXc7bK1dF6hJ3sA0eQ5uI9"}},
			EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "api"}}}}})}}}
	dep := must[*appsv1.Deployment](t)(c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template}}, create))
	rs := must[*appsv1.ReplicaSet](t)(c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-1",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: dep.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template}}, create))
	check(c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1-a", Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", UID: rs.UID, Controller: ptr.To(true)}}},
		Spec: template.Spec}, create))
	jobTemplate := template
	jobTemplate.Spec.RestartPolicy = corev1.RestartPolicyNever
	jobTemplate.Spec.ServiceAccountName = "builder"
	check(c.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", SuccessfulJobsHistoryLimit: ptr.To(int32(1)),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: jobTemplate}}}}, create))
	check(c.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "store"},
		Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template, ServiceName: "store"}}, create))
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
