package paths_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/source/manifests"
)

// load builds an inventory from YAML documents.
func load(t *testing.T, docs ...string) *inventory.Inventory {
	t.Helper()
	b := inventory.NewBuilder()
	_, problems := manifests.Load([]string{"-"}, b, manifests.Options{Stdin: strings.NewReader(strings.Join(docs, "\n---\n"))})
	if len(problems) > 0 {
		t.Fatalf("loading the world: %+v", problems)
	}
	return b.Build()
}

// readersOf returns the readers of Secret ns/name as "Kind/ns/name" →
// path kind.
func readersOf(t *testing.T, inv *inventory.Inventory, opts paths.Options, ns, name string) (map[string]paths.Reader, *paths.Result) {
	t.Helper()
	mode := rbac.AggregationStored
	if opts.Offline {
		mode = rbac.AggregationComputed
	}
	p := rbac.NewPolicy(inv, mode)
	res := paths.Analyze(p, rbac.NewReadIndex(p), opts)
	s := inv.Secret(ns, name)
	if s == nil {
		t.Fatalf("no Secret %s/%s in the world", ns, name)
	}
	out := map[string]paths.Reader{}
	for r := range res.Readers(s).All() {
		if r.Subject == rbac.Superuser.Subject {
			continue
		}
		out[r.Subject.String()] = r
	}
	return out, res
}

