package analysis

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/environment"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source"
	"github.com/keyhole-sec/keyhole/internal/synthetic"
	"github.com/keyhole-sec/keyhole/internal/workload"
)

// accessCanary is the value of the ConfigMap credentials the worlds get.
const accessCanary = "KEYHOLE-CANARY-access-x7Qp2"

// accessWorld is a synthetic world with indirect paths and pods, plus
// what synthetic does not make and the access stage does not read:
// ConfigMaps, one holding a credential, and Ingresses naming Secrets.
func accessWorld(seed int64) []runtime.Object {
	size := synthetic.Scale(240)
	size.Pods, size.Nodes, size.Indirect = 80, 3, true
	objs := synthetic.Generate(seed, size)
	var secrets []*corev1.Secret
	for _, o := range objs {
		if s, ok := o.(*corev1.Secret); ok {
			secrets = append(secrets, s)
		}
	}
	for i := range 6 {
		s := secrets[(i*37)%len(secrets)]
		objs = append(objs,
			&corev1.ConfigMap{ObjectMeta: meta(s.Namespace, fmt.Sprintf("settings-%d", i)), Data: map[string]string{"LOG_LEVEL": "info"}},
			&networkingv1.Ingress{ObjectMeta: meta(s.Namespace, fmt.Sprintf("web-%d", i)),
				Spec: networkingv1.IngressSpec{TLS: []networkingv1.IngressTLS{{SecretName: s.Name}}}})
	}
	s := secrets[0]
	objs = append(objs, &corev1.ConfigMap{ObjectMeta: meta(s.Namespace, "leaky"), Data: map[string]string{"DB_PASSWORD": accessCanary}})
	return objs
}

// outsideAccess changes, at random, only what the access stage does not
// read (Access): it adds, changes and deletes ConfigMaps and Ingresses,
// and changes Secrets' labels, annotations, keys and creation times,
// keeping their type and ServiceAccount annotation. Every object it
// returns is a copy, as the daemon's caches hand out.
func outsideAccess(r *rand.Rand, objs []runtime.Object) []runtime.Object {
	out := make([]runtime.Object, 0, len(objs)+4)
	var namespaces []string
	for _, o := range objs {
		c := o.DeepCopyObject()
		switch x := c.(type) {
		case *corev1.Secret:
			namespaces = append(namespaces, x.Namespace)
			if r.IntN(4) != 0 {
				break
			}
			switch r.IntN(6) {
			case 0:
				x.Labels = map[string]string{"app.kubernetes.io/managed-by": "Helm"}
			case 1:
				x.Labels = map[string]string{"reconcile.external-secrets.io/managed": "true", "team": "payments"}
			case 2:
				if x.Annotations == nil {
					x.Annotations = map[string]string{}
				}
				x.Annotations[IgnoreAnnotation] = "KH102,KH501"
				x.Annotations[IgnoreReasonAnnotation] = "reviewed"
			case 3:
				x.Data = map[string][]byte{"password": []byte("x"), "tls.key": []byte("x"), "aws_secret_access_key": []byte("x")}
			case 4:
				x.Data, x.StringData = nil, nil
			case 5:
				x.CreationTimestamp.Time = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
			}
		case *corev1.ConfigMap:
			switch r.IntN(3) {
			case 0:
				continue // deleted
			case 1:
				x.Data = map[string]string{"API_TOKEN": "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTA", "DB_PASSWORD": accessCanary}
			}
		case *networkingv1.Ingress:
			if r.IntN(2) == 0 {
				continue // deleted
			}
			x.Spec.TLS = append(x.Spec.TLS, networkingv1.IngressTLS{SecretName: "missing-tls"})
		}
		out = append(out, c)
	}
	for i := range 1 + r.IntN(3) {
		ns := namespaces[r.IntN(len(namespaces))]
		out = append(out,
			&corev1.ConfigMap{ObjectMeta: meta(ns, fmt.Sprintf("added-%d", i)), Data: map[string]string{"ADMIN_PASSWORD": accessCanary}},
			&networkingv1.Ingress{ObjectMeta: meta(ns, fmt.Sprintf("added-%d", i)),
				Spec: networkingv1.IngressSpec{TLS: []networkingv1.IngressTLS{{SecretName: "added-tls"}}}})
	}
	return out
}

func inventoryOf(t testing.TB, objs []runtime.Object) *inventory.Inventory {
	t.Helper()
	b := inventory.NewBuilder()
	for _, o := range objs {
		if _, _, err := b.Add(o, inventory.Location{Layer: "cluster"}); err != nil {
			t.Fatal(err)
		}
	}
	return b.Build()
}

