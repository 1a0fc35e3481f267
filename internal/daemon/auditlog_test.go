package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/daemontest"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/auditevents"
	"github.com/keyhole-sec/keyhole/internal/source/auditevents/webhooktest"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

const auditCanary = "KEYHOLE-CANARY-audit-value"

// auditDaemon is a daemon with an audit source, run in this process.
type auditDaemon struct {
	*daemontest.Daemon
}

func startAuditDaemon(t *testing.T, opts *Options) *auditDaemon {
	t.Helper()
	opts.Debounce = 200 * time.Millisecond
	opts.ListenAddresses = []string{"127.0.0.1:0"}
	opts.Version = "test"
	opts.Metrics.PerSecret = true
	return &auditDaemon{daemontest.Start(t, func(ctx context.Context, logger *slog.Logger, listening func(string)) error {
		o := *opts
		o.Logger, o.Listening = logger, listening
		return Run(ctx, o)
	})}
}

func (d *auditDaemon) report(t *testing.T, token string) (*report.Report, []byte) {
	t.Helper()
	code, body, err := probe.Get(d.URL(ReportPath), token)
	if err != nil || code != http.StatusOK {
		return nil, body
	}
	var rep report.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("decoding the report: %v", err)
	}
	return &rep, body
}

// did is one read the test makes, by an impersonated identity.
type did struct {
	user      string
	groups    []string
	verb      string
	namespace string
	name      string // "" for a list of the namespace
	selector  string // a metadata.name field selector for a list
}

func (r did) do(ctx context.Context, cp *testenv.ControlPlane) error {
	client, err := kubernetes.NewForConfig(cp.Impersonate(r.user, r.groups...))
	if err != nil {
		return err
	}
	secrets := client.CoreV1().Secrets(r.namespace)
	switch {
	case r.verb == "get":
		_, err = secrets.Get(ctx, r.name, metav1.GetOptions{})
	case r.selector != "":
		_, err = secrets.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + r.selector})
	default:
		_, err = secrets.List(ctx, metav1.ListOptions{})
	}
	return err
}

// allowed asks the API server whether the identity may still make the
// read (SubjectAccessReview).
func (r did) allowed(ctx context.Context, client kubernetes.Interface) (bool, error) {
	name := r.name
	if r.selector != "" {
		name = r.selector
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: r.user, Groups: append(slices.Clone(r.groups), "system:authenticated"),
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: r.namespace, Verb: r.verb, Resource: "secrets", Name: name},
	}}
	got, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return got.Status.Allowed, nil
}

func role(ns, name string, rules ...rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules}
}

func binding(ns, name, roleName string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: roleName}, Subjects: subjects}
}

func user(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

func secretsRule(verbs []string, names ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: verbs, ResourceNames: names}
}

