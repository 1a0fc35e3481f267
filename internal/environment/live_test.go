package environment_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/config"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

const (
	prodNS    = "shop"
	stagingNS = "shop-staging"
	secretKey = "password"
)

// TestLiveCrossEnvironment, against a real control plane: a staging
// ServiceAccount bound to a prod Role really reads the prod Secret (with
// its own token, and by SubjectAccessReview); a tester bound only in
// staging really may create pods there and so run as that ServiceAccount
// (SubjectAccessReview); and a live audit with the environments reports
// exactly those two as readers from staging (KH610), and neither an
// unbound staging ServiceAccount (denied) nor the prod one.
func TestLiveCrossEnvironment(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{Users: []testenv.User{{Name: "tester"}}})
	ctx := t.Context()
	admin, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	canary := []byte("KEYHOLE-CANARY-live-crossenv-" + fmt.Sprint(time.Now().UnixNano()))
	create(ctx, t, admin, canary)

	// The staging ServiceAccount reads the prod Secret with its own token.
	tr, err := admin.CoreV1().ServiceAccounts(stagingNS).CreateToken(ctx, "checkout", tokenRequest(), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/checkout: %v", stagingNS, err)
	}
	checkout, err := kubernetes.NewForConfig(&rest.Config{Host: cp.Config.Host, BearerToken: tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.Config.CAData}})
	if err != nil {
		t.Fatal(err)
	}
	var got *corev1.Secret
	probe.Eventually(t, rbacDelay, stagingNS+"/checkout reads "+prodNS+"/db with its token", func() (bool, string) {
		got, err = checkout.CoreV1().Secrets(prodNS).Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if !bytes.Equal(got.Data[secretKey], canary) {
		t.Fatal("the Secret read does not hold the canary (values not shown)")
	}
	saGroups := func(ns string) []string {
		return []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	}
	read := authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: prodNS, Name: "db"}
	wantSAR(ctx, t, admin, "system:serviceaccount:"+stagingNS+":checkout", saGroups(stagingNS), read, true)
	wantSAR(ctx, t, admin, "system:serviceaccount:"+stagingNS+":unbound", saGroups(stagingNS), read, false)
	// tester: bound only in staging, may create pods there (running as
	// checkout), and may not read the Secret itself.
	wantSAR(ctx, t, admin, "tester", []string{"system:authenticated"},
		authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: stagingNS}, true)
	wantSAR(ctx, t, admin, "tester", []string{"system:authenticated"}, read, false)

	// The live audit, with the environments of a config file.
	cfgPath := filepath.Join(t.TempDir(), "keyhole.yaml")
	cfgText := "apiVersion: keyhole.io/v1alpha1\nkind: Config\nenvironments:\n" +
		"  - {name: staging, namespaceSelector: \"environment=staging\"}\n" +
		"  - {name: prod, namespaceSelector: \"environment in (prod)\"}\n"
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	in, err := audit.Live(ctx, cp.Config, cluster.Options{})
	if err != nil {
		t.Fatalf("live audit: %v", err)
	}
	for _, p := range in.Problems {
		t.Errorf("live audit problem: %+v", p)
	}
	rep, err := audit.Analyze(in, audit.Options{Environments: cfg.EnvironmentList()})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Errors {
		t.Errorf("report error: %s", e.Message)
	}

	var db *report.Secret
	for i := range rep.Secrets {
		if s := &rep.Secrets[i]; s.Namespace == prodNS && s.Name == "db" {
			db = s
		}
	}
	if db == nil {
		t.Fatalf("no Secret %s/db in the live report", prodNS)
	}
	if db.Environment != "prod" {
		t.Errorf("%s/db environment %q, want prod", prodNS, db.Environment)
	}
	var cross []string
	for _, c := range db.CrossEnv {
		cross = append(cross, fmt.Sprintf("%s %s %s %s", c.FromEnvironment, c.Subject, c.Path, c.Basis))
	}
	want := []string{
		"staging ServiceAccount/shop-staging/checkout direct namespace",
		"staging User/tester run-as-sa bindings",
	}
	slices.Sort(cross)
	if !slices.Equal(cross, want) {
		t.Errorf("readers of %s/db from lower environments:\n got %q\nwant %q", prodNS, cross, want)
	}
	var kh610 []report.Finding
	for _, f := range rep.Findings {
		if f.Rule == finding.CrossEnvironmentRead {
			kh610 = append(kh610, f)
		}
	}
	if len(kh610) != 1 || kh610[0].Object.String() != "Secret/shop/db" || kh610[0].Severity != "high" ||
		!strings.Contains(kh610[0].Message, "lower environment staging by 2 readers") {
		t.Errorf("KH610 findings %+v, want one, high, on Secret/shop/db from staging by 2 readers", kh610)
	}

	// No format carries the value.
	for _, format := range report.Formats {
		var out bytes.Buffer
		if err := report.Write(&out, format, rep); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(out.Bytes(), canary) || bytes.Contains(out.Bytes(), []byte("KEYHOLE-CANARY")) {
			t.Errorf("format %s: the report holds the Secret's value", format)
		}
	}
}

