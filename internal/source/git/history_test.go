package git

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
)

var historyOpts = Options{History: true}

func TestMergeResolutionIntroducesValue(t *testing.T) {
	r := newTestRepo(t)
	r.write("app/secret.yaml", secret("db", "password", "base"))
	r.commit("base")
	r.git("checkout", "-q", "-b", "side")
	r.write("app/secret.yaml", secret("db", "password", "side"))
	r.commit("side")
	r.git("checkout", "-q", "main")
	r.write("app/secret.yaml", secret("db", "password", "main"))
	r.commit("main")
	if !r.merge("side") {
		t.Fatal("want a conflict")
	}
	// The value exists in neither parent: only the merge's diff shows it.
	r.write("app/secret.yaml", secret("db", "password", canary+"-merge"))
	merge := r.commit("resolve")

	res, _ := scan(t, r.dir, historyOpts)
	f := one(t, res, "app/secret.yaml")
	if f.Commit != merge || !f.PresentAtHead || f.RemovedIn != "" || f.Leak.Line != 6 || f.Leak.Key != "password" {
		t.Errorf("got %s, want introduced by the merge %s, at HEAD", describe(res), merge)
	}
}

func TestBranchValueAttributedToBranchCommit(t *testing.T) {
	r := newTestRepo(t)
	r.write("README.md", "x")
	r.commit("base")
	r.git("checkout", "-q", "-b", "side")
	r.write("s.yaml", secret("s", "token", canary+"-side"))
	side := r.commit("side")
	r.git("checkout", "-q", "main")
	r.write("other.txt", "y")
	r.commit("main")
	if r.merge("side") {
		t.Fatal("unexpected conflict")
	}
	r.git("branch", "-D", "side")

	res, _ := scan(t, r.dir, historyOpts)
	if f := one(t, res, "s.yaml"); f.Commit != side || !f.PresentAtHead {
		t.Errorf("got %s, want introduced by %s", describe(res), side)
	}
}

func TestEmptyDataFilledLater(t *testing.T) {
	r := newTestRepo(t)
	r.write("secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata: {}\n")
	r.commit("empty")
	r.write("secret.yaml", secret("s", "password", canary+"-filled"))
	filled := r.commit("filled")
	r.write("secret.yaml", "# a comment moves the value\n"+secret("s", "password", canary+"-filled"))
	r.commit("moved")

	res, _ := scan(t, r.dir, historyOpts)
	f := one(t, res, "secret.yaml")
	if f.Commit != filled || f.Leak.Line != 6 || !f.PresentAtHead {
		t.Errorf("got %s, want introduced by %s at line 6 (the introducing blob's line)", describe(res), filled)
	}
	if f.CommitTime.Unix() != 1700000000+60*2 {
		t.Errorf("commit time %v", f.CommitTime)
	}
}

func TestDeletedAtHead(t *testing.T) {
	r := newTestRepo(t)
	r.write("a/secret.yaml", secret("a", "password", canary+"-a"))
	r.write("b/secret.yaml", secret("b", "password", canary+"-b")+"  other: "+canary+"-other\n")
	added := r.commit("add")
	r.write("c.txt", "unrelated")
	r.commit("unrelated")
	if err := removeFile(r, "a/secret.yaml"); err != nil {
		t.Fatal(err)
	}
	r.write("b/secret.yaml", secret("b", "password", canary+"-b"))
	deleted := r.commit("delete a, drop a value from b")
	r.write("c.txt", "more")
	r.commit("later")

	res, _ := scan(t, r.dir, historyOpts)
	f := one(t, res, "a/secret.yaml")
	if f.Commit != added || f.PresentAtHead || f.RemovedIn != deleted {
		t.Errorf("deleted file: got %s, want added %s removed %s", describe(res), added, deleted)
	}
	bs := findingsAt(res, "b/secret.yaml")
	if len(bs) != 2 {
		t.Fatalf("b: %s", describe(res))
	}
	for _, f := range bs {
		switch f.Leak.Key {
		case "password":
			if !f.PresentAtHead || f.RemovedIn != "" {
				t.Errorf("kept value: %s", describe(res))
			}
		case "other":
			if f.PresentAtHead || f.RemovedIn != deleted {
				t.Errorf("dropped value: %s", describe(res))
			}
		}
	}
}

