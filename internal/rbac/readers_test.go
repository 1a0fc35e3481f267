package rbac

import (
	"reflect"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var readSecrets = rule(s("get", "list", "watch"), s(""), s("secrets"))

func TestReaders(t *testing.T) {
	tests := []struct {
		name   string
		world  *world
		ns     string
		secret string
		want   map[string]Verbs
	}{
		{
			name:  "RoleBinding to a Role grants in its namespace",
			world: (&world{}).secret("a", "db").role("a", "r", readSecrets).roleBinding("a", "b", "Role", "r", user("alice")),
			ns:    "a", secret: "db",
			want: map[string]Verbs{"User/alice": AllReadVerbs},
		},
		{
			name:  "RoleBinding does not grant in another namespace",
			world: (&world{}).secret("b", "db").role("a", "r", readSecrets).roleBinding("a", "b", "Role", "r", user("alice")),
			ns:    "b", secret: "db",
			want: map[string]Verbs{},
		},
		{
			name:  "RoleBinding to a ClusterRole grants only in the binding's namespace",
			world: (&world{}).secret("a", "db").secret("b", "db").clusterRole("cr", nil, nil, readSecrets).roleBinding("a", "b", "ClusterRole", "cr", user("alice")),
			ns:    "b", secret: "db",
			want: map[string]Verbs{},
		},
		{
			name:  "ClusterRoleBinding grants in every namespace",
			world: (&world{}).secret("z", "db").clusterRole("cr", nil, nil, rule(s("get"), s(""), s("secrets"))).clusterRoleBinding("b", "cr", group("ops")),
			ns:    "z", secret: "db",
			want: map[string]Verbs{"Group/ops": VerbGet},
		},
		{
			name:  "RoleBinding to a Role in another namespace does not resolve",
			world: (&world{}).secret("a", "db").role("b", "r", readSecrets).roleBinding("a", "b", "Role", "r", user("alice")),
			ns:    "a", secret: "db",
			want: map[string]Verbs{},
		},
		{
			name:  "missing role grants nothing but other bindings still apply",
			world: (&world{}).secret("a", "db").role("a", "r", readSecrets).roleBinding("a", "dangling", "Role", "gone", user("bob")).roleBinding("a", "ok", "Role", "r", user("alice")),
			ns:    "a", secret: "db",
			want: map[string]Verbs{"User/alice": AllReadVerbs},
		},
		{
			name:  "name-restricted rule reaches only that Secret",
			world: (&world{}).secret("a", "db").secret("a", "web").role("a", "r", rule(s("get", "list", "watch"), s(""), s("secrets"), "db")).roleBinding("a", "b", "Role", "r", user("alice")),
			ns:    "a", secret: "db",
			want: map[string]Verbs{"User/alice": AllReadVerbs},
		},
		{
			name:  "name-restricted rule near miss",
			world: (&world{}).secret("a", "db").secret("a", "web").role("a", "r", rule(s("get"), s(""), s("secrets"), "db")).roleBinding("a", "b", "Role", "r", user("alice")),
			ns:    "a", secret: "web",
			want: map[string]Verbs{},
		},
		{
			name: "verbs are the union over grants",
			world: (&world{}).secret("a", "db").
				role("a", "g", rule(s("get"), s(""), s("secrets"))).role("a", "w", rule(s("watch"), s(""), s("secrets"), "db")).
				roleBinding("a", "b1", "Role", "g", user("alice")).roleBinding("a", "b2", "Role", "w", user("alice")),
			ns: "a", secret: "db",
			want: map[string]Verbs{"User/alice": VerbGet | VerbWatch},
		},
		{
			name:  "non-read verbs grant no read",
			world: (&world{}).secret("a", "db").role("a", "r", rule(s("create", "update", "delete", "patch"), s(""), s("secrets"))).roleBinding("a", "b", "Role", "r", user("alice")),
			ns:    "a", secret: "db",
			want: map[string]Verbs{},
		},
		{
			name:  "ServiceAccount without namespace in a RoleBinding is the binding's namespace",
			world: (&world{}).secret("a", "db").role("a", "r", readSecrets).roleBinding("a", "b", "Role", "r", rbacv1.Subject{Kind: "ServiceAccount", Name: "app"}),
			ns:    "a", secret: "db",
			want: map[string]Verbs{"ServiceAccount/a/app": AllReadVerbs},
		},
		{
			name:  "ServiceAccount without namespace in a ClusterRoleBinding matches no one",
			world: (&world{}).secret("a", "db").clusterRole("cr", nil, nil, readSecrets).clusterRoleBinding("b", "cr", rbacv1.Subject{Kind: "ServiceAccount", Name: "app"}),
			ns:    "a", secret: "db",
			want: map[string]Verbs{},
		},
		{
			name:  "User system:serviceaccount:NS:NAME is that ServiceAccount",
			world: (&world{}).secret("a", "db").role("a", "r", readSecrets).roleBinding("a", "b", "Role", "r", user("system:serviceaccount:ci:deployer"), sa("ci", "deployer")),
			ns:    "a", secret: "db",
			want: map[string]Verbs{"ServiceAccount/ci/deployer": AllReadVerbs},
		},
		{
			name:  "malformed ServiceAccount user name stays a User",
			world: (&world{}).secret("a", "db").role("a", "r", readSecrets).roleBinding("a", "b", "Role", "r", user("system:serviceaccount:ci")),
			ns:    "a", secret: "db",
			want: map[string]Verbs{"User/system:serviceaccount:ci": AllReadVerbs},
		},
		{
			name:  "groups are reported as groups",
			world: (&world{}).secret("a", "db").clusterRole("cr", nil, nil, readSecrets).clusterRoleBinding("b", "cr", group("system:authenticated"), group("system:serviceaccounts:ci")),
			ns:    "a", secret: "db",
			want: map[string]Verbs{"Group/system:authenticated": AllReadVerbs, "Group/system:serviceaccounts:ci": AllReadVerbs},
		},
		{
			name:  "unknown subject kind is ignored",
			world: (&world{}).secret("a", "db").role("a", "r", readSecrets).roleBinding("a", "b", "Role", "r", rbacv1.Subject{Kind: "Robot", Name: "r2"}, user("alice")),
			ns:    "a", secret: "db",
			want: map[string]Verbs{"User/alice": AllReadVerbs},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readersOf(t, tt.world.build(t), AggregationComputed, tt.ns, tt.secret)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("readers = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSystemMastersAlwaysReads(t *testing.T) {
	inv := (&world{}).secret("a", "db").build(t)
	readers := NewReadIndex(NewPolicy(inv, AggregationComputed)).Readers("a", "db")
	if len(readers) != 1 || readers[0].Subject != (Subject{Kind: KindGroup, Name: GroupMasters}) || !readers[0].Via[0].Superuser || readers[0].Verbs != AllReadVerbs {
		t.Fatalf("readers = %+v, want only system:masters as superuser", readers)
	}
}

func TestReaderViaListsEveryGrant(t *testing.T) {
	inv := (&world{}).secret("a", "db").role("a", "r", readSecrets).clusterRole("cr", nil, nil, readSecrets).
		roleBinding("a", "b2", "Role", "r", user("alice"), user("alice")).
		roleBinding("a", "b1", "ClusterRole", "cr", user("alice")).
		clusterRoleBinding("c", "cr", user("alice")).build(t)
	var alice *Reader
	readers := NewReadIndex(NewPolicy(inv, AggregationComputed)).Readers("a", "db")
	for i := range readers {
		if readers[i].Subject.Name == "alice" {
			alice = &readers[i]
		}
	}
	if alice == nil {
		t.Fatal("alice is not a reader")
	}
	var got []string
	for _, v := range alice.Via {
		got = append(got, v.Binding.String()+" -> "+v.Role.String())
	}
	want := []string{"ClusterRoleBinding/c -> ClusterRole/cr", "RoleBinding/a/b1 -> ClusterRole/cr", "RoleBinding/a/b2 -> Role/a/r"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("via = %q, want %q", got, want)
	}
}

func TestReadersDoNotShareMutations(t *testing.T) {
	// Two Secrets share the namespace's reader list; a name-restricted
	// grant on one must not leak into the other.
	inv := (&world{}).secret("a", "db").secret("a", "web").
		role("a", "all", readSecrets).role("a", "named", rule(s("get"), s(""), s("secrets"), "db")).
		roleBinding("a", "b1", "Role", "all", user("alice")).roleBinding("a", "b2", "Role", "named", user("alice"), user("bob")).build(t)
	ix := NewReadIndex(NewPolicy(inv, AggregationComputed))
	_ = ix.Readers("a", "db")
	web := ix.Readers("a", "web")
	for _, r := range web {
		if r.Subject.Name == "bob" || len(r.Via) != 1 {
			t.Errorf("web reader %+v carries db's name-restricted grant", r)
		}
	}
}

func selector(labels map[string]string) rbacv1.AggregationRule {
	return rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: labels}}}
}

func TestAggregation(t *testing.T) {
	toEdit := map[string]string{"agg/edit": "true"}
	toAdmin := map[string]string{"agg/admin": "true"}
	editSel, adminSel := selector(toEdit), selector(toAdmin)

	t.Run("union replaces own rules and is transitive", func(t *testing.T) {
		inv := (&world{}).secret("a", "db").
			clusterRole("admin", nil, &adminSel, rule(s("delete"), s(""), s("nodes"))).
			clusterRole("edit", toAdmin, &editSel, rule(s("get"), s(""), s("secrets"))). // own rule is replaced
			clusterRole("secret-reader", toEdit, nil, rule(s("list"), s(""), s("secrets"))).
			roleBinding("a", "b", "ClusterRole", "admin", user("alice")).
			roleBinding("a", "c", "ClusterRole", "edit", user("carol")).build(t)
		got := readersOf(t, inv, AggregationComputed, "a", "db")
		want := map[string]Verbs{"User/alice": VerbList, "User/carol": VerbList}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("computed readers = %v, want %v", got, want)
		}
		// Stored mode uses the rules as written.
		got = readersOf(t, inv, AggregationStored, "a", "db")
		want = map[string]Verbs{"User/carol": VerbGet}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("stored readers = %v, want %v", got, want)
		}
	})

	t.Run("cycles terminate", func(t *testing.T) {
		a := selector(map[string]string{"to-a": "true"})
		b := selector(map[string]string{"to-b": "true"})
		inv := (&world{}).secret("x", "db").
			clusterRole("a", map[string]string{"to-b": "true"}, &a).
			clusterRole("b", map[string]string{"to-a": "true"}, &b).
			clusterRole("leaf", map[string]string{"to-a": "true"}, nil, rule(s("get"), s(""), s("secrets"))).
			clusterRoleBinding("bind", "b", user("u")).build(t)
		got := readersOf(t, inv, AggregationComputed, "x", "db")
		if !reflect.DeepEqual(got, map[string]Verbs{"User/u": VerbGet}) {
			t.Errorf("readers through a cycle = %v", got)
		}
	})

	t.Run("a role does not aggregate itself", func(t *testing.T) {
		self := selector(map[string]string{"me": "true"})
		other := rule(s("list"), s(""), s("pods"))
		inv := (&world{}).clusterRole("me", map[string]string{"me": "true"}, &self, readSecrets).
			clusterRole("other", map[string]string{"me": "true"}, nil, other).build(t)
		rules, _ := AggregateClusterRoles(inv.ClusterRoles)
		if !SameRules(rules["me"], []rbacv1.PolicyRule{other}) {
			t.Errorf("self-aggregation: rules %v, want only the other role's", rules["me"])
		}
	})

	t.Run("selecting no rules keeps the role's own", func(t *testing.T) {
		// The controller applies an empty union as no rules field at all
		// (server-side apply), so the rules the role was created with
		// stay. Seen on a real v1.34 control plane by the differential
		// test.
		none := selector(map[string]string{"nobody": "true"})
		inv := (&world{}).secret("a", "db").clusterRole("lonely", nil, &none, readSecrets).
			clusterRoleBinding("b", "lonely", user("lena")).build(t)
		if got := readersOf(t, inv, AggregationComputed, "a", "db"); !reflect.DeepEqual(got, map[string]Verbs{"User/lena": AllReadVerbs}) {
			t.Errorf("readers = %v, want lena through the role's own rules", got)
		}
	})

	t.Run("empty selector matches every role, nil selector list none", func(t *testing.T) {
		all := rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{}}}
		none := rbacv1.AggregationRule{}
		inv := (&world{}).clusterRole("all", nil, &all).clusterRole("none", nil, &none).clusterRole("x", nil, nil, readSecrets).build(t)
		rules, _ := AggregateClusterRoles(inv.ClusterRoles)
		if len(rules["all"]) != 1 || len(rules["none"]) != 0 {
			t.Errorf("all=%v none=%v", rules["all"], rules["none"])
		}
	})

	t.Run("invalid selector is an error naming the role", func(t *testing.T) {
		bad := rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Near"}}}}}
		inv := (&world{}).clusterRole("bad", nil, &bad).build(t)
		_, errs := AggregateClusterRoles(inv.ClusterRoles)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "ClusterRole/bad") {
			t.Errorf("errs = %v", errs)
		}
	})
}

