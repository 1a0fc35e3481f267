package migrate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestClean(t *testing.T) {
	now := metav1.Now()
	grace := int64(30)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: "s", Namespace: "ns", UID: "u", ResourceVersion: "7", Generation: 3,
			CreationTimestamp: now, DeletionTimestamp: &now, DeletionGracePeriodSeconds: &grace,
			SelfLink:        "/x", //nolint:staticcheck // old manifests carry it
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
			OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: "d", UID: "o"}},
			Labels:          map[string]string{"app": "a"},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"pw":"` + canary64 + `"}}`,
				"kubecfg.ksonnet.io/last-applied-configuration":    "x",
				"team": "t",
			},
			Finalizers: []string{"f"},
		},
		Data:       map[string][]byte{"a": []byte("1"), "b": []byte("2")},
		StringData: map[string]string{"b": "3", "c": "4"},
		Type:       corev1.SecretTypeOpaque,
	}
	Clean(s)
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: "s", Namespace: "ns",
			Labels:      map[string]string{"app": "a"},
			Annotations: map[string]string{"team": "t"},
			Finalizers:  []string{"f"},
		},
		Data: map[string][]byte{"a": []byte("1"), "b": []byte("3"), "c": []byte("4")},
		Type: corev1.SecretTypeOpaque,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Clean:\n got %+v\nwant %+v", s, want)
	}

	// Only last-applied: the annotations map goes away entirely.
	s2 := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "x"}}}
	Clean(s2)
	if s2.Annotations != nil {
		t.Errorf("annotations left: %v", s2.Annotations)
	}
}

func TestOutWriteFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	o, err := OpenOut(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.WriteFile("a/b/c.yaml", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := o.WriteFile("a/b/c.yaml", []byte("two")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "a", "b", "c.yaml"))
	if err != nil || string(got) != "two" {
		t.Fatalf("content %q, %v", got, err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o700}, {filepath.Join(dir, "a"), 0o700}, {filepath.Join(dir, "a", "b"), 0o700}, {filepath.Join(dir, "a", "b", "c.yaml"), 0o600}} {
		st, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, st.Mode().Perm(), c.mode)
		}
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(filepath.Join(dir, "a", "b"))
	if len(entries) != 1 {
		t.Errorf("files in a/b: %v", entries)
	}

	// Nothing escapes the directory: not by "..", nor by an absolute path,
	// nor through a symlink.
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"../x.yaml", "/tmp/x.yaml", "link/x.yaml"} {
		if err := o.WriteFile(rel, []byte(canary)); err == nil {
			t.Errorf("WriteFile(%q) succeeded", rel)
		} else if strings.Contains(err.Error(), canary) {
			t.Errorf("error quotes the content: %v", err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("written outside the output directory: %v", entries)
	}
}

func TestOutWriteFileFailure(t *testing.T) {
	// A file in the way of a directory fails for every user, root too
	// (who ignores permissions).
	dir := t.TempDir()
	o, err := OpenOut(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := os.WriteFile(filepath.Join(dir, "blocker"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = o.WriteFile("blocker/x.yaml", []byte(canary))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "blocker")) {
		t.Errorf("error %v does not name the path", err)
	}
}

func TestJournalRunResume(t *testing.T) {
	dir := t.TempDir()
	o, err := OpenOut(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ctx := context.Background()

	var ran []string
	fail := map[string]bool{"ns/b annotate": true}
	tasks := func() []Task {
		var ts []Task
		for _, ref := range []string{"ns/a", "ns/b", "ns/c"} {
			for _, step := range []string{"annotate", "apply"} {
				ts = append(ts, Task{Ref: ref, Step: step, Do: func(context.Context) error {
					ran = append(ran, ref+" "+step)
					if fail[ref+" "+step] {
						return errors.New("namespaces \"ns\" not found")
					}
					return nil
				}})
			}
		}
		return ts
	}

	j, err := o.Journal("test", "input-1")
	if err != nil {
		t.Fatal(err)
	}
	out, err := j.Run(ctx, tasks())
	if err != nil {
		t.Fatal(err)
	}
	wantRan := []string{"ns/a annotate", "ns/a apply", "ns/b annotate", "ns/c annotate", "ns/c apply"}
	if !reflect.DeepEqual(ran, wantRan) {
		t.Errorf("first run ran %q, want %q", ran, wantRan)
	}
	if out.OK() || len(out.Done) != 4 || len(out.Failed) != 1 || len(out.NotDone) != 1 || out.NotDone[0].Step != "apply" {
		t.Errorf("first outcome: %+v", out)
	}
	var report strings.Builder
	out.Print(&report)
	for _, want := range []string{"FAILED     ns/b: annotate: namespaces \"ns\" not found", "not done   ns/b: apply", "done       ns/a: annotate", "4 done, 0 done earlier, 1 failed, 1 not done; run the same command again to resume"} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, report.String())
		}
	}
	st, err := os.Stat(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatalf("journal not kept after a failure: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v", st.Mode().Perm())
	}

	// Another batch does not take over this journal.
	if _, err := o.Journal("test", "input-2"); err == nil || !strings.Contains(err.Error(), "unfinished batch") {
		t.Errorf("journal of another input: %v", err)
	}

	// The re-run resumes: only ns/b's steps run.
	ran, fail = nil, nil
	j, err = o.Journal("test", "input-1")
	if err != nil {
		t.Fatal(err)
	}
	if !j.Resumed() {
		t.Error("Resumed() = false")
	}
	out, err = j.Run(ctx, tasks())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ns/b annotate", "ns/b apply"}; !reflect.DeepEqual(ran, want) {
		t.Errorf("resumed run ran %q, want %q", ran, want)
	}
	if !out.OK() || len(out.Resumed) != 4 || len(out.Done) != 2 {
		t.Errorf("second outcome: %+v", out)
	}
	if _, err := os.Stat(filepath.Join(dir, JournalFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal left after a complete batch: %v", err)
	}
}

func TestJournalWithoutOut(t *testing.T) {
	var j *Journal
	n := 0
	out, err := j.Run(context.Background(), []Task{{Ref: "a", Step: "s", Do: func(context.Context) error { n++; return nil }}})
	if err != nil || !out.OK() || n != 1 {
		t.Errorf("nil journal: %+v, %v, ran %d", out, err, n)
	}
}