// TestAuditLogLive runs keyhole serve's audit webhook behind a real API
// server (audit policy of deploy/audit/policy.yaml, webhook kubeconfig
// with a client certificate), reads Secrets as several identities through
// impersonation, and checks who keyhole says did read each Secret, the
// unexplained read of a revoked grant, and the unused-grant suggestions.
// It restarts keyhole to check that the summary survives (ConfigMaps),
// then applies the suggested RBAC changes and checks by
// SubjectAccessReview that every read made is still allowed and that the
// removed readers can no longer read.
func TestAuditLogLive(t *testing.T) {
	pki, err := webhooktest.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tokenFile, err := webhooktest.WriteToken(pki.Dir, "unused-token-the-apiserver-sends-a-certificate")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := pki.Kubeconfig(l.Addr().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := filepath.Abs(filepath.Join("..", "..", webhooktest.PolicyFile))
	if err != nil {
		t.Fatal(err)
	}
	cp := testenv.StartT(t, testenv.Options{NoControllerManager: true, ExtraAPIServerFlags: webhooktest.APIServerFlags(policy, kubeconfig)})
	ctx := t.Context()
	admin, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}

	// The world.
	for _, ns := range []string{"shop", "other", "keyhole"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range [][2]string{{"shop", "db"}, {"shop", "api"}, {"shop", "tls"}, {"other", "x"}} {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s[0], Name: s[1]}, StringData: map[string]string{"password": auditCanary}}
		if _, err := admin.CoreV1().Secrets(s[0]).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	roles := []*rbacv1.Role{
		role("shop", "secret-reader", secretsRule([]string{"get", "list", "watch"})),
		role("shop", "deployer", secretsRule([]string{"get"}), rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list"}}),
		role("shop", "app-secrets", secretsRule([]string{"get", "list", "watch"})),
		role("shop", "tls-lister", secretsRule([]string{"list"}, "tls")),
		role("other", "x-reader", secretsRule([]string{"get"})),
	}
	bindings := []*rbacv1.RoleBinding{
		binding("shop", "readers", "secret-reader", user("alice"), user("bob"), rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "auditors"}),
		binding("shop", "dave-deploy", "deployer", user("dave")),
		binding("shop", "app-read", "app-secrets", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "app", Namespace: "shop"}),
		binding("shop", "frank-tls", "tls-lister", user("frank")),
		binding("other", "eve", "x-reader", user("eve")),
	}
	for _, r := range roles {
		if _, err := admin.RbacV1().Roles(r.Namespace).Create(ctx, r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range bindings {
		if _, err := admin.RbacV1().RoleBindings(b.Namespace).Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	checkAuditRole(ctx, t, admin)

	// keyhole has been watching for two windows already: what a
	// replica stored before (only its start time here).
	const window = time.Hour
	store, err := auditevents.NewStore(auditevents.StoreOptions{Client: admin, Namespace: "keyhole", Window: window})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Save(ctx, &auditlog.State{Version: auditlog.StateVersion, Since: time.Now().Add(-2 * window)}); err != nil {
		t.Fatal(err)
	}

	auditOpts := func(l net.Listener) *AuditLog {
		return &AuditLog{Listener: l, TLSCertFile: pki.ServerCertFile, TLSKeyFile: pki.ServerKeyFile,
			ClientCAFile: pki.CAFile, TokenFile: tokenFile, Window: window, Namespace: "keyhole", FlushInterval: 500 * time.Millisecond}
	}
	d := startAuditDaemon(t, &Options{Config: cp.Config, AuditLog: auditOpts(l)})

	// The reads.
	app := []string{"system:serviceaccounts", "system:serviceaccounts:shop"}
	reads := []did{
		{user: "alice", verb: "get", namespace: "shop", name: "db"},
		{user: "alice", verb: "list", namespace: "shop"},
		{user: "carol", groups: []string{"auditors"}, verb: "get", namespace: "shop", name: "db"},
		{user: "system:serviceaccount:shop:app", groups: app, verb: "get", namespace: "shop", name: "api"},
		{user: "frank", verb: "list", namespace: "shop", selector: "tls"},
		{user: "eve", verb: "get", namespace: "other", name: "x"},
	}
	// The authorizer sees new bindings once its informer has them.
	for _, r := range reads {
		probe.Eventually(t, 30*time.Second, "the grants take effect", func() (bool, string) {
			ok, err := r.allowed(ctx, admin)
			return ok, fmt.Sprintf("%s %s %s/%s%s: allowed %v, %v", r.user, r.verb, r.namespace, r.name, r.selector, ok, err)
		})
	}
	for _, r := range reads {
		if err := r.do(ctx, cp); err != nil {
			t.Fatalf("%s %s %s/%s: %v", r.user, r.verb, r.namespace, r.name, err)
		}
	}
	// A denied read is no read.
	if err := (did{user: "mallory", verb: "get", namespace: "shop", name: "db"}).do(ctx, cp); err == nil {
		t.Fatal("mallory could read shop/db")
	}
	// eve's grant goes: her read is now one no grant explains.
	if err := admin.RbacV1().RoleBindings("other").Delete(ctx, "eve", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	wantActual := map[string][]string{
		"shop/db":  {"User/alice", "User/carol"},
		"shop/api": {"ServiceAccount/shop/app", "User/alice"},
		"shop/tls": {"User/alice", "User/frank"},
		"other/x":  {"User/eve"},
	}
	wantUnused := map[string]string{ // on shop/db
		"User/bob":                "remove-subject RoleBinding/shop/readers",
		"User/dave":               "drop-verbs Role/shop/deployer",
		"ServiceAccount/shop/app": "narrow-resource-names Role/shop/app-secrets",
	}
	var rep *report.Report
	var body []byte
	probe.Eventually(t, 90*time.Second, "the report shows who did read", func() (bool, string) {
		rep, body = d.report(t, cp.Admin.Token)
		if rep == nil {
			return false, "no report: " + string(body)
		}
		got := actualReaders(rep, cp.Admin.Name)
		for k, want := range wantActual {
			if !slices.Equal(got[k], want) {
				return false, fmt.Sprintf("actual readers %v", got)
			}
		}
		if u := unusedOf(rep, "shop", "db"); !mapsEqual(u, wantUnused) {
			return false, fmt.Sprintf("unused readers of shop/db %v", u)
		}
		return hasFinding(rep, finding.UnexplainedSecretRead, "Secret/other/x"), "no KH621 on other/x yet"
	})
	if strings.Contains(string(body), auditCanary) {
		t.Error("the report holds a Secret value")
	}
	for _, f := range rep.Findings {
		if f.Rule == finding.UnexplainedSecretRead && f.Object.String() != "Secret/other/x" {
			t.Errorf("KH621 on %s: %s", f.Object, f.Message)
		}
	}
	for _, k := range []string{"User/bob RoleBinding/shop/readers", "User/dave RoleBinding/shop/dave-deploy", "ServiceAccount/shop/app RoleBinding/shop/app-read"} {
		if !hasUnusedGrant(rep, k) {
			t.Errorf("no KH620 for %s", k)
		}
	}

	fams, metricsText, err := scrape(d.URL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := fams.value("keyhole_secret_unused_readers", map[string]string{"namespace": "shop", "secret": "db"}); !ok || v != 3 {
		t.Errorf("keyhole_secret_unused_readers{shop/db} = %v (%v), want 3", v, ok)
	}
	// alice, carol, and keyhole's own identity listing Secrets.
	if v, ok := fams.value("keyhole_secret_actual_readers", map[string]string{"namespace": "shop", "secret": "db"}); !ok || v != 3 {
		t.Errorf("keyhole_secret_actual_readers{shop/db} = %v (%v), want 3", v, ok)
	}
	for _, name := range []string{"keyhole_audit_events_received_total", "keyhole_audit_secret_reads_total"} {
		if v, ok := fams.value(name, nil); !ok || v < float64(len(reads)) {
			t.Errorf("%s = %v (%v)", name, v, ok)
		}
	}
	if v, ok := fams.value("keyhole_audit_webhook_requests_total", map[string]string{"code": "200"}); !ok || v < 1 {
		t.Errorf("no webhook request answered 200: %v", fams.labelsOf("keyhole_audit_webhook_requests_total"))
	}
	if strings.Contains(string(metricsText), auditCanary) || strings.Contains(d.Logs.String(), auditCanary) {
		t.Error("the metrics or the logs hold a Secret value")
	}

	// A restart loses nothing: a new keyhole (not even receiving
	// events) reports the same readers from the ConfigMaps.
	d.Stop()
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d2 := startAuditDaemon(t, &Options{Config: cp.Config, AuditLog: auditOpts(l2)})
	probe.Eventually(t, 60*time.Second, "the restarted keyhole reports the stored reads", func() (bool, string) {
		rep2, body := d2.report(t, cp.Admin.Token)
		if rep2 == nil {
			return false, "no report: " + string(body)
		}
		got := actualReaders(rep2, cp.Admin.Name)
		return slices.Equal(got["shop/db"], wantActual["shop/db"]) && slices.Equal(got["other/x"], wantActual["other/x"]), fmt.Sprintf("%v", got)
	})

	// Apply every change suggested for shop/db.
	for _, u := range secretOf(rep, "shop", "db").UnusedReaders {
		for _, c := range u.Changes {
			if err := applyChange(ctx, admin, c); err != nil {
				t.Fatalf("applying %s: %v", c.Text, err)
			}
		}
	}
	// The unused readers can no longer read shop/db (which also says
	// that the changes are in effect)...
	for _, r := range []did{
		{user: "bob", verb: "get", namespace: "shop", name: "db"},
		{user: "bob", verb: "list", namespace: "shop"},
		{user: "dave", verb: "get", namespace: "shop", name: "db"},
		{user: "system:serviceaccount:shop:app", groups: app, verb: "get", namespace: "shop", name: "db"},
	} {
		// The authorizer sees the changes once its informers have them.
		probe.Eventually(t, 30*time.Second, "a removed reader is denied", func() (bool, string) {
			ok, err := r.allowed(ctx, admin)
			return err == nil && !ok, fmt.Sprintf("%s %s secrets %s/%s: allowed %v, %v", r.user, r.verb, r.namespace, r.name, ok, err)
		})
	}
	// ... and every read made (but eve's, whose grant is gone) is still
	// allowed.
	for _, r := range reads {
		if r.user == "eve" {
			continue
		}
		ok, err := r.allowed(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("after the changes, %s can no longer %s secrets %s/%s%s", r.user, r.verb, r.namespace, r.name, r.selector)
		}
	}
	// dave keeps what his role gives besides Secret reads.
	ok, err := (did{user: "dave", verb: "list", namespace: "shop"}).allowedResource(ctx, admin, "configmaps")
	if err != nil || !ok {
		t.Errorf("dave lost list configmaps: %v %v", ok, err)
	}
}

func (r did) allowedResource(ctx context.Context, client kubernetes.Interface, resource string) (bool, error) {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: r.user, Groups: append(slices.Clone(r.groups), "system:authenticated"),
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: r.namespace, Verb: r.verb, Resource: resource, Name: r.name},
	}}
	got, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return got.Status.Allowed, nil
}

// actualReaders are the report's actual readers of the test's
// namespaces, but keyhole's own identity, by Secret.
func actualReaders(rep *report.Report, self string) map[string][]string {
	out := map[string][]string{}
	for _, s := range rep.Secrets {
		if s.Namespace != "shop" && s.Namespace != "other" {
			continue
		}
		var names []string
		for _, ar := range s.ActualReaders {
			if ar.Subject.Name == self {
				continue
			}
			names = append(names, subjectString(ar.Subject))
		}
		sort.Strings(names)
		out[s.Namespace+"/"+s.Name] = names
	}
	return out
}

func subjectString(s report.Subject) string {
	if s.Namespace != "" {
		return s.Kind + "/" + s.Namespace + "/" + s.Name
	}
	return s.Kind + "/" + s.Name
}

func secretOf(rep *report.Report, ns, name string) *report.Secret {
	for i := range rep.Secrets {
		if rep.Secrets[i].Namespace == ns && rep.Secrets[i].Name == name {
			return &rep.Secrets[i]
		}
	}
	return &report.Secret{}
}

// unusedOf is "action object" of each unused reader's single change.
func unusedOf(rep *report.Report, ns, name string) map[string]string {
	out := map[string]string{}
	for _, u := range secretOf(rep, ns, name).UnusedReaders {
		var parts []string
		for _, c := range u.Changes {
			parts = append(parts, c.Action+" "+c.Object.String())
		}
		if len(parts) == 0 {
			parts = append(parts, "none: "+u.Reason)
		}
		out[subjectString(u.Subject)] = strings.Join(parts, "; ")
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func hasFinding(rep *report.Report, rule, object string) bool {
	for _, f := range rep.Findings {
		if f.Rule == rule && f.Object.String() == object {
			return true
		}
	}
	return false
}

func hasUnusedGrant(rep *report.Report, subjectAndBinding string) bool {
	subj, b, _ := strings.Cut(subjectAndBinding, " ")
	for _, f := range rep.Findings {
		if f.Rule == finding.UnusedSecretGrant && f.Object.String() == b && strings.HasPrefix(f.Message, subj+" ") {
			return true
		}
	}
	return false
}

// applyChange applies a suggested change as an operator would.
func applyChange(ctx context.Context, client kubernetes.Interface, c report.RBACChange) error {
	o := c.Object
	switch c.Action {
	case report.ChangeDeleteBinding:
		if o.Kind == "ClusterRoleBinding" {
			return client.RbacV1().ClusterRoleBindings().Delete(ctx, o.Name, metav1.DeleteOptions{})
		}
		return client.RbacV1().RoleBindings(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
	case report.ChangeRemoveSubject:
		if o.Kind != "RoleBinding" {
			return fmt.Errorf("the test applies remove-subject to RoleBindings only, not %s", o)
		}
		b, err := client.RbacV1().RoleBindings(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		b.Subjects = slices.DeleteFunc(b.Subjects, func(s rbacv1.Subject) bool {
			ns := s.Namespace
			if s.Kind == rbacv1.ServiceAccountKind && ns == "" {
				ns = o.Namespace
			}
			return s.Kind == c.Subject.Kind && s.Name == c.Subject.Name && (s.Kind != rbacv1.ServiceAccountKind || ns == c.Subject.Namespace)
		})
		_, err = client.RbacV1().RoleBindings(o.Namespace).Update(ctx, b, metav1.UpdateOptions{})
		return err
	case report.ChangeDropVerbs, report.ChangeNarrowResourceNames:
		rules := make([]rbacv1.PolicyRule, len(c.Rules))
		for i, r := range c.Rules {
			rules[i] = rbacv1.PolicyRule{Verbs: r.Verbs, APIGroups: r.APIGroups, Resources: r.Resources, ResourceNames: r.ResourceNames, NonResourceURLs: r.NonResourceURLs}
		}
		if o.Kind == "ClusterRole" {
			r, err := client.RbacV1().ClusterRoles().Get(ctx, o.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			r.Rules = rules
			_, err = client.RbacV1().ClusterRoles().Update(ctx, r, metav1.UpdateOptions{})
			return err
		}
		r, err := client.RbacV1().Roles(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		r.Rules = rules
		_, err = client.RbacV1().Roles(o.Namespace).Update(ctx, r, metav1.UpdateOptions{})
		return err
	}
	return fmt.Errorf("unknown action %q", c.Action)
}

// checkAuditRole applies deploy/audit/role.yaml and checks that it lets
// keyhole's ServiceAccount do what the store does, and no more on other
// ConfigMaps.
func checkAuditRole(ctx context.Context, t *testing.T, admin kubernetes.Interface) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "audit", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(data), "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("deploy/audit/role.yaml: %d documents, want a Role and a RoleBinding", len(docs))
	}
	var r rbacv1.Role
	var b rbacv1.RoleBinding
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &r); err != nil {
		t.Fatalf("deploy/audit/role.yaml: %v", err)
	}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &b); err != nil {
		t.Fatalf("deploy/audit/role.yaml: %v", err)
	}
	if _, err := admin.RbacV1().Roles(r.Namespace).Create(ctx, &r, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings(b.Namespace).Create(ctx, &b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := did{user: "system:serviceaccount:keyhole:keyhole", groups: []string{"system:serviceaccounts", "system:serviceaccounts:keyhole"}, namespace: "keyhole"}
	// The authorizer sees a new binding once its informer has it.
	probe.Eventually(t, 30*time.Second, "the RoleBinding of deploy/audit/role.yaml takes effect", func() (bool, string) {
		probe := sa
		probe.verb, probe.name = "get", auditevents.DefaultStoreName+"-0"
		ok, err := probe.allowedResource(ctx, admin, "configmaps")
		return ok, fmt.Sprintf("allowed %v, %v", ok, err)
	})
	for _, c := range []struct {
		verb, name string
		want       bool
	}{
		{"get", auditevents.DefaultStoreName + "-0", true},
		{"update", auditevents.DefaultStoreName + "-7", true},
		{"create", "", true},
		{"get", "other", false},
		{"update", "other", false},
		{"delete", auditevents.DefaultStoreName + "-0", false},
	} {
		sa.verb, sa.name = c.verb, c.name
		got, err := sa.allowedResource(ctx, admin, "configmaps")
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("deploy/audit/role.yaml: %s configmaps %q allowed = %v, want %v", c.verb, c.name, got, c.want)
		}
	}
}
