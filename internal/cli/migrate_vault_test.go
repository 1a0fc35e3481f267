package cli

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// vaultSecretYAML is a Secret whose every value holds the canary.
const vaultSecretYAML = `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
type: Opaque
stringData:
  password: ` + canary + `-password
  username: ` + canary + `-user
---
apiVersion: v1
kind: Secret
metadata:
  name: no-namespace
stringData:
  token: ` + canary + `-token
`

// assertOutDir checks every file under dir is mode 0600 (directories
// 0700) and holds no value, and returns the files' paths relative to dir.
func assertOutDir(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			if path != dir && info.Mode().Perm() != 0o700 {
				t.Errorf("directory %s has mode %v, want 0700", rel, info.Mode().Perm())
			}
			return nil
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", rel, info.Mode().Perm())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		assertNoCanary(t, rel, string(data))
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestMigrateVaultUsage(t *testing.T) {
	t.Setenv("VAULT_ADDR", "")
	file := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(file, []byte(vaultSecretYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "--vault-addr=https://vault:8200"
	tests := []struct {
		name string
		args []string
		err  string
	}{
		{"no input", []string{addr}, "exactly one of --from-cluster, --from-file and --selector"},
		{"two inputs", []string{addr, "--from-file", file, "--from-cluster", "a/b"}, "exactly one of"},
		{"selector without namespace", []string{addr, "--selector", "app=x"}, "--selector needs --namespace"},
		{"empty selector", []string{addr, "--selector", "", "-A"}, "--selector is empty"},
		{"all namespaces without selector", []string{addr, "--from-file", file, "-A"}, "--all-namespaces is for --selector"},
		{"namespace and all namespaces", []string{addr, "--selector", "a=b", "-n", "x", "-A"}, "cannot be used together"},
		{"bad ref", []string{addr, "--from-cluster", "nope"}, `--from-cluster: "nope" is not NAMESPACE/NAME`},
		{"force without apply", []string{addr, "--from-file", file, "--force"}, "--force is for --apply"},
		{"file with kubeconfig", []string{addr, "--from-file", file, "--kubeconfig", "k"}, "--from-file reads no cluster"},
		{"no address", []string{"--from-file", file}, "--vault-addr: Vault's address is needed"},
		{"unknown consumer", []string{addr, "--from-file", file, "--consumer", "csi"}, `unknown consumer "csi"`},
		{"bad template", []string{addr, "--from-file", file, "--path-template", "{{.Nope"}, "--path-template"},
		{"bad mount", []string{addr, "--from-file", file, "--kv-mount", "a//b"}, "--kv-mount"},
		{"kubernetes auth without role", []string{addr, "--from-file", file, "--apply", "--vault-auth", "kubernetes"}, "--vault-auth kubernetes needs --vault-role"},
		{"unknown auth", []string{addr, "--from-file", file, "--apply", "--vault-auth", "ldap"}, `unknown method "ldap"`},
		{"rendered path invalid", []string{addr, "--from-file", file, "--path-template", "{{.Namespace}}/../{{.Name}}"}, `".." segment`},
		{"missing file", []string{addr, "--from-file", filepath.Join(t.TempDir(), "nope.yaml")}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := run(t, "", append([]string{"migrate", "vault"}, tt.args...)...)
			if code != ExitError {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, ExitError, stderr)
			}
			if !strings.Contains(stderr, tt.err) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tt.err)
			}
			assertNoCanary(t, "stdout", out)
			assertNoCanary(t, "stderr", stderr)
		})
	}
}

func TestMigrateVaultFromFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(file, []byte(vaultSecretYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_ADDR", "https://vault.example:8200")
	for _, consumer := range []string{"eso", "vso", "agent"} {
		t.Run(consumer, func(t *testing.T) {
			code, out, stderr := run(t, "", "migrate", "vault", "--from-file", file, "-n", "apps", "--consumer", consumer)
			if code != ExitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			assertNoCanary(t, "stdout", out)
			assertNoCanary(t, "stderr", stderr)
			for _, want := range []string{
				"dry run: nothing is written to Vault",
				"apps/no-namespace  secret/apps/no-namespace  token", // -n fills in the namespace
				"shop/db            secret/shop/db            password, username",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			outDir := filepath.Join(t.TempDir(), "out")
			code, out, stderr = run(t, "", "migrate", "vault", "--from-file", file, "--consumer", consumer, "--out", outDir)
			if code != ExitOK {
				t.Fatalf("--out: exit %d; stderr:\n%s", code, stderr)
			}
			assertNoCanary(t, "stdout", out)
			files := assertOutDir(t, outDir)
			want := map[string][]string{
				"eso":   {"plan.json", "eso/cluster-secret-store.yaml", "eso/default/no-namespace.external-secret.yaml", "eso/shop/db.external-secret.yaml"},
				"vso":   {"plan.json", "vso/default/vault-auth.yaml", "vso/shop/vault-auth.yaml", "vso/default/no-namespace.vault-static-secret.yaml", "vso/shop/db.vault-static-secret.yaml"},
				"agent": {"plan.json", "agent/default/no-namespace.annotations.yaml", "agent/shop/db.annotations.yaml"},
			}[consumer]
			if strings.Join(slices.Sorted(slices.Values(files)), " ") != strings.Join(slices.Sorted(slices.Values(want)), " ") {
				t.Errorf("files %v, want %v", files, want)
			}
			for _, f := range want {
				if !strings.Contains(out, f) {
					t.Errorf("stdout does not list %s:\n%s", f, out)
				}
			}
		})
	}
}

// TestMigrateVaultCluster plans the migration of a live Secret that a
// Deployment takes as environment variables, then applies the patch
// keyhole wrote to the real API server, which validates it.
func TestMigrateVaultCluster(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{NoControllerManager: true})
	ctx := context.Background()
	client, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Secrets("shop").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Labels: map[string]string{"migrate": "vault"}},
		StringData: map[string]string{"password": canary + "-password", "username": canary + "-user"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "api", Image: "shop/api",
					Env: []corev1.EnvVar{
						{Name: "MODE", Value: "prod"},
						{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}},
					},
					EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}}},
				}}},
			},
		},
	}
	if _, err := client.AppsV1().Deployments("shop").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, consumer := range []string{"eso", "agent"} {
		t.Run(consumer, func(t *testing.T) {
			outDir := filepath.Join(t.TempDir(), "out")
			code, out, stderr := run(t, "", "migrate", "vault", "--kubeconfig", cp.KubeconfigPath, "--selector", "migrate=vault", "-n", "shop",
				"--vault-addr", "https://vault.example:8200", "--consumer", consumer, "--out", outDir)
			if code != ExitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			assertNoCanary(t, "stdout", out)
			assertNoCanary(t, "stderr", stderr)
			assertOutDir(t, outDir)
			for _, want := range []string{
				"shop/db  secret/shop/db      password, username",
				"deployment/shop/api: kubectl patch deployment api -n shop --type json --patch-file workloads/shop/deployment-api.json-patch.json",
				"container api: env DB_PASSWORD -> file ",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			patch, err := os.ReadFile(filepath.Join(outDir, "workloads", "shop", "deployment-api.json-patch.json"))
			if err != nil {
				t.Fatal(err)
			}
			// The server validates the patched object; a dry run leaves
			// the Deployment for the next consumer.
			got, err := client.AppsV1().Deployments("shop").Patch(ctx, "api", types.JSONPatchType, patch, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				t.Fatalf("applying the patch: %v", err)
			}
			c := got.Spec.Template.Spec.Containers[0]
			if len(c.Env) != 1 || c.Env[0].Name != "MODE" || len(c.EnvFrom) != 0 {
				t.Errorf("env after the patch: %+v, envFrom %+v", c.Env, c.EnvFrom)
			}
			switch consumer {
			case "eso":
				vols := got.Spec.Template.Spec.Volumes
				if len(vols) != 1 || vols[0].Secret == nil || vols[0].Secret.SecretName != "db" || len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/etc/secrets/db" {
					t.Errorf("volumes %+v, mounts %+v", vols, c.VolumeMounts)
				}
			case "agent":
				ann := got.Spec.Template.Annotations
				if ann["vault.hashicorp.com/agent-inject"] != "true" || ann["vault.hashicorp.com/agent-inject-secret-db-password"] != "secret/data/shop/db" {
					t.Errorf("annotations %v", ann)
				}
			}
			var plan struct {
				Workloads []struct {
					Kind, Name string
					PatchFile  string
				}
			}
			data, err := os.ReadFile(filepath.Join(outDir, "plan.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &plan); err != nil {
				t.Fatal(err)
			}
			if len(plan.Workloads) != 1 || plan.Workloads[0].Kind != "Deployment" || plan.Workloads[0].Name != "api" {
				t.Errorf("plan.json workloads %+v", plan.Workloads)
			}
		})
	}
}

