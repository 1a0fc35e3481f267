package cli

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/keyhole-sec/keyhole/internal/migrate"
	"github.com/keyhole-sec/keyhole/internal/migrate/sealedsecrets"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// sealedKeyPair generates a controller key pair and writes the
// certificate to a file, as `kubeseal --fetch-cert > cert.pem` would.
func sealedKeyPair(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	key, cert, err := sscrypto.GeneratePrivateKeyAndCert(2048, time.Hour, "keyhole-test")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, p
}

// sealedUnseal decodes a YAML stream of SealedSecrets and unseals each
// with key, as the controller would: under its own name and namespace.
func sealedUnseal(t *testing.T, stream []byte, key *rsa.PrivateKey) []*corev1.Secret {
	t.Helper()
	fp, err := sscrypto.PublicKeyFingerprint(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var out []*corev1.Secret
	for i, doc := range strings.Split(string(stream), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var ss ssv1alpha1.SealedSecret
		if err := yaml.UnmarshalStrict([]byte(doc), &ss); err != nil {
			t.Fatalf("document %d is not a SealedSecret: %v", i+1, err)
		}
		if ss.APIVersion != "bitnami.com/v1alpha1" || ss.Kind != "SealedSecret" {
			t.Fatalf("document %d: %s %s", i+1, ss.APIVersion, ss.Kind)
		}
		s, err := ss.Unseal(scheme.Codecs, map[string]*rsa.PrivateKey{fp: key})
		if err != nil {
			t.Fatalf("unsealing sealedsecret/%s/%s: %v", ss.Namespace, ss.Name, err)
		}
		out = append(out, s)
	}
	return out
}

// sealedDataDiff says how got differs from want by key and length only:
// values never reach the test output.
func sealedDataDiff(got, want map[string]string) []string {
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, "lacks key "+k)
		case g != w:
			diffs = append(diffs, "key "+k+" differs")
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "unexpected key "+k)
		}
	}
	sort.Strings(diffs)
	return diffs
}

func stringData(s *corev1.Secret) map[string]string {
	m := map[string]string{}
	for k, v := range s.Data {
		m[k] = string(v)
	}
	return m
}

// sealedNoLeak fails when any output holds the canary, plain or base64.
func sealedNoLeak(t *testing.T, what string, outputs ...string) {
	t.Helper()
	for i, o := range outputs {
		for _, form := range canaryForms() {
			if strings.Contains(o, form) {
				t.Errorf("%s (output %d) holds a value (%q)", what, i+1, form)
			}
		}
	}
}

