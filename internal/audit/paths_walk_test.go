package audit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// The world of TestIndirectPathWalks.
const (
	walkNS      = "walk"   // the target's namespace, PSA restricted
	escapeNS    = "escape" // PSA privileged: a pod there can take its node
	runnerNS    = "runner" // PSA restricted, holds a ServiceAccount that reads the target
	targetName  = "target"
	canaryKey   = "value"
	readerSA    = "reader"        // walk/reader reads the target directly
	deployerSA  = "deployer"      // runner/deployer reads the target directly
	secretRole  = "secret-reader" // Role in walk: get secrets [target]
	tokenSecret = "reader-token"  // legacy token Secret of walk/reader
	judyRole    = "judy-role"
	consumerPod = "consumer" // walk pod on node-1 mounting the target
	nodeName    = "node-1"
	nodeUser    = "system:node:" + nodeName
)

// walkUsers are the static-token users, one per indirect path kind; each
// holds only the permission its path needs.
var walkUsers = []string{"alice", "bob", "carol", "dave", "judy", "erin", "frank", "gina", "hank", "ivan", "kim"}

var (
	userGroups = []string{"system:authenticated"}
	nodeGroups = []string{"system:nodes", "system:authenticated"}
)

// TestIndirectPathWalks proves on a real apiserver every indirect path to
// one Secret, walk/target, each by a subject holding only the permission
// that path needs: by actually obtaining the value as that subject where
// the apiserver alone suffices, and by a SubjectAccessReview of the
// enabling permission where the path goes through a kubelet (there is
// none). It then requires keyhole's live audit to report exactly the
// proven readers, each by the proven path.
func TestIndirectPathWalks(t *testing.T) {
	users := []testenv.User{{Name: nodeUser, Groups: []string{"system:nodes"}}}
	for _, u := range walkUsers {
		users = append(users, testenv.User{Name: u})
	}
	cp := testenv.StartT(t, testenv.Options{Users: users}) // skips under -short
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	w := buildWalkWorld(ctx, t, cp)

	// proven maps subject → path for every non-expected reader of the
	// target whose path a walk or SAR below established.
	proven := map[string]string{}
	prove := func(subject, path string, walk func(t *testing.T)) {
		t.Helper()
		if t.Run(path+"/"+strings.ReplaceAll(subject, "/", "_"), walk) {
			proven[subject] = path
		}
	}

	// Nobody but the two ServiceAccounts may read the target directly,
	// and the grants hold no more than intended. Checked once, before any
	// walk changes RBAC.
	t.Run("negatives", func(t *testing.T) { w.negatives(ctx, t) })

	prove("ServiceAccount/walk/reader", "direct", func(t *testing.T) {
		w.mustRead(ctx, t, w.tokenConfig(w.adminToken(ctx, t, walkNS, readerSA)))
	})
	prove("ServiceAccount/runner/deployer", "direct", func(t *testing.T) {
		w.mustRead(ctx, t, w.tokenConfig(w.adminToken(ctx, t, runnerNS, deployerSA)))
	})
	prove("User/alice", "impersonate", func(t *testing.T) { w.walkImpersonate(ctx, t) })
	prove("User/bob", "token-mint", func(t *testing.T) { w.walkTokenMint(ctx, t) })
	prove("User/carol", "secret-patch", func(t *testing.T) { w.walkSecretPatch(ctx, t) })
	prove("User/erin", "legacy-token", func(t *testing.T) { w.walkLegacyToken(ctx, t) })
	nodeProven := t.Run("node-authorizer/"+nodeUser, func(t *testing.T) { w.walkNodeAuthorizer(ctx, t) })
	prove("User/frank", "pod-create", func(t *testing.T) { w.sarPodCreate(ctx, t) })
	prove("User/gina", "pod-exec", func(t *testing.T) { w.sarPodExec(ctx, t) })
	prove("User/hank", "node-proxy", func(t *testing.T) { w.sarNodeProxy(ctx, t) })
	prove("User/ivan", "node-escape", func(t *testing.T) { w.sarNodeEscape(ctx, t) })
	prove("User/kim", "run-as-sa", func(t *testing.T) { w.sarRunAsSA(ctx, t) })

	// The audit runs here, before the rbac-bind and rbac-escalate walks,
	// because those walks change the world they prove: once dave has
	// bound secret-reader to himself and judy has widened judy-role, both
	// are direct readers. Auditing first audits exactly the world every
	// walk starts from (the walks above change nothing: the empty patch is
	// a no-op and bound tokens are not objects), with no clean-up whose
	// completeness the result would depend on.
	in, err := audit.Live(ctx, cp.Config, cluster.Options{})
	if err != nil {
		t.Fatalf("live audit: %v", err)
	}
	for _, p := range in.Problems {
		t.Errorf("live audit problem: %+v", p)
	}
	rep, err := audit.Analyze(in, audit.Options{})
	if err != nil {
		t.Fatalf("analysis: %v", err)
	}

	prove("User/dave", "rbac-bind", func(t *testing.T) { w.walkRBACBind(ctx, t) })
	prove("User/judy", "rbac-escalate", func(t *testing.T) { w.walkRBACEscalate(ctx, t) })

	w.checkReport(t, rep, proven, nodeProven)
}