func kinds(m map[string]paths.Reader) string {
	var out []string
	for s, r := range m {
		out = append(out, s+"="+string(r.Kind))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

const secret = `
apiVersion: v1
kind: Secret
metadata: {namespace: app, name: db}
type: Opaque
data: {password: cGxhY2Vob2xkZXI=}
`

func role(ns, name, rules string) string {
	return "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {namespace: " + ns + ", name: " + name + "}\nrules:\n" + rules
}

func clusterRole(name, rules string) string {
	return "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: " + name + "}\nrules:\n" + rules
}

func bindUser(ns, name, roleKind, roleName, user string) string {
	return "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {namespace: " + ns + ", name: " + name + "}\n" +
		"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: " + roleKind + ", name: " + roleName + "}\n" +
		"subjects: [{kind: User, name: " + user + ", apiGroup: rbac.authorization.k8s.io}]\n"
}

func bindSA(ns, name, roleKind, roleName, saNS, sa string) string {
	return "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {namespace: " + ns + ", name: " + name + "}\n" +
		"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: " + roleKind + ", name: " + roleName + "}\n" +
		"subjects: [{kind: ServiceAccount, name: " + sa + ", namespace: " + saNS + "}]\n"
}

func clusterBindUser(name, roleName, user string) string {
	return "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: " + name + "}\n" +
		"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: " + roleName + "}\n" +
		"subjects: [{kind: User, name: " + user + ", apiGroup: rbac.authorization.k8s.io}]\n"
}

func serviceAccount(ns, name string) string {
	return "apiVersion: v1\nkind: ServiceAccount\nmetadata: {namespace: " + ns + ", name: " + name + "}\n"
}

func namespace(name, level string) string {
	out := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n"
	if level != "" {
		out += "  labels: {pod-security.kubernetes.io/enforce: " + level + "}\n"
	}
	return out
}

// reader is ServiceAccount app/reader, which may get Secret app/db.
var reader = []string{
	serviceAccount("app", "reader"),
	role("app", "read-db", "- {apiGroups: [''], resources: [secrets], verbs: [get], resourceNames: [db]}"),
	bindSA("app", "reader-reads-db", "Role", "read-db", "app", "reader"),
}

// consumer is a pod of app on node n1 that mounts db, with imagePullSecret
// pull and a volume of Secret unmounted that no container mounts.
const consumer = `
apiVersion: v1
kind: Pod
metadata: {namespace: app, name: consumer}
spec:
  nodeName: n1
  serviceAccountName: runner
  imagePullSecrets: [{name: pull}]
  containers:
  - name: main
    image: example
    volumeMounts: [{name: creds, mountPath: /creds}]
  volumes:
  - {name: creds, secret: {secretName: db}}
  - {name: spare, secret: {secretName: unmounted}}
`

const pullSecret = `
apiVersion: v1
kind: Secret
metadata: {namespace: app, name: pull}
type: kubernetes.io/dockerconfigjson
data: {.dockerconfigjson: e30=}
`

const unmountedSecret = `
apiVersion: v1
kind: Secret
metadata: {namespace: app, name: unmounted}
type: Opaque
`

func world(docs ...string) []string {
	return append(append([]string{secret, namespace("app", "restricted")}, reader...), docs...)
}

func TestEachPathKind(t *testing.T) {
	live := paths.Options{}
	offline := paths.Options{Offline: true}
	tests := []struct {
		name    string
		docs    []string
		opts    paths.Options
		subject string // reader expected, or "" for none beyond ServiceAccount/app/reader
		kind    paths.Kind
		steps   int
	}{
		{"create pods", []string{role("app", "r", "- {apiGroups: [''], resources: [pods], verbs: [create]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "User/dev", paths.PodCreate, 1},
		{"create pods with resourceNames cannot create", []string{role("app", "r", "- {apiGroups: [''], resources: [pods], verbs: [create], resourceNames: [x]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "", "", 0},
		{"patch an existing Deployment", []string{deployment("app", "web"), role("app", "r", "- {apiGroups: [apps], resources: [deployments], verbs: [patch], resourceNames: [web]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "User/dev", paths.PodCreate, 1},
		{"patch a Deployment that does not exist", []string{role("app", "r", "- {apiGroups: [apps], resources: [deployments], verbs: [patch], resourceNames: [web]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "", "", 0},
		{"update a Job (its template is immutable)", []string{job("app", "batch"), role("app", "r", "- {apiGroups: [batch], resources: [jobs], verbs: [update, patch]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "", "", 0},
		{"create a Job", []string{role("app", "r", "- {apiGroups: [batch], resources: [jobs], verbs: [create]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "User/dev", paths.PodCreate, 1},
		{"create pods in another namespace", []string{namespace("other", "restricted"), role("other", "r", "- {apiGroups: [''], resources: [pods], verbs: [create]}"), bindUser("other", "b", "Role", "r", "dev")},
			live, "", "", 0},
		{"ephemeral container in an existing pod", []string{consumer, role("app", "r", "- {apiGroups: [''], resources: [pods/ephemeralcontainers], verbs: [patch]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "User/dev", paths.PodCreate, 1},
		{"exec into a pod that mounts it", []string{consumer, role("app", "r", "- {apiGroups: [''], resources: [pods/exec], verbs: [create], resourceNames: [consumer]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "User/dev", paths.PodExec, 1},
		{"exec (get, as WebSocket clients do) into a pod that mounts it", []string{consumer, role("app", "r", "- {apiGroups: [''], resources: [pods/exec], verbs: [get]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "User/dev", paths.PodExec, 1},
		{"attach to a pod that mounts it", []string{consumer, role("app", "r", "- {apiGroups: [''], resources: [pods/attach], verbs: [create]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "User/dev", paths.PodExec, 1},
		{"exec into another pod", []string{consumer, role("app", "r", "- {apiGroups: [''], resources: [pods/exec], verbs: [create], resourceNames: [other]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "", "", 0},
		{"exec into a Deployment's pods offline", []string{deploymentMounting("app", "web", "db"), role("app", "r", "- {apiGroups: [''], resources: [pods/exec], verbs: [create]}"), bindUser("app", "b", "Role", "r", "dev")},
			offline, "User/dev", paths.PodExec, 1},
		{"kubelet API of the pod's node", []string{consumer, clusterRole("r", "- {apiGroups: [''], resources: [nodes/proxy], verbs: [get], resourceNames: [n1]}"), clusterBindUser("b", "r", "ops")},
			live, "User/ops", paths.NodeProxy, 1},
		{"kubelet API of another node", []string{consumer, clusterRole("r", "- {apiGroups: [''], resources: [nodes/proxy], verbs: [get], resourceNames: [n2]}"), clusterBindUser("b", "r", "ops")},
			live, "", "", 0},
		{"nodes/proxy through a RoleBinding grants nothing", []string{consumer, clusterRole("r", "- {apiGroups: [''], resources: [nodes/proxy], verbs: [get]}"), bindUser("app", "b", "ClusterRole", "r", "ops")},
			live, "", "", 0},
		{"patch the Secret", []string{role("app", "r", "- {apiGroups: [''], resources: [secrets], verbs: [patch], resourceNames: [db]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "User/dev", paths.SecretPatch, 1},
		{"update the Secret does not read it", []string{role("app", "r", "- {apiGroups: [''], resources: [secrets], verbs: [update]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "", "", 0},
		{"mint a token for the reader", []string{role("app", "r", "- {apiGroups: [''], resources: [serviceaccounts/token], verbs: [create], resourceNames: [reader]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "User/dev", paths.TokenMint, 2},
		{"mint a token for another ServiceAccount", []string{serviceAccount("app", "other"), role("app", "r", "- {apiGroups: [''], resources: [serviceaccounts/token], verbs: [create], resourceNames: [other]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "", "", 0},
		{"read the reader's legacy token", []string{legacyToken("app", "reader-token", "reader"), role("app", "r", "- {apiGroups: [''], resources: [secrets], verbs: [get], resourceNames: [reader-token]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "User/dev", paths.LegacyToken, 2},
		{"impersonate the reader", []string{role("app", "r", "- {apiGroups: [''], resources: [serviceaccounts], verbs: [impersonate], resourceNames: [reader]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "User/dev", paths.Impersonate, 2},
		{"impersonate system:masters with some user", []string{clusterRole("r", "- {apiGroups: [''], resources: [groups], verbs: [impersonate], resourceNames: [system:masters]}\n- {apiGroups: [''], resources: [users], verbs: [impersonate], resourceNames: [nobody]}"), clusterBindUser("b", "r", "dev")},
			live, "User/dev", paths.Impersonate, 2},
		{"impersonate system:masters without a user to impersonate", []string{clusterRole("r", "- {apiGroups: [''], resources: [groups], verbs: [impersonate]}"), clusterBindUser("b", "r", "dev")},
			live, "", "", 0},
		{"bind the reading role to oneself", []string{role("app", "r", "- {apiGroups: [rbac.authorization.k8s.io], resources: [rolebindings], verbs: [create]}\n- {apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [bind], resourceNames: [read-db]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "User/dev", paths.RBACBind, 2},
		{"create bindings without bind", []string{role("app", "r", "- {apiGroups: [rbac.authorization.k8s.io], resources: [rolebindings], verbs: [create]}"), bindUser("app", "b", "Role", "r", "dev")},
			live, "", "", 0},
		{"escalate one's own role", []string{role("app", "own", "- {apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [escalate, update], resourceNames: [own]}"), bindUser("app", "b", "Role", "own", "dev")},
			live, "User/dev", paths.RBACEscalate, 2},
		{"escalate a bound role that grants nothing yet", []string{role("app", "own", "- {apiGroups: [''], resources: [configmaps], verbs: [get]}"),
			role("app", "esc", "- {apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [escalate, update], resourceNames: [own]}"),
			bindUser("app", "b", "Role", "own", "dev"), bindUser("app", "b2", "Role", "esc", "dev")},
			live, "User/dev", paths.RBACEscalate, 2},
		{"escalate a role bound to someone else", []string{role("app", "own", "- {apiGroups: [''], resources: [configmaps], verbs: [get]}"),
			role("app", "esc", "- {apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [escalate, update], resourceNames: [own]}"),
			bindUser("app", "b", "Role", "own", "other"), bindUser("app", "b2", "Role", "esc", "dev")},
			live, "", "", 0},
		{"escalate without update", []string{role("app", "own", "- {apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [escalate], resourceNames: [own]}"), bindUser("app", "b", "Role", "own", "dev")},
			live, "", "", 0},
		{"run a pod as a ServiceAccount that reads it", []string{namespace("runner", "restricted"), serviceAccount("runner", "deployer"), bindSA("app", "deployer-reads", "Role", "read-db", "runner", "deployer"),
			role("runner", "r", "- {apiGroups: [''], resources: [pods], verbs: [create]}"), bindUser("runner", "b", "Role", "r", "dev")},
			live, "User/dev", paths.RunAsSA, 2},
		{"escape to a node from a privileged namespace", []string{consumer, namespace("escape", "privileged"), role("escape", "r", "- {apiGroups: [''], resources: [pods], verbs: [create]}"), bindUser("escape", "b", "Role", "r", "dev")},
			live, "User/dev", paths.NodeEscape, 2},
		{"no escape from a baseline namespace", []string{consumer, namespace("escape", "baseline"), role("escape", "r", "- {apiGroups: [''], resources: [pods], verbs: [create]}"), bindUser("escape", "b", "Role", "r", "dev")},
			live, "", "", 0},
		{"escape from an unlabelled namespace (default privileged)", []string{consumer, role("escape", "r", "- {apiGroups: [''], resources: [pods], verbs: [create]}"), bindUser("escape", "b", "Role", "r", "dev")},
			live, "User/dev", paths.NodeEscape, 2},
		{"no escape from an unlabelled namespace when the default is baseline", []string{consumer, role("escape", "r", "- {apiGroups: [''], resources: [pods], verbs: [create]}"), bindUser("escape", "b", "Role", "r", "dev")},
			paths.Options{PodSecurityDefault: "baseline"}, "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := readersOf(t, load(t, world(tt.docs...)...), tt.opts, "app", "db")
			want := map[string]bool{"ServiceAccount/app/reader": true}
			for _, d := range tt.docs {
				switch {
				case d == consumer:
					// The kubelet of n1 reads what the pod uses.
					want["User/system:node:n1"] = true
				case strings.Contains(d, "name: deployer-reads"):
					want["ServiceAccount/runner/deployer"] = true
				}
			}
			if tt.subject != "" {
				want[tt.subject] = true
				r, ok := got[tt.subject]
				if !ok {
					t.Fatalf("%s is not a reader; readers: %s", tt.subject, kinds(got))
				}
				if r.Kind != tt.kind || len(r.Steps) != tt.steps {
					t.Fatalf("%s reads by %s in %d steps, want %s in %d: %+v", tt.subject, r.Kind, len(r.Steps), tt.kind, tt.steps, r.Steps)
				}
				checkSteps(t, r)
			}
			for s := range got {
				if !want[s] {
					t.Errorf("%s reads by %s, want no such reader (readers %s)", s, got[s].Kind, kinds(got))
				}
			}
			for s := range want {
				if _, ok := got[s]; !ok {
					t.Errorf("%s is not a reader (readers %s)", s, kinds(got))
				}
			}
			if r, ok := got["User/system:node:n1"]; ok && (r.Kind != paths.NodeAuthorizer || len(r.Steps) != 1) {
				t.Errorf("the kubelet reads by %s in %d steps, want node-authorizer in 1", r.Kind, len(r.Steps))
			}
		})
	}
}

// checkSteps holds a path to its shape: the first step's kind is the
// path's, each step acts as what the previous one reached, and only the
// last step (which reaches the Secret) has no Reaches.
func checkSteps(t *testing.T, r paths.Reader) {
	t.Helper()
	if r.Steps[0].Kind != r.Kind {
		t.Errorf("first step kind %s, path %s", r.Steps[0].Kind, r.Kind)
	}
	if first := r.Steps[0].Subject; first != (paths.Node{Kind: r.Subject.Kind, Namespace: r.Subject.Namespace, Name: r.Subject.Name}) {
		t.Errorf("first step acts as %+v, not the reader %s", first, r.Subject)
	}
	for i, s := range r.Steps {
		last := i == len(r.Steps)-1
		if last != (s.Reaches == paths.Node{}) {
			t.Errorf("step %d reaches %+v (last %v)", i, s.Reaches, last)
		}
	}
}

func deployment(ns, name string) string {
	return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {namespace: " + ns + ", name: " + name + "}\n" +
		"spec:\n  selector: {matchLabels: {app: " + name + "}}\n  template:\n    metadata: {labels: {app: " + name + "}}\n    spec:\n      containers: [{name: c, image: x}]\n"
}

func deploymentMounting(ns, name, secretName string) string {
	return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {namespace: " + ns + ", name: " + name + "}\n" +
		"spec:\n  selector: {matchLabels: {app: " + name + "}}\n  template:\n    metadata: {labels: {app: " + name + "}}\n    spec:\n" +
		"      containers: [{name: c, image: x, envFrom: [{secretRef: {name: " + secretName + "}}]}]\n"
}

func job(ns, name string) string {
	return "apiVersion: batch/v1\nkind: Job\nmetadata: {namespace: " + ns + ", name: " + name + "}\n" +
		"spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: x}]\n"
}

func legacyToken(ns, name, sa string) string {
	return "apiVersion: v1\nkind: Secret\nmetadata: {namespace: " + ns + ", name: " + name + ", annotations: {kubernetes.io/service-account.name: " + sa + "}}\n" +
		"type: kubernetes.io/service-account-token\n"
}

func TestChainsAndTheirLimits(t *testing.T) {
	// alice may impersonate bob; bob may mint tokens for app/reader.
	docs := world(
		clusterRole("imp", "- {apiGroups: [''], resources: [users], verbs: [impersonate], resourceNames: [bob]}"), clusterBindUser("alice-imp", "imp", "alice"),
		role("app", "mint", "- {apiGroups: [''], resources: [serviceaccounts/token], verbs: [create], resourceNames: [reader]}"), bindUser("app", "bob-mint", "Role", "mint", "bob"),
	)
	inv := load(t, docs...)
	got, _ := readersOf(t, inv, paths.Options{}, "app", "db")
	alice, ok := got["User/alice"]
	if !ok {
		t.Fatalf("alice is not a reader: %s", kinds(got))
	}
	var trail []string
	for _, s := range alice.Steps {
		trail = append(trail, string(s.Kind)+">"+s.Reaches.Kind+"/"+s.Reaches.Name)
	}
	if want := "impersonate>User/bob token-mint>ServiceAccount/reader direct>/"; strings.Join(trail, " ") != want {
		t.Errorf("alice's path %q, want %q", strings.Join(trail, " "), want)
	}
	if alice.Kind != paths.Impersonate || alice.Via[0].Binding.Name != "alice-imp" {
		t.Errorf("alice's path starts with %s via %+v", alice.Kind, alice.Via)
	}
	if bob := got["User/bob"]; bob.Kind != paths.TokenMint || len(bob.Steps) != 2 {
		t.Errorf("bob reads by %s in %d steps", bob.Kind, len(bob.Steps))
	}
	// A depth of two steps leaves alice's three-step path out.
	got, _ = readersOf(t, inv, paths.Options{MaxDepth: 2}, "app", "db")
	if _, ok := got["User/alice"]; ok {
		t.Error("alice reads with MaxDepth 2, though her path has 3 steps")
	}
	if _, ok := got["User/bob"]; !ok {
		t.Error("bob does not read with MaxDepth 2, though his path has 2 steps")
	}
}

func TestCyclesTerminate(t *testing.T) {
	docs := world(
		clusterRole("imp-a", "- {apiGroups: [''], resources: [users], verbs: [impersonate], resourceNames: [a]}"),
		clusterRole("imp-b", "- {apiGroups: [''], resources: [users], verbs: [impersonate], resourceNames: [b]}"),
		clusterBindUser("a-imp-b", "imp-b", "a"), clusterBindUser("b-imp-a", "imp-a", "b"),
		// c reaches the cycle and, through it, nothing that reads.
		clusterBindUser("c-imp-a", "imp-a", "c"),
	)
	got, _ := readersOf(t, load(t, docs...), paths.Options{MaxDepth: 50}, "app", "db")
	if len(got) != 1 {
		t.Errorf("readers %s, want ServiceAccount/app/reader only", kinds(got))
	}
}

func TestGroupMembersAreNotListedTwice(t *testing.T) {
	// Every ServiceAccount of app may create pods there; app/ci also has
	// its own grant to do so. The group's entry covers ci.
	docs := world(
		role("app", "pods", "- {apiGroups: [''], resources: [pods], verbs: [create]}"),
		"apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {namespace: app, name: all-sas}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pods}\nsubjects: [{kind: Group, name: 'system:serviceaccounts:app', apiGroup: rbac.authorization.k8s.io}]\n",
		serviceAccount("app", "ci"), bindSA("app", "ci-pods", "Role", "pods", "app", "ci"),
	)
	got, _ := readersOf(t, load(t, docs...), paths.Options{}, "app", "db")
	if _, ok := got["ServiceAccount/app/ci"]; ok {
		t.Errorf("app/ci is listed beside its group: %s", kinds(got))
	}
	if r, ok := got["Group/system:serviceaccounts:app"]; !ok || r.Kind != paths.PodCreate {
		t.Errorf("the group is not a pod-create reader: %s", kinds(got))
	}
}

func TestWhatExecAndTheNodeSee(t *testing.T) {
	docs := world(consumer, pullSecret, unmountedSecret,
		role("app", "r", "- {apiGroups: [''], resources: [pods/exec], verbs: [create]}"), bindUser("app", "b", "Role", "r", "dev"))
	inv := load(t, docs...)
	for _, name := range []string{"pull", "unmounted"} {
		got, _ := readersOf(t, inv, paths.Options{}, "app", name)
		if _, ok := got["User/dev"]; ok {
			t.Errorf("exec into the pod reads %s, which no container sees: %s", name, kinds(got))
		}
		if r, ok := got["User/system:node:n1"]; !ok || r.Kind != paths.NodeAuthorizer {
			t.Errorf("the Node authorizer does not let n1 read %s, which its pod names: %s", name, kinds(got))
		}
	}
}

func TestNodeReadsThroughPersistentVolumes(t *testing.T) {
	docs := world(`
apiVersion: v1
kind: Secret
metadata: {namespace: storage, name: csi-creds}
type: Opaque
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv1}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  claimRef: {namespace: app, name: data}
  csi: {driver: example.com, volumeHandle: h, nodePublishSecretRef: {namespace: storage, name: csi-creds}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {namespace: app, name: data}
spec:
  accessModes: [ReadWriteOnce]
  volumeName: pv1
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {namespace: app, name: db-0}
spec:
  nodeName: n2
  containers: [{name: c, image: x}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
`)
	got, _ := readersOf(t, load(t, docs...), paths.Options{}, "storage", "csi-creds")
	if r, ok := got["User/system:node:n2"]; !ok || r.Kind != paths.NodeAuthorizer {
		t.Errorf("n2 does not read the CSI Secret of its pod's volume: %s", kinds(got))
	}
}

func TestImpersonatingANode(t *testing.T) {
	node := func(groups string) []string {
		return world(consumer, clusterRole("imp", "- {apiGroups: [''], resources: [users], verbs: [impersonate], resourceNames: ['system:node:n1']}\n"+
			"- {apiGroups: [''], resources: [groups], verbs: [impersonate], resourceNames: ["+groups+"]}"), clusterBindUser("b", "imp", "dev"))
	}
	got, _ := readersOf(t, load(t, node("'system:nodes'")...), paths.Options{}, "app", "db")
	if r, ok := got["User/dev"]; !ok || r.Kind != paths.Impersonate || r.Steps[0].Reaches != (paths.Node{Kind: "Node", Name: "n1"}) {
		t.Fatalf("impersonating system:node:n1 in system:nodes does not reach node n1's reads: %s", kinds(got))
	}
	got, _ = readersOf(t, load(t, node("'other'")...), paths.Options{}, "app", "db")
	if _, ok := got["User/dev"]; ok {
		t.Errorf("impersonating system:node:n1 without group system:nodes reads the Secret: the Node authorizer requires the group")
	}
}

func TestLegacyTokenInAPod(t *testing.T) {
	// dev may exec into a pod that mounts reader's legacy token.
	docs := world(legacyToken("app", "reader-token", "reader"), `
apiVersion: v1
kind: Pod
metadata: {namespace: app, name: tool}
spec:
  automountServiceAccountToken: false
  containers: [{name: c, image: x, volumeMounts: [{name: t, mountPath: /t}]}]
  volumes: [{name: t, secret: {secretName: reader-token}}]
`, role("app", "r", "- {apiGroups: [''], resources: [pods/exec], verbs: [create], resourceNames: [tool]}"), bindUser("app", "b", "Role", "r", "dev"))
	got, _ := readersOf(t, load(t, docs...), paths.Options{}, "app", "db")
	r, ok := got["User/dev"]
	if !ok || r.Kind != paths.PodExec || len(r.Steps) != 2 || r.Steps[0].Reaches.Name != "reader" {
		t.Fatalf("dev does not read db through the token in pod tool: %s %+v", kinds(got), r.Steps)
	}
}

// TestKindsDocumented keeps docs/paths.md's table equal to paths.Kinds.
func TestKindsDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "paths.md"))
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	want.WriteString("| path | permission (any one listed) | what it reaches |\n|---|---|---|\n")
	for _, k := range paths.Kinds {
		fmt.Fprintf(&want, "| `%s` | %s | %s |\n", k.Kind, k.Permission, k.Reaches)
	}
	if !strings.Contains(string(data), want.String()) {
		t.Errorf("docs/paths.md does not hold the path kinds table of internal/paths/kinds.go; it should read:\n%s", want.String())
	}
}

// TestBudget: past its budget the search gives up on every indirect path,
// says so, and leaves the direct readers as they are.
func TestBudget(t *testing.T) {
	inv := load(t, world(role("app", "r", "- {apiGroups: [''], resources: [pods], verbs: [create]}"), bindUser("app", "b", "Role", "r", "dev"))...)
	got, res := readersOf(t, inv, paths.Options{}, "app", "db")
	if res.Exceeded() || got["User/dev"].Kind != paths.PodCreate {
		t.Fatalf("within budget: exceeded %v, readers %s", res.Exceeded(), kinds(got))
	}
	got, res = readersOf(t, inv, paths.Options{MaxHits: 1}, "app", "db")
	if !res.Exceeded() {
		t.Fatal("a budget of one hit is not exceeded")
	}
	if len(got) != 1 || got["ServiceAccount/app/reader"].Kind != paths.Direct {
		t.Errorf("past the budget the readers are %s, want the direct one only", kinds(got))
	}
	if _, ok := res.Obtains(rbac.Subject{Kind: rbac.KindUser, Name: "dev"}); ok {
		t.Error("past the budget Obtains still answers from partial chains")
	}
}
