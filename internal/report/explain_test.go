package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// explainGoldenDir is the repository's golden directory, shared with the
// CLI's golden reports.
const explainGoldenDir = "../../testdata/golden"

func binding(kind, ns, name string) *ObjectRef {
	return &ObjectRef{Kind: kind, Namespace: ns, Name: name}
}

func rbacVia(bkind, bns, bname, rkind, rns, rname string) Via {
	return Via{Binding: binding(bkind, bns, bname), Role: binding(rkind, rns, rname)}
}

// explainedSecret is a hand-made Secret with direct readers and one chain
// of each shape explain draws: impersonation then a direct read, a minted
// token, exec in a named pod, a node escape then the Node authorizer, and a
// role bound to oneself. One User's name holds every character DOT and
// terminals care about.
func explainedSecret() *Secret {
	secret := Subject{Kind: "Secret", Namespace: "walk", Name: "target"}
	reader := Subject{Kind: "ServiceAccount", Namespace: "walk", Name: "reader"}
	readTarget := Step{Kind: "direct", Subject: reader,
		Permission: Permission{Verb: "get", Resource: "secrets", Namespace: "walk", Name: "target"},
		Via:        []Via{rbacVia("RoleBinding", "walk", "read-target", "Role", "walk", "secret-reader")},
		Reaches:    secret}
	web := Subject{Kind: "ServiceAccount", Namespace: "walk", Name: "web"}
	webRead := readTarget
	webRead.Subject = web
	webRead.Via = []Via{rbacVia("RoleBinding", "walk", "web-read", "Role", "walk", "secret-reader")}
	node := Subject{Kind: "Node", Name: "node-1"}
	mallory := Subject{Kind: "User", Name: "mallory"}
	return &Secret{
		Namespace: "walk", Name: "target", Type: "Opaque", Keys: []string{"password", "username"},
		Exposure: Exposure{Score: 72, Severity: "high", Direct: 4, Indirect: 5, Principals: 8,
			Reasons: []string{"readable by ServiceAccount ci/deployer through ClusterRoleBinding ci-deployer", "readable indirectly by 5 subjects"}},
		// Deliberately out of order: the tree sorts.
		Readers: Readers([]Reader{
			{Subject: Subject{Kind: "User", Name: "mallory"}, Verbs: []string{"get"}, Path: "rbac-bind",
				Via: []Via{rbacVia("RoleBinding", "walk", "binder", "ClusterRole", "", "binder")},
				Steps: []Step{
					{Kind: "rbac-bind", Subject: mallory,
						Permission: Permission{Verb: "create", APIGroup: "rbac.authorization.k8s.io", Resource: "rolebindings", Namespace: "walk"},
						Via:        []Via{rbacVia("RoleBinding", "walk", "binder", "ClusterRole", "", "binder")},
						Reaches:    Subject{Kind: "ClusterRole", Name: "edit"},
						Detail:     "may bind ClusterRole edit in walk (bind verb on it)"},
					{Kind: "direct", Subject: mallory,
						Permission: Permission{Verb: "get", Resource: "secrets", Namespace: "walk", Name: "target"},
						Via:        []Via{{Role: binding("ClusterRole", "", "edit")}},
						Reaches:    secret},
				}},
			{Subject: Subject{Kind: "User", Name: "bob"}, Verbs: []string{"get"}, Path: "direct",
				Via: []Via{rbacVia("RoleBinding", "walk", "read-target", "Role", "walk", "secret-reader")}},
			{Subject: Subject{Kind: "User", Name: "alice"}, Verbs: []string{"get"}, Path: "impersonate",
				Via: []Via{rbacVia("ClusterRoleBinding", "", "impersonators", "ClusterRole", "", "impersonate-sa")},
				Steps: []Step{
					{Kind: "impersonate", Subject: Subject{Kind: "User", Name: "alice"},
						Permission: Permission{Verb: "impersonate", Resource: "serviceaccounts", Namespace: "walk", Name: "reader"},
						Via:        []Via{rbacVia("ClusterRoleBinding", "", "impersonators", "ClusterRole", "", "impersonate-sa")},
						Reaches:    reader},
					readTarget,
				}},
			{Subject: Subject{Kind: "Group", Name: "system:masters", Covers: "cluster superusers (RBAC is bypassed)"},
				Verbs: []string{"get", "list", "watch"}, Path: "direct", Expected: true,
				Via: []Via{{Superuser: true}, rbacVia("ClusterRoleBinding", "", "cluster-admin", "ClusterRole", "", "cluster-admin")}},
			{Subject: Subject{Kind: "Group", Name: "token-minters"}, Verbs: []string{"get"}, Path: "token-mint",
				Via: []Via{rbacVia("RoleBinding", "walk", "mint", "Role", "walk", "token-minter")},
				Steps: []Step{
					{Kind: "token-mint", Subject: Subject{Kind: "Group", Name: "token-minters"},
						Permission: Permission{Verb: "create", Resource: "serviceaccounts/token", Namespace: "walk", Name: "reader"},
						Via:        []Via{rbacVia("RoleBinding", "walk", "mint", "Role", "walk", "token-minter")},
						Reaches:    reader},
					readTarget,
				}},
			{Subject: Subject{Kind: "ServiceAccount", Namespace: "ci", Name: "deployer"}, Verbs: []string{"get", "list", "watch"}, Path: "direct",
				Via: []Via{rbacVia("ClusterRoleBinding", "", "ci-deployer", "ClusterRole", "", "cluster-admin")}},
			{Subject: Subject{Kind: "User", Name: "carol"}, Verbs: []string{"get"}, Path: "pod-exec",
				Via: []Via{rbacVia("RoleBinding", "walk", "debug", "Role", "walk", "debugger")},
				Steps: []Step{
					{Kind: "pod-exec", Subject: Subject{Kind: "User", Name: "carol"},
						Permission: Permission{Verb: "create", Resource: "pods/exec", Namespace: "walk", Name: "web-0"},
						Via:        []Via{rbacVia("RoleBinding", "walk", "debug", "Role", "walk", "debugger")},
						Reaches:    web,
						Detail:     "pod walk/web-0 runs as ServiceAccount walk/web with its token mounted"},
					webRead,
				}},
			{Subject: Subject{Kind: "ServiceAccount", Namespace: "walk", Name: "builder"}, Path: "node-escape",
				Via: []Via{rbacVia("RoleBinding", "walk", "builder", "Role", "walk", "pod-creator")},
				Steps: []Step{
					{Kind: "node-escape", Subject: Subject{Kind: "ServiceAccount", Namespace: "walk", Name: "builder"},
						Permission: Permission{Verb: "create", Resource: "pods", Namespace: "walk"},
						Via:        []Via{rbacVia("RoleBinding", "walk", "builder", "Role", "walk", "pod-creator")},
						Reaches:    node,
						Detail:     "namespace walk allows privileged pods: a hostPath pod on node-1 holds the kubelet's credentials"},
					{Kind: "node-authorizer", Subject: node,
						Permission: Permission{Verb: "get", Resource: "secrets", Namespace: "walk", Name: "target"},
						Via:        []Via{{Authorizer: "Node"}},
						Reaches:    secret,
						Detail:     "pod walk/web-0 on node-1 mounts the Secret"},
				}},
			{Subject: Subject{Kind: "User", Name: "O=acme:\"ops\"\\team\nX"}, Verbs: []string{"list"}, Path: "direct",
				Via: []Via{rbacVia("ClusterRoleBinding", "", "odd:\"binding\"", "ClusterRole", "", "secret-lister")}},
		}...),
	}
}