// walkWorld is the running control plane and the objects of the test.
type walkWorld struct {
	cp     *testenv.ControlPlane
	admin  kubernetes.Interface
	canary []byte
	// targetRV is the target's resourceVersion as created.
	targetRV string
}

func buildWalkWorld(ctx context.Context, t *testing.T, cp *testenv.ControlPlane) *walkWorld {
	t.Helper()
	admin, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	w := &walkWorld{cp: cp, admin: admin, canary: []byte("KEYHOLE-CANARY-" + hex.EncodeToString(raw))}
	fatal := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("setting up the world: %s: %v", what, err)
		}
	}

	for ns, level := range map[string]string{walkNS: "restricted", escapeNS: "privileged", runnerNS: "restricted"} {
		_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: ns, Labels: map[string]string{"pod-security.kubernetes.io/enforce": level}}}, metav1.CreateOptions{})
		fatal("namespace "+ns, err)
	}
	for _, ns := range []string{walkNS, escapeNS, runnerNS} {
		// Pods (and dry-run pods) without serviceAccountName run as
		// default, which the ServiceAccount admission plugin requires.
		fatal("default ServiceAccount in "+ns, cp.WaitForServiceAccount(ctx, ns))
	}

	target, err := admin.CoreV1().Secrets(walkNS).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: targetName},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{canaryKey: w.canary},
	}, metav1.CreateOptions{})
	fatal("Secret walk/target", err)
	w.targetRV = target.ResourceVersion

	// The direct readers.
	for _, sa := range []struct{ ns, name string }{{walkNS, readerSA}, {runnerNS, deployerSA}} {
		_, err := admin.CoreV1().ServiceAccounts(sa.ns).Create(ctx, &corev1.ServiceAccount{
			ObjectMeta: metav1.ObjectMeta{Name: sa.name}}, metav1.CreateOptions{})
		fatal("ServiceAccount "+sa.ns+"/"+sa.name, err)
	}
	w.role(ctx, t, walkNS, secretRole, rule("get", "", "secrets", targetName))
	w.roleBinding(ctx, t, walkNS, "reader-"+secretRole, roleRef("Role", secretRole),
		rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: walkNS, Name: readerSA})
	w.roleBinding(ctx, t, walkNS, "deployer-"+secretRole, roleRef("Role", secretRole),
		rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: runnerNS, Name: deployerSA})

	// impersonate: a ClusterRole bound in walk only, so it names walk/reader.
	_, err = admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "impersonate-reader"},
		Rules:      []rbacv1.PolicyRule{rule("impersonate", "", "serviceaccounts", readerSA)},
	}, metav1.CreateOptions{})
	fatal("ClusterRole impersonate-reader", err)
	w.roleBinding(ctx, t, walkNS, "alice-impersonate-reader", roleRef("ClusterRole", "impersonate-reader"), user("alice"))
	// token-mint
	w.grant(ctx, t, walkNS, "bob", "mint-reader-token", rule("create", "", "serviceaccounts/token", readerSA))
	// secret-patch
	w.grant(ctx, t, walkNS, "carol", "patch-target", rule("patch", "", "secrets", targetName))
	// rbac-bind
	w.grant(ctx, t, walkNS, "dave", "bind-secret-reader",
		rule("create", rbacv1.GroupName, "rolebindings"),
		rule("bind", rbacv1.GroupName, "roles", secretRole))
	// rbac-escalate: judy holds judy-role, which reads configmaps only,
	// and may rewrite it beyond her own permissions.
	w.grant(ctx, t, walkNS, "judy", judyRole, rule("get", "", "configmaps"))
	w.grant(ctx, t, walkNS, "judy", "escalate-judy-role", rule("escalate,update", rbacv1.GroupName, "roles", judyRole))
	// legacy-token
	_, err = admin.CoreV1().Secrets(walkNS).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: tokenSecret,
			Annotations: map[string]string{corev1.ServiceAccountNameKey: readerSA}},
		Type: corev1.SecretTypeServiceAccountToken,
	}, metav1.CreateOptions{})
	fatal("Secret walk/reader-token", err)
	w.grant(ctx, t, walkNS, "erin", "get-reader-token", rule("get", "", "secrets", tokenSecret))
	// pod-create
	w.grant(ctx, t, walkNS, "frank", "create-pods", rule("create", "", "pods"))
	// pod-exec
	w.grant(ctx, t, walkNS, "gina", "exec-consumer", rule("create", "", "pods/exec", consumerPod))
	// node-proxy
	_, err = admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "proxy-" + nodeName},
		Rules:      []rbacv1.PolicyRule{rule("get", "", "nodes/proxy", nodeName)},
	}, metav1.CreateOptions{})
	fatal("ClusterRole proxy-node-1", err)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "hank-proxy-" + nodeName},
		RoleRef:    roleRef("ClusterRole", "proxy-"+nodeName),
		Subjects:   []rbacv1.Subject{user("hank")},
	}, metav1.CreateOptions{})
	fatal("ClusterRoleBinding hank-proxy-node-1", err)
	// node-escape
	w.grant(ctx, t, escapeNS, "ivan", "create-pods", rule("create", "", "pods"))
	// run-as-sa
	w.grant(ctx, t, runnerNS, "kim", "create-pods", rule("create", "", "pods"))

	// node-authorizer, and what pod-exec and node-proxy reach: a pod
	// bound to node-1 that mounts the target. No kubelet runs, so it
	// stays Pending.
	_, err = admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{})
	fatal("Node node-1", err)
	consumer := restrictedPod(consumerPod, "")
	consumer.Spec.NodeName = nodeName
	_, err = admin.CoreV1().Pods(walkNS).Create(ctx, consumer, metav1.CreateOptions{})
	fatal("Pod walk/consumer", err)

	// The RBAC authorizer reads from informers, each ordered: once it
	// sees the last Role, RoleBinding, ClusterRole and ClusterRoleBinding
	// created, it sees them all, and the walks need no retries.
	for _, c := range []struct {
		user string
		ra   authorizationv1.ResourceAttributes
	}{
		{"kim", authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: runnerNS}},
		{"hank", authorizationv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "proxy", Name: nodeName}},
	} {
		fatal("waiting for RBAC to see the grants", poll(ctx, 15*time.Second, func() error {
			if ok, reason := w.sar(ctx, t, c.user, userGroups, c.ra); !ok {
				return fmt.Errorf("SAR %s denied (%s)", describe(c.user, c.ra), reason)
			}
			return nil
		}))
	}

	// The token controller fills the legacy token Secret.
	fatal("waiting for the token controller to fill walk/reader-token", poll(ctx, 30*time.Second, func() error {
		s, err := admin.CoreV1().Secrets(walkNS).Get(ctx, tokenSecret, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(s.Data[corev1.ServiceAccountTokenKey]) == 0 {
			return errors.New("data.token is still empty")
		}
		return nil
	}))
	return w
}