func TestSameRules(t *testing.T) {
	a := []rbacv1.PolicyRule{rule(s("get"), s(""), s("secrets")), rule(s("list"), s(""), s("pods"))}
	b := []rbacv1.PolicyRule{a[1], a[0], a[0]}
	if !SameRules(a, b) {
		t.Error("same rules in another order are not the same")
	}
	if SameRules(a, a[:1]) {
		t.Error("a subset is the same")
	}
}

// TestEmptyResourceNameListsEverything: resourceNames [""] matches the
// empty name of an unfiltered list or watch, so it reads every Secret in
// scope; get always names a Secret and is not granted.
func TestEmptyResourceNameListsEverything(t *testing.T) {
	inv := (&world{}).secret("a", "db").role("a", "r", rule(s("get", "list", "watch"), s(""), s("secrets"), "")).
		roleBinding("a", "b", "Role", "r", user("mallory")).build(t)
	got := readersOf(t, inv, AggregationComputed, "a", "db")
	if want := map[string]Verbs{"User/mallory": VerbList | VerbWatch}; !reflect.DeepEqual(got, want) {
		t.Errorf("readers = %v, want %v", got, want)
	}
}

func TestOrderDependentAggregation(t *testing.T) {
	a := selector(map[string]string{"to-a": "true"})
	b := selector(map[string]string{"to-b": "true"})
	own := rule(s("get"), s(""), s("secrets"))
	inv := (&world{}).
		clusterRole("a", map[string]string{"to-b": "true"}, &a, own). // on a cycle, with its own rules
		clusterRole("b", map[string]string{"to-a": "true"}, &b).      // on the cycle, none of its own
		clusterRole("c", nil, &a, own).                               // own rules, not on a cycle
		build(t)
	if got := OrderDependentAggregation(inv.ClusterRoles); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("order-dependent roles = %v, want [a]", got)
	}
}

