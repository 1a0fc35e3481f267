package exposure

import (
	"reflect"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

func reader(kind, ns, name, bindingKind string) paths.Reader {
	return readerIn(kind, ns, name, bindingKind, "team")
}

// readerIn is a direct reader whose RoleBinding (if bindingKind is one) is
// in bindingNS.
func readerIn(kind, ns, name, bindingKind, bindingNS string) paths.Reader {
	b := inventory.Ref{Kind: bindingKind, Name: "b"}
	if bindingKind == "RoleBinding" {
		b.Namespace = bindingNS
	}
	role := inventory.Ref{Kind: "ClusterRole", Name: "r"}
	return paths.Reader{Subject: rbac.Subject{Kind: kind, Namespace: ns, Name: name}, Kind: paths.Direct, Verbs: rbac.AllReadVerbs.Names(),
		Via: []rbac.Via{{Binding: &b, Role: &role}}}
}

// indirect turns r into an indirect reader whose path has n steps, the
// first of the given kind.
func indirect(r paths.Reader, kind paths.Kind, n int) paths.Reader {
	r.Kind = kind
	r.Steps = make([]paths.Step, n)
	r.Steps[0] = paths.Step{Kind: kind, Permission: paths.Permission{Verb: "create", Resource: "pods", Namespace: "team"}, Via: r.Via}
	return r
}

func superuser() paths.Reader {
	return paths.Reader{Subject: rbac.Superuser.Subject, Kind: paths.Direct, Verbs: rbac.AllReadVerbs.Names(), Via: rbac.Superuser.Via}
}

func TestAssess(t *testing.T) {
	secret := &inventory.Secret{Namespace: "team", Name: "db"}
	controller := rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: "kube-system", Name: "namespace-controller"}
	opts := Options{Expected: map[rbac.Subject]bool{controller: true}}
	many := func(n int) []paths.Reader {
		var out []paths.Reader
		for i := 0; i < n; i++ {
			out = append(out, reader("User", "", "u"+string(rune('a'+i)), "RoleBinding"))
		}
		return out
	}
	tests := []struct {
		name    string
		readers []paths.Reader
		want    finding.Severity
		rule    string
	}{
		{"only system:masters", []paths.Reader{superuser()}, finding.Info, ""},
		{"only expected control-plane readers", []paths.Reader{superuser(), {Subject: controller, Kind: paths.Direct}}, finding.Info, ""},
		{"an expected controller by pod-create", []paths.Reader{superuser(), indirect(paths.Reader{Subject: controller}, paths.PodCreate, 1)}, finding.Info, ""},
		{"the kubelet of a node running a pod that uses it", []paths.Reader{{Subject: rbac.Subject{Kind: rbac.KindUser, Name: "system:node:n1"}, Kind: paths.NodeAuthorizer,
			Steps: []paths.Step{{Kind: paths.NodeAuthorizer}}}}, finding.Info, ""},
		{"someone who reaches a kubelet's identity", []paths.Reader{indirect(reader("User", "", "system:node:n1", "RoleBinding"), paths.Impersonate, 2)}, finding.Medium, finding.SecretReadableIndirectly},
		{"a team member by pod-create in the namespace", []paths.Reader{indirect(reader("User", "", "dev", "RoleBinding"), paths.PodCreate, 1)}, finding.Medium, finding.SecretReadableIndirectly},
		{"a team ServiceAccount by token-mint", []paths.Reader{indirect(reader("ServiceAccount", "team", "ci", "RoleBinding"), paths.TokenMint, 2)}, finding.Medium, finding.SecretReadableIndirectly},
		{"a user by node-escape from another namespace", []paths.Reader{indirect(readerIn("User", "", "dev", "RoleBinding", "sandbox"), paths.NodeEscape, 2)}, finding.High, finding.SecretReadableOutsideNS},
		{"a user by impersonation granted cluster-wide", []paths.Reader{indirect(reader("User", "", "dev", "ClusterRoleBinding"), paths.Impersonate, 2)}, finding.High, finding.SecretReadableOutsideNS},
		{"everyone by pod-create", []paths.Reader{indirect(reader("Group", "", "system:authenticated", "RoleBinding"), paths.PodCreate, 1)}, finding.Critical, finding.SecretReadableByEveryone},
		{"the app's own ServiceAccount", []paths.Reader{reader("ServiceAccount", "team", "app", "RoleBinding")}, finding.Low, ""},
		{"system:authenticated", []paths.Reader{reader("Group", "", "system:authenticated", "RoleBinding")}, finding.Critical, finding.SecretReadableByEveryone},
		{"system:unauthenticated", []paths.Reader{reader("Group", "", "system:unauthenticated", "RoleBinding")}, finding.Critical, finding.SecretReadableByEveryone},
		{"system:serviceaccounts", []paths.Reader{reader("Group", "", "system:serviceaccounts", "RoleBinding")}, finding.Critical, finding.SecretReadableByEveryone},
		{"system:anonymous", []paths.Reader{reader("User", "", "system:anonymous", "RoleBinding")}, finding.Critical, finding.SecretReadableByEveryone},
		{"ServiceAccount of another namespace", []paths.Reader{reader("ServiceAccount", "other", "app", "RoleBinding")}, finding.High, finding.SecretReadableOutsideNS},
		{"every ServiceAccount of another namespace", []paths.Reader{reader("Group", "", "system:serviceaccounts:other", "RoleBinding")}, finding.High, finding.SecretReadableOutsideNS},
		{"every ServiceAccount of its own namespace", []paths.Reader{reader("Group", "", "system:serviceaccounts:team", "RoleBinding")}, finding.Low, ""},
		{"a user granted cluster-wide", []paths.Reader{reader("User", "", "alice", "ClusterRoleBinding")}, finding.High, finding.SecretReadableOutsideNS},
		{"exactly the limit of principals", many(DefaultManyPrincipals), finding.Low, ""},
		{"one more than the limit", many(DefaultManyPrincipals + 1), finding.Medium, finding.SecretReadableByMany},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Assess(secret, paths.Readers{Shared: tt.readers}, opts)
			if a.Severity != tt.want {
				t.Fatalf("severity %s, want %s (reasons %+v)", a.Severity, tt.want, a.Reasons)
			}
			if tt.rule == "" && len(a.Reasons) != 0 {
				t.Errorf("unexpected reasons %+v", a.Reasons)
			}
			if tt.rule != "" && (len(a.Reasons) == 0 || a.Reasons[0].Rule != tt.rule) {
				t.Errorf("reasons %+v, want first %s", a.Reasons, tt.rule)
			}
			b := bands[a.Severity]
			if a.Score < b[0] || a.Score > b[1] {
				t.Errorf("score %d outside the %s band %v", a.Score, a.Severity, b)
			}
		})
	}
}