// restrictedPod is a pod valid under Pod Security "restricted" that mounts
// the target (in walk) and runs as serviceAccount (default when empty)
// without a token of its own.
func restrictedPod(name, serviceAccount string) *corev1.Pod {
	no, yes := false, true
	uid := int64(65532)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			ServiceAccountName:           serviceAccount,
			AutomountServiceAccountToken: &no,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   &yes,
				RunAsUser:      &uid,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:    "main",
				Image:   "registry.k8s.io/pause:3.10",
				Command: []string{"/pause"},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no,
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	if serviceAccount == "" {
		pod.Spec.Volumes = []corev1.Volume{{Name: "target", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: targetName}}}}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "target", MountPath: "/target", ReadOnly: true}}
	} else {
		// Running as the ServiceAccount is the point: keep its token.
		pod.Spec.AutomountServiceAccountToken = &yes
	}
	return pod
}

// escapePod is what a node escape looks like: privileged, in the host's
// PID namespace, with the host's root mounted, on node-1.
func escapePod(name string) *corev1.Pod {
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeName: nodeName,
			HostPID:  true,
			Volumes: []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
			Containers: []corev1.Container{{
				Name:            "main",
				Image:           "registry.k8s.io/pause:3.10",
				SecurityContext: &corev1.SecurityContext{Privileged: &yes},
				VolumeMounts:    []corev1.VolumeMount{{Name: "host", MountPath: "/host"}},
			}},
		},
	}
}

func rule(verbs, group, resource string, names ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: strings.Split(verbs, ","), APIGroups: []string{group},
		Resources: []string{resource}, ResourceNames: names}
}

func roleRef(kind, name string) rbacv1.RoleRef {
	return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: name}
}

func user(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

func (w *walkWorld) role(ctx context.Context, t *testing.T, ns, name string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	_, err := w.admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("setting up the world: Role %s/%s: %v", ns, name, err)
	}
}

func (w *walkWorld) roleBinding(ctx context.Context, t *testing.T, ns, name string, ref rbacv1.RoleRef, subjects ...rbacv1.Subject) {
	t.Helper()
	_, err := w.admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: ref, Subjects: subjects}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("setting up the world: RoleBinding %s/%s: %v", ns, name, err)
	}
}

// grant creates Role ns/name with rules and binds it to the user.
func (w *walkWorld) grant(ctx context.Context, t *testing.T, ns, userName, name string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	w.role(ctx, t, ns, name, rules...)
	w.roleBinding(ctx, t, ns, userName+"-"+name, roleRef("Role", name), user(userName))
}