// TestMigrateVaultApply runs `migrate vault --apply` against a real Vault
// dev server: a batch that a limited token can only partly write reports
// what was and was not done and exits 1, the same command with a token
// that may write it resumes from the journal, a re-run changes nothing,
// and a different value in Vault is refused without --force.
func TestMigrateVaultApply(t *testing.T) {
	v := testenv.StartVaultT(t)
	root, err := v.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("shop-only", `path "secret/data/shop/*" { capabilities = ["create", "read", "update"] }`); err != nil {
		t.Fatal(err)
	}
	limited, err := root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"shop-only"}, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(file, []byte(vaultSecretYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(t.TempDir(), "out")
	args := []string{"migrate", "vault", "--from-file", file, "--vault-addr", v.Addr, "--out", outDir, "--apply"}
	t.Setenv("VAULT_ADDR", "")
	apply := func(token string, want int, extra ...string) string {
		t.Helper()
		t.Setenv("VAULT_TOKEN", token)
		code, out, stderr := run(t, "", append(args, extra...)...)
		if code != want {
			t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, want, out, stderr)
		}
		assertNoCanary(t, "output", out, stderr)
		assertOutDir(t, outDir)
		return out + stderr
	}

	out := apply(limited.Auth.ClientToken, ExitFindings)
	for _, want := range []string{
		"shop/db              secret/shop/db              written",
		"default/no-namespace  secret/default/no-namespace  failed",
		"reading secret/data/default/no-namespace: HTTP 403: permission denied",
		"1 of 2 Secrets in Vault; 1 not done",
		"1 of 2 Secrets not written to Vault; re-run to resume",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var result struct {
		Results []struct{ Secret, Outcome string }
		NotDone int
	}
	data, err := os.ReadFile(filepath.Join(outDir, "apply-result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &result); err != nil {
		t.Fatal(err)
	}
	if result.NotDone != 1 || len(result.Results) != 2 {
		t.Errorf("apply-result.json: %+v", result)
	}

	out = apply(v.RootToken, ExitOK)
	if !strings.Contains(out, "done earlier") || !strings.Contains(out, "2 of 2 Secrets in Vault.") {
		t.Errorf("resumed run:\n%s", out)
	}
	out = apply(v.RootToken, ExitOK)
	if strings.Count(out, "unchanged") != 2 {
		t.Errorf("re-run should leave both unchanged:\n%s", out)
	}
	md, err := root.KVv2("secret").GetMetadata(context.Background(), "shop/db")
	if err != nil || md.CurrentVersion != 1 {
		t.Fatalf("shop/db after three runs: version %v, %v; want 1", md, err)
	}

	if _, err := root.KVv2("secret").Put(context.Background(), "shop/db", map[string]any{"password": "changed"}); err != nil {
		t.Fatal(err)
	}
	out = apply(v.RootToken, ExitFindings)
	if !strings.Contains(out, "refused") || !strings.Contains(out, "pass --force") {
		t.Errorf("a different value was not refused:\n%s", out)
	}
	out = apply(v.RootToken, ExitOK, "--force")
	if !strings.Contains(out, "overwritten") {
		t.Errorf("--force did not overwrite:\n%s", out)
	}
	got, err := root.KVv2("secret").Get(context.Background(), "shop/db")
	if err != nil {
		t.Fatal(err)
	}
	if got.Data["password"] != canary+"-password" || got.VersionMetadata.Version != 3 {
		t.Errorf("shop/db after --force: version %d, value restored %v; want version 3, true", got.VersionMetadata.Version, got.Data["password"] == canary+"-password")
	}
}