func removeFile(r *testRepo, p string) error {
	_, err := r.gitErr("rm", "-q", p)
	return err
}

func TestRenamedFile(t *testing.T) {
	r := newTestRepo(t)
	r.write("old/secret.yaml", secret("s", "password", canary+"-renamed"))
	added := r.commit("add")
	r.git("mv", "old", "new")
	renamed := r.commit("rename")

	res, _ := scan(t, r.dir, historyOpts)
	old := one(t, res, "old/secret.yaml")
	if old.Commit != added || old.PresentAtHead || old.RemovedIn != renamed {
		t.Errorf("old path: %s", describe(res))
	}
	moved := one(t, res, "new/secret.yaml")
	if moved.Commit != renamed || !moved.PresentAtHead {
		t.Errorf("new path: %s", describe(res))
	}
	if string(old.Leak.Digest) != string(moved.Leak.Digest) {
		t.Error("the same value has two digests")
	}
}

func TestShallowCloneWarns(t *testing.T) {
	r := newTestRepo(t)
	r.write("s.yaml", secret("s", "password", canary+"-old"))
	r.commit("one")
	r.write("t.yaml", secret("t", "password", canary+"-new"))
	r.commit("two")
	clone := t.TempDir()
	if out, err := r.gitErr("clone", "-q", "--depth", "1", "file://"+r.dir, clone); err != nil {
		t.Fatalf("clone: %v %s", err, out)
	}

	res, _ := scan(t, clone, historyOpts)
	if !res.Shallow || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "shallow") {
		t.Errorf("warnings %q, shallow %v", res.Warnings, res.Shallow)
	}
	// Both values come in with the boundary commit, the oldest there is.
	if len(res.Findings) != 2 || res.Findings[0].Commit != res.Head || res.Commits != 1 {
		t.Errorf("got %s", describe(res))
	}
}

func TestSinceOnlyNewCommits(t *testing.T) {
	r := newTestRepo(t)
	r.write("old.yaml", secret("old", "password", canary+"-old"))
	base := r.commit("old")
	r.write("old.yaml", secret("old", "password", canary+"-old")+"  # touched\n")
	r.write("new.yaml", secret("new", "password", canary+"-new"))
	newer := r.commit("new")

	res, _ := scan(t, r.dir, Options{History: true, Since: base})
	if len(res.Findings) != 1 || res.Findings[0].Path != "new.yaml" || res.Findings[0].Commit != newer {
		t.Errorf("got %s, want only new.yaml", describe(res))
	}
	if res.Commits != 1 {
		t.Errorf("walked %d commits, want 1", res.Commits)
	}

	_, err := Scan(context.Background(), r.dir, &fakeDetector{}, Options{History: true, Since: "no-such-rev"})
	if err == nil || !strings.Contains(err.Error(), "no-such-rev") || !strings.Contains(err.Error(), r.dir) {
		t.Errorf("bad since: %v", err)
	}
	_, err = Scan(context.Background(), r.dir, &fakeDetector{}, Options{History: true, Since: "--all"})
	if err == nil {
		t.Error("a since starting with - was accepted")
	}
}

func TestBranchesAllAndCurrent(t *testing.T) {
	r := newTestRepo(t)
	r.write("README.md", "x")
	r.commit("base")
	r.git("checkout", "-q", "-b", "feature")
	r.write("s.yaml", secret("s", "password", canary+"-feature"))
	feature := r.commit("feature")
	r.git("checkout", "-q", "main")

	all, _ := scan(t, r.dir, Options{History: true, Branches: BranchesAll})
	if f := one(t, all, "s.yaml"); f.Commit != feature || f.PresentAtHead || f.RemovedIn != "" {
		t.Errorf("all: %s", describe(all))
	}
	cur, _ := scan(t, r.dir, Options{History: true, Branches: BranchesCurrent})
	if len(cur.Findings) != 0 {
		t.Errorf("current: %s", describe(cur))
	}
	if _, err := Scan(context.Background(), r.dir, &fakeDetector{}, Options{History: true, Branches: "some"}); err == nil {
		t.Error("bad branches accepted")
	}
}