// as returns a client authenticating with the static token of userName.
func (w *walkWorld) as(t *testing.T, userName string) kubernetes.Interface {
	t.Helper()
	return w.clientFor(t, w.cp.ConfigFor(testenv.User{Name: userName}))
}

func (w *walkWorld) clientFor(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tokenConfig authenticates with a bearer token only.
func (w *walkWorld) tokenConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            w.cp.Config.Host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: w.cp.Config.CAData},
	}
}

// adminToken mints a token for a ServiceAccount as the admin.
func (w *walkWorld) adminToken(ctx context.Context, t *testing.T, ns, sa string) string {
	t.Helper()
	tr, err := w.admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, tokenRequest(), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("admin TokenRequest for %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

func tokenRequest() *authenticationv1.TokenRequest {
	exp := int64(600)
	return &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}
}

// matchesCanary says whether s holds the canary, without ever showing it.
func (w *walkWorld) matchesCanary(s *corev1.Secret) error {
	if s == nil || !bytes.Equal(s.Data[canaryKey], w.canary) {
		return errors.New("the Secret obtained does not hold the canary (values not shown)")
	}
	return nil
}

// mustRead GETs the target with cfg and requires the canary.
func (w *walkWorld) mustRead(ctx context.Context, t *testing.T, cfg *rest.Config) {
	t.Helper()
	s, err := w.clientFor(t, cfg).CoreV1().Secrets(walkNS).Get(ctx, targetName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("GET secrets/%s/%s: %v", walkNS, targetName, err)
	}
	if err := w.matchesCanary(s); err != nil {
		t.Fatal(err)
	}
}

// mustNotRead requires GET of the target with cfg to be forbidden.
func (w *walkWorld) mustNotRead(ctx context.Context, t *testing.T, who string, cfg *rest.Config) {
	t.Helper()
	_, err := w.clientFor(t, cfg).CoreV1().Secrets(walkNS).Get(ctx, targetName, metav1.GetOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s: GET secrets/%s/%s: got error %v, want Forbidden", who, walkNS, targetName, err)
	}
}

func (w *walkWorld) walkImpersonate(ctx context.Context, t *testing.T) {
	alice := w.cp.ConfigFor(testenv.User{Name: "alice"})
	w.mustNotRead(ctx, t, "alice as herself", alice)
	other := rest.CopyConfig(alice)
	other.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + runnerNS + ":" + deployerSA}
	w.mustNotRead(ctx, t, "alice impersonating runner/deployer", other)
	asReader := rest.CopyConfig(alice)
	asReader.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + walkNS + ":" + readerSA}
	w.mustRead(ctx, t, asReader)
}

func (w *walkWorld) walkTokenMint(ctx context.Context, t *testing.T) {
	bob := w.as(t, "bob")
	w.mustNotRead(ctx, t, "bob", w.cp.ConfigFor(testenv.User{Name: "bob"}))
	if _, err := bob.CoreV1().ServiceAccounts(walkNS).CreateToken(ctx, "default", tokenRequest(), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("bob: TokenRequest for walk/default: got error %v, want Forbidden", err)
	}
	tr, err := bob.CoreV1().ServiceAccounts(walkNS).CreateToken(ctx, readerSA, tokenRequest(), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("bob: TokenRequest for walk/reader: %v", err)
	}
	w.mustRead(ctx, t, w.tokenConfig(tr.Status.Token))
}

