package workload

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

func meta(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

func build(t testing.TB, objs ...any) *inventory.Inventory {
	t.Helper()
	b := inventory.NewBuilder()
	for _, o := range objs {
		if _, _, err := b.Add(o, inventory.Location{}); err != nil {
			t.Fatal(err)
		}
	}
	return b.Build()
}

func envFromSecret(container, secret string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: container, EnvFrom: []corev1.EnvFromSource{
		{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret}}},
	}}}}
}

// results renders results as "RULE severity Kind/ns/name [discriminator]".
func results(rs []finding.Result) []string {
	var out []string
	for _, r := range rs {
		sev := "default"
		if r.Severity != nil {
			sev = r.Severity.String()
		}
		out = append(out, fmt.Sprintf("%s %s %s %v", r.Rule, sev, r.Object, r.Discriminator))
	}
	return out
}

func only(rs []finding.Result, rule string) []finding.Result {
	var out []finding.Result
	for _, r := range rs {
		if r.Rule == rule {
			out = append(out, r)
		}
	}
	return out
}

// TestDeterministic: the same world in any input order gives the same
// results in the same order.
func TestDeterministic(t *testing.T) {
	world := func() []any {
		return []any{
			&corev1.Secret{ObjectMeta: meta("a", "s1"), StringData: map[string]string{"k": "KEYHOLE-CANARY"}},
			&corev1.Secret{ObjectMeta: meta("a", "s2")},
			&corev1.Pod{ObjectMeta: meta("a", "p1"), Spec: envFromSecret("c", "s1")},
			&corev1.Pod{ObjectMeta: meta("a", "p2"), Spec: envFromSecret("c", "missing")},
			&corev1.Pod{ObjectMeta: meta("b", "p3"), Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c",
				Env: []corev1.EnvVar{{Name: "B_PASSWORD", Value: "KEYHOLE-CANARY-b"}, {Name: "A_PASSWORD", Value: "KEYHOLE-CANARY-a"}}}}}},
			&corev1.ConfigMap{ObjectMeta: meta("a", "cm"), Data: map[string]string{"Z_TOKEN": "ghp_KEYHOLECANARY0123456789abcdefghijklmn", "A_PASSWORD": "KEYHOLE-CANARY-c"}},
		}
	}
	opts := Options{SecretReaders: func(rbac.Subject) bool { return true }, Now: time.Unix(0, 0)}
	want := results(Analyze(build(t, world()...), opts))
	if len(want) == 0 {
		t.Fatal("the world raises nothing: the test would prove nothing")
	}
	for seed := uint64(0); seed < 20; seed++ {
		objs := world()
		rand.New(rand.NewPCG(seed, seed)).Shuffle(len(objs), func(i, j int) { objs[i], objs[j] = objs[j], objs[i] })
		if got := results(Analyze(build(t, objs...), opts)); !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: results depend on input order:\n%v\nwant\n%v", seed, got, want)
		}
	}
}

// TestOwnership: a spec is reported on the outermost controller of the
// inventory, and only a controller of the inventory counts.
func TestOwnership(t *testing.T) {
	yes, no := true, false
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "web", UID: types.UID("d-1")},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: envFromSecret("web", "s")}}}
	owned := func(name, kind, owner, uid string, controller *bool) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: name, OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: kind, Name: owner, UID: types.UID(uid), Controller: controller}}},
			Spec: envFromSecret("web", "s")}
	}
	inv := build(t, deploy,
		owned("by-deployment", "Deployment", "web", "d-1", &yes),
		owned("unset-controller", "Deployment", "web", "", nil),
		owned("not-controller", "Deployment", "web", "d-1", &no),
		owned("other-uid", "Deployment", "web", "d-2", &yes),
		owned("absent-owner", "ReplicaSet", "web-123", "", &yes),
	)
	var got []string
	for _, r := range only(Analyze(inv, Options{}), finding.SecretInEnvironment) {
		got = append(got, r.Object.String())
	}
	want := []string{"Deployment/a/web", "Pod/a/absent-owner", "Pod/a/not-controller", "Pod/a/other-uid"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reported on %v, want %v", got, want)
	}
}

// TestEphemeralContainers: containers added by kubectl debug count.
func TestEphemeralContainers(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: meta("a", "p"), Spec: corev1.PodSpec{EphemeralContainers: []corev1.EphemeralContainer{{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Env: []corev1.EnvVar{{Name: "TOKEN", Value: "KEYHOLE-CANARY-7fQ2xL9pWz4mN8vR"}}},
	}}}}
	rs := only(Analyze(build(t, pod), Options{}), finding.HardcodedEnvCredential)
	if len(rs) != 1 || !strings.Contains(rs[0].Message, "ephemeral container debugger") {
		t.Errorf("results %v", results(rs))
	}
	if strings.Contains(rs[0].Message, "KEYHOLE-CANARY") {
		t.Errorf("the message holds the value: %s", rs[0].Message)
	}
}

