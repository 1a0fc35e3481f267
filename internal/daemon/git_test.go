package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// gitRepo makes a repository whose only commit holds a plaintext Secret
// carrying the canary, and returns its path and a function that commits
// the Secret's removal.
func gitRepo(t *testing.T) (dir string, remove func()) {
	t.Helper()
	dir = t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
			"GIT_AUTHOR_DATE=2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q", "-b", "main")
	manifest := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: payments\nstringData:\n  password: " + canary + "\n"
	must(t, os.MkdirAll(filepath.Join(dir, "deploy"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "deploy", "db.yaml"), []byte(manifest), 0o600))
	run("add", "deploy/db.yaml")
	run("commit", "-q", "-m", "add db")
	return dir, func() {
		run("rm", "-q", "deploy/db.yaml")
		run("commit", "-q", "-m", "remove db")
	}
}

// testGitRepo runs a daemon with a repository: its plaintext Secret is
// counted as present at HEAD, and after a commit removes it, as history
// only, without a restart; the value is nowhere in what it exposes.
func testGitRepo(t *testing.T, cp *testenv.ControlPlane) {
	dir, remove := gitRepo(t)
	d := startInProcess(t, cp.Config, func(o *Options) {
		o.Git = &Git{Path: dir, Name: "gitops", Interval: 300 * time.Millisecond}
	})
	waitForGit := func(present, history float64) {
		t.Helper()
		probe.Eventually(t, 30*time.Second, "keyhole_git_plaintext_secrets", func() (bool, string) {
			fams, _, err := scrape(d.url("/metrics"))
			if err != nil {
				return false, err.Error()
			}
			p, okP := fams.value("keyhole_git_plaintext_secrets", map[string]string{"repo": "gitops", "state": "present"})
			h, okH := fams.value("keyhole_git_plaintext_secrets", map[string]string{"repo": "gitops", "state": "history"})
			return okP && okH && p == present && h == history, fams.labelsOf("keyhole_git_plaintext_secrets")
		})
	}
	waitForGit(1, 0)
	remove()
	waitForGit(0, 1)
	_, body, err := scrape(d.url("/metrics"))
	must(t, err)
	for where, text := range map[string]string{"metrics": string(body), "logs": d.logs.String()} {
		if containsValue(text) {
			t.Errorf("the committed value is in the %s", where)
		}
	}
}

// testGitCorrelate runs a daemon that correlates the live Secrets with the
// repository: the live db password is the committed one (KH412); once it
// is rotated, the next correlation clears the finding, with no new commit.
// No value reaches the metrics or the logs.
func testGitCorrelate(ctx context.Context, t *testing.T, cp *testenv.ControlPlane, admin kubernetes.Interface) {
	dir, _ := gitRepo(t)
	d := startInProcess(t, cp.Config, func(o *Options) {
		o.Git = &Git{Path: dir, Name: "gitops", Interval: 300 * time.Millisecond, Correlate: true}
	})
	waitForLiveInGit := func(want float64) {
		t.Helper()
		probe.Eventually(t, 30*time.Second, fmt.Sprintf("%v KH412 finding(s)", want), func() (bool, string) {
			fams, _, err := scrape(d.url("/metrics"))
			if err != nil {
				return false, err.Error()
			}
			got, _ := fams.value("keyhole_findings", map[string]string{"rule": "KH412"})
			return got == want, fams.labelsOf("keyhole_findings")
		})
	}
	waitForLiveInGit(1)
	setPassword := func(v string) {
		t.Helper()
		s, err := admin.CoreV1().Secrets(ns).Get(ctx, secret, metav1.GetOptions{})
		must(t, err)
		s.Data = map[string][]byte{"password": []byte(v)}
		_, err = admin.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
		must(t, err)
	}
	setPassword("rotated-" + canary[len(canary)-6:])
	t.Cleanup(func() { setPassword(canary) })
	waitForLiveInGit(0)
	_, body, err := scrape(d.url("/metrics"))
	must(t, err)
	for where, text := range map[string]string{"metrics": string(body), "logs": d.logs.String()} {
		if containsValue(text) {
			t.Errorf("the value is in the %s", where)
		}
	}
}

// TestGitOptions refuses, before anything starts, a repository name that
// would put a path or URL in a label, and a path that does not exist.
func TestGitOptions(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		g  Git
		ok bool
	}{
		{Git{Path: dir, Name: "gitops"}, true},
		{Git{Path: dir, Name: "https://example.com/org/repo.git"}, false},
		{Git{Path: dir, Name: "/srv/repo"}, false},
		{Git{Path: dir, Name: ""}, false},
		// Not cloned yet (git-sync links it after its first clone).
		{Git{Path: filepath.Join(dir, "repo"), Name: "gitops"}, true},
		{Git{Path: filepath.Join(dir, "missing", "repo"), Name: "gitops"}, false},
	} {
		got, err := c.g.withDefaults()
		if (err == nil) != c.ok {
			t.Errorf("%+v: error %v, want ok=%v", c.g, err, c.ok)
		}
		if err == nil && got.Interval != DefaultGitInterval {
			t.Errorf("%+v: interval %s, want the default", c.g, got.Interval)
		}
	}
}
