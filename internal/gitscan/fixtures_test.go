package gitscan

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/finding"
)

var update = flag.Bool("update", false, "rewrite the .expect files under testdata/gitscan from what the scanner finds")

// fixtureRoot holds one directory per KH3xx rule, each with positive/
// files (the rule must fire) and negative/ files (near misses: it must
// not). A file's path under positive/ or negative/ is the path it is
// scanned under, so that templates/, values.yaml, kustomization.yaml and
// *.sops.yaml are read as they would be in a repository. A file a
// kustomization of the same tree names in a secretGenerator is scanned
// with ScanGeneratorInput instead.
//
// Each file's sidecar FILE.expect lists every leak, in the order the
// scanner returns them (file order), then every problem; a missing sidecar
// means none:
//
//	LINE RULE SEVERITY FORM OBJECT KEY [binary] [placeholder] [invalid-base64] [reason="…"] [field="…"] [annotations=…]
//	problem LINE MESSAGE
var fixtureRoot = filepath.Join("..", "..", "testdata", "gitscan")

const expectHeader = "# line rule severity form object key [flags]: written by go test -update, checked by hand\n"

// fixtureKey is a fixed HMAC key for tests; real runs use an operator's
// key or random bytes.
var fixtureKey = bytes.Repeat([]byte("k"), MinKeyLen)

// fixtureResult is what the scanner makes of one fixture file.
type fixtureResult struct {
	rule, kind, rel, file string
	leaks                 []Leak
	problems              []Problem
}

// scanFixtures scans every fixture file once.
func scanFixtures(t testing.TB) []fixtureResult {
	t.Helper()
	s := NewScanner(fixtureKey)
	var out []fixtureResult
	rules, err := os.ReadDir(fixtureRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		for _, kind := range []string{"positive", "negative"} {
			tree := filepath.Join(fixtureRoot, r.Name(), kind)
			files := map[string][]byte{}
			err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || strings.HasSuffix(p, ".expect") {
					return err
				}
				rel, _ := filepath.Rel(tree, p)
				files[filepath.ToSlash(rel)], err = os.ReadFile(p)
				return err
			})
			if err != nil {
				t.Fatalf("%s: %v", tree, err)
			}
			inputs := map[string]GeneratorInput{}
			for rel, content := range files {
				for _, in := range GeneratorInputs(rel, content) {
					inputs[in.Path] = in
				}
			}
			rels := make([]string, 0, len(files))
			for rel := range files {
				rels = append(rels, rel)
			}
			sort.Strings(rels)
			for _, rel := range rels {
				res := fixtureResult{rule: r.Name(), kind: kind, rel: rel, file: filepath.Join(tree, filepath.FromSlash(rel))}
				if in, ok := inputs[rel]; ok {
					res.leaks = s.ScanGeneratorInput(in, files[rel])
				} else {
					if !Candidate(rel) {
						t.Errorf("%s: Candidate(%q) = false for a file the scanner reads", res.file, rel)
					}
					res.leaks, res.problems = s.Scan(rel, files[rel])
				}
				out = append(out, res)
			}
		}
	}
	return out
}

func expectLines(leaks []Leak, problems []Problem) []string {
	var out []string
	for _, l := range leaks {
		line := fmt.Sprintf("%d %s %s %s %s %s", l.Line, l.Rule, l.Severity, l.Form, l.Object, l.Key)
		if l.Binary {
			line += " binary"
		}
		if l.Placeholder {
			line += " placeholder"
		}
		if l.InvalidBase64 {
			line += " invalid-base64"
		}
		if l.Reason != "" {
			line += fmt.Sprintf(" reason=%q", l.Reason)
		}
		if l.Field != "" {
			line += fmt.Sprintf(" field=%q", l.Field)
		}
		if len(l.Annotations) > 0 {
			keys := make([]string, 0, len(l.Annotations))
			for k := range l.Annotations {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			line += " annotations=" + strings.Join(keys, ",")
		}
		out = append(out, line)
	}
	for _, p := range problems {
		out = append(out, fmt.Sprintf("problem %d %s", p.Line, p.Message))
	}
	return out
}

// TestRuleFixtures checks every leak of every fixture (line, rule,
// severity, form, object, key and flags), that each positive file raises
// its directory's rule and no negative file does, and that every KH3xx
// rule of the catalog has both kinds of fixtures.
func TestRuleFixtures(t *testing.T) {
	results := scanFixtures(t)
	seen := map[string]bool{}
	for _, res := range results {
		seen[res.rule+"/"+res.kind] = true
		t.Run(res.rule+"/"+res.kind+"/"+res.rel, func(t *testing.T) {
			got := expectLines(res.leaks, res.problems)
			expectFile := res.file + ".expect"
			if *update {
				if len(got) == 0 {
					if err := os.Remove(expectFile); err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
				} else if err := os.WriteFile(expectFile, []byte(expectHeader+strings.Join(got, "\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var want []string
			if b, err := os.ReadFile(expectFile); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					if line != "" && !strings.HasPrefix(line, "#") {
						want = append(want, line)
					}
				}
			} else if !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s:\ngot:\n  %s\nwant:\n  %s", res.file, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			fired := 0
			for _, l := range res.leaks {
				if l.Rule == res.rule {
					fired++
				}
			}
			switch {
			case res.kind == "positive" && fired == 0:
				t.Errorf("%s: positive fixture raises no %s", res.file, res.rule)
			case res.kind == "negative" && fired > 0:
				t.Errorf("%s: negative fixture raises %s %d times", res.file, res.rule, fired)
			}
		})
	}
	for _, r := range finding.Catalog() {
		if !strings.HasPrefix(r.ID, "KH3") {
			continue
		}
		for _, kind := range []string{"positive", "negative"} {
			if !seen[r.ID+"/"+kind] {
				t.Errorf("rule %s has no %s fixtures under %s", r.ID, kind, fixtureRoot)
			}
		}
	}
}
