package synthetic_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/synthetic"
)

func yamlOf(t *testing.T, seed int64, size synthetic.Size) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := synthetic.WriteYAML(&buf, synthetic.Generate(seed, size)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDeterministic(t *testing.T) {
	size := synthetic.Scale(2000)
	size.Pods, size.Nodes = 300, 7
	a, b := yamlOf(t, 42, size), yamlOf(t, 42, size)
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed gave two different worlds")
	}
	if c := yamlOf(t, 43, size); bytes.Equal(a, c) {
		t.Fatal("seeds 42 and 43 gave the same world")
	}
	size.Indirect = true
	a, b = yamlOf(t, 42, size), yamlOf(t, 42, size)
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed gave two different indirect worlds")
	}
	if c := yamlOf(t, 43, size); bytes.Equal(a, c) {
		t.Fatal("seeds 42 and 43 gave the same indirect world")
	}
}

func TestScale(t *testing.T) {
	got := synthetic.Scale(100_000)
	want := synthetic.Size{Namespaces: 5000, Secrets: 100_000, Roles: 18_000, ClusterRoles: 2000,
		RoleBindings: 48_000, ClusterRoleBindings: 2000, ServiceAccounts: 30_000}
	if got != want {
		t.Errorf("Scale(100000) = %+v, want %+v", got, want)
	}
	if got := synthetic.Scale(10); got.Namespaces != 1 {
		t.Errorf("Scale(10).Namespaces = %d, want 1", got.Namespaces)
	}
}

func TestSizesHonoured(t *testing.T) {
	withPods := synthetic.Scale(3000)
	withPods.Pods, withPods.Nodes = 500, 12
	sizes := map[string]synthetic.Size{
		"empty":         {},
		"scale 300":     synthetic.Scale(300),
		"scale 3000":    withPods,
		"no namespaces": {Secrets: 50, Roles: 10, ClusterRoles: 20, RoleBindings: 30, ClusterRoleBindings: 5, ServiceAccounts: 4, Pods: 3},
		"tiny":          {Namespaces: 1, Secrets: 1, Roles: 1, ClusterRoles: 1, RoleBindings: 1, ClusterRoleBindings: 1, ServiceAccounts: 1, Pods: 1, Nodes: 1},
		"no secrets":    {Namespaces: 10, Roles: 40, ClusterRoles: 30, RoleBindings: 60, ClusterRoleBindings: 10, ServiceAccounts: 20},
	}
	for name, size := range maps.Clone(sizes) {
		size.Indirect = true
		sizes[name+", indirect"] = size
	}
	for name, size := range sizes {
		t.Run(name, func(t *testing.T) {
			ex := size.Extras()
			if !size.Indirect && ex != (synthetic.Extras{}) {
				t.Errorf("Extras() = %+v without Indirect", ex)
			}
			want := map[string]int{
				"Namespace": size.Namespaces, "Secret": size.Secrets + ex.Secrets, "Role": size.Roles + ex.Roles,
				"ClusterRole": size.ClusterRoles + ex.ClusterRoles, "RoleBinding": size.RoleBindings + ex.RoleBindings,
				"ClusterRoleBinding": size.ClusterRoleBindings + ex.ClusterRoleBindings, "ServiceAccount": size.ServiceAccounts,
				"Pod": size.Pods, "Node": size.Nodes,
				"PersistentVolumeClaim": ex.PersistentVolumeClaims, "PersistentVolume": ex.PersistentVolumes,
			}
			got := map[string]int{}
			for _, o := range synthetic.Generate(1, size) {
				got[o.GetObjectKind().GroupVersionKind().Kind]++
			}
			// The inventory replaces objects with the same name, so equal
			// counts there also prove names are unique.
			counts := synthetic.Build(1, size).Counts()
			for kind, n := range want {
				if got[kind] != n {
					t.Errorf("Generate: %d %s objects, want %d", got[kind], kind, n)
				}
				if counts[kind] != n {
					t.Errorf("Build: %d %s objects in the inventory, want %d", counts[kind], kind, n)
				}
			}
		})
	}
}

// TestYAMLRoundTrip decodes the stream with the client-go scheme, as a
// manifest reader would, and expects the very objects back.
func TestYAMLRoundTrip(t *testing.T) {
	for _, indirect := range []bool{false, true} {
		t.Run(fmt.Sprintf("indirect=%v", indirect), func(t *testing.T) {
			size := synthetic.Scale(500)
			size.Pods, size.Nodes, size.Indirect = 50, 3, indirect
			testYAMLRoundTrip(t, synthetic.Generate(7, size))
		})
	}
}