// accessInput is what a source makes of objs, with an audit log summary
// of reads by bound subjects, so that the analysis of actual reads and
// unused grants, which uses the policy, runs too.
func accessInput(t testing.TB, objs []runtime.Object, mode rbac.AggregationMode) Input {
	t.Helper()
	inv := inventoryOf(t, objs)
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	snap := &auditlog.Snapshot{At: at, Since: at.Add(-31 * 24 * time.Hour), Window: 30 * 24 * time.Hour}
	for i, b := range inv.RoleBindings {
		secrets := inv.SecretsIn(b.Namespace)
		if i%5 != 0 || len(secrets) == 0 || len(b.Subjects) == 0 || b.Subjects[0].Kind != rbacv1.ServiceAccountKind {
			continue
		}
		sa := b.Subjects[0]
		snap.Reads = append(snap.Reads, auditlog.ReadSummary{
			User:   "system:serviceaccount:" + sa.Namespace + ":" + sa.Name,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.Namespace, "system:authenticated"},
			Target: auditlog.Target{Namespace: b.Namespace, Name: secrets[i%len(secrets)].Name}, Verbs: rbac.VerbGet,
			LastSeen: at.Add(-time.Hour), Count: 3,
		})
	}
	sort.Slice(snap.Reads, func(i, j int) bool {
		a, b := snap.Reads[i], snap.Reads[j]
		if a.Target != b.Target {
			return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
		}
		return a.User < b.User
	})
	return Input{Inventory: inv, Aggregation: mode, Reads: snap,
		Coverage: []source.Coverage{{Kind: "cluster", Target: "https://synthetic", Objects: inv.Counts()}}}
}

func accessOptions(t testing.TB) Options {
	t.Helper()
	env := func(name, sel string) environment.Environment {
		s, err := labels.Parse(sel)
		if err != nil {
			t.Fatal(err)
		}
		return environment.Environment{Name: name, Selector: s}
	}
	return Options{
		ToolVersion: "test",
		Workload:    workload.Options{Now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)},
		Paths:       paths.Options{PodSecurityDefault: "baseline"},
		Environments: []environment.Environment{
			env("dev", synthetic.LabelPodSecurityEnforce+"=privileged"),
			env("prod", synthetic.LabelPodSecurityEnforce+" in (baseline,restricted)"),
		},
	}
}

func reportJSON(t testing.TB, r *report.Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := report.WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestAccessReuse is the property that lets keyhole serve reuse an access
// stage: for generated worlds changed only outside what the stage reads,
// the report of the new world on the old world's Access is byte for byte
// the full analysis of the new world, whether that Access already served
// an analysis or not. The changes must show in the report, or the test
// would prove nothing.
func TestAccessReuse(t *testing.T) {
	opts := accessOptions(t)
	for seed := int64(1); seed <= 6; seed++ {
		mode := rbac.AggregationStored
		if seed%2 == 0 {
			mode = rbac.AggregationComputed
		}
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			objs := accessWorld(seed)
			oldIn := accessInput(t, objs, mode)
			r := rand.New(rand.NewPCG(uint64(seed), 7))
			newIn := accessInput(t, outsideAccess(r, objs), mode)

			used := NewAccess(oldIn, opts)
			oldReport := reportJSON(t, RunWith(oldIn, opts, used))
			if full := reportJSON(t, Run(oldIn, opts)); oldReport != full {
				t.Fatal("RunWith on a fresh Access differs from Run")
			}
			if why := used.Stale(newIn, opts); why != "" {
				t.Fatalf("Stale after changes the stage does not read: %q", why)
			}
			want := reportJSON(t, Run(newIn, opts))
			if want == oldReport {
				t.Fatal("the changes do not show in the report: the test proves nothing")
			}
			if got := reportJSON(t, RunWith(newIn, opts, used)); got != want {
				t.Errorf("the report on the reused Access differs from the full one:\n%s", firstDiff(got, want))
			}
			if got := reportJSON(t, RunWith(newIn, opts, NewAccess(oldIn, opts))); got != want {
				t.Errorf("the report on an unused Access of the old world differs from the full one:\n%s", firstDiff(got, want))
			}
			if !strings.Contains(want, "KH401") {
				t.Error("no ConfigMap credential finding: the ConfigMap rules did not run on the new world")
			}
			if strings.Contains(want, accessCanary) || strings.Contains(oldReport, accessCanary) {
				t.Fatal("a ConfigMap's value reached the report")
			}
		})
	}
}