func TestGeneratorInputs(t *testing.T) {
	r := newTestRepo(t)
	// The repository's own configuration is the one isolation cannot
	// drop; these would change what git log prints.
	r.git("config", "log.follow", "true")
	r.git("config", "log.showSignature", "true")
	r.git("config", "diff.renames", "copies")
	r.write("k/kustomization.yaml", "secretGenerator:\n- name: x\n  env: creds.env\n  file: keystore.jks\n")
	r.write("k/creds.env", "USER=admin\n")
	r.write("k/keystore.jks", "\x00\x01binary "+canary+"-keystore\x00")
	keystore := r.commit("kustomization")
	r.write("k/creds.env", "USER=admin\nPASSWORD="+canary+"-env\n")
	filled := r.commit("fill the env file")
	r.write("README.md", "x")
	r.commit("later")

	res, _ := scan(t, r.dir, historyOpts)
	if f := one(t, res, "k/keystore.jks"); f.Commit != keystore || f.Leak.Key != "keystore.jks" {
		t.Errorf("binary file input: %s", describe(res))
	}
	f := one(t, res, "k/creds.env")
	if f.Commit != filled || !f.PresentAtHead || f.Leak.Key != "PASSWORD" || f.Leak.Line != 2 || f.Leak.Object.Kind != "Kustomization" {
		t.Errorf("got %s", describe(res))
	}

	wt, _ := scan(t, r.dir, Options{})
	if f := one(t, wt, "k/creds.env"); f.Origin != OriginWorkTree || !f.PresentAtHead {
		t.Errorf("worktree: %s", describe(wt))
	}
}

func TestLargeBinaryBlobSkipped(t *testing.T) {
	r := newTestRepo(t)
	big := make([]byte, 20<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>8) // NULs included, like any random data
	}
	r.write("data.json", string(big))
	r.write("huge.yaml", strings.Repeat("key: "+canary+"-big\n", 1000))
	r.write("s.yaml", secret("s", "password", canary+"-small"))
	r.commit("blobs")

	res, det := scan(t, r.dir, Options{History: true, MaxBlobSize: 16 << 10})
	if det.maxSeen > 16<<10 {
		t.Errorf("the detector was handed %d bytes", det.maxSeen)
	}
	if len(res.Findings) != 1 || res.Findings[0].Path != "s.yaml" {
		t.Errorf("got %s", describe(res))
	}
	want := map[string]string{"data.json": "binary content", "huge.yaml": "over the 16 KiB limit"}
	if len(res.Problems) != 2 {
		t.Fatalf("problems %v", res.Problems)
	}
	for _, p := range res.Problems {
		if !strings.Contains(p.Message, want[p.Path]) || p.Commit != res.Head {
			t.Errorf("problem %s", p)
		}
	}
	if res.Blobs != 3 {
		t.Errorf("blobs %d", res.Blobs)
	}
}

func TestDetectorProblemsAttributed(t *testing.T) {
	r := newTestRepo(t)
	r.write("bad.yaml", "BROKEN\n")
	first := r.commit("broken")
	r.write("README.md", "x")
	r.commit("other")
	res, _ := scan(t, r.dir, historyOpts)
	if len(res.Problems) != 1 || res.Problems[0].Commit != first || res.Problems[0].Line != 1 {
		t.Fatalf("problems %v", res.Problems)
	}
	if got := res.Problems[0].String(); got != "bad.yaml@"+first[:12]+":1: document does not parse" {
		t.Errorf("String() = %q", got)
	}
}

