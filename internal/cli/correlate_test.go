package cli

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// TestCorrelateLive runs --correlate against a real control plane: a
// Secret whose committed value is still live raises KH412 (and its
// valueHash is the HMAC under the operator's key); one rotated since its
// commit does not, and neither does the first once it is rotated too. No
// value reaches any output, and a user who may not list Secrets gets an
// error that says what was not checked.
func TestCorrelateLive(t *testing.T) {
	limited := testenv.User{Name: "keyhole-no-secrets"}
	cp := testenv.StartT(t, testenv.Options{Users: []testenv.User{limited}, NoControllerManager: true})
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "payments"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const (
		dbValue      = canary + "-live-db-password"
		apiCommitted = canary + "-api-token-before-rotation"
		apiLive      = canary + "-api-token-after-rotation"
	)
	live := func(name, key, value string) {
		t.Helper()
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: name}, Data: map[string][]byte{key: []byte(value)}}
		if _, err := cs.CoreV1().Secrets("payments").Update(ctx, s, metav1.UpdateOptions{}); err == nil {
			return
		}
		if _, err := cs.CoreV1().Secrets("payments").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	live("db", "password", dbValue)
	live("api", "token", apiLive)
	live("unrelated", "token", canary+"-never-committed")

	r := newGitRepo(t)
	r.Write(map[string]string{
		"deploy/db.yaml":  gitSecret("payments", "db", "password", dbValue),
		"deploy/api.yaml": gitSecret("payments", "api", "token", apiCommitted),
	})
	commit := r.Commit("secrets, in plaintext")
	key := []byte(strings.Repeat("operator-key-", 4))
	keyFile := writeTemp(t, "hmac.key", string(key))

	audit := func(extra ...string) (int, *report.Report, string) {
		t.Helper()
		args := append([]string{"audit", "--kubeconfig", cp.KubeconfigPath, "--git", r.Dir, "--hash-key-file", keyFile, "-o", "json"}, extra...)
		code, out, stderr := run(t, "", args...)
		assertNoCanary(t, strings.Join(extra, " "), out, stderr)
		return code, decodeReport(t, out), stderr
	}
	kh412 := func(rep *report.Report) map[string]report.Finding {
		out := map[string]report.Finding{}
		for _, f := range rep.Findings {
			if f.Rule == "KH412" {
				out[f.Object.Namespace+"/"+f.Object.Name+" "+f.Key] = f
			}
		}
		return out
	}
	secretGit := func(rep *report.Report, name string) *report.SecretGit {
		for _, s := range rep.Secrets {
			if s.Namespace == "payments" && s.Name == name {
				return s.Git
			}
		}
		t.Fatalf("no Secret payments/%s in the report", name)
		return nil
	}

	// Without --correlate no value is read, so nothing is known of them.
	code, rep, stderr := audit()
	if code != ExitFindings || len(kh412(rep)) != 0 || secretGit(rep, "db") == nil || secretGit(rep, "db").LiveValueInGit {
		t.Fatalf("without --correlate: exit %d, KH412 %v, db git %+v; stderr:\n%s", code, kh412(rep), secretGit(rep, "db"), stderr)
	}

	code, rep, stderr = audit("--correlate")
	if code != ExitFindings || len(rep.Errors) != 0 {
		t.Fatalf("exit %d, errors %+v; stderr:\n%s", code, rep.Errors, stderr)
	}
	found := kh412(rep)
	db, ok := found["payments/db password"]
	if len(found) != 1 || !ok {
		t.Fatalf("KH412 findings %v, want payments/db password alone (api was rotated since its commit)", found)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(dbValue))
	wantMsg := `Secret/payments/db key "password": its current value is in git at deploy/db.yaml:7 in commit ` + commit[:12] + `; still present at HEAD: rotate it now`
	if db.Severity != "critical" || db.Message != wantMsg || db.ValueHash != hex.EncodeToString(m.Sum(nil)) ||
		db.Location == nil || db.Location.Path != "deploy/db.yaml" || db.Location.Commit != commit {
		t.Errorf("KH412 %+v\nwant message %q", db, wantMsg)
	}
	if g := secretGit(rep, "db"); g == nil || !g.LiveValueInGit || !g.Plaintext || !g.PresentAtHead {
		t.Errorf("payments/db git %+v", g)
	}
	if g := secretGit(rep, "api"); g == nil || g.LiveValueInGit || !g.Plaintext {
		t.Errorf("payments/api (rotated) git %+v", g)
	}
	if g := secretGit(rep, "unrelated"); g != nil {
		t.Errorf("payments/unrelated git %+v", g)
	}
	if c := rep.Coverage.Sources[len(rep.Coverage.Sources)-1]; c.Kind != "git" || c.Git == nil || !c.Git.Correlated {
		t.Errorf("coverage %+v", c)
	}
	// Every format, with the values on the wire.
	for _, format := range report.Formats {
		_, out, stderr := run(t, "", "audit", "--kubeconfig", cp.KubeconfigPath, "--git", r.Dir, "--correlate", "-o", format, "--verbose")
		assertNoCanary(t, format, out, stderr)
	}

	// Rotated now: the committed value is no longer live.
	live("db", "password", canary+"-rotated-at-last")
	if _, rep, _ = audit("--correlate"); len(kh412(rep)) != 0 || secretGit(rep, "db").LiveValueInGit {
		t.Errorf("after rotation: KH412 %v", kh412(rep))
	}

	// A user who may not list Secrets: the gap is an error naming what was
	// not checked.
	kubeconfig, err := cp.KubeconfigFor(limited)
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "", "audit", "--kubeconfig", kubeconfig, "--git", r.Dir, "--correlate", "-o", "json")
	rep = decodeReport(t, out)
	var gap *report.Error
	for i, e := range rep.Errors {
		if e.Impact == cluster.ValuesImpact {
			gap = &rep.Errors[i]
		}
	}
	if code != ExitError || gap == nil || gap.Resource != "secrets" || !strings.Contains(gap.Message, "list secrets with their values (--correlate): forbidden") {
		t.Errorf("forbidden: exit %d, errors %+v; stderr:\n%s", code, rep.Errors, stderr)
	}
}