func renderExplain(t *testing.T, format string, s *Secret) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteExplanation(&buf, format, s); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestExplainGolden(t *testing.T) {
	for _, format := range []string{"tree", "dot"} {
		t.Run(format, func(t *testing.T) {
			s := explainedSecret()
			got := renderExplain(t, format, s)
			golden := filepath.Join(explainGoldenDir, "explain."+format)
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (run go test ./internal/report/ -run TestExplainGolden -update after an intended change):\n--- got\n%s", golden, got)
			}
			// Rendering neither reorders nor rewrites the report's Secret.
			if again := renderExplain(t, format, s); again != got {
				t.Error("a second rendering differs: the renderer modified its input")
			}
			if !jsonEqual(t, s, explainedSecret()) {
				t.Error("rendering modified the Secret")
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

func TestExplainTreeLayout(t *testing.T) {
	out := renderExplain(t, "tree", explainedSecret())
	// Groups come direct first, then in the documented kind order.
	var groups []string
	for _, l := range strings.Split(out, "\n") {
		if l != "" && !strings.HasPrefix(l, " ") && strings.HasSuffix(l, ")") && !strings.HasPrefix(l, "Secret/") {
			groups = append(groups, strings.Fields(l)[0])
		}
	}
	want := []string{"direct", "pod-exec", "token-mint", "impersonate", "rbac-bind", "node-escape"}
	if strings.Join(groups, " ") != strings.Join(want, " ") {
		t.Errorf("groups %v, want %v", groups, want)
	}
	for _, want := range []string{
		"User/alice\n  └─ --impersonate serviceaccounts walk/reader (ClusterRoleBinding/impersonators → ClusterRole/impersonate-sa)-->  ServiceAccount/walk/reader\n" +
			"     └─ --get secrets walk/target (RoleBinding/walk/read-target → Role/walk/secret-reader)-->  Secret/walk/target\n",
		// A step whose subject is not what the step before reached names it.
		"└─ User/mallory  --get secrets walk/target (ClusterRole/edit)-->  Secret/walk/target",
		"· pod walk/web-0 runs as ServiceAccount walk/web with its token mounted\n",
		"--get secrets walk/target (Node authorizer)-->  Secret/walk/target",
		"Group/system:masters [cluster superusers (RBAC is bypassed)] (expected)",
		// Control characters in a name are escaped, never printed.
		`User/O=acme:"ops"\team\nX`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tree lacks %q:\n%s", want, out)
		}
	}
}

func TestExplainJSON(t *testing.T) {
	s := explainedSecret()
	out := renderExplain(t, "json", s)
	var doc struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Secret     json.RawMessage `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.APIVersion != APIVersion || doc.Kind != ExplanationKind {
		t.Errorf("apiVersion %q kind %q, want %q %q", doc.APIVersion, doc.Kind, APIVersion, ExplanationKind)
	}
	var got Secret
	if err := json.Unmarshal(doc.Secret, &got); err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, &got, s) {
		t.Error("the explanation's secret is not the report's Secret")
	}
	if !strings.HasPrefix(out, "{\n  \"apiVersion\"") {
		t.Errorf("not indented:\n%.80s", out)
	}
}

func TestExplainUnknownFormat(t *testing.T) {
	if err := WriteExplanation(&bytes.Buffer{}, "svg", explainedSecret()); err == nil || !strings.Contains(err.Error(), "tree, json, dot") {
		t.Errorf("err = %v, want one listing the formats", err)
	}
}

func TestExplainNoReaders(t *testing.T) {
	out := renderExplain(t, "tree", &Secret{Namespace: "a", Name: "b", KeysUnknown: true})
	for _, want := range []string{"Secret/a/b (keys unknown)\n", "severity -, score 0: 0 readers", "No subject can read this Secret."} {
		if !strings.Contains(out, want) {
			t.Errorf("tree lacks %q:\n%s", want, out)
		}
	}
	if dot := renderExplain(t, "dot", &Secret{Namespace: "a", Name: "b"}); !strings.Contains(dot, `"Secret/a/b" [`) {
		t.Errorf("dot lacks the Secret's node:\n%s", dot)
	}
}

func TestDOTQuoting(t *testing.T) {
	for in, want := range map[string]string{
		"User/system:node:n1": `"User/system:node:n1"`,
		`a"b\c`:               `"a\"b\\c"`,
		"x\xffy":              "\"x\uFFFDy\"",
		"a\nb\x01":            `"a\nb\x01"`,
		`a\nb`:                `"a\\nb"`,
	} {
		if got := dotID(in); got != want {
			t.Errorf("dotID(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"Kind\nname": `"Kind\nname"`,
		`\N "x"`:     `"\\N \"x\""`,
		"tab\there":  `"tab\\there"`,
	} {
		if got := dotLabel(in); got != want {
			t.Errorf("dotLabel(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestExplainDOTRenders runs Graphviz on the DOT explain writes: the graph
// must render, without a warning, to a non-empty SVG.
func TestExplainDOTRenders(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Fatal("Graphviz's dot is not installed: the DOT output cannot be checked. Install graphviz (apt-get install graphviz), or run make test, which does.")
	}
	for name, s := range map[string]*Secret{
		"explained": explainedSecret(),
		"empty":     {Namespace: "a", Name: "b"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(dot, "-Tsvg")
			cmd.Stdin = strings.NewReader(renderExplain(t, "dot", s))
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("dot -Tsvg: %v\n%s", err, stderr.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("dot -Tsvg warned:\n%s", stderr.String())
			}
			if !strings.Contains(stdout.String(), "<svg") || !strings.Contains(stdout.String(), "</svg>") {
				t.Errorf("dot -Tsvg wrote no SVG:\n%.300s", stdout.String())
			}
			if name == "explained" && !strings.Contains(stdout.String(), "web&#45;0") {
				t.Error("the SVG does not draw the exec'd pod")
			}
		})
	}
}
