package manifests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// writeTree creates files (path → content) under a new temporary
// directory and makes it the working directory.
func writeTree(t *testing.T, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
}

func configMap(name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: t}\n", name)
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("symlinks not supported: %v", err)
	}
}

func TestWalkSymlinks(t *testing.T) {
	writeTree(t, map[string]string{
		"root/a.yaml":        configMap("a"),
		"root/sub/b.yaml":    configMap("b"),
		"elsewhere/c.yaml":   configMap("c"),
		"elsewhere/d/d.yaml": configMap("d"),
		"target.txt":         configMap("linked-by-yaml-name"),
	})
	symlink(t, "a.yaml", "root/a-again.yaml")               // file symlink inside the tree
	symlink(t, "../../elsewhere/c.yaml", "root/sub/c.yaml") // file symlink out of the tree
	symlink(t, "../target.txt", "root/linked.yaml")         // named .yaml, read by its link name
	symlink(t, "..", "root/sub/loop")                       // directory loop
	symlink(t, "../elsewhere/d", "root/d-link")             // directory symlink, followed
	symlink(t, "missing.yaml", "root/broken.yaml")          // broken, claimed a manifest
	symlink(t, "missing.txt", "root/broken.txt")            // broken, not a manifest

	r := load(t, []string{"root"}, Options{})
	diffMap(t, "objects", r.objects(), map[string]string{
		"ConfigMap/t/a":                   "root/a-again.yaml:1 (document 1)", // sorts first
		"ConfigMap/t/b":                   "root/sub/b.yaml:1 (document 1)",
		"ConfigMap/t/c":                   "root/sub/c.yaml:1 (document 1)",
		"ConfigMap/t/d":                   "root/d-link/d.yaml:1 (document 1)",
		"ConfigMap/t/linked-by-yaml-name": "root/linked.yaml:1 (document 1)",
	})
	diffStrings(t, "problems", r.messages(), []string{
		"root/broken.yaml: broken symlink: no such file or directory",
	})
	diffStrings(t, "notes", r.notes(), []string{
		"root/a.yaml: same file as root/a-again.yaml, already read",
		"root/sub/loop: same directory as root, already read",
		"root: 1 file skipped, not .yaml, .yml or .json: root/broken.txt",
	})
	if got := r.covs[0].Files; got != 5 {
		t.Errorf("Files = %d, want 5", got)
	}
}

func TestWalkHiddenAndOtherFiles(t *testing.T) {
	files := map[string]string{
		"repo/.git/config.yaml":          configMap("never"),
		"repo/.github/workflows/ci.yaml": "on: push\n",
		"repo/app/.cache/x.yaml":         configMap("never-either"),
		"repo/app/deploy.yaml":           configMap("app"),
		"repo/README.md":                 "# hi\n",
		"repo/Makefile":                  "all:\n",
		"repo/app/chart.tgz":             "\x1f\x8b",
		"repo/app/NOTES.txt":             "notes\n",
	}
	for i := range 6 {
		files[fmt.Sprintf("repo/deep/.h%d/x.yaml", i)] = configMap("hidden")
	}
	writeTree(t, files)
	r := load(t, []string{"repo"}, Options{})
	diffMap(t, "objects", r.objects(), map[string]string{"ConfigMap/t/app": "repo/app/deploy.yaml:1 (document 1)"})
	diffStrings(t, "problems", r.messages(), nil)
	diffStrings(t, "notes", r.notes(), []string{
		"hidden directories skipped: repo/.git, repo/.github, repo/app/.cache, repo/deep/.h0, repo/deep/.h1 and 4 more",
		"repo: 4 files skipped, not .yaml, .yml or .json: repo/Makefile, repo/README.md, repo/app/NOTES.txt and 1 more",
	})
	// A hidden directory named on the command line is read.
	r = load(t, []string{"repo/.github"}, Options{})
	diffStrings(t, "notes", r.notes(), []string{
		"repo/.github/workflows/ci.yaml: document 1 (line 1): not a Kubernetes object, skipped",
		"no Kubernetes objects found",
	})
}