// create makes the world: namespaces shop (prod) and shop-staging
// (staging); the prod Secret; a Role reading it by name, bound to the
// staging checkout ServiceAccount; a Role creating pods in staging, bound
// to tester; and a staging ServiceAccount bound to nothing.
func create(ctx context.Context, t *testing.T, c kubernetes.Interface, canary []byte) {
	t.Helper()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("creating %s: %v", what, err)
		}
	}
	for ns, env := range map[string]string{prodNS: "prod", stagingNS: "staging"} {
		_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{"environment": env, "pod-security.kubernetes.io/enforce": "restricted"}}}, metav1.CreateOptions{})
		must("Namespace/"+ns, err)
	}
	for _, sa := range []string{"checkout", "unbound"} {
		_, err := c.CoreV1().ServiceAccounts(stagingNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) { // the controller may have made it
			must("ServiceAccount/"+stagingNS+"/"+sa, err)
		}
	}
	_, err := c.CoreV1().Secrets(prodNS).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Data: map[string][]byte{secretKey: canary}}, metav1.CreateOptions{})
	must("Secret/"+prodNS+"/db", err)
	_, err = c.RbacV1().Roles(prodNS).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-db"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"db"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
	must("Role/"+prodNS+"/read-db", err)
	_, err = c.RbacV1().RoleBindings(prodNS).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "staging-checkout-reads-db"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-db"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: stagingNS, Name: "checkout"}}}, metav1.CreateOptions{})
	must("RoleBinding/"+prodNS+"/staging-checkout-reads-db", err)
	_, err = c.RbacV1().Roles(stagingNS).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}}}, metav1.CreateOptions{})
	must("Role/"+stagingNS+"/pods", err)
	_, err = c.RbacV1().RoleBindings(stagingNS).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "tester-pods"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pods"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "tester"}}}, metav1.CreateOptions{})
	must("RoleBinding/"+stagingNS+"/tester-pods", err)
}

func tokenRequest() *authenticationv1.TokenRequest {
	exp := int64(600)
	return &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}
}

// rbacDelay bounds the wait for RBAC objects to reach the authorizer,
// which reads them through informers a moment after they are created.
const rbacDelay = 15 * time.Second

// wantSAR requires a SubjectAccessReview's answer, retrying while the
// authorizer catches up with the objects just created. Ask for the
// allowed answers first: a denial is only meaningful once the authorizer
// has seen the objects.
func wantSAR(ctx context.Context, t *testing.T, c kubernetes.Interface, user string, groups []string, ra authorizationv1.ResourceAttributes, allowed bool) {
	t.Helper()
	what := fmt.Sprintf("SubjectAccessReview %s %s %s %s/%s: allowed=%v", user, ra.Verb, ra.Resource, ra.Namespace, ra.Name, allowed)
	probe.Eventually(t, rbacDelay, what, func() (bool, string) {
		review, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: &ra}}, metav1.CreateOptions{})
		if err != nil {
			return false, err.Error()
		}
		return review.Status.Allowed == allowed, fmt.Sprintf("allowed=%v (%s)", review.Status.Allowed, review.Status.Reason)
	})
}
