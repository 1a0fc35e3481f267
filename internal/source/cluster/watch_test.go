package cluster

// Integration tests of the Watcher against the package's control plane
// (see cluster_test.go). TestWatcherAPIServerRestart stops kube-apiserver
// and must stay the last test in this file that needs it.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/source"
	"github.com/keyhole-sec/keyhole/internal/testlog"
)

// recorder records a Watcher's callbacks.
type recorder struct {
	mu     sync.Mutex
	events map[string]int
	ups    map[string][]upCall
}

type upCall struct {
	up  bool
	err string
}

func (r *recorder) onEvent(resource string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events[resource]++
}

func (r *recorder) onSourceUp(resource string, up bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := upCall{up: up}
	if err != nil {
		c.err = err.Error()
	}
	r.ups[resource] = append(r.ups[resource], c)
}

func (r *recorder) eventCount(resource string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[resource]
}

// calls returns the OnSourceUp calls of resource so far.
func (r *recorder) calls(resource string) []upCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ups[resource])
}

// isUp reports whether the last call for resource said up.
func (r *recorder) isUp(resource string) bool {
	c := r.calls(resource)
	return len(c) > 0 && c[len(c)-1].up
}

// startWatcher runs a Watcher until the test ends and waits for it to
// settle.
func startWatcher(tb testing.TB, cfg *rest.Config, via string) (*Watcher, *recorder) {
	tb.Helper()
	rec := &recorder{events: map[string]int{}, ups: map[string][]upCall{}}
	w, err := NewWatcher(cfg, WatchOptions{SecretsVia: via, OnEvent: rec.onEvent, OnSourceUp: rec.onSourceUp})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		w.Run(ctx)
		close(done)
	}()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			tb.Error("Run did not return after its context ended")
		}
	})
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	defer scancel()
	if err := w.WaitSettled(sctx); err != nil {
		tb.Fatalf("WaitSettled: %v", err)
	}
	// Handlers hear of the initial list after the cache has it: wait, so
	// that tests count only the events they cause.
	waitFor(tb, 30*time.Second, "OnEvent for every object of the initial lists", func() bool {
		for _, f := range w.feeds {
			if rec.eventCount(f.res.name) < len(f.informer.GetStore().ListKeys()) {
				return false
			}
		}
		return true
	})
	return w, rec
}

// fill builds the inventory of what w has cached.
func fill(w *Watcher) (*inventory.Inventory, source.Coverage, []source.Problem) {
	b := inventory.NewBuilder()
	cov, problems := w.Fill(b)
	return b.Build(), cov, problems
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestWatcherFollowsChanges(t *testing.T) {
	cp := controlPlane(t)
	c := admin(t)
	ctx := context.Background()
	for _, via := range []string{SecretsViaTable, SecretsViaFull} {
		t.Run(via, func(t *testing.T) {
			ns := "kh-watch-" + via
			createNamespace(t, c, ns)
			w, rec := startWatcher(t, cp.Config, via)
			if _, _, problems := fill(w); len(problems) != 0 {
				t.Fatalf("problems: %+v", problems)
			}
			secret := func() *inventory.Secret {
				inv, _, _ := fill(w)
				return inv.Secret(ns, "s")
			}

			before := rec.eventCount("secrets")
			must[*corev1.Secret](t)(c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"},
				Data: map[string][]byte{"a": []byte("1")}}, metav1.CreateOptions{}))
			waitFor(t, 30*time.Second, "the new Secret reached the cache", func() bool { return secret() != nil })
			created := secret()
			if !reflect.DeepEqual(created.Keys, []string{"a"}) || !created.KeysKnown || created.DataWrittenAt.IsZero() {
				t.Errorf("created: %+v", created)
			}
			waitFor(t, 10*time.Second, "OnEvent for the new Secret", func() bool { return rec.eventCount("secrets") > before })

			// managedFields times have whole seconds: let one pass, so the
			// data write time must move.
			time.Sleep(1100 * time.Millisecond)
			s := must[*corev1.Secret](t)(c.CoreV1().Secrets(ns).Get(ctx, "s", metav1.GetOptions{}))
			s.Data["b"] = []byte("2")
			must[*corev1.Secret](t)(c.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}))
			waitFor(t, 30*time.Second, "the Secret's new key reached the cache", func() bool {
				s := secret()
				return s != nil && reflect.DeepEqual(s.Keys, []string{"a", "b"})
			})
			if updated := secret(); !updated.DataWrittenAt.After(created.DataWrittenAt) {
				t.Errorf("data write time %v after a data change, was %v", updated.DataWrittenAt, created.DataWrittenAt)
			}

			before = rec.eventCount("secrets")
			must[*corev1.Secret](t)(c.CoreV1().Secrets(ns).Patch(ctx, "s", "application/merge-patch+json",
				[]byte(`{"metadata":{"labels":{"rotated":"yes"}}}`), metav1.PatchOptions{}))
			waitFor(t, 30*time.Second, "the Secret's new label reached the cache", func() bool {
				s := secret()
				return s != nil && s.Labels["rotated"] == "yes"
			})
			if rec.eventCount("secrets") <= before {
				t.Error("no OnEvent for a label change")
			}

			if err := c.CoreV1().Secrets(ns).Delete(ctx, "s", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, "the deleted Secret left the cache", func() bool { return secret() == nil })

			binding := func() *rbacv1.RoleBinding {
				inv, _, _ := fill(w)
				for _, b := range inv.RoleBindings {
					if b.Namespace == ns && b.Name == "rb" {
						return b
					}
				}
				return nil
			}
			before = rec.eventCount("rolebindings")
			rb := must[*rbacv1.RoleBinding](t)(c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "rb"},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
				Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "alice"}}}, metav1.CreateOptions{}))
			waitFor(t, 30*time.Second, "the new RoleBinding reached the cache", func() bool { return binding() != nil })
			rb.Subjects = append(rb.Subjects, rbacv1.Subject{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "bob"})
			must[*rbacv1.RoleBinding](t)(c.RbacV1().RoleBindings(ns).Update(ctx, rb, metav1.UpdateOptions{}))
			waitFor(t, 30*time.Second, "the RoleBinding's new subject reached the cache", func() bool {
				b := binding()
				return b != nil && len(b.Subjects) == 2
			})
			if err := c.RbacV1().RoleBindings(ns).Delete(ctx, "rb", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, "the deleted RoleBinding left the cache", func() bool { return binding() == nil })
			if n := rec.eventCount("rolebindings") - before; n < 3 {
				t.Errorf("%d OnEvent calls for create, update and delete of a RoleBinding", n)
			}
		})
	}
}

