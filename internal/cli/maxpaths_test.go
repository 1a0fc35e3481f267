package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/config"
	"github.com/keyhole-sec/keyhole/internal/diff"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// budgetNote starts the coverage note of a search stopped at its budget.
const budgetNote = "warning: indirect exposure not analysed"

// readerCounts counts a report's readers by path: direct, and every
// indirect kind together.
func readerCounts(r *report.Report) (direct, indirect int) {
	for _, s := range r.Secrets {
		for rd := range s.Readers.All() {
			if rd.Path == "direct" {
				direct++
			} else {
				indirect++
			}
		}
	}
	return direct, indirect
}

// budgetNotes returns the report's notes saying the search was stopped.
func budgetNotes(r *report.Report) []string {
	var out []string
	for _, n := range r.Coverage.NotAnalysed {
		if strings.HasPrefix(n, budgetNote) {
			out = append(out, n)
		}
	}
	return out
}

// stoppedMessage is what a command says on stderr when the search passed
// its budget.
const stoppedMessage = "the indirect-path search passed its budget"

// TestMaxPaths: --max-paths and the config's paths.maxPaths reach the
// indirect-path search. Past the budget the report holds the direct
// readers only and says so, naming the budget and how to raise it, and
// the audit exits 2 after writing it; the flag wins over the config.
func TestMaxPaths(t *testing.T) {
	t.Chdir(repoRoot)
	var code int
	var stderr string
	audit := func(args ...string) *report.Report {
		t.Helper()
		var out string
		code, out, stderr = run(t, "", append([]string{"audit", "--manifests", "testdata/demo", "-o", "json"}, args...)...)
		return decodeReport(t, out)
	}
	full := audit()
	if code == ExitError {
		t.Fatalf("audit: exit %d; stderr:\n%s", code, stderr)
	}
	direct, indirect := readerCounts(full)
	if indirect == 0 || direct == 0 {
		t.Fatalf("the demo has %d direct and %d indirect readers: the test checks nothing", direct, indirect)
	}
	if notes := budgetNotes(full); len(notes) != 0 {
		t.Fatalf("the demo passes the default budget: %q", notes)
	}
	one := writeTemp(t, "one.yaml", configHeader+"paths:\n  maxPaths: 1\n")
	large := writeTemp(t, "large.yaml", configHeader+"paths:\n  maxPaths: 100000000\n")

	for _, tc := range []struct {
		name    string
		args    []string
		stopped bool
	}{
		{"flag 1", []string{"--max-paths", "1"}, true},
		{"config 1", []string{"--config", one}, true},
		{"flag 1 over a larger config", []string{"--config", large, "--max-paths", "1"}, true},
		{"flag 0 is the config's", []string{"--config", one, "--max-paths", "0"}, true},
		{"flag large", []string{"--max-paths", "100000000"}, false},
		{"config large", []string{"--config", large}, false},
		{"flag large over config 1", []string{"--config", one, "--max-paths", "100000000"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := audit(tc.args...)
			d, i := readerCounts(r)
			notes := budgetNotes(r)
			if d != direct {
				t.Errorf("%d direct readers, want %d: the budget only drops indirect ones", d, direct)
			}
			if !tc.stopped {
				if i != indirect || len(notes) != 0 || r.Coverage.IndirectStopped {
					t.Errorf("%d indirect readers (want %d), notes %q, stopped %v: the search should have finished", i, indirect, notes, r.Coverage.IndirectStopped)
				}
				if code == ExitError || strings.Contains(stderr, stoppedMessage) {
					t.Errorf("exit %d; stderr:\n%s", code, stderr)
				}
				return
			}
			if code != ExitError || !strings.Contains(stderr, stoppedMessage) || !strings.Contains(stderr, "--max-paths") {
				t.Errorf("exit %d, want %d with a message that the search stopped; stderr:\n%s", code, ExitError, stderr)
			}
			if !r.Coverage.IndirectStopped {
				t.Error("coverage.indirectStopped is not set")
			}
			if i != 0 {
				t.Errorf("past the budget the report still lists %d indirect readers", i)
			}
			if len(notes) != 1 {
				t.Fatalf("want one note that the search was stopped, got %q", r.Coverage.NotAnalysed)
			}
			for _, want := range []string{"passed 1 recorded paths", "--max-paths (paths.maxPaths)", "--max-depth"} {
				if !strings.Contains(notes[0], want) {
					t.Errorf("note %q lacks %q", notes[0], want)
				}
			}
			if strings.Contains(notes[0], "\n") {
				t.Errorf("note %q is more than one line", notes[0])
			}
		})
	}
}