// sealedOutTree checks the output directory: directories 0700, files
// 0600, no value in any file (the journal included), and returns the
// files, relative and slash-separated.
func sealedOutTree(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if info.Mode().Perm() != 0o700 {
				t.Errorf("directory %s has mode %v, want 0700", rel, info.Mode().Perm())
			}
			return nil
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("file %s has mode %v, want 0600", rel, info.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sealedNoLeak(t, "file "+rel, string(data))
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

const sealedPassword = canary + "-sealed-pw"

func TestMigrateSealedUsage(t *testing.T) {
	_, cert := sealedKeyPair(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(good, []byte(gitSecret("prod", "db", "password", sealedPassword)), 0o600); err != nil {
		t.Fatal(err)
	}
	malformed := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(malformed, []byte("apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\nstringData:\n  password: "+sealedPassword+"\n bad: ["+sealedPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noSecret := filepath.Join(dir, "cm.yaml")
	if err := os.WriteFile(noSecret, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no input", []string{"--cert", cert}, "give exactly one of --from-file, --from-cluster and --from-git"},
		{"two inputs", []string{"--from-file", good, "--from-cluster", "a/b", "--cert", cert}, "give exactly one of"},
		{"cert and controller", []string{"--from-file", good, "--cert", cert, "--controller-name", "x"}, "--cert or --controller-namespace/--controller-name"},
		{"git without out", []string{"--from-git", dir, "--cert", cert}, "--from-git needs --out DIR"},
		{"bad scope", []string{"--from-file", good, "--cert", cert, "--scope", "global"}, `--scope: scope "global": must be one of: strict, namespace-wide, cluster-wide`},
		{"bad ref", []string{"--from-cluster", "db", "--cert", cert}, `--from-cluster: "db" is not NAMESPACE/NAME`},
		{"missing file", []string{"--from-file", filepath.Join(dir, "nope.yaml"), "--cert", cert}, filepath.Join(dir, "nope.yaml") + ": no such file"},
		{"malformed file", []string{"--from-file", malformed, "--cert", cert}, malformed + " document 2 (line 9): not valid YAML"},
		{"no Secret", []string{"--from-file", noSecret, "--cert", cert}, "no Secret to seal in file " + noSecret},
		{"missing cert", []string{"--from-file", good, "--cert", filepath.Join(dir, "nope.pem")}, "certificate " + filepath.Join(dir, "nope.pem") + ": no such file"},
		{"not a cert", []string{"--from-file", good, "--cert", good}, "certificate " + good + ": "},
		{"unknown flag", []string{"--from-file", good, "--cert", cert, "--namespace", "x"}, "unknown flag: --namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", append([]string{"migrate", "sealed-secrets"}, tt.args...)...)
			if code != ExitError {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, ExitError, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout: %s", stdout)
			}
			sealedNoLeak(t, "usage error", stdout, stderr)
		})
	}
}

func TestMigrateSealedFromFile(t *testing.T) {
	key, cert := sealedKeyPair(t)
	input := gitSecret("prod", "db", "password", sealedPassword,
		// kubectl's copy of the values, which must not travel.
		`kubectl.kubernetes.io/last-applied-configuration: '{"stringData":{"password":"`+sealedPassword+`"}}'`, `team: payments`) +
		"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: prod}\n---\n" +
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: api, namespace: shop}\n  data: {token: " +
		base64.StdEncoding.EncodeToString([]byte(canary+"-api-token")) + "}\n  stringData: {user: " + canary + "-user}\n"
	file := filepath.Join(t.TempDir(), "secrets.yaml")
	if err := os.WriteFile(file, []byte(input), 0o600); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"prod/db":  {"password": sealedPassword},
		"shop/api": {"token": canary + "-api-token", "user": canary + "-user"},
	}
	check := func(t *testing.T, stream []byte, scope string) {
		t.Helper()
		got := sealedUnseal(t, stream, key)
		if len(got) != len(want) {
			t.Fatalf("%d SealedSecrets, want %d", len(got), len(want))
		}
		for _, s := range got {
			ref := s.Namespace + "/" + s.Name
			for _, d := range sealedDataDiff(stringData(s), want[ref]) {
				t.Errorf("%s: %s", ref, d)
			}
			if _, ok := s.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; ok {
				t.Errorf("%s: the last-applied annotation travelled", ref)
			}
		}
		if scope != "strict" && !bytes.Contains(stream, []byte("sealedsecrets.bitnami.com/"+scope+`: "true"`)) {
			t.Errorf("no %s annotation in:\n%s", scope, stream)
		}
	}

	for _, scope := range []string{"strict", "namespace-wide", "cluster-wide"} {
		t.Run("stdout "+scope, func(t *testing.T) {
			code, stdout, stderr := run(t, "", "migrate", "sealed-secrets", "--from-file", file, "--cert", cert, "--scope", scope)
			if code != ExitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			sealedNoLeak(t, "stdout/stderr", stdout, stderr)
			check(t, []byte(stdout), scope)
			for _, w := range []string{
				file + " document 2 (ConfigMap cm): skipped: not a Secret",
				"kubectl annotate secret db -n prod sealedsecrets.bitnami.com/managed=true --overwrite",
				"sealedsecret/shop/api (scope " + scope + "; keys: token, user) from secret/shop/api in " + file + " document 3 item 1",
			} {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}

	t.Run("stdin", func(t *testing.T) {
		code, stdout, stderr := run(t, input, "migrate", "sealed-secrets", "--from-file", "-", "--cert", cert)
		if code != ExitOK {
			t.Fatalf("exit %d; stderr:\n%s", code, stderr)
		}
		sealedNoLeak(t, "stdout/stderr", stdout, stderr)
		check(t, []byte(stdout), "strict")
	})

	t.Run("out", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "sealed")
		code, stdout, stderr := run(t, "", "migrate", "sealed-secrets", "--from-file", file, "--cert", cert, "--out", out)
		if code != ExitOK {
			t.Fatalf("exit %d; stderr:\n%s", code, stderr)
		}
		sealedNoLeak(t, "stdout/stderr", stdout, stderr)
		files := sealedOutTree(t, out)
		if strings.Join(files, " ") != "prod/db.yaml shop/api.yaml" {
			t.Fatalf("files %q", files)
		}
		var all []byte
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(out, f))
			if err != nil {
				t.Fatal(err)
			}
			all = append(append(all, b...), "\n---\n"...)
		}
		check(t, all, "strict")
		for _, w := range []string{"done       prod/db.yaml: write", "kubectl apply --server-side --field-manager=keyhole -f " + filepath.Join(out, "shop", "api.yaml")} {
			if !strings.Contains(stdout, w) {
				t.Errorf("stdout lacks %q:\n%s", w, stdout)
			}
		}
	})
}

func TestMigrateSealedFromGit(t *testing.T) {
	key, cert := sealedKeyPair(t)
	r := newGitRepo(t)
	r.Write(map[string]string{
		"apps/db/secret.yaml":         gitSecret("apps", "db", "password", canary+"-db"),
		"apps/db/deployment.yaml":     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: db, namespace: apps}\n",
		"apps/web/all.yaml":           "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\n" + gitSecret("apps", "web-1", "k", canary+"-web1") + "---\n" + gitSecret("apps", "web-2", "k", canary+"-web2"),
		"overlays/prod/secret.yml":    gitSecret("prod", "db", "password", canary+"-prod-db"),
		"charts/x/templates/s.yaml":   "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}\n  {{- if .x }}\n",
		"broken/secret.yaml":          "apiVersion: v1\nkind: Secret\nmetadata: {name: b, namespace: apps}\nstringData:\n  k: " + canary + "-broken\n bad: x\n",
		"docs/secret-example.yaml.md": gitSecret("apps", "doc", "k", canary+"-doc"),
	})
	r.Commit("plaintext secrets")
	want := map[string]map[string]map[string]string{
		"apps/db/secret.yaml":      {"apps/db": {"password": canary + "-db"}},
		"apps/web/all.yaml":        {"apps/web-1": {"k": canary + "-web1"}, "apps/web-2": {"k": canary + "-web2"}},
		"overlays/prod/secret.yml": {"prod/db": {"password": canary + "-prod-db"}},
	}
	checkFile := func(t *testing.T, out, rel string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			t.Fatal(err)
		}
		got := sealedUnseal(t, b, key)
		if len(got) != len(want[rel]) {
			t.Errorf("%s: %d SealedSecrets, want %d", rel, len(got), len(want[rel]))
		}
		for i, s := range got {
			ref := s.Namespace + "/" + s.Name
			if rel == "apps/web/all.yaml" && ref != []string{"apps/web-1", "apps/web-2"}[i] {
				t.Errorf("%s: document %d is %s: input order not kept", rel, i+1, ref)
			}
			for _, d := range sealedDataDiff(stringData(s), want[rel][ref]) {
				t.Errorf("%s: %s: %s", rel, ref, d)
			}
		}
	}

	t.Run("layout", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "sealed")
		code, stdout, stderr := run(t, "", "migrate", "sealed-secrets", "--from-git", r.Dir, "--cert", cert, "--out", out)
		// The broken file fails the run (a Secret in it was not read),
		// after everything else was written.
		if code != ExitError {
			t.Errorf("exit %d, want %d; stderr:\n%s", code, ExitError, stderr)
		}
		sealedNoLeak(t, "stdout/stderr", stdout, stderr)
		for _, w := range []string{"broken/secret.yaml document 1: skipped: line 6: not valid YAML", "1 file(s) could not be read"} {
			if !strings.Contains(stderr, w) {
				t.Errorf("stderr lacks %q:\n%s", w, stderr)
			}
		}
		if strings.Contains(stderr, "charts/x/templates/s.yaml") && strings.Contains(stderr, "level=ERROR msg=charts") {
			t.Errorf("a template is reported as an error:\n%s", stderr)
		}
		files := sealedOutTree(t, out)
		if got := strings.Join(files, " "); got != "apps/db/secret.yaml apps/web/all.yaml overlays/prod/secret.yml" {
			t.Fatalf("files %q", got)
		}
		for _, f := range files {
			checkFile(t, out, f)
		}
	})

	// Repair the broken file; a batch then fails halfway on an
	// unwritable output file, and the re-run resumes.
	r.Write(map[string]string{"broken/secret.yaml": gitSecret("apps", "b", "k", canary+"-fixed")})
	r.Commit("fix")
	want["broken/secret.yaml"] = map[string]map[string]string{"apps/b": {"k": canary + "-fixed"}}

	t.Run("resume", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "sealed")
		// A directory where a file must go: renaming over it fails, for
		// root too.
		blocker := filepath.Join(out, "apps", "web", "all.yaml")
		if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		args := []string{"migrate", "sealed-secrets", "--from-git", r.Dir, "--cert", cert, "--out", out}
		code, stdout, stderr := run(t, "", args...)
		if code != ExitFindings {
			t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, ExitFindings, stdout, stderr)
		}
		sealedNoLeak(t, "stdout/stderr", stdout, stderr)
		for _, w := range []string{
			"done       apps/db/secret.yaml: write",
			"FAILED     apps/web/all.yaml: write: " + blocker,
			"done       overlays/prod/secret.yml: write",
			"3 done, 0 done earlier, 1 failed, 0 not done; run the same command again to resume",
		} {
			if !strings.Contains(stdout, w) {
				t.Errorf("stdout lacks %q:\n%s", w, stdout)
			}
		}
		if !strings.Contains(stderr, "1 step(s) failed, 0 not done: run the same command again to resume") {
			t.Errorf("stderr:\n%s", stderr)
		}
		journal, err := os.ReadFile(filepath.Join(out, migrate.JournalFile))
		if err != nil {
			t.Fatalf("no journal after a failure: %v", err)
		}
		if !bytes.Contains(journal, []byte(`"ref": "apps/db/secret.yaml"`)) || bytes.Contains(journal, []byte("apps/web/all.yaml")) {
			t.Errorf("journal:\n%s", journal)
		}
		// Modes, no value in the journal, no temporary file left.
		if got := strings.Join(sealedOutTree(t, out), " "); got != migrate.JournalFile+" apps/db/secret.yaml broken/secret.yaml overlays/prod/secret.yml" {
			t.Errorf("files after the failure: %q", got)
		}
		before, err := os.ReadFile(filepath.Join(out, "apps", "db", "secret.yaml"))
		if err != nil {
			t.Fatal(err)
		}

		if err := os.RemoveAll(blocker); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr = run(t, "", args...)
		if code != ExitOK {
			t.Fatalf("re-run: exit %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		sealedNoLeak(t, "stdout/stderr", stdout, stderr)
		for _, w := range []string{
			"# Resuming the unfinished batch recorded in " + filepath.Join(out, migrate.JournalFile),
			"skipped    apps/db/secret.yaml: write (done in an earlier run)",
			"done       apps/web/all.yaml: write",
			"1 done, 3 done earlier, 0 failed, 0 not done",
		} {
			if !strings.Contains(stdout, w) {
				t.Errorf("re-run stdout lacks %q:\n%s", w, stdout)
			}
		}
		after, err := os.ReadFile(filepath.Join(out, "apps", "db", "secret.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Error("the re-run rewrote a file the first run had written")
		}
		if _, err := os.Stat(filepath.Join(out, migrate.JournalFile)); !os.IsNotExist(err) {
			t.Errorf("journal left after a complete batch: %v", err)
		}
		files := sealedOutTree(t, out)
		if got := strings.Join(files, " "); got != "apps/db/secret.yaml apps/web/all.yaml broken/secret.yaml overlays/prod/secret.yml" {
			t.Fatalf("files %q", got)
		}
		for _, f := range files {
			checkFile(t, out, f)
		}
	})

	t.Run("corrupt repository", func(t *testing.T) {
		bad := newGitRepo(t)
		bad.Write(map[string]string{"s.yaml": gitSecret("a", "b", "k", canary)})
		bad.Commit("c")
		if err := os.RemoveAll(filepath.Join(bad.Dir, ".git", "objects")); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(bad.Dir, ".git", "objects"), 0o700); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := run(t, "", "migrate", "sealed-secrets", "--from-git", bad.Dir, "--cert", cert, "--out", t.TempDir())
		if code != ExitError || !strings.Contains(stderr, "git repository "+bad.Dir+": reading HEAD") {
			t.Errorf("exit %d; stderr:\n%s", code, stderr)
		}
		sealedNoLeak(t, "stdout/stderr", stdout, stderr)
	})
}