// TestAccessReuseCanFail: a change the stage reads, a new RoleBinding that
// lets a new user get a Secret, is seen by Stale, and the report on the
// old Access misses the reader that the full analysis finds. Without it,
// TestAccessReuse could pass on an analysis that ignored its Access.
func TestAccessReuseCanFail(t *testing.T) {
	opts := accessOptions(t)
	objs := accessWorld(3)
	oldIn := accessInput(t, objs, rbac.AggregationStored)
	acc := NewAccess(oldIn, opts)
	RunWith(oldIn, opts, acc)

	target := oldIn.Inventory.Secrets[len(oldIn.Inventory.Secrets)/2]
	changed := append(slices.Clone(objs),
		&rbacv1.Role{ObjectMeta: meta(target.Namespace, "mallory-reads"),
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{target.Name}, Verbs: []string{"get"}}}},
		&rbacv1.RoleBinding{ObjectMeta: meta(target.Namespace, "mallory-reads"),
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "mallory-reads"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}}})
	newIn := accessInput(t, changed, rbac.AggregationStored)
	if why := acc.Stale(newIn, opts); !strings.Contains(why, "mallory-reads added") {
		t.Errorf("Stale = %q, want it to name the new Role or RoleBinding", why)
	}
	full, reused := Run(newIn, opts), RunWith(newIn, opts, acc)
	if !readsSecret(full, target, "mallory") {
		t.Fatalf("the full analysis does not find mallory reading %s", target.Ref())
	}
	if readsSecret(reused, target, "mallory") {
		t.Fatalf("the old Access found mallory reading %s: it was not used", target.Ref())
	}
	if reportJSON(t, full) == reportJSON(t, reused) {
		t.Fatal("the report on a stale Access equals the full one")
	}
}

func readsSecret(r *report.Report, s *inventory.Secret, user string) bool {
	for _, rs := range r.Secrets {
		if rs.Namespace != s.Namespace || rs.Name != s.Name {
			continue
		}
		for rd := range rs.Readers.All() {
			if rd.Subject.Kind == rbac.KindUser && rd.Subject.Name == user {
				return true
			}
		}
	}
	return false
}

// firstDiff shows where two reports part, a few lines around.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			lo := max(0, i-3)
			return fmt.Sprintf("line %d:\ngot:\n%s\nwant:\n%s", i+1,
				strings.Join(g[lo:min(len(g), i+4)], "\n"), strings.Join(w[lo:min(len(w), i+4)], "\n"))
		}
	}
	return fmt.Sprintf("lengths %d and %d lines", len(g), len(w))
}