func TestEveryApplicableReasonIsReported(t *testing.T) {
	secret := &inventory.Secret{Namespace: "team", Name: "db"}
	readers := []paths.Reader{reader("Group", "", "system:authenticated", "RoleBinding"), reader("ServiceAccount", "ci", "deployer", "ClusterRoleBinding")}
	a := Assess(secret, paths.Readers{Shared: readers}, Options{})
	if len(a.Reasons) != 2 || a.Reasons[0].Rule != finding.SecretReadableByEveryone || a.Reasons[1].Rule != finding.SecretReadableOutsideNS {
		t.Fatalf("reasons %+v, want KH101 then KH102", a.Reasons)
	}
	if !strings.Contains(a.Reasons[1].Text, "ServiceAccount/ci/deployer via ClusterRoleBinding/b") {
		t.Errorf("reason %q does not name the reader and its binding", a.Reasons[1].Text)
	}
	if a.Top[0].Name != "system:authenticated" || a.Top[1].Name != "deployer" {
		t.Errorf("top %+v: everyone first, then outside readers", a.Top)
	}
}

func TestScoreOrdersWithinAndAcrossBands(t *testing.T) {
	if score(finding.High, 1) >= score(finding.High, 5) {
		t.Error("more principals do not score higher")
	}
	if score(finding.High, 1000) >= score(finding.Critical, 1) {
		t.Error("a high Secret outranks a critical one")
	}
	if score(finding.Low, 1000) != 39 {
		t.Error("score is not capped at the band ceiling")
	}
}