// TestMigrateSealedCluster runs the live paths against a real control
// plane and the real Sealed Secrets controller: the RBAC errors of the
// certificate fetch and of reading the Secret, --apply without the CRD,
// then the hand-over (which the controller honours only because keyhole
// annotated the live Secret), the certificate fetched through the service
// proxy, and a batch that fails halfway and resumes, with the controller
// unsealing keyhole's output into Secrets with identical data.
func TestMigrateSealedCluster(t *testing.T) {
	noRights := testenv.User{Name: "no-rights"}
	svcReader := testenv.User{Name: "services-reader"}
	cp := testenv.StartT(t, testenv.Options{Users: []testenv.User{noRights, svcReader}})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	admin := kubernetes.NewForConfigOrDie(cp.Config)
	dyn := dynamic.NewForConfigOrDie(cp.Config)
	kubeconfigFor := func(u testenv.User) string {
		p, err := cp.KubeconfigFor(u)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, ns := range []string{"prod", "team-a", "team-x"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	liveData := map[string][]byte{"password": []byte(sealedPassword), "user": []byte(canary + "-user")}
	lastApplied := `{"apiVersion":"v1","kind":"Secret","stringData":{"password":"` + sealedPassword + `"}}`
	for _, name := range []string{"db", "other"} {
		_, err := admin.CoreV1().Secrets("prod").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "prod", Labels: map[string]string{"app": name},
				Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": lastApplied}},
			Data: liveData,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	// A Service with no controller behind it, readable by svcReader, who
	// has no services/proxy.
	if _, err := admin.CoreV1().Services("team-x").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "sealer", Namespace: "team-x"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().Roles("team-x").Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "services-reader", Namespace: "team-x"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings("team-x").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "services-reader", Namespace: "team-x"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "services-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: svcReader.Name}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fileIn := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(fileIn, []byte(gitSecret("team-a", "s1", "k", canary+"-s1")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, certFile := sealedKeyPair(t)

	t.Run("forbidden certificate fetch", func(t *testing.T) {
		for _, c := range []struct {
			user testenv.User
			want string
		}{
			{svcReader, "forbidden to get services/proxy"},
			{noRights, "forbidden to get services:"},
		} {
			code, stdout, stderr := run(t, "", "migrate", "sealed-secrets", "--from-file", fileIn, "--kubeconfig", kubeconfigFor(c.user),
				"--controller-namespace", "team-x", "--controller-name", "sealer")
			if code != ExitError {
				t.Errorf("%s: exit %d, want %d; stderr:\n%s", c.user.Name, code, ExitError, stderr)
			}
			for _, w := range []string{"fetching the certificate of service/team-x/sealer: " + c.want, `needs "get" on services and on services/proxy in namespace team-x`} {
				if !strings.Contains(stderr, w) {
					t.Errorf("%s: stderr lacks %q:\n%s", c.user.Name, w, stderr)
				}
			}
			sealedNoLeak(t, "output", stdout, stderr)
		}
	})

	t.Run("forbidden secret", func(t *testing.T) {
		code, stdout, stderr := run(t, "", "migrate", "sealed-secrets", "--from-cluster", "prod/db", "--kubeconfig", kubeconfigFor(noRights), "--cert", certFile)
		want := `secrets/prod/db: forbidden: keyhole needs "get" on secrets in namespace prod`
		if code != ExitError || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, stderr)
		}
		sealedNoLeak(t, "output", stdout, stderr)
	})

	t.Run("apply without the CRD", func(t *testing.T) {
		code, stdout, stderr := run(t, "", "migrate", "sealed-secrets", "--from-file", fileIn, "--kubeconfig", cp.KubeconfigPath, "--cert", certFile, "--apply")
		if code != ExitFindings {
			t.Errorf("exit %d, want %d; stderr:\n%s", code, ExitFindings, stderr)
		}
		want := "FAILED     team-a/s1: " + sealedsecrets.StepApply + ": applying sealedsecret/team-a/s1: the cluster does not serve sealedsecrets.bitnami.com/v1alpha1"
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
		sealedNoLeak(t, "output", stdout, stderr)
	})

	t.Run("annotate checks the uid", func(t *testing.T) {
		err := sealedsecrets.Annotate(ctx, admin, "prod", "db", "not-the-uid")
		if err == nil || !strings.Contains(err.Error(), "deleted and re-created since it was read") {
			t.Errorf("Annotate with a stale uid: %v", err)
		}
		s, err := admin.CoreV1().Secrets("prod").Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.Annotations[sealedsecrets.ManagedAnnotation]; ok {
			t.Error("a patch with a stale uid annotated the Secret")
		}
	})

	t.Run("loader", func(t *testing.T) {
		// More Secrets than one page of FromSelector's LIST.
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "many"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for i := range 130 {
			if _, err := admin.CoreV1().Secrets("many").Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s-%03d", i), Labels: map[string]string{"batch": "many"}},
				StringData: map[string]string{"k": canary},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		b, err := migrate.FromSelector(ctx, admin, "", "batch=many")
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Secrets) != 130 || b.Secrets[0].Ref() != "many/s-000" || b.Secrets[129].Ref() != "many/s-129" {
			t.Errorf("FromSelector: %d Secrets", len(b.Secrets))
		}
		b, err = migrate.FromSelector(ctx, admin, "prod", "app=db")
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Secrets) != 1 {
			t.Fatalf("FromSelector(prod, app=db): %d Secrets", len(b.Secrets))
		}
		s := b.Secrets[0]
		if s.Ref() != "prod/db" || !s.Origin.Live || s.Origin.UID == "" || s.Origin.ResourceVersion == "" {
			t.Errorf("secret %s, origin %+v", s.Ref(), s.Origin)
		}
		if s.Secret.UID != "" || s.Secret.ResourceVersion != "" || s.Secret.ManagedFields != nil || s.Secret.Annotations != nil {
			t.Errorf("not cleaned: %+v", s.Secret.ObjectMeta)
		}
		for _, d := range sealedDataDiff(stringData(s.Secret), stringData(&corev1.Secret{Data: liveData})) {
			t.Errorf("prod/db: %s", d)
		}
		noRightsClient := kubernetes.NewForConfigOrDie(cp.ConfigFor(noRights))
		for _, c := range []struct{ ns, want string }{
			{"", `secrets: forbidden: keyhole needs "list" on secrets in all namespaces (check with ` + "`kubectl auth can-i list secrets -A`)"},
			{"prod", `secrets/prod: forbidden: keyhole needs "list" on secrets in namespace prod`},
		} {
			if _, err := migrate.FromSelector(ctx, noRightsClient, c.ns, "app=db"); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("FromSelector(%q) as %s: %v, want %q", c.ns, noRights.Name, err, c.want)
			}
		}
		if _, err := migrate.FromCluster(ctx, admin, "prod/missing"); err == nil || !strings.Contains(err.Error(), "secrets/prod/missing: not found") {
			t.Errorf("FromCluster(prod/missing): %v", err)
		}
	})

	ctrl := testenv.StartSealedSecretsControllerT(t, cp)

	t.Run("hand-over needs the annotation", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		// The SealedSecret alone, applied over the existing Secret: the
		// controller refuses it.
		code, stdout, stderr := run(t, "", "migrate", "sealed-secrets", "--from-cluster", "prod/other", "--kubeconfig", cp.KubeconfigPath, "--out", out)
		if code != ExitOK {
			t.Fatalf("exit %d; stderr:\n%s", code, stderr)
		}
		sealedNoLeak(t, "output", stdout, stderr)
		manifest, err := os.ReadFile(filepath.Join(out, "prod", "other.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(manifest, &obj.Object); err != nil {
			t.Fatal(err)
		}
		if _, err := dyn.Resource(sealedsecrets.Resource).Namespace("prod").Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		msg := waitSealedCondition(ctx, t, dyn, "prod", "other", "False")
		if !strings.Contains(msg, "already exists and is not managed by SealedSecret") {
			t.Errorf("the controller's condition: %q", msg)
		}
		if s := liveSecret(ctx, t, admin, "prod", "other"); controlledBySealedSecret(s) {
			t.Fatal("the controller took over a Secret that was not annotated")
		}

		// keyhole's hand-over: annotate, then apply; now it takes over.
		code, stdout, stderr = run(t, "", "migrate", "sealed-secrets", "--from-cluster", "prod/other", "--kubeconfig", cp.KubeconfigPath, "--out", out, "--apply")
		if code != ExitOK {
			t.Fatalf("--apply: exit %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		sealedNoLeak(t, "output", stdout, stderr)
		waitSealedCondition(ctx, t, dyn, "prod", "other", "True")
		s := waitControlled(ctx, t, admin, "prod", "other")
		for _, d := range sealedDataDiff(stringData(s), stringData(&corev1.Secret{Data: liveData})) {
			t.Errorf("secret/prod/other after the hand-over: %s", d)
		}
	})

	t.Run("from-cluster apply with the fetched certificate", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		code, stdout, stderr := run(t, "", "migrate", "sealed-secrets", "--from-cluster", "prod/db", "--kubeconfig", cp.KubeconfigPath,
			"--controller-namespace", ctrl.Namespace, "--controller-name", ctrl.Name, "--out", out, "--apply")
		if code != ExitOK {
			t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		sealedNoLeak(t, "output", stdout, stderr)
		for _, w := range []string{
			"1. kubectl annotate secret db -n prod sealedsecrets.bitnami.com/managed=true --overwrite\n",
			"2. kubectl apply --server-side --field-manager=keyhole -f " + filepath.Join(out, "prod", "db.yaml"),
			"done       prod/db: " + sealedsecrets.StepAnnotate,
			"done       prod/db: " + sealedsecrets.StepApply,
		} {
			if !strings.Contains(stdout, w) {
				t.Errorf("stdout lacks %q:\n%s", w, stdout)
			}
		}
		if strings.Index(stdout, "done       prod/db: "+sealedsecrets.StepAnnotate) > strings.Index(stdout, "done       prod/db: "+sealedsecrets.StepApply) {
			t.Error("applied before annotating")
		}
		sealedOutTree(t, out)
		waitSealedCondition(ctx, t, dyn, "prod", "db", "True")
		s := waitControlled(ctx, t, admin, "prod", "db")
		for _, d := range sealedDataDiff(stringData(s), stringData(&corev1.Secret{Data: liveData})) {
			t.Errorf("secret/prod/db: %s", d)
		}
		if _, ok := s.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; ok {
			t.Error("the last-applied annotation came back through the SealedSecret's template")
		}
		if s.Labels["app"] != "db" {
			t.Errorf("labels %v", s.Labels)
		}
	})

	t.Run("batch fails halfway and resumes", func(t *testing.T) {
		in := filepath.Join(t.TempDir(), "batch.yaml")
		if err := os.WriteFile(in, []byte(gitSecret("team-a", "s1", "k", canary+"-s1")+"---\n"+gitSecret("ghost", "s2", "k", canary+"-s2")), 0o600); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "out")
		args := []string{"migrate", "sealed-secrets", "--from-file", in, "--kubeconfig", cp.KubeconfigPath, "--out", out, "--apply"}
		code, stdout, stderr := run(t, "", args...)
		if code != ExitFindings {
			t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, ExitFindings, stdout, stderr)
		}
		sealedNoLeak(t, "output", stdout, stderr)
		for _, w := range []string{
			"done       team-a/s1: " + sealedsecrets.StepApply,
			"FAILED     ghost/s2: " + sealedsecrets.StepApply + ": applying sealedsecret/ghost/s2: namespace ghost not found",
			"5 done, 0 done earlier, 1 failed, 0 not done; run the same command again to resume",
		} {
			if !strings.Contains(stdout, w) {
				t.Errorf("stdout lacks %q:\n%s", w, stdout)
			}
		}
		sealedOutTree(t, out)
		s1 := waitSecret(ctx, t, admin, "team-a", "s1")
		for _, d := range sealedDataDiff(stringData(s1), map[string]string{"k": canary + "-s1"}) {
			t.Errorf("secret/team-a/s1: %s", d)
		}

		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ghost"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr = run(t, "", args...)
		if code != ExitOK {
			t.Fatalf("re-run: exit %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		sealedNoLeak(t, "output", stdout, stderr)
		for _, w := range []string{
			"skipped    team-a/s1: " + sealedsecrets.StepApply + " (done in an earlier run)",
			"done       ghost/s2: " + sealedsecrets.StepApply,
			"1 done, 5 done earlier, 0 failed, 0 not done",
		} {
			if !strings.Contains(stdout, w) {
				t.Errorf("re-run stdout lacks %q:\n%s", w, stdout)
			}
		}
		s2 := waitSecret(ctx, t, admin, "ghost", "s2")
		for _, d := range sealedDataDiff(stringData(s2), map[string]string{"k": canary + "-s2"}) {
			t.Errorf("secret/ghost/s2: %s", d)
		}
		if files := sealedOutTree(t, out); strings.Join(files, " ") != "ghost/s2.yaml team-a/s1.yaml" {
			t.Errorf("files %q", files)
		}
	})

	// Nothing keyhole sent reached the controller's log in clear.
	logData, err := os.ReadFile(ctrl.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	sealedNoLeak(t, "controller log", string(logData))
}

func liveSecret(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func controlledBySealedSecret(s *corev1.Secret) bool {
	ref := metav1.GetControllerOf(s)
	return ref != nil && ref.Kind == "SealedSecret" && ref.Name == s.Name
}

// sealedPoll calls check every 100ms until it reports done or ctx ends.
func sealedPoll(ctx context.Context, t *testing.T, what string, check func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		done, state := check()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %s)", what, ctx.Err(), state)
		case <-tick.C:
		}
	}
}

