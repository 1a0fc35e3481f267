package exposure

import (
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

func reader(kind, ns, name, bindingKind string) rbac.Reader {
	b := inventory.Ref{Kind: bindingKind, Name: "b"}
	if bindingKind == "RoleBinding" {
		b.Namespace = "team"
	}
	role := inventory.Ref{Kind: "ClusterRole", Name: "r"}
	return rbac.Reader{Subject: rbac.Subject{Kind: kind, Namespace: ns, Name: name}, Verbs: rbac.AllReadVerbs,
		Via: []rbac.Via{{Binding: &b, Role: &role}}}
}

func TestAssess(t *testing.T) {
	secret := &inventory.Secret{Namespace: "team", Name: "db"}
	controller := rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: "kube-system", Name: "namespace-controller"}
	opts := Options{Expected: map[rbac.Subject]bool{controller: true}}
	many := func(n int) []rbac.Reader {
		var out []rbac.Reader
		for i := 0; i < n; i++ {
			out = append(out, reader("User", "", "u"+string(rune('a'+i)), "RoleBinding"))
		}
		return out
	}
	tests := []struct {
		name    string
		readers []rbac.Reader
		want    finding.Severity
		rule    string
	}{
		{"only system:masters", []rbac.Reader{rbac.Superuser}, finding.Info, ""},
		{"only expected control-plane readers", []rbac.Reader{rbac.Superuser, {Subject: controller, Verbs: rbac.AllReadVerbs}}, finding.Info, ""},
		{"the app's own ServiceAccount", []rbac.Reader{reader("ServiceAccount", "team", "app", "RoleBinding")}, finding.Low, ""},
		{"system:authenticated", []rbac.Reader{reader("Group", "", "system:authenticated", "RoleBinding")}, finding.Critical, finding.SecretReadableByEveryone},
		{"system:unauthenticated", []rbac.Reader{reader("Group", "", "system:unauthenticated", "RoleBinding")}, finding.Critical, finding.SecretReadableByEveryone},
		{"system:serviceaccounts", []rbac.Reader{reader("Group", "", "system:serviceaccounts", "RoleBinding")}, finding.Critical, finding.SecretReadableByEveryone},
		{"system:anonymous", []rbac.Reader{reader("User", "", "system:anonymous", "RoleBinding")}, finding.Critical, finding.SecretReadableByEveryone},
		{"ServiceAccount of another namespace", []rbac.Reader{reader("ServiceAccount", "other", "app", "RoleBinding")}, finding.High, finding.SecretReadableOutsideNS},
		{"every ServiceAccount of another namespace", []rbac.Reader{reader("Group", "", "system:serviceaccounts:other", "RoleBinding")}, finding.High, finding.SecretReadableOutsideNS},
		{"every ServiceAccount of its own namespace", []rbac.Reader{reader("Group", "", "system:serviceaccounts:team", "RoleBinding")}, finding.Low, ""},
		{"a user granted cluster-wide", []rbac.Reader{reader("User", "", "alice", "ClusterRoleBinding")}, finding.High, finding.SecretReadableOutsideNS},
		{"exactly the limit of principals", many(DefaultManyPrincipals), finding.Low, ""},
		{"one more than the limit", many(DefaultManyPrincipals + 1), finding.Medium, finding.SecretReadableByMany},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Assess(secret, tt.readers, opts)
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
	readers := []rbac.Reader{reader("Group", "", "system:authenticated", "RoleBinding"), reader("ServiceAccount", "ci", "deployer", "ClusterRoleBinding")}
	a := Assess(secret, readers, Options{})
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