func TestWhoCan(t *testing.T) {
	inv := (&world{}).
		role("a", "exec", rule(s("create"), s(""), s("pods/exec"), "web")).
		clusterRole("impersonator", nil, nil, rule(s("impersonate"), s(""), s("users"))).
		roleBinding("a", "devs-exec", "Role", "exec", group("devs")).
		roleBinding("a", "ns-impersonate", "ClusterRole", "impersonator", user("bob")).
		clusterRoleBinding("admins-impersonate", "impersonator", user("carol")).
		build(t)
	p := NewPolicy(inv, AggregationComputed)
	names := func(gs []Grantee) []string {
		var out []string
		for _, g := range gs {
			out = append(out, g.Subject.String())
		}
		return out
	}
	if got := names(p.WhoCan(Attributes{Verb: "create", Resource: "pods", Subresource: "exec", Name: "web"}, "a")); !reflect.DeepEqual(got, []string{"Group/devs"}) {
		t.Errorf("exec into web: %v", got)
	}
	if got := names(p.WhoCan(Attributes{Verb: "create", Resource: "pods", Subresource: "exec", Name: "db"}, "a")); len(got) != 0 {
		t.Errorf("exec into db (another name): %v", got)
	}
	// A RoleBinding never grants a cluster-scoped request.
	if got := names(p.WhoCan(Attributes{Verb: "impersonate", Resource: "users", Name: "alice"}, "")); !reflect.DeepEqual(got, []string{"User/carol"}) {
		t.Errorf("impersonate users cluster-wide: %v", got)
	}
	if got := names(p.WhoCan(Attributes{Verb: "impersonate", Resource: "users", Name: "alice"}, "a")); !reflect.DeepEqual(got, []string{"User/bob", "User/carol"}) {
		t.Errorf("impersonate users in namespace a: %v", got)
	}
}