func TestEachBlobScannedOnce(t *testing.T) {
	r := newTestRepo(t)
	r.write("s.yaml", secret("s", "password", canary+"-once"))
	r.commit("one")
	for i := range 5 {
		r.write("other.txt", strings.Repeat("x", i))
		r.commit("noise")
	}
	r.git("checkout", "-q", "-b", "b")
	r.write("t.yaml", "kind: ConfigMap\n")
	r.commit("b")
	r.git("checkout", "-q", "main")
	r.merge("b")
	res, det := scan(t, r.dir, historyOpts)
	if det.calls["s.yaml"] != 1 || det.calls["t.yaml"] != 1 || res.Blobs != 2 {
		t.Errorf("calls %v, blobs %d", det.calls, res.Blobs)
	}
	if res.Commits != 8 {
		t.Errorf("commits %d", res.Commits)
	}
}

func TestSymlinkAndSubmoduleIgnored(t *testing.T) {
	r := newTestRepo(t)
	r.write("s.yaml", secret("s", "password", canary+"-link"))
	r.commit("s")
	r.git("rm", "-q", "--cached", "s.yaml")
	if err := os.Symlink("/etc/hostname", r.dir+"/link.yaml"); err != nil {
		t.Fatal(err)
	}
	sub := newTestRepo(t)
	sub.write("inner.yaml", secret("i", "password", canary+"-sub"))
	subHead := sub.commit("inner")
	r.git("update-index", "--add", "--cacheinfo", "160000,"+subHead+",vendor.yaml")
	r.git("add", "link.yaml")
	r.n++
	r.git("commit", "-q", "-m", "links")

	res, det := scan(t, r.dir, historyOpts)
	if det.calls["link.yaml"] != 0 || det.calls["vendor.yaml"] != 0 {
		t.Errorf("calls %v", det.calls)
	}
	if f := one(t, res, "s.yaml"); f.PresentAtHead {
		t.Errorf("got %s", describe(res))
	}
	if len(res.Problems) != 0 {
		t.Errorf("problems %v", res.Problems)
	}
}

func TestDeterministic(t *testing.T) {
	r := newTestRepo(t)
	for i, name := range []string{"c", "a", "b"} {
		r.write(name+".yaml", secret(name, "k1", canary+"-1")+"  k0: "+canary+"-0\n")
		r.commit("commit " + strings.Repeat("x", i))
	}
	a, _ := scan(t, r.dir, Options{History: true, Workers: 1})
	b, _ := scan(t, r.dir, Options{History: true, Workers: 4})
	if !reflect.DeepEqual(a, b) {
		t.Errorf("results differ:%s\n---%s", describe(a), describe(b))
	}
	var got []string
	for _, f := range a.Findings {
		got = append(got, f.Path+":"+f.Leak.Key)
	}
	if strings.Join(got, " ") != "a.yaml:k1 a.yaml:k0 b.yaml:k1 b.yaml:k0 c.yaml:k1 c.yaml:k0" {
		t.Errorf("order %v", got)
	}
}

func TestCanceled(t *testing.T) {
	r := newTestRepo(t)
	r.write("s.yaml", secret("s", "password", canary))
	r.commit("one")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Scan(ctx, r.dir, &fakeDetector{}, historyOpts); err == nil {
		t.Error("a cancelled scan succeeded")
	}
}

func TestReplaceRefsIgnored(t *testing.T) {
	r := newTestRepo(t)
	r.write("README.md", "x")
	r.commit("base")
	r.write("s.yaml", secret("s", "password", canary+"-hidden"))
	leak := r.commit("leak")
	r.git("rm", "-q", "s.yaml")
	r.commit("remove")
	// A stand-in for the leaking commit, without the file.
	r.git("checkout", "-q", leak+"~1")
	r.write("other.txt", "y")
	standIn := r.commit("stand-in")
	r.git("checkout", "-q", "main")
	r.git("replace", leak, standIn)

	res, _ := scan(t, r.dir, historyOpts)
	if f := one(t, res, "s.yaml"); f.Commit != leak {
		t.Errorf("got %s", describe(res))
	}
}