// TestMaxPathsGatesEveryCommand: explain and audit diff exit 2 when a
// search they ran stopped at its budget, after writing their output,
// and the diff says which side stopped; with the default budget the
// demo's explanation and diff exit 0.
func TestMaxPathsGatesEveryCommand(t *testing.T) {
	t.Chdir(repoRoot)
	explain := []string{"explain", "secret", "payments/db-credentials", "--manifests", "testdata/demo"}
	diffArgs := []string{"audit", "diff", "--base", "testdata/demo", "--head", "testdata/demo", "--format", "json"}
	for _, args := range [][]string{explain, diffArgs} {
		if code, out, stderr := run(t, "", args...); code != 0 || out == "" {
			t.Errorf("%v: exit %d, output %d bytes, want 0 with output; stderr:\n%s", args, code, len(out), stderr)
		}
		code, out, stderr := run(t, "", append(args, "--max-paths", "1")...)
		if code != ExitError || !strings.Contains(stderr, stoppedMessage) {
			t.Errorf("%v --max-paths 1: exit %d, want %d saying the search stopped; stderr:\n%s", args, code, ExitError, stderr)
		}
		if out == "" {
			t.Errorf("%v --max-paths 1: no output: it is written before the exit code is decided", args)
		}
		if args[0] != "audit" {
			continue
		}
		var d diff.Diff
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("diff output: %v", err)
		}
		if !d.Base.IndirectStopped || !d.Head.IndirectStopped || !strings.Contains(stderr, "the diff's base") {
			t.Errorf("base stopped %v, head stopped %v, want both, the message naming base first; stderr:\n%s", d.Base.IndirectStopped, d.Head.IndirectStopped, stderr)
		}
	}
}

// TestMaxPathsUsage: a negative --max-paths is a usage error naming the
// flag on every command that has it, before anything is read (serve never
// reaches a cluster); a non-positive paths.maxPaths is a config error
// naming the field.
func TestMaxPathsUsage(t *testing.T) {
	t.Chdir(repoRoot)
	for _, args := range [][]string{
		{"audit", "--manifests", "testdata/demo"},
		{"audit", "diff", "--base", "testdata/demo", "--head", "testdata/demo"},
		{"explain", "secret", "payments/db-credentials", "--manifests", "testdata/demo"},
		{"serve", "--kubeconfig", "does/not/exist"},
	} {
		code, out, stderr := run(t, "", append(args, "--max-paths", "-1")...)
		if code != ExitError || !strings.Contains(stderr, "--max-paths") || !strings.Contains(stderr, "-1") {
			t.Errorf("%v --max-paths -1: exit %d, want %d with a message naming the flag; stderr:\n%s", args, code, ExitError, stderr)
		}
		if out != "" {
			t.Errorf("%v --max-paths -1: wrote output before checking its flags:\n%s", args, out)
		}
	}
	for _, v := range []string{"0", "-5"} {
		cfg := writeTemp(t, "k.yaml", configHeader+"paths:\n  maxPaths: "+v+"\n")
		code, _, stderr := run(t, "", "audit", "--manifests", "testdata/demo", "--config", cfg)
		if code != ExitError || !strings.Contains(stderr, "paths.maxPaths: must be at least 1, not "+v) {
			t.Errorf("paths.maxPaths %s: exit %d, want %d naming the field; stderr:\n%s", v, code, ExitError, stderr)
		}
	}
}

// TestMaxPathsOptions: the flag and the config reach the analysis options
// every analysing command builds, serve's daemon included (runServe hands
// analysisOptions.options to daemon.Options.Analysis), with the flag
// winning and 0 leaving the config's value, or the default.
func TestMaxPathsOptions(t *testing.T) {
	cfg, err := config.Parse("k.yaml", []byte(configHeader+"paths:\n  maxPaths: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag int
		cfg  *config.Config
		want int
	}{
		{0, nil, 0}, // audit.Options: 0 is paths.DefaultMaxHits
		{0, cfg, 3},
		{7, nil, 7},
		{7, cfg, 7},
	} {
		o := analysisOptions{maxPaths: tc.flag}
		if got := o.options(&gate{cfg: tc.cfg}).MaxPaths; got != tc.want {
			t.Errorf("--max-paths %d, config %v: MaxPaths %d, want %d", tc.flag, tc.cfg != nil, got, tc.want)
		}
	}

	// Every command with --max-depth has --max-paths, with the same
	// default: 0, the config's or paths.DefaultMaxHits.
	root := newRoot(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	for _, path := range [][]string{{"audit"}, {"audit", "diff"}, {"explain", "secret"}, {"serve"}} {
		cmd, _, err := root.Find(path)
		if err != nil {
			t.Fatalf("%v: %v", path, err)
		}
		if cmd.Flags().Lookup("max-depth") == nil {
			t.Errorf("%v has no --max-depth: the list is stale", path)
			continue
		}
		f := cmd.Flags().Lookup("max-paths")
		if f == nil {
			t.Errorf("%v has --max-depth but no --max-paths", path)
			continue
		}
		if f.DefValue != "0" || !strings.Contains(f.Usage, "paths.maxPaths") || !strings.Contains(f.Usage, "20000000") {
			t.Errorf("%v --max-paths: default %q, usage %q", path, f.DefValue, f.Usage)
		}
	}
	if paths.DefaultMaxHits != 20_000_000 {
		t.Errorf("paths.DefaultMaxHits is %d: update the docs (README, docs/paths.md, docs/configuration.md, example.yaml) and this test", paths.DefaultMaxHits)
	}
}