func testYAMLRoundTrip(t *testing.T, objs []runtime.Object) {
	var buf bytes.Buffer
	if err := synthetic.WriteYAML(&buf, objs); err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(&buf))
	decoder := scheme.Codecs.UniversalDeserializer()
	var got []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		o, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("document %d: %v", len(got)+1, err)
		}
		got = append(got, o)
	}
	if len(got) != len(objs) {
		t.Fatalf("decoded %d documents, want %d", len(got), len(objs))
	}
	for i := range objs {
		if !apiequality.Semantic.DeepEqual(got[i], objs[i]) {
			t.Fatalf("document %d does not round-trip:\n got %#v\nwant %#v", i+1, got[i], objs[i])
		}
	}
}

// TestRealistic checks the features the benchmarks rely on: a world
// where Secret reads are the exception, by every route RBAC offers.
func TestRealistic(t *testing.T) {
	inv := synthetic.Build(1, synthetic.Scale(20_000))
	p := rbac.NewPolicy(inv, rbac.AggregationComputed)

	var rolesReading, rolesNamed, rolesNamedExisting, rolesWildcard int
	for _, r := range inv.Roles {
		all, names := rbac.SecretReads(r.Rules)
		if all != 0 || len(names) > 0 {
			rolesReading++
		}
		if len(names) > 0 {
			rolesNamed++
			for n := range names {
				if inv.Secret(r.Namespace, n) != nil {
					rolesNamedExisting++
					break
				}
			}
		}
		for _, rule := range r.Rules {
			if rbac.RuleAllows(&rule, rbac.Attributes{Verb: "get", Resource: "secrets", Name: "x"}) &&
				(strings.Join(rule.Verbs, ",") == "*" || strings.Join(rule.Resources, ",") == "*") {
				rolesWildcard++
				break
			}
		}
	}
	share := float64(rolesReading) / float64(len(inv.Roles))
	if share < 0.1 || share > 0.5 {
		t.Errorf("%.0f%% of Roles read Secrets; want a minority, but some", 100*share)
	}
	if rolesNamed == 0 || rolesNamedExisting < rolesNamed*9/10 || rolesWildcard == 0 {
		t.Errorf("Roles: %d with resourceNames (%d naming existing Secrets), %d with wildcards", rolesNamed, rolesNamedExisting, rolesWildcard)
	}

	var aggregated, aggregatedReading int
	for _, cr := range inv.ClusterRoles {
		if cr.AggregationRule == nil {
			continue
		}
		aggregated++
		if all, names := rbac.SecretReads(p.Computed[cr.Name]); all != 0 || len(names) > 0 {
			aggregatedReading++
		}
	}
	if aggregated < 5 || aggregatedReading == 0 {
		t.Errorf("%d aggregated ClusterRoles, %d of them read Secrets", aggregated, aggregatedReading)
	}

	var crbReading, dangling, missingRole int
	subjects := map[string]int{}
	for _, b := range p.Bindings() {
		if !b.RoleFound {
			dangling++
			if b.Role.Kind == "Role" {
				missingRole++
			}
		}
		all, names := rbac.SecretReads(b.Rules)
		if b.Namespace == "" && (all != 0 || len(names) > 0) {
			crbReading++
		}
		for _, s := range b.Subjects {
			kind := s.Kind
			if s.Kind == rbac.KindGroup && strings.HasPrefix(s.Name, rbac.GroupServiceAccountsPrefix) {
				kind = "namespace ServiceAccounts group"
			}
			if s.Kind == rbac.KindServiceAccount && b.Namespace != "" && s.Namespace != b.Namespace {
				kind = "foreign ServiceAccount"
			}
			subjects[kind]++
		}
	}
	if crbReading < 3 || crbReading > 60 {
		t.Errorf("%d ClusterRoleBindings read Secrets, want a few", crbReading)
	}
	if dangling == 0 || missingRole == 0 {
		t.Errorf("%d dangling bindings, %d to a missing Role", dangling, missingRole)
	}
	for _, kind := range []string{rbacv1.UserKind, rbacv1.GroupKind, rbacv1.ServiceAccountKind, "namespace ServiceAccounts group", "foreign ServiceAccount"} {
		if subjects[kind] == 0 {
			t.Errorf("no %s subject in %v", kind, subjects)
		}
	}

	// Secrets per namespace are uneven: the largest namespace holds many
	// times the mean.
	most := 0
	for _, ns := range inv.SecretNamespaces() {
		most = max(most, len(inv.SecretsIn(ns)))
	}
	if mean := len(inv.Secrets) / len(inv.Namespaces); most < 10*mean {
		t.Errorf("largest namespace holds %d Secrets, mean %d: not uneven enough", most, mean)
	}
}