// TestAccessStale: Stale names a change of every kind of object, and of
// every field of a Secret, that the access stage reads, and of the
// options it depends on; a resource version alone is no change.
func TestAccessStale(t *testing.T) {
	opts := accessOptions(t)
	objs := accessWorld(5)
	for i, o := range objs {
		if m, ok := o.(interface{ SetResourceVersion(string) }); ok {
			m.SetResourceVersion(fmt.Sprint(100 + i))
		}
	}
	acc := NewAccess(accessInput(t, objs, rbac.AggregationStored), opts)

	// edit returns copies of objs, the first that keep accepts changed by
	// change and given a new resource version, as the API server does.
	type change func([]runtime.Object) []runtime.Object
	edit := func(keep func(runtime.Object) bool, change func(runtime.Object)) change {
		return func(objs []runtime.Object) []runtime.Object {
			out := make([]runtime.Object, 0, len(objs))
			done := false
			for _, o := range objs {
				c := o.DeepCopyObject()
				if !done && keep(c) {
					done = true
					change(c)
					if m, ok := c.(interface{ SetResourceVersion(string) }); ok {
						m.SetResourceVersion("99999")
					}
				}
				out = append(out, c)
			}
			if !done {
				t.Fatal("no object to change")
			}
			return out
		}
	}
	is := func(kind string) func(runtime.Object) bool {
		return func(o runtime.Object) bool { return strings.TrimPrefix(fmt.Sprintf("%T", o), "*v1.") == kind }
	}
	tokenSecret := func(o runtime.Object) bool {
		s, ok := o.(*corev1.Secret)
		return ok && s.Type == corev1.SecretTypeServiceAccountToken
	}
	add := func(more ...runtime.Object) change {
		return func(objs []runtime.Object) []runtime.Object { return append(slices.Clone(objs), more...) }
	}
	drop := func(keep func(runtime.Object) bool) change {
		return func(objs []runtime.Object) []runtime.Object {
			i := slices.IndexFunc(objs, keep)
			return slices.Delete(slices.Clone(objs), i, i+1)
		}
	}
	for _, tc := range []struct {
		name   string
		change change
		want   string
	}{
		{"namespace label", edit(is("Namespace"), func(o runtime.Object) {
			o.(*corev1.Namespace).Labels[synthetic.LabelPodSecurityEnforce] = "privileged-or-not"
		}), "Namespace/"},
		{"service account automount", edit(is("ServiceAccount"), func(o runtime.Object) {
			no := false
			o.(*corev1.ServiceAccount).AutomountServiceAccountToken = &no
		}), "ServiceAccount/"},
		{"role rules", edit(is("Role"), func(o runtime.Object) {
			r := o.(*rbacv1.Role)
			r.Rules = append(r.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}})
		}), "Role/"},
		{"cluster role label", edit(is("ClusterRole"), func(o runtime.Object) {
			o.(*rbacv1.ClusterRole).Labels = map[string]string{"rbac.authorization.k8s.io/aggregate-to-view": "true"}
		}), "ClusterRole/"},
		{"role binding subject", edit(is("RoleBinding"), func(o runtime.Object) {
			b := o.(*rbacv1.RoleBinding)
			b.Subjects = append(b.Subjects, rbacv1.Subject{Kind: rbacv1.UserKind, Name: "mallory"})
		}), "RoleBinding/"},
		{"cluster role binding deleted", drop(is("ClusterRoleBinding")), "deleted"},
		{"pod node", edit(is("Pod"), func(o runtime.Object) { o.(*corev1.Pod).Spec.NodeName = "node-elsewhere" }), "Pod/"},
		{"pod phase", edit(is("Pod"), func(o runtime.Object) { o.(*corev1.Pod).Status.Phase = corev1.PodSucceeded }), "Pod/"},
		{"workload added", add(&appsv1.Deployment{ObjectMeta: meta("default", "web")}),
			"Deployment/default/web added"},
		{"node added", add(&corev1.Node{ObjectMeta: meta("", "node-new")}), "Node/node-new added"},
		{"claim's volume", edit(is("PersistentVolumeClaim"), func(o runtime.Object) {
			o.(*corev1.PersistentVolumeClaim).Spec.VolumeName = "another"
		}), "PersistentVolumeClaim/"},
		{"volume's secret", edit(is("PersistentVolume"), func(o runtime.Object) {
			o.(*corev1.PersistentVolume).Spec.CSI.NodePublishSecretRef.Name = "another"
		}), "PersistentVolume/"},
		{"secret added", add(&corev1.Secret{ObjectMeta: meta("default", "new")}), "Secret/default/new added"},
		{"secret deleted", drop(is("Secret")), "deleted"},
		{"secret type", edit(is("Secret"), func(o runtime.Object) { o.(*corev1.Secret).Type = corev1.SecretTypeBasicAuth }), "changed type"},
		{"token's account", edit(tokenSecret, func(o runtime.Object) {
			o.(*corev1.Secret).Annotations[corev1.ServiceAccountNameKey] = "someone-else"
		}), corev1.ServiceAccountNameKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if why := acc.Stale(accessInput(t, tc.change(objs), rbac.AggregationStored), opts); !strings.Contains(why, tc.want) {
				t.Errorf("Stale = %q, want it to say %q", why, tc.want)
			}
		})
	}

	t.Run("options", func(t *testing.T) {
		in := accessInput(t, objs, rbac.AggregationStored)
		if why := acc.Stale(in, opts); why != "" {
			t.Fatalf("Stale on the same world: %q", why)
		}
		deeper := opts
		deeper.Paths.MaxDepth = 2
		if why := acc.Stale(in, deeper); why == "" {
			t.Error("Stale does not see other path options")
		}
		in.Aggregation = rbac.AggregationComputed
		if why := acc.Stale(in, opts); why == "" {
			t.Error("Stale does not see another aggregation mode")
		}
	})

	// A new resource version with the same content is no change: the
	// source drops fields whose updates still bump it.
	t.Run("resource version alone", func(t *testing.T) {
		bumped := make([]runtime.Object, len(objs))
		for i, o := range objs {
			c := o.DeepCopyObject()
			if m, ok := c.(interface{ SetResourceVersion(string) }); ok {
				m.SetResourceVersion(fmt.Sprint(10_000 + i))
			}
			bumped[i] = c
		}
		if why := acc.Stale(accessInput(t, bumped, rbac.AggregationStored), opts); why != "" {
			t.Errorf("Stale = %q after resource versions alone changed", why)
		}
	})
}