func (w *walkWorld) walkSecretPatch(ctx context.Context, t *testing.T) {
	carol := w.as(t, "carol")
	w.mustNotRead(ctx, t, "carol (GET)", w.cp.ConfigFor(testenv.User{Name: "carol"}))
	s, err := carol.CoreV1().Secrets(walkNS).Patch(ctx, targetName, types.MergePatchType, []byte(`{}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("carol: empty merge patch of secrets/%s/%s: %v", walkNS, targetName, err)
	}
	if err := w.matchesCanary(s); err != nil {
		t.Fatalf("carol: the patch response: %v", err)
	}
	// The empty patch is a no-op: the world the audit reads is unchanged.
	if s.ResourceVersion != w.targetRV {
		t.Errorf("the empty patch changed the target's resourceVersion from %s to %s", w.targetRV, s.ResourceVersion)
	}
}

func (w *walkWorld) walkLegacyToken(ctx context.Context, t *testing.T) {
	erin := w.as(t, "erin")
	w.mustNotRead(ctx, t, "erin", w.cp.ConfigFor(testenv.User{Name: "erin"}))
	s, err := erin.CoreV1().Secrets(walkNS).Get(ctx, tokenSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("erin: GET secrets/%s/%s: %v", walkNS, tokenSecret, err)
	}
	token := string(s.Data[corev1.ServiceAccountTokenKey])
	if token == "" {
		t.Fatalf("erin: secrets/%s/%s has no data.token", walkNS, tokenSecret)
	}
	w.mustRead(ctx, t, w.tokenConfig(token))
}

func (w *walkWorld) walkNodeAuthorizer(ctx context.Context, t *testing.T) {
	node := w.as(t, nodeUser)
	// The Node authorizer learns the pod from an informer: wait for it.
	var s *corev1.Secret
	err := poll(ctx, 30*time.Second, func() error {
		var err error
		s, err = node.CoreV1().Secrets(walkNS).Get(ctx, targetName, metav1.GetOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("%s: GET secrets/%s/%s: %v", nodeUser, walkNS, targetName, err)
	}
	if err := w.matchesCanary(s); err != nil {
		t.Fatal(err)
	}
	// Only what its pods use.
	if _, err := node.CoreV1().Secrets(walkNS).Get(ctx, tokenSecret, metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("%s: GET secrets/%s/%s (no pod of the node uses it): got error %v, want Forbidden", nodeUser, walkNS, tokenSecret, err)
	}
	w.nodeListWatch(ctx, t, node)
}

// nodeListWatch checks how the Node authorizer treats list and watch of a
// Secret its pod uses: the kubelet watches each Secret by a metadata.name
// field selector, which the apiserver authorizes as a request for that
// name, so list and watch are allowed by name and refused without one.
func (w *walkWorld) nodeListWatch(ctx context.Context, t *testing.T, node kubernetes.Interface) {
	t.Helper()
	for _, verb := range []string{"list", "watch"} {
		w.wantAllowed(ctx, t, nodeUser, nodeGroups, authorizationv1.ResourceAttributes{
			Verb: verb, Resource: "secrets", Namespace: walkNS, Name: targetName})
		w.wantDenied(ctx, t, nodeUser, nodeGroups, authorizationv1.ResourceAttributes{
			Verb: verb, Resource: "secrets", Namespace: walkNS})
	}
	list, err := node.CoreV1().Secrets(walkNS).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + targetName})
	switch {
	case err != nil:
		t.Errorf("%s: LIST secrets in %s with metadata.name=%s: %v", nodeUser, walkNS, targetName, err)
	case len(list.Items) != 1:
		t.Errorf("%s: LIST secrets in %s with metadata.name=%s: %d items, want 1", nodeUser, walkNS, targetName, len(list.Items))
	default:
		if err := w.matchesCanary(&list.Items[0]); err != nil {
			t.Errorf("%s: LIST by name: %v", nodeUser, err)
		}
	}
	if _, err := node.CoreV1().Secrets(walkNS).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("%s: LIST secrets in %s without a selector: got error %v, want Forbidden", nodeUser, walkNS, err)
	}
}

func (w *walkWorld) sarPodCreate(ctx context.Context, t *testing.T) {
	w.wantAllowed(ctx, t, "frank", userGroups, authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: walkNS})
	// The pod the path needs passes admission (Pod Security restricted
	// included): a server-side dry run, which stores nothing.
	frank := w.as(t, "frank")
	if _, err := frank.CoreV1().Pods(walkNS).Create(ctx, restrictedPod("frank-probe", ""), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("frank: dry-run create of a pod mounting the target in %s: %v", walkNS, err)
	}
}

func (w *walkWorld) sarPodExec(ctx context.Context, t *testing.T) {
	w.wantAllowed(ctx, t, "gina", userGroups, authorizationv1.ResourceAttributes{
		Verb: "create", Resource: "pods", Subresource: "exec", Namespace: walkNS, Name: consumerPod})
	exec := func(c kubernetes.Interface, method string) *rest.Request {
		return c.CoreV1().RESTClient().Verb(method).
			Namespace(walkNS).Resource("pods").Name(consumerPod).SubResource("exec").
			Param("command", "true").Param("stdout", "true")
	}
	// SPDY exec is a POST, authorized as create pods/exec.
	w.kubeletProbe(ctx, t, "gina", "POST", exec(w.as(t, "gina"), "POST"), false)
	w.kubeletProbe(ctx, t, "frank", "POST", exec(w.as(t, "frank"), "POST"), true)
	// WebSocket exec (kubectl's default since v1.31) is a GET, which
	// v1.34 authorizes as get pods/exec: create alone does not allow it.
	w.kubeletProbe(ctx, t, "gina", "GET", exec(w.as(t, "gina"), "GET"), true)
}

func (w *walkWorld) sarNodeProxy(ctx context.Context, t *testing.T) {
	w.wantAllowed(ctx, t, "hank", userGroups, authorizationv1.ResourceAttributes{
		Verb: "get", Resource: "nodes", Subresource: "proxy", Name: nodeName})
	proxy := func(c kubernetes.Interface) *rest.Request {
		return c.CoreV1().RESTClient().Get().Resource("nodes").Name(nodeName).SubResource("proxy").Suffix("pods")
	}
	w.kubeletProbe(ctx, t, "hank", "GET", proxy(w.as(t, "hank")), false)
	w.kubeletProbe(ctx, t, "gina", "GET", proxy(w.as(t, "gina")), true)
}

// kubeletProbe sends req, made with method, as who; the apiserver
// forwards such requests to node-1's kubelet. With forbidden it requires a
// 403. Otherwise it requires the request to get past authorization to
// where the apiserver looks up node-1's address: node-1 has none, as no
// kubelet runs.
func (w *walkWorld) kubeletProbe(ctx context.Context, t *testing.T, who, method string, req *rest.Request, forbidden bool) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	what := fmt.Sprintf("%s: %s %s", who, method, req.URL().Path)
	body, err := req.DoRaw(rctx)
	switch {
	case forbidden:
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: got error %v, want Forbidden", what, err)
		}
	case err == nil:
		t.Errorf("%s: succeeded without a kubelet", what)
	case !bytes.Contains(body, []byte("no preferred addresses found")):
		t.Errorf("%s: got error %v (%s), want it past authorization, failing on node-1's missing address", what, err, bytes.TrimSpace(body))
	}
}

func (w *walkWorld) sarNodeEscape(ctx context.Context, t *testing.T) {
	w.wantAllowed(ctx, t, "ivan", userGroups, authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: escapeNS})
	w.wantAllowed(ctx, t, nodeUser, nodeGroups, authorizationv1.ResourceAttributes{
		Verb: "get", Resource: "secrets", Namespace: walkNS, Name: targetName})
	ivan := w.as(t, "ivan")
	if _, err := ivan.CoreV1().Pods(escapeNS).Create(ctx, escapePod("ivan-probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("ivan: dry-run create of a privileged hostPath pod on %s in %s: %v", nodeName, escapeNS, err)
	}
	// The same pod is refused by Pod Security in walk, even to the admin:
	// only escape lets a pod take its node.
	_, err := w.admin.CoreV1().Pods(walkNS).Create(ctx, escapePod("admin-probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
		t.Errorf("admin: dry-run create of a privileged pod in %s: got error %v, want a PodSecurity rejection", walkNS, err)
	}
}

func (w *walkWorld) sarRunAsSA(ctx context.Context, t *testing.T) {
	w.wantAllowed(ctx, t, "kim", userGroups, authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: runnerNS})
	w.wantAllowed(ctx, t, "system:serviceaccount:"+runnerNS+":"+deployerSA,
		[]string{"system:serviceaccounts", "system:serviceaccounts:" + runnerNS, "system:authenticated"},
		authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: walkNS, Name: targetName})
	kim := w.as(t, "kim")
	if _, err := kim.CoreV1().Pods(runnerNS).Create(ctx, restrictedPod("kim-probe", deployerSA), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("kim: dry-run create of a pod running as %s/%s: %v", runnerNS, deployerSA, err)
	}
}

func (w *walkWorld) walkRBACBind(ctx context.Context, t *testing.T) {
	dave := w.as(t, "dave")
	w.mustNotRead(ctx, t, "dave before binding", w.cp.ConfigFor(testenv.User{Name: "dave"}))
	// bind is by name: a role dave may not bind is refused.
	_, err := dave.RbacV1().RoleBindings(walkNS).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "dave-edit"},
		RoleRef:    roleRef("ClusterRole", "edit"),
		Subjects:   []rbacv1.Subject{user("dave")},
	}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("dave: binding ClusterRole edit: got error %v, want Forbidden", err)
	}
	_, err = dave.RbacV1().RoleBindings(walkNS).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "dave-" + secretRole},
		RoleRef:    roleRef("Role", secretRole),
		Subjects:   []rbacv1.Subject{user("dave")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("dave: binding Role %s to himself: %v", secretRole, err)
	}
	w.eventuallyRead(ctx, t, "dave", w.cp.ConfigFor(testenv.User{Name: "dave"}))
}

func (w *walkWorld) walkRBACEscalate(ctx context.Context, t *testing.T) {
	judy := w.as(t, "judy")
	w.mustNotRead(ctx, t, "judy before escalating", w.cp.ConfigFor(testenv.User{Name: "judy"}))
	// judy may not even get her role: she rewrites it whole, without a
	// resourceVersion (RBAC allows unconditional updates).
	_, err := judy.RbacV1().Roles(walkNS).Update(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: judyRole},
		Rules: []rbacv1.PolicyRule{
			rule("get", "", "configmaps"),
			rule("get", "", "secrets", targetName),
		},
	}, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("judy: updating Role %s to read the target: %v", judyRole, err)
	}
	w.eventuallyRead(ctx, t, "judy", w.cp.ConfigFor(testenv.User{Name: "judy"}))
}

// eventuallyRead retries the read while RBAC's informers catch up with a
// change just made.
func (w *walkWorld) eventuallyRead(ctx context.Context, t *testing.T, who string, cfg *rest.Config) {
	t.Helper()
	c := w.clientFor(t, cfg)
	var s *corev1.Secret
	err := poll(ctx, 15*time.Second, func() error {
		var err error
		s, err = c.CoreV1().Secrets(walkNS).Get(ctx, targetName, metav1.GetOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("%s: GET secrets/%s/%s: %v", who, walkNS, targetName, err)
	}
	if err := w.matchesCanary(s); err != nil {
		t.Fatalf("%s: %v", who, err)
	}
}

// negatives checks by SubjectAccessReview that the subjects hold no more
// than their paths need.
func (w *walkWorld) negatives(ctx context.Context, t *testing.T) {
	ra := func(verb, resource, sub, ns, name string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
	}
	for _, u := range walkUsers {
		for _, verb := range []string{"get", "list", "watch"} {
			w.wantDenied(ctx, t, u, userGroups, ra(verb, "secrets", "", walkNS, targetName))
		}
	}
	for _, c := range []struct {
		user string
		ra   authorizationv1.ResourceAttributes
	}{
		{"alice", ra("impersonate", "serviceaccounts", "", runnerNS, deployerSA)},
		{"alice", ra("impersonate", "users", "", "", "dave")},
		{"bob", ra("create", "serviceaccounts", "token", walkNS, "default")},
		{"bob", ra("create", "serviceaccounts", "token", runnerNS, deployerSA)},
		{"carol", ra("patch", "secrets", "", walkNS, tokenSecret)},
		{"carol", ra("update", "secrets", "", walkNS, targetName)},
		{"dave", ra("bind", "clusterroles", "", walkNS, "admin")},
		{"dave", ra("escalate", "roles", "", walkNS, secretRole)},
		{"judy", ra("escalate", "roles", "", walkNS, secretRole)},
		{"judy", ra("create", "rolebindings", "", walkNS, "")},
		{"erin", ra("get", "secrets", "", walkNS, "other")},
		{"frank", ra("create", "pods", "", escapeNS, "")},
		{"frank", ra("create", "pods", "", runnerNS, "")},
		{"frank", ra("create", "pods", "exec", walkNS, consumerPod)},
		{"gina", ra("create", "pods", "exec", walkNS, "other")},
		{"gina", ra("create", "pods", "", walkNS, "")},
		{"hank", ra("get", "nodes", "proxy", "", "node-2")},
		{"hank", ra("create", "nodes", "proxy", "", nodeName)},
		{"ivan", ra("create", "pods", "", walkNS, "")},
		{"ivan", ra("create", "pods", "", runnerNS, "")},
		{"kim", ra("create", "pods", "", walkNS, "")},
		{"kim", ra("create", "pods", "", escapeNS, "")},
		{"kim", ra("impersonate", "serviceaccounts", "", runnerNS, deployerSA)},
	} {
		if c.ra.Resource == "roles" || c.ra.Resource == "rolebindings" || c.ra.Resource == "clusterroles" {
			c.ra.Group = rbacv1.GroupName
		}
		w.wantDenied(ctx, t, c.user, userGroups, c.ra)
	}
	// The node reads only what its pods use.
	w.wantDenied(ctx, t, nodeUser, nodeGroups, ra("get", "secrets", "", walkNS, tokenSecret))
	w.wantDenied(ctx, t, "system:node:node-2", nodeGroups, ra("get", "secrets", "", walkNS, targetName))
}

// sar asks the apiserver whether user (in groups) may do ra.
func (w *walkWorld) sar(ctx context.Context, t *testing.T, userName string, groups []string, ra authorizationv1.ResourceAttributes) (bool, string) {
	t.Helper()
	review, err := w.admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: userName, Groups: groups, ResourceAttributes: &ra},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SubjectAccessReview %s: %v", describe(userName, ra), err)
	}
	reason := review.Status.Reason
	if review.Status.EvaluationError != "" {
		reason += " (evaluation error: " + review.Status.EvaluationError + ")"
	}
	return review.Status.Allowed, reason
}

// wantAllowed requires the SAR to allow, retrying briefly while the
// authorizers' informers catch up with the objects just created.
func (w *walkWorld) wantAllowed(ctx context.Context, t *testing.T, userName string, groups []string, ra authorizationv1.ResourceAttributes) {
	t.Helper()
	var reason string
	err := poll(ctx, 15*time.Second, func() error {
		var ok bool
		if ok, reason = w.sar(ctx, t, userName, groups, ra); !ok {
			return errors.New("denied")
		}
		return nil
	})
	if err != nil {
		t.Errorf("SAR %s: denied, want allowed (reason %q)", describe(userName, ra), reason)
	}
}

func (w *walkWorld) wantDenied(ctx context.Context, t *testing.T, userName string, groups []string, ra authorizationv1.ResourceAttributes) {
	t.Helper()
	if ok, reason := w.sar(ctx, t, userName, groups, ra); ok {
		t.Errorf("SAR %s: allowed, want denied (reason %q)", describe(userName, ra), reason)
	}
}

func describe(userName string, ra authorizationv1.ResourceAttributes) string {
	res := ra.Resource
	if ra.Subresource != "" {
		res += "/" + ra.Subresource
	}
	if ra.Group != "" {
		res += "." + ra.Group
	}
	obj := ra.Name
	if ra.Namespace != "" {
		obj = ra.Namespace + "/" + ra.Name
	}
	return fmt.Sprintf("%s %s %s %s", userName, ra.Verb, res, obj)
}

// poll calls f until it succeeds, timeout passes or ctx ends, and returns
// f's last error.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (after %s)", err, timeout)
		case <-tick.C:
		}
	}
}

// checkReport requires keyhole's readers of walk/target to be exactly the
// proven ones, by the proven paths, with well-formed steps, plus node-1's
// kubelet as an expected node-authorizer reader.
func (w *walkWorld) checkReport(t *testing.T, rep *report.Report, proven map[string]string, nodeProven bool) {
	t.Helper()
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, w.canary) || bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(w.canary))) {
		t.Fatal("the report holds the target's value (not shown)")
	}
	var secret *report.Secret
	for i := range rep.Secrets {
		if s := &rep.Secrets[i]; s.Namespace == walkNS && s.Name == targetName {
			secret = s
		}
	}
	if secret == nil {
		t.Fatalf("the report has no Secret %s/%s", walkNS, targetName)
	}

	got := map[string]string{}
	nodeSeen := false
	// As every sink writes it: a chain's last step names the Secret.
	for r := range secret.WithReaches().Readers.All() {
		subject := r.Subject.String()
		if r.Subject.Kind == "User" && r.Subject.Name == nodeUser {
			nodeSeen = true
			if r.Path != "node-authorizer" || !r.Expected {
				t.Errorf("reader %s: path %q expected=%v, want path node-authorizer, expected", subject, r.Path, r.Expected)
			}
		}
		if r.Path == "direct" {
			if len(r.Steps) != 0 {
				t.Errorf("direct reader %s has %d step(s), want none", subject, len(r.Steps))
			}
		} else {
			checkSteps(t, *r)
		}
		if r.Expected {
			continue
		}
		if prev, dup := got[subject]; dup {
			t.Errorf("reader %s is reported twice (paths %s and %s), want once by its shortest path", subject, prev, r.Path)
			got[subject] = prev + "," + r.Path
			continue
		}
		got[subject] = r.Path
	}
	if nodeProven && !nodeSeen {
		t.Errorf("the report lacks reader User/%s (path node-authorizer, expected), which the walk proved", nodeUser)
	}
	if !maps.Equal(got, proven) {
		t.Errorf("keyhole's non-expected readers of secrets/%s/%s differ from the proven ones (- proven, + keyhole):\n%s",
			walkNS, targetName, diffPaths(proven, got))
	}
}

// checkSteps requires an indirect reader's chain to start with its path
// kind, from the reader, and to end on the target.
func checkSteps(t *testing.T, r report.Reader) {
	t.Helper()
	subject := r.Subject.String()
	if len(r.Steps) == 0 {
		t.Errorf("indirect reader %s (path %s) has no steps", subject, r.Path)
		return
	}
	if first := r.Steps[0]; first.Kind != r.Path {
		t.Errorf("reader %s: steps[0].kind %q, want the path %q", subject, first.Kind, r.Path)
	} else if first.Subject != r.Subject && !isNodeOf(first.Subject, r.Subject) {
		t.Errorf("reader %s: steps[0].subject is %s, want the reader", subject, first.Subject.String())
	}
	want := report.Subject{Kind: "Secret", Namespace: walkNS, Name: targetName}
	if last := r.Steps[len(r.Steps)-1]; last.Reaches != want {
		t.Errorf("reader %s: the last step reaches %s/%s/%s, want %s/%s/%s", subject,
			last.Reaches.Kind, last.Reaches.Namespace, last.Reaches.Name, want.Kind, want.Namespace, want.Name)
	}
}

// isNodeOf says whether node is the Node whose kubelet authenticates as
// user (system:node:NAME): the subject of a node-authorizer step.
func isNodeOf(node, user report.Subject) bool {
	return node.Kind == "Node" && user.Kind == "User" && user.Name == "system:node:"+node.Name
}

// diffPaths lists subject → path entries of want and got that differ.
func diffPaths(want, got map[string]string) string {
	var b strings.Builder
	for _, s := range slices.Sorted(maps.Keys(mergeKeys(want, got))) {
		wp, inWant := want[s]
		gp, inGot := got[s]
		switch {
		case inWant && !inGot:
			fmt.Fprintf(&b, "- %s %s\n", s, wp)
		case !inWant && inGot:
			fmt.Fprintf(&b, "+ %s %s\n", s, gp)
		case wp != gp:
			fmt.Fprintf(&b, "- %s %s\n+ %s %s\n", s, wp, s, gp)
		}
	}
	return b.String()
}

func mergeKeys(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