func TestWalkOverlappingArguments(t *testing.T) {
	writeTree(t, map[string]string{
		"deploy/a.yaml":      configMap("a"),
		"deploy/base/b.yaml": configMap("b"),
	})
	r := load(t, []string{"deploy/base", "deploy", "deploy/"}, Options{})
	diffMap(t, "objects", r.objects(), map[string]string{
		"ConfigMap/t/a": "deploy/a.yaml:1 (document 1)",
		"ConfigMap/t/b": "deploy/base/b.yaml:1 (document 1)",
	})
	diffStrings(t, "notes", r.notes(), []string{
		"deploy/base: already read",
		"deploy/: same directory as deploy, already read",
	})
	if r.covs[0].Objects["ConfigMap"] != 1 || r.covs[1].Objects["ConfigMap"] != 1 || r.covs[2].Objects != nil {
		t.Errorf("objects per argument: %v, %v, %v", r.covs[0].Objects, r.covs[1].Objects, r.covs[2].Objects)
	}
	// Paths keep the directory as it was typed.
	r = load(t, []string{"./deploy/"}, Options{})
	diffMap(t, "objects", r.objects(), map[string]string{
		"ConfigMap/t/a": "./deploy/a.yaml:1 (document 1)",
		"ConfigMap/t/b": "./deploy/base/b.yaml:1 (document 1)",
	})
}

func TestWalkSpecialFiles(t *testing.T) {
	writeTree(t, map[string]string{"dir/ok.yaml": configMap("ok")})
	if err := syscall.Mkfifo("dir/pipe.yaml", 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// Reading the FIFO would block the whole run.
	r := load(t, []string{"dir"}, Options{})
	diffStrings(t, "notes", r.notes(), []string{"dir/pipe.yaml: not a regular file, skipped"})
	diffMap(t, "objects", r.objects(), map[string]string{"ConfigMap/t/ok": "dir/ok.yaml:1 (document 1)"})
}

func TestUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root reads files whatever their mode: run this test again as
		// nobody, where permissions bite.
		runAsNobody(t, "TestUnreadable")
		return
	}
	writeTree(t, map[string]string{"dir/secret.yaml": configMap("x"), "dir/sub/y.yaml": configMap("y")})
	if err := os.Chmod("dir/secret.yaml", 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod("dir/sub", 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod("dir/sub", 0o755) })
	r := load(t, []string{"dir"}, Options{})
	diffStrings(t, "problems", r.messages(), []string{
		"dir/secret.yaml: permission denied",
		"dir/sub: permission denied",
	})
}

func TestExplicitFiles(t *testing.T) {
	writeTree(t, map[string]string{
		"rendered.txt": configMap("from-txt"),
		"blob.bin":     "\x00\x01\x02",
		"blob.yaml":    "\x00\x01\x02",
		"utf16.yaml":   "\xff\xfea\x00",
	})
	r := load(t, []string{"rendered.txt", "blob.bin", "blob.yaml", "utf16.yaml"}, Options{})
	// A file named on the command line is read whatever its name says.
	diffMap(t, "objects", r.objects(), map[string]string{"ConfigMap/t/from-txt": "rendered.txt:1 (document 1)"})
	diffStrings(t, "problems", r.messages(), []string{
		"blob.yaml: binary content (NUL byte), not read",
		"utf16.yaml: binary content (UTF-16; convert it to UTF-8), not read",
	})
	diffStrings(t, "notes", r.notes(), []string{
		"blob.bin: binary content (NUL byte), not read",
	})
}