// An update the Watcher keeps nothing of (a pod's conditions) is no event;
// the next one (a label) is. Events of one informer arrive in order, so
// when the label's has come, the conditions' would have.
func TestWatcherIgnoresDroppedFields(t *testing.T) {
	cp := controlPlane(t)
	c := admin(t)
	ctx := context.Background()
	ns := "kh-watch-quiet"
	createNamespace(t, c, ns)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cp.WaitForServiceAccount(wctx, ns); err != nil {
		t.Fatal(err)
	}
	pod := must[*corev1.Pod](t)(c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c:1"}}}}, metav1.CreateOptions{}))
	_, rec := startWatcher(t, cp.Config, SecretsViaTable)
	before := rec.eventCount("pods")
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: "keyhole.io/probe", Status: corev1.ConditionTrue})
	pod = must[*corev1.Pod](t)(c.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}))
	pod.Labels = map[string]string{"touched": "yes"}
	must[*corev1.Pod](t)(c.CoreV1().Pods(ns).Update(ctx, pod, metav1.UpdateOptions{}))
	waitFor(t, 30*time.Second, "OnEvent for the pod's new label", func() bool { return rec.eventCount("pods") > before })
	if n := rec.eventCount("pods") - before; n != 1 {
		t.Errorf("%d OnEvent calls for a conditions update and a label update, want 1", n)
	}
}

// containsCanary reports whether raw holds the canary, in clear or base64,
// at any of the three alignments base64 can give it.
func containsCanary(raw []byte) bool {
	needles := []string{canary, base64.StdEncoding.EncodeToString([]byte(canary))[:20]}
	for _, pre := range []string{"x", "xy"} {
		enc := base64.StdEncoding.EncodeToString([]byte(pre + canary))
		needles = append(needles, enc[4:20])
	}
	for _, n := range needles {
		if bytes.Contains(raw, []byte(n)) {
			return true
		}
	}
	return false
}