func TestShorterPathsScoreHigher(t *testing.T) {
	secret := &inventory.Secret{Namespace: "team", Name: "db"}
	near := Assess(secret, paths.Readers{Shared: []paths.Reader{indirect(reader("User", "", "a", "RoleBinding"), paths.PodCreate, 1)}}, Options{})
	far := Assess(secret, paths.Readers{Shared: []paths.Reader{indirect(reader("User", "", "a", "RoleBinding"), paths.Impersonate, 4)}}, Options{})
	if near.Severity != far.Severity {
		t.Fatalf("severities differ: %s, %s", near.Severity, far.Severity)
	}
	if near.Score <= far.Score {
		t.Errorf("a one-step path scores %d, a four-step one %d: shorter paths must score higher", near.Score, far.Score)
	}
	if near.Indirect != 1 || near.Direct != 0 || near.Principals != 1 {
		t.Errorf("counts direct %d indirect %d principals %d, want 0 1 1", near.Direct, near.Indirect, near.Principals)
	}
}

func TestIndirectReasonNamesThePath(t *testing.T) {
	secret := &inventory.Secret{Namespace: "team", Name: "db"}
	a := Assess(secret, paths.Readers{Shared: []paths.Reader{indirect(reader("User", "", "dev", "RoleBinding"), paths.PodCreate, 1)}}, Options{})
	want := "User/dev by pod-create (create pods in namespace team) via RoleBinding/team/b"
	if len(a.Reasons) != 1 || !strings.Contains(a.Reasons[0].Text, want) {
		t.Fatalf("reasons %+v, want one naming %q", a.Reasons, want)
	}
}

// TestAssessorSharesListsExactly: an Assessor classifies a shared list
// once for every Secret of a namespace, and each Secret's own entries,
// which replace shared ones of the same subject, are classified apart. Its
// assessments equal the plain list's, Secret by Secret.
func TestAssessorSharesListsExactly(t *testing.T) {
	shared := []paths.Reader{
		reader("Group", "", "system:authenticated", "ClusterRoleBinding"),
		indirect(reader("ServiceAccount", "team", "ci", "RoleBinding"), paths.PodCreate, 1),
		reader("User", "", "alice", "RoleBinding"),
		reader("User", "", "bob", "RoleBinding"),
	}
	// alice's own entry replaces her shared one (now from outside the
	// namespace); zed is the Secret's own only.
	own := []paths.Reader{
		reader("User", "", "alice", "ClusterRoleBinding"),
		indirect(reader("User", "", "zed", "RoleBinding"), paths.Impersonate, 3),
	}
	secrets := []struct {
		secret  *inventory.Secret
		readers paths.Readers
	}{
		{&inventory.Secret{Namespace: "team", Name: "a"}, paths.Readers{Shared: shared}},
		{&inventory.Secret{Namespace: "team", Name: "b"}, paths.Readers{Shared: shared, Own: own}},
		{&inventory.Secret{Namespace: "other", Name: "c"}, paths.Readers{Shared: shared}},
	}
	x := NewAssessor(Options{ManyPrincipals: 2})
	for _, s := range secrets {
		got := x.Assess(s.secret, s.readers)
		want := Assess(s.secret, paths.Readers{Shared: s.readers.Slice()}, Options{ManyPrincipals: 2})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s/%s:\n got %+v\nwant %+v", s.secret.Namespace, s.secret.Name, got, want)
		}
	}
	// The overlay shows: alice reads b from outside the namespace.
	if b := x.Assess(secrets[1].secret, secrets[1].readers); !strings.Contains(b.Reasons[1].Text, "User/alice via ClusterRoleBinding/b") {
		t.Errorf("b's outside reason %q does not name alice's own entry", b.Reasons[1].Text)
	}
}
