package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/migrate"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// vaultClient is a client of the test Vault with token.
func vaultClient(t *testing.T, v *testenv.Vault, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = v.Addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// currentVersion is the KV v2 version of path, read as root.
func currentVersion(t *testing.T, c *api.Client, path string) int {
	t.Helper()
	md, err := c.KVv2("secret").GetMetadata(context.Background(), path)
	if err != nil {
		t.Fatalf("metadata of %s: %v", path, err)
	}
	return md.CurrentVersion
}

func outcomes(rs []Result) string {
	var out []string
	for _, r := range rs {
		s := fmt.Sprintf("%s=%s", r.Secret, r.Outcome)
		if r.Version > 0 {
			s += fmt.Sprintf("@%d", r.Version)
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// assertResultsClean renders the results every way and looks for values.
func assertResultsClean(t *testing.T, rs []Result) {
	t.Helper()
	var b bytes.Buffer
	if err := WriteResults(&b, rs); err != nil {
		t.Fatal(err)
	}
	js, err := ResultJSON(rs)
	if err != nil {
		t.Fatal(err)
	}
	assertNoLeak(t, "results", b.String()+string(js)+fmt.Sprintf("%+v", rs))
}

func TestApply(t *testing.T) {
	v := testenv.StartVaultT(t)
	ctx := context.Background()
	root := vaultClient(t, v, v.RootToken)
	p := demoPlan(t, ConsumerESO)

	// New paths: written with cas=0, read back and verified.
	rs, err := Apply(ctx, root, p, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertResultsClean(t, rs)
	if got := outcomes(rs); got != "shop/api-tls=written@1 shop/db=written@1" {
		t.Fatalf("first run: %s", got)
	}
	db, err := root.KVv2("secret").Get(ctx, "shop/db")
	if err != nil {
		t.Fatal(err)
	}
	if db.Data["password"] != canary || db.Data["username"] != "app" || len(db.Data) != 3 {
		t.Errorf("shop/db in Vault: keys %d, password as written: %v", len(db.Data), db.Data["password"] == canary)
	}
	if ks, _ := base64.StdEncoding.DecodeString(fmt.Sprint(db.Data["keystore.p12"])); !bytes.Equal(ks, binaryCanary) {
		t.Errorf("keystore.p12 does not decode to the binary value")
	}

	// Idempotent: nothing written, the versions stay.
	rs, err = Apply(ctx, root, p, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rs); got != "shop/api-tls=unchanged@1 shop/db=unchanged@1" {
		t.Fatalf("second run: %s", got)
	}
	if v1, v2 := currentVersion(t, root, "shop/db"), currentVersion(t, root, "shop/api-tls"); v1 != 1 || v2 != 1 {
		t.Fatalf("versions after a re-run: %d, %d, want 1, 1", v1, v2)
	}

	// Someone else writes a different value: refused without --force,
	// and Vault keeps it.
	if _, err := root.KVv2("secret").Put(ctx, "shop/db", map[string]any{"password": "other-" + canary}); err != nil {
		t.Fatal(err)
	}
	rs, err = Apply(ctx, root, p, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertResultsClean(t, rs)
	if got := outcomes(rs); got != "shop/api-tls=unchanged@1 shop/db=refused@2" {
		t.Fatalf("run over a different value: %s", got)
	}
	if !strings.Contains(rs[1].Error, "pass --force") {
		t.Errorf("refusal %q does not say how to proceed", rs[1].Error)
	}
	if got := currentVersion(t, root, "shop/db"); got != 2 {
		t.Fatalf("a refused write changed the version to %d", got)
	}

	// --force writes a new version over it, with cas on the version read.
	rs, err = Apply(ctx, root, p, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rs); got != "shop/api-tls=unchanged@1 shop/db=overwritten@3" {
		t.Fatalf("--force: %s", got)
	}
	if db, err = root.KVv2("secret").Get(ctx, "shop/db"); err != nil || db.Data["password"] != canary {
		t.Fatalf("after --force: %v, password restored: %v", err, err == nil && db.Data["password"] == canary)
	}

	// A deleted latest version holds no value to protect: written over
	// with cas on it.
	if err := root.KVv2("secret").Delete(ctx, "shop/api-tls"); err != nil {
		t.Fatal(err)
	}
	rs, err = Apply(ctx, root, p, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rs); got != "shop/api-tls=written@2 shop/db=unchanged@3" {
		t.Fatalf("over a deleted version: %s", got)
	}
}

// TestApplyBatchResume runs a batch with a token whose policy denies one
// of three paths: the other two are written, the denied one is reported
// with the cause, and a re-run with a token that may write it resumes
// from the journal.
func TestApplyBatchResume(t *testing.T) {
	v := testenv.StartVaultT(t)
	ctx := context.Background()
	root := vaultClient(t, v, v.RootToken)
	if err := root.Sys().PutPolicy("apps-only", `
path "secret/data/apps/*" { capabilities = ["create", "read", "update"] }
path "secret/data/billing/*" { capabilities = ["read"] }
`); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"apps-only"}, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}
	limited := vaultClient(t, v, tok.Auth.ClientToken)

	val := map[string][]byte{"password": []byte(canary)}
	p, err := NewPlan([]migrate.Secret{
		secret("apps", "a", "", val),
		secret("billing", "b", "", val),
		secret("apps", "c", "", val),
	}, opts(ConsumerESO))
	if err != nil {
		t.Fatal(err)
	}
	out, err := migrate.OpenOut(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	journal := func() *migrate.Journal {
		j, err := out.Journal("vault", "test batch")
		if err != nil {
			t.Fatal(err)
		}
		return j
	}

	rs, err := Apply(ctx, limited, p, false, journal())
	if err != nil {
		t.Fatal(err)
	}
	assertResultsClean(t, rs)
	if got := outcomes(rs); got != "apps/a=written@1 apps/c=written@1 billing/b=failed" {
		t.Fatalf("limited run: %s", got)
	}
	if !strings.Contains(rs[2].Error, "writing secret/data/billing/b: HTTP 403: permission denied") {
		t.Errorf("failure %q does not name the path and the refusal", rs[2].Error)
	}
	if NotDone(rs) != 1 {
		t.Errorf("NotDone = %d, want 1", NotDone(rs))
	}
	var text bytes.Buffer
	if err := WriteResults(&text, rs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "2 of 3 Secrets in Vault; 1 not done") {
		t.Errorf("report:\n%s", text.String())
	}
	if _, err := os.Stat(filepath.Join(out.Dir, migrate.JournalFile)); err != nil {
		t.Fatalf("no journal after a failed batch: %v", err)
	}

	// The cause fixed (a token that may write billing/), the same batch
	// resumes: the journal skips what was done.
	rs, err = Apply(ctx, root, p, false, journal())
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rs); got != "apps/a=done earlier apps/c=done earlier billing/b=written@1" {
		t.Fatalf("resumed run: %s", got)
	}
	if _, err := os.Stat(filepath.Join(out.Dir, migrate.JournalFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the journal of a finished batch is still there: %v", err)
	}
	// Without a journal a re-run compares each path and changes nothing.
	rs, err = Apply(ctx, root, p, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rs); got != "apps/a=unchanged@1 apps/c=unchanged@1 billing/b=unchanged@1" {
		t.Fatalf("re-run: %s", got)
	}
}

func TestApplyCancelled(t *testing.T) {
	v := testenv.StartVaultT(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rs, err := Apply(ctx, vaultClient(t, v, v.RootToken), demoPlan(t, ConsumerESO), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rs); got != "shop/api-tls=not attempted shop/db=not attempted" {
		t.Fatalf("cancelled run: %s", got)
	}
}

func TestNewClientToken(t *testing.T) {
	v := testenv.StartVaultT(t)
	t.Setenv("VAULT_TOKEN", "")
	if _, err := NewClient(context.Background(), v.Addr, Auth{Method: AuthToken}); err == nil || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Errorf("no token: %v", err)
	}
	t.Setenv("VAULT_TOKEN", v.RootToken)
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1") // --vault-addr wins
	c, err := NewClient(context.Background(), v.Addr, Auth{Method: AuthToken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Auth().Token().LookupSelf(); err != nil {
		t.Errorf("the client does not reach Vault at %s: %v", v.Addr, err)
	}
}

// TestKubernetesAuth logs in to the test Vault with Vault's Kubernetes
// auth method, configured against the test control plane: Vault reviews
// a ServiceAccount token minted with TokenRequest, using the token of a
// reviewer ServiceAccount bound to system:auth-delegator (Vault takes
// only a JWT as the reviewer's token, so a static-token user will not
// do).
func TestKubernetesAuth(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{NoControllerManager: true})
	v := testenv.StartVaultT(t)
	ctx := context.Background()
	kube, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "vault-reviewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "default", Name: "vault-reviewer"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(sa string) string {
		t.Helper()
		if _, err := kube.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := kube.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa, &authv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	reviewerJWT := token("vault-reviewer")
	migratorJWT := token("keyhole-migrator")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(migratorJWT), 0o600); err != nil {
		t.Fatal(err)
	}

	root := vaultClient(t, v, v.RootToken)
	if err := root.Sys().EnableAuthWithOptions("kubernetes", &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/kubernetes/config", map[string]any{
		"kubernetes_host":      cp.Config.Host,
		"kubernetes_ca_cert":   string(cp.Config.CAData),
		"token_reviewer_jwt":   reviewerJWT,
		"disable_local_ca_jwt": true,
	}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("migrator", `path "secret/data/*" { capabilities = ["create", "read", "update"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/kubernetes/role/migrator", map[string]any{
		"bound_service_account_names":      "keyhole-migrator",
		"bound_service_account_namespaces": "default",
		"token_policies":                   "migrator",
	}); err != nil {
		t.Fatal(err)
	}

	c, err := NewClient(ctx, v.Addr, Auth{Method: AuthKubernetes, Role: "migrator", TokenFile: tokenFile})
	if err != nil {
		t.Fatalf("kubernetes login: %v", err)
	}
	if c.Token() == "" || c.Token() == v.RootToken {
		t.Fatal("the login gave no token of its own")
	}
	rs, err := Apply(ctx, c, demoPlan(t, ConsumerESO), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rs); got != "shop/api-tls=written@1 shop/db=written@1" {
		t.Fatalf("apply as the service account: %s", got)
	}

	// A role the service account is not bound to is refused, and the
	// error names the role and file, never the token.
	if err := root.Sys().PutPolicy("other", `path "secret/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/kubernetes/role/other", map[string]any{
		"bound_service_account_names":      "someone-else",
		"bound_service_account_namespaces": "default",
		"token_policies":                   "other",
	}); err != nil {
		t.Fatal(err)
	}
	_, err = NewClient(ctx, v.Addr, Auth{Method: AuthKubernetes, Role: "other", TokenFile: tokenFile})
	if err == nil {
		t.Fatal("login with an unbound role succeeded")
	}
	if !strings.Contains(err.Error(), "role other") || strings.Contains(err.Error(), migratorJWT) || strings.Contains(err.Error(), reviewerJWT) {
		t.Errorf("login error %q", err)
	}
}