// TestEphemeralContainersOfOwnedPods: a Pod owned by a ReplicaSet is
// reported through its owner, but its ephemeral containers exist on the
// Pod alone and are reported there; its regular containers are not
// reported twice.
func TestEphemeralContainersOfOwnedPods(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: meta("a", "web-1"), Spec: appsv1.ReplicaSetSpec{Template: corev1.PodTemplateSpec{Spec: envFromSecret("web", "db")}}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "web-1-x", OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1"}}},
		Spec: envFromSecret("web", "db")}
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}}}},
	}}
	got := results(only(Analyze(build(t, rs, pod), Options{}), finding.SecretInEnvironment))
	want := []string{"KH201 default Pod/a/web-1-x [debugger envFrom db]", "KH201 default ReplicaSet/a/web-1 [web envFrom db]"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
}

// TestCompleteInventory: in a complete (live) inventory, absence is proof:
// a missing Secret in a namespace without Secrets is low, and the unused
// Secrets of a namespace without pods are reported.
func TestCompleteInventory(t *testing.T) {
	objs := []any{
		&corev1.Pod{ObjectMeta: meta("a", "p"), Spec: envFromSecret("c", "missing")},
		&corev1.Secret{ObjectMeta: meta("b", "lonely")},
	}
	partial := results(Analyze(build(t, objs...), Options{}))
	if want := []string{"KH201 default Pod/a/p [c envFrom missing]", "KH220 info Pod/a/p [missing]"}; !reflect.DeepEqual(partial, want) {
		t.Errorf("partial inventory: %v, want %v", partial, want)
	}
	complete := results(Analyze(build(t, objs...), Options{Complete: true}))
	want := []string{"KH201 default Pod/a/p [c envFrom missing]", "KH220 default Pod/a/p [missing]", "KH410 default Secret/b/lonely []"}
	if !reflect.DeepEqual(complete, want) {
		t.Errorf("complete inventory: %v, want %v", complete, want)
	}
}

func TestAutomountNeedsTheReaderPredicate(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: meta("a", "p"), Spec: corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "c"}}}}
	if rs := only(Analyze(build(t, pod), Options{}), finding.AutomountedSecretReaderToken); len(rs) != 0 {
		t.Errorf("without a predicate: %v", results(rs))
	}
	var asked []rbac.Subject
	readers := func(s rbac.Subject) bool { asked = append(asked, s); return true }
	rs := only(Analyze(build(t, pod), Options{SecretReaders: readers}), finding.AutomountedSecretReaderToken)
	if len(rs) != 1 || len(asked) != 1 || asked[0] != (rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: "a", Name: "app"}) {
		t.Errorf("results %v, asked about %v", results(rs), asked)
	}
}

func TestStale(t *testing.T) {
	written := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	secret := &inventory.Secret{Namespace: "a", Name: "s", Type: corev1.SecretTypeOpaque, DataWrittenAt: written}
	for _, tt := range []struct {
		name string
		opts Options
		want int
	}{
		{"no time given", Options{}, 0},
		{"within the default 90 days", Options{Now: written.Add(90 * 24 * time.Hour)}, 0},
		{"beyond the default 90 days", Options{Now: written.Add(91 * 24 * time.Hour)}, 1},
		{"within a longer limit", Options{Now: written.Add(91 * 24 * time.Hour), StaleAfter: 180 * 24 * time.Hour}, 0},
	} {
		if got := len(only(Analyze(build(t, secret), tt.opts), finding.StaleSecret)); got != tt.want {
			t.Errorf("%s: %d findings, want %d", tt.name, got, tt.want)
		}
	}
}

// TestEnvInjections counts containers as KH201 reports them: the owner's
// once (not its replicas), an ephemeral container on its Pod, env and
// envFrom of one container once, each Secret in its own namespace.
func TestEnvInjections(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: meta("a", "web-1"), Spec: appsv1.ReplicaSetSpec{Template: corev1.PodTemplateSpec{Spec: envFromSecret("web", "db")}}}
	replica := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: name, OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1"}}},
			Spec: envFromSecret("web", "db")}
	}
	debugged := replica("web-1-y")
	debugged.Spec.EphemeralContainers = []corev1.EphemeralContainer{{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}}}},
	}}
	both := envFromSecret("worker", "db")
	both.Containers[0].Env = []corev1.EnvVar{{Name: "API_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}}}
	both.InitContainers = []corev1.Container{{Name: "migrate", Env: []corev1.EnvVar{{Name: "T", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "api"}, Key: "token"}}}}}}
	job := &batchv1.Job{ObjectMeta: meta("a", "job"), Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: both}}}
	other := &corev1.Pod{ObjectMeta: meta("b", "p"), Spec: envFromSecret("c", "db")}

	inv := build(t, rs, replica("web-1-x"), debugged, job, other)
	want := map[inventory.Ref]int{
		{Kind: "Secret", Namespace: "a", Name: "db"}:  3, // the ReplicaSet's web, the debugger, the Job's worker
		{Kind: "Secret", Namespace: "a", Name: "api"}: 1,
		{Kind: "Secret", Namespace: "b", Name: "db"}:  1,
	}
	// AnalyzeAll counts them in the walk that finds KH201, and its
	// results are Analyze's.
	all := AnalyzeAll(inv, Options{})
	if !reflect.DeepEqual(all.EnvInjections, want) {
		t.Errorf("AnalyzeAll: EnvInjections = %v, want %v", all.EnvInjections, want)
	}
	if results := Analyze(inv, Options{}); len(all.Results) == 0 || !reflect.DeepEqual(all.Results, results) {
		t.Errorf("AnalyzeAll: %d results, Analyze %d, want the same and some", len(all.Results), len(results))
	}
}