// waitSealedCondition waits for the SealedSecret's Synced condition to
// have status, and returns its message.
func waitSealedCondition(ctx context.Context, t *testing.T, dyn dynamic.Interface, ns, name, status string) string {
	t.Helper()
	var msg string
	sealedPoll(ctx, t, "sealedsecret/"+ns+"/"+name+" Synced="+status, func() (bool, string) {
		u, err := dyn.Resource(sealedsecrets.Resource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Synced" && m["status"] == status {
				msg, _ = m["message"].(string)
				return true, ""
			}
		}
		return false, fmt.Sprint(conds)
	})
	return msg
}

func waitControlled(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, name string) *corev1.Secret {
	t.Helper()
	var s *corev1.Secret
	sealedPoll(ctx, t, "secret/"+ns+"/"+name+" controlled by its SealedSecret", func() (bool, string) {
		s = liveSecret(ctx, t, client, ns, name)
		return controlledBySealedSecret(s), fmt.Sprint(s.OwnerReferences)
	})
	return s
}

func waitSecret(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, name string) *corev1.Secret {
	t.Helper()
	var s *corev1.Secret
	sealedPoll(ctx, t, "secret/"+ns+"/"+name+" unsealed", func() (bool, string) {
		var err error
		s, err = client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return controlledBySealedSecret(s), fmt.Sprint(s.OwnerReferences)
	})
	return s
}