// TestWatcherCachesNoValue creates Secrets with the canary in every place
// a value can be, then looks at every object in every informer's cache,
// at what Fill returns and at what client-go logged at -v=10. Failures
// name the object, never the value.
func TestWatcherCachesNoValue(t *testing.T) {
	cp := controlPlane(t)
	c := admin(t)
	ctx := context.Background()
	ns := "kh-watch-canary"
	createNamespace(t, c, ns)
	lastApplied := fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"applied","namespace":%q},"data":{"password":%q}}`,
		ns, base64.StdEncoding.EncodeToString([]byte(canary)))
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Data: map[string][]byte{"password": []byte(canary)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "string-data"}, StringData: map[string]string{"token": "x" + canary}},
		{ObjectMeta: metav1.ObjectMeta{Name: "applied", Annotations: map[string]string{inventory.LastAppliedAnnotation: lastApplied}},
			Data: map[string][]byte{"password": []byte(canary)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1.app.v1", Labels: map[string]string{"owner": "helm"}},
			Type: "helm.sh/release.v1", Data: map[string][]byte{"release": []byte(strings.Repeat("xy"+canary, 100))}},
		{ObjectMeta: metav1.ObjectMeta{Name: "tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": []byte(canary), "tls.key": []byte(canary)}},
	} {
		must[*corev1.Secret](t)(c.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}))
	}

	logs := testlog.Klog(t, 10)

	for _, via := range []string{SecretsViaTable, SecretsViaFull} {
		t.Run(via, func(t *testing.T) {
			w, _ := startWatcher(t, cp.Config, via)
			// Secrets that arrive by the watch rather than the list: one
			// created, one whose value changes. This test's own requests
			// would log the values they send.
			ctx := withoutLogging(ctx)
			late := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "late-" + via,
				Annotations: map[string]string{inventory.LastAppliedAnnotation: lastApplied}},
				Data: map[string][]byte{"password": []byte(canary)}}
			must[*corev1.Secret](t)(c.CoreV1().Secrets(ns).Create(ctx, late, metav1.CreateOptions{}))
			must[*corev1.Secret](t)(c.CoreV1().Secrets(ns).Patch(ctx, "data", "application/merge-patch+json",
				[]byte(fmt.Sprintf(`{"data":{"password":%q}}`, base64.StdEncoding.EncodeToString([]byte("xy"+canary+via)))), metav1.PatchOptions{}))
			waitFor(t, 30*time.Second, "the Secrets reached the cache", func() bool {
				inv, _, _ := fill(w)
				return inv.Secret(ns, "late-"+via) != nil
			})
			cached := 0
			for _, f := range w.feeds {
				for _, obj := range f.informer.GetStore().List() {
					cached++
					raw, err := json.Marshal(obj)
					if err != nil {
						t.Fatalf("%s: %v", f.res.name, err)
					}
					if containsCanary(raw) {
						t.Errorf("a Secret value is in the %s cache, in %T %s", f.res.name, obj, objectName(obj))
					}
					if s, ok := obj.(*secretMeta); ok && s.Namespace == ns && (s.Name == "applied" || strings.HasPrefix(s.Name, "late-")) && !s.HadLastApplied {
						t.Errorf("the last-applied annotation of %s/%s went unrecorded", ns, s.Name)
					}
				}
			}
			if cached < 50 {
				t.Errorf("only %d objects cached: the walk proves little", cached)
			}
			inv, cov, problems := fill(w)
			if raw, _ := json.Marshal([]any{inv, cov, problems}); containsCanary(raw) {
				t.Error("a Secret value is in what Fill returned")
			}
			for _, s := range inv.SecretsIn(ns) {
				if len(s.Keys) == 0 || !s.KeysKnown {
					t.Errorf("%s: keys %v known %v", s.Name, s.Keys, s.KeysKnown)
				}
			}
		})
	}
	klog.Flush()
	if !strings.Contains(logs.String(), "Response Body") {
		t.Fatal("client-go logged no bodies at -v=10: the test proves nothing of the logs")
	}
	// Typed clients read protobuf, which client-go logs as a hex dump of
	// 16 bytes a line: the repeated value puts "CANARY" whole on some line.
	if l := logs.String(); strings.Contains(l, "CANARY") || containsCanary([]byte(l)) {
		t.Error("a Secret value was logged")
	}
}

func objectName(obj any) string {
	if m, ok := obj.(metav1.Object); ok {
		return m.GetNamespace() + "/" + m.GetName()
	}
	return "?"
}

// TestWatcherForbidden watches as a user who may list and watch everything
// but pods: the Watcher settles, reports pods as Load would, keeps the
// rest, and recovers when the permission is granted.
func TestWatcherForbidden(t *testing.T) {
	cp := controlPlane(t)
	c := admin(t)
	ctx := context.Background()
	const user = "keyhole-watch-no-pods"
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}}
	for group, res := range listable {
		role.Rules = append(role.Rules, rbacv1.PolicyRule{APIGroups: []string{group},
			Resources: slices.DeleteFunc(slices.Clone(res), func(r string) bool { return r == "pods" }), Verbs: []string{"list", "watch"}})
	}
	role = must[*rbacv1.ClusterRole](t)(c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}))
	must[*rbacv1.ClusterRoleBinding](t)(c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: user},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}, metav1.CreateOptions{}))
	cfg := cp.Impersonate(user)
	uc := kubernetes.NewForConfigOrDie(cfg)
	waitFor(t, 30*time.Second, "RBAC let the user list namespaces", func() bool {
		_, err := uc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil
	})

	w, rec := startWatcher(t, cfg, SecretsViaTable)
	inv, cov, problems := fill(w)
	want := source.Problem{
		Source: "cluster", Location: Location, Resource: "pods",
		Message: `list pods: forbidden: User "keyhole-watch-no-pods" cannot list resource "pods" in API group "" at the cluster scope`,
		Impact:  Impact("pods"),
	}
	if len(problems) != 1 || !reflect.DeepEqual(problems[0], want) {
		t.Fatalf("problems\n got %+v\nwant [%+v]", problems, want)
	}
	if len(inv.Pods) != 0 || cov.Objects["Pod"] != 0 || len(inv.Namespaces) == 0 || len(inv.Secrets) == 0 {
		t.Errorf("inventory: %d pods, %d namespaces, %d secrets; coverage %v", len(inv.Pods), len(inv.Namespaces), len(inv.Secrets), cov.Objects)
	}
	if calls := rec.calls("pods"); len(calls) != 1 || calls[0] != (upCall{up: false, err: want.Message}) {
		t.Errorf("OnSourceUp(pods) calls %+v, want one down with %q", calls, want.Message)
	}
	for _, r := range w.Resources() {
		if r != "pods" {
			waitFor(t, 30*time.Second, r+" reported up", func() bool { return rec.isUp(r) })
			for _, call := range rec.calls(r) {
				if !call.up {
					t.Errorf("%s reported down: %s", r, call.err)
				}
			}
		}
	}

	role.Rules = append(role.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}})
	must[*rbacv1.ClusterRole](t)(c.RbacV1().ClusterRoles().Update(ctx, role, metav1.UpdateOptions{}))
	// The reflector retries with a backoff of up to 30 s.
	waitFor(t, 90*time.Second, "pods up once allowed", func() bool { return rec.isUp("pods") })
	waitFor(t, 10*time.Second, "no problem once pods are allowed", func() bool {
		inv, _, problems := fill(w)
		return len(problems) == 0 && len(inv.Pods) > 0
	})
}

// TestWatcherAPIServerRestart stops kube-apiserver under a running Watcher,
// then starts it again: every resource goes down, Fill keeps serving the
// cache with a Problem each, and after the restart they come back up and
// new objects arrive.
func TestWatcherAPIServerRestart(t *testing.T) {
	cp := controlPlane(t)
	c := admin(t)
	ctx := context.Background()
	ns := "kh-watch-restart"
	createNamespace(t, c, ns)
	w, rec := startWatcher(t, cp.Config, SecretsViaTable)
	inv, _, _ := fill(w)
	secretsBefore := len(inv.Secrets)

	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	restart := func() {
		if restarted {
			return
		}
		restarted = true
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := cp.StartAPIServer(sctx); err != nil {
			t.Fatalf("restarting kube-apiserver: %v", err)
		}
	}
	t.Cleanup(restart) // for the tests after this one, whatever happens here

	waitFor(t, 90*time.Second, "secrets reported down", func() bool {
		calls := rec.calls("secrets")
		return len(calls) > 0 && !calls[len(calls)-1].up
	})
	if last := rec.calls("secrets"); !strings.HasPrefix(last[len(last)-1].err, "watch secrets: ") {
		t.Errorf("down because %q", last[len(last)-1].err)
	}
	inv, _, problems := fill(w)
	if len(inv.Secrets) != secretsBefore {
		t.Errorf("%d Secrets served while the API server is down, had %d", len(inv.Secrets), secretsBefore)
	}
	stale := false
	for _, p := range problems {
		if p.Resource == "secrets" && strings.HasSuffix(p.Message, staleNote) && p.Impact == Impact("secrets") {
			stale = true
		}
	}
	if !stale {
		t.Errorf("no problem for the Secrets served from the cache: %+v", problems)
	}

	restart()
	must[*corev1.Secret](t)(c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "after"},
		Data: map[string][]byte{"k": []byte("v")}}, metav1.CreateOptions{}))
	waitFor(t, 2*time.Minute, "the Secret created after the restart reached the cache", func() bool {
		inv, _, _ := fill(w)
		return inv.Secret(ns, "after") != nil
	})
	for _, r := range w.Resources() {
		waitFor(t, 2*time.Minute, r+" reported up again", func() bool { return rec.isUp(r) })
	}
	waitFor(t, 10*time.Second, "no problem after the restart", func() bool {
		_, _, problems := fill(w)
		return len(problems) == 0
	})
	t.Logf("OnSourceUp(secrets): %+v", rec.calls("secrets"))
	for _, r := range w.Resources() {
		for _, call := range rec.calls(r) {
			// The signature of a watch the reflector stopped itself.
			if strings.Contains(call.err, "unable to decode") {
				t.Errorf("%s reported down for a watch it had stopped: %s", r, call.err)
			}
		}
	}
}