func TestFileSizeLimit(t *testing.T) {
	writeTree(t, map[string]string{
		"small.yaml": configMap("small"),
		"big.yaml":   configMap("big") + "data: {pad: \"" + strings.Repeat("x", 300) + "\"}\n",
	})
	r := load(t, []string{"small.yaml", "big.yaml"}, Options{MaxFileSize: 200})
	diffStrings(t, "problems", r.messages(), []string{"big.yaml: file is 383 bytes, over the 200 bytes limit; not read"})
	diffMap(t, "objects", r.objects(), map[string]string{"ConfigMap/t/small": "small.yaml:1 (document 1)"})

	// The default limit, on a sparse file that costs no disk.
	f, err := os.Create("huge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(DefaultMaxFileSize + 1<<20 + 1); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	r = load(t, []string{"huge.yaml"}, Options{})
	diffStrings(t, "problems", r.messages(), []string{"huge.yaml: file is 33.1 MiB, over the 32 MiB limit; not read"})
}

func TestStdin(t *testing.T) {
	t.Chdir(t.TempDir())
	stdin := strings.NewReader(configMap("piped") + "---\n" + configMap("piped-2"))
	r := load(t, []string{"-", "-"}, Options{Stdin: stdin})
	diffMap(t, "objects", r.objects(), map[string]string{
		"ConfigMap/t/piped":   "-:1 (document 1)",
		"ConfigMap/t/piped-2": "-:5 (document 2)",
	})
	diffStrings(t, "problems", r.messages(), []string{`-: stdin given more than once; read only the first time`})
	if r.covs[0].Target != "-" || r.covs[0].Files != 1 || r.covs[0].Objects["ConfigMap"] != 2 {
		t.Errorf("stdin coverage = %+v", r.covs[0])
	}

	r = load(t, []string{"-"}, Options{})
	diffStrings(t, "problems", r.messages(), []string{"-: no standard input to read"})

	// kubectl get -o json output, concatenated, the last one cut short.
	obj := `{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "%s", "namespace": "t"}}` + "\n"
	r = load(t, []string{"-"}, Options{Stdin: strings.NewReader(fmt.Sprintf(obj, "a") + fmt.Sprintf(obj, "b") + `{"apiVersion": "v1", "ki`)})
	diffMap(t, "objects", r.objects(), map[string]string{
		"ServiceAccount/t/a": "-:1 (document 1)",
		"ServiceAccount/t/b": "-:2 (document 2)",
	})
	diffStrings(t, "problems", r.messages(), []string{"-: document 3 (line 3): invalid JSON at line 3, column 24: unexpected end of input; the rest of the file is not read"})

	r = load(t, []string{"-"}, Options{Stdin: strings.NewReader(strings.Repeat("#", 2000)), MaxFileSize: 1024})
	diffStrings(t, "problems", r.messages(), []string{"-: input is over the 1 KiB limit; not read"})

	// Standard input claims to be manifests: binary input is a Problem.
	r = load(t, []string{"-"}, Options{Stdin: strings.NewReader("\x00")})
	diffStrings(t, "problems", r.messages(), []string{"-: binary content (NUL byte), not read"})

	r = load(t, []string{""}, Options{})
	diffStrings(t, "problems", r.messages(), []string{": empty path"})
}

func TestCoverage(t *testing.T) {
	t.Chdir(fixtures)
	r := load(t, []string{"kinds", "notk8s/values.yaml"}, Options{})
	c := r.covs[0]
	if c.Kind != "manifests" || c.Target != "kinds" || c.Files != 4 {
		t.Errorf("coverage = %+v", c)
	}
	if c.Objects["Secret"] != 2 || c.Objects["Deployment"] != 1 || c.Ignored["Service"] != 2 {
		t.Errorf("objects %v, ignored %v", c.Objects, c.Ignored)
	}
	if c := r.covs[1]; c.Target != "notk8s/values.yaml" || c.Files != 1 || c.Objects != nil {
		t.Errorf("coverage = %+v", c)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{
		1:                "1 byte",
		1023:             "1023 bytes",
		1024:             "1 KiB",
		1536:             "1.5 KiB",
		32 << 20:         "32 MiB",
		32<<20 + 1:       "32.1 MiB",
		5 << 30:          "5 GiB",
		40*(1<<20) + 512: "40.1 MiB",
	} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// runAsNobody re-runs one test of this test binary as the unprivileged user
// nobody (uid and gid 65534), from a copy of the binary in a directory that
// user can reach, and fails if that run fails or does not run the test.
func runAsNobody(t *testing.T, name string) {
	t.Helper()
	const nobody = 65534
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(dir); d != filepath.Dir(d); d = filepath.Dir(d) {
		// t.TempDir's parents are private to root: open them for the walk.
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "manifests.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^"+name+"$", "-test.v")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "HOME="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as nobody: %v\n%s", name, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s did not run as nobody:\n%s", name, out)
	}
}
