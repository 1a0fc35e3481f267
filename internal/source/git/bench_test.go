package git

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyhole-sec/keyhole/internal/gitscan"
)

// The comparison with gitleaks runs each scanner as a child process, so
// that wall time and peak RSS are measured the same way for both: the
// test binary re-executes itself with benchChildEnv naming the repository.
const (
	benchChildEnv = "KEYHOLE_GIT_BENCH_CHILD"
	// benchEnv turns BenchmarkHistory on: it builds a 20k-commit
	// repository (cached) and installs gitleaks.
	benchEnv = "KEYHOLE_GIT_BENCH"
	// gitleaksEnv may name a gitleaks binary to use instead of installing.
	gitleaksEnv = "KEYHOLE_GITLEAKS"
	// benchRoundsEnv sets how many times each scanner runs (default 3).
	benchRoundsEnv  = "KEYHOLE_GIT_BENCH_ROUNDS"
	gitleaksVersion = "v8.30.1"
)

// benchKey is the HMAC key of benchmark scans; the parent recomputes the
// planted values' digests with it.
var benchKey = bytes.Repeat([]byte("bench-key-"), 4)

func TestMain(m *testing.M) {
	if repo := os.Getenv(benchChildEnv); repo != "" {
		os.Exit(benchChild(repo))
	}
	os.Exit(m.Run())
}

// childFinding is what the child reports per finding.
type childFinding struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
}

// benchChild scans repo's whole history with the real detector and
// prints the findings as JSON, as keyhole audit --git would.
func benchChild(repo string) int {
	res, err := Scan(context.Background(), repo, NewDetector(gitscan.NewScanner(benchKey)), Options{History: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := make([]childFinding, 0, len(res.Findings))
	for _, f := range res.Findings {
		out = append(out, childFinding{Path: f.Path, Digest: hex.EncodeToString(f.Leak.Digest)})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		return 2
	}
	return 0
}

// measured is one scanner's run.
type measured struct {
	wall   time.Duration
	cpu    time.Duration // user + system, the process and its waited children
	rssMiB float64       // peak RSS of the largest process of the run's tree
	stdout []byte
}

// measure runs cmd and reads its peak RSS from wait4's rusage: the
// largest of the process and the children it waited for (git).
func measure(cmd *exec.Cmd) (measured, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	m := measured{wall: time.Since(start), stdout: stdout.Bytes()}
	if err != nil {
		return m, fmt.Errorf("%s: %v: %s", cmd.Path, err, stderr.String())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.rssMiB = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	m.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return m, nil
}

// summary is the median wall and CPU time and the largest peak RSS of
// several runs: the cores are shared, and one run can be unlucky.
type summary struct {
	wall, cpu time.Duration
	rssMiB    float64
}

func summarize(runs []measured) summary {
	walls := make([]time.Duration, len(runs))
	cpus := make([]time.Duration, len(runs))
	var s summary
	for i, r := range runs {
		walls[i], cpus[i] = r.wall, r.cpu
		s.rssMiB = max(s.rssMiB, r.rssMiB)
	}
	slices.Sort(walls)
	slices.Sort(cpus)
	s.wall, s.cpu = walls[len(walls)/2], cpus[len(cpus)/2]
	return s
}

// recallKeyhole counts the plants keyhole reported: same path, and the
// digest of the planted value.
func recallKeyhole(plants []plant, out []byte) (int, error) {
	var fs []childFinding
	if err := json.Unmarshal(out, &fs); err != nil {
		return 0, err
	}
	got := map[string]bool{}
	for _, f := range fs {
		got[f.Path+" "+f.Digest] = true
	}
	n := 0
	for _, p := range plants {
		mac := hmac.New(sha256.New, benchKey)
		mac.Write([]byte(p.Value))
		if got[p.Path+" "+hex.EncodeToString(mac.Sum(nil))] {
			n++
		}
	}
	return n, nil
}

// recallGitleaks counts the plants gitleaks reported, generously: any
// finding of any rule in the planted file counts, whatever it matched.
func recallGitleaks(plants []plant, report string) (int, error) {
	b, err := os.ReadFile(report)
	if err != nil {
		return 0, err
	}
	var fs []struct{ File string }
	if err := json.Unmarshal(b, &fs); err != nil {
		return 0, err
	}
	got := map[string]bool{}
	for _, f := range fs {
		got[f.File] = true
	}
	n := 0
	for _, p := range plants {
		if got[p.Path] {
			n++
		}
	}
	return n, nil
}

// TestBenchRepoRecall runs the benchmark's generator small, and requires
// every planted Secret, of every kind, to be found and attributed: the
// recall half of the benchmark, on every test run.
func TestBenchRepoRecall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	plants, err := genBenchRepo(dir, benchShape{Commits: 900, Manifests: 80, Plants: 33, BigBlobs: 2, BigBlobLen: 1 << 20, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Scan(context.Background(), dir, NewDetector(gitscan.NewScanner(benchKey)), Options{History: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commits < 900 {
		t.Errorf("%d commits", res.Commits)
	}
	byPath := map[string][]Finding{}
	for _, f := range res.Findings {
		byPath[f.Path] = append(byPath[f.Path], f)
	}
	kinds := map[string]bool{}
	for _, p := range plants {
		kinds[p.Kind] = true
		fs := byPath[p.Path]
		if len(fs) != 1 {
			t.Errorf("%s (%s): %d findings", p.Path, p.Kind, len(fs))
			continue
		}
		f := fs[0]
		mac := hmac.New(sha256.New, benchKey)
		mac.Write([]byte(p.Value))
		if !hmac.Equal(f.Leak.Digest, mac.Sum(nil)) || f.Leak.Key != p.Key {
			t.Errorf("%s: wrong value or key %q", p.Path, f.Leak.Key)
		}
		wantHead := p.Kind != plantDeleted && p.Kind != plantBranch
		if f.PresentAtHead != wantHead || (p.Kind == plantDeleted) != (f.RemovedIn != "") {
			t.Errorf("%s (%s): at HEAD %v, removed in %q", p.Path, p.Kind, f.PresentAtHead, f.RemovedIn)
		}
		if p.Kind == plantMerge {
			parents := strings.Fields(runGit(t, dir, "rev-list", "--parents", "-n1", f.Commit))
			if len(parents) != 3 {
				t.Errorf("%s: introduced by %s, not a merge", p.Path, f.Commit)
			}
		}
	}
	if len(kinds) != len(plantKinds) {
		t.Errorf("planted kinds %v", kinds)
	}
	if len(res.Findings) != len(plants) {
		t.Errorf("%d findings for %d plants", len(res.Findings), len(plants))
	}
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = gitEnv(os.Environ(), false)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return string(out)
}

// BenchmarkScanHistory measures Scan in process on a small generated
// repository; it needs nothing but git.
func BenchmarkScanHistory(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "repo")
	if _, err := genBenchRepo(dir, benchShape{Commits: 2000, Manifests: 200, Plants: 22, BigBlobs: 1, BigBlobLen: 4 << 20, Seed: 2}); err != nil {
		b.Fatal(err)
	}
	det := NewDetector(gitscan.NewScanner(benchKey))
	for b.Loop() {
		if _, err := Scan(context.Background(), dir, det, Options{History: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHistory compares keyhole with gitleaks on a generated
// repository of 20k+ commits and 2k manifests (the target: twice
// as fast, all planted Secrets found). It is off unless KEYHOLE_GIT_BENCH=1;
// run it once:
//
//	KEYHOLE_GIT_BENCH=1 go test -run '^$' -bench BenchmarkHistory -benchtime 1x -timeout 60m ./internal/source/git/
//
// The repository is cached in ~/.cache/keyhole/bench; gitleaks is taken
// from KEYHOLE_GITLEAKS, or installed with go install into
// ~/.cache/keyhole/tools.
func BenchmarkHistory(b *testing.B) {
	if os.Getenv(benchEnv) != "1" {
		b.Skip("set " + benchEnv + "=1 to build a 20k-commit repository and compare with gitleaks")
	}
	gitleaks, err := gitleaksBinary()
	if err != nil {
		b.Fatal(err)
	}
	shape := benchShape{Commits: 20000, Manifests: 2000, Plants: 110, BigBlobs: 6, BigBlobLen: 8 << 20, Seed: 20}
	repo, plants, err := cachedBenchRepo(shape)
	if err != nil {
		b.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	report := filepath.Join(b.TempDir(), "gitleaks.json")

	rounds := 3
	if n, err := strconv.Atoi(os.Getenv(benchRoundsEnv)); err == nil && n > 0 {
		rounds = n
	}
	for b.Loop() {
		// Alternated, so that a burst of load on the shared cores hits
		// both scanners alike.
		var kRuns, gRuns []measured
		for range rounds {
			kh := exec.Command(self)
			kh.Env = append(os.Environ(), benchChildEnv+"="+repo)
			k, err := measure(kh)
			if err != nil {
				b.Fatal(err)
			}
			kRuns = append(kRuns, k)
			gl := exec.Command(gitleaks, "git", repo, "--no-banner", "--log-level", "error",
				"--exit-code", "0", "--report-format", "json", "--report-path", report)
			gl.Env = gitEnv(os.Environ(), false)
			g, err := measure(gl)
			if err != nil {
				b.Fatal(err)
			}
			gRuns = append(gRuns, g)
		}
		kRecall, err := recallKeyhole(plants, kRuns[0].stdout)
		if err != nil {
			b.Fatal(err)
		}
		gRecall, err := recallGitleaks(plants, report)
		if err != nil {
			b.Fatal(err)
		}
		k, g := summarize(kRuns), summarize(gRuns)
		commits := strings.TrimSpace(runGitB(b, repo, "rev-list", "--all", "--count"))
		fmt.Printf("\nrepository: %s commits, %d manifests, %d planted Secrets, %d random blobs of %d MiB; median of %d runs\n",
			commits, shape.Manifests, len(plants), shape.BigBlobs, shape.BigBlobLen>>20, rounds)
		fmt.Printf("%-18s %8s %8s %14s %16s\n", "scanner", "wall s", "CPU s", "peak RSS MiB", "recall planted")
		fmt.Printf("%-18s %8.1f %8.1f %14.0f %10d/%d\n", "keyhole", k.wall.Seconds(), k.cpu.Seconds(), k.rssMiB, kRecall, len(plants))
		fmt.Printf("%-18s %8.1f %8.1f %14.0f %10d/%d\n", "gitleaks "+gitleaksVersion, g.wall.Seconds(), g.cpu.Seconds(), g.rssMiB, gRecall, len(plants))
		fmt.Printf("speed-up: %.1fx wall, %.1fx CPU\n", g.wall.Seconds()/k.wall.Seconds(), g.cpu.Seconds()/k.cpu.Seconds())
		fmt.Print(recallByKind(plants, kRuns[0].stdout, report))
		b.ReportMetric(k.wall.Seconds(), "keyhole-s")
		b.ReportMetric(g.wall.Seconds(), "gitleaks-s")
		b.ReportMetric(float64(kRecall)/float64(len(plants)), "keyhole-recall")
		b.ReportMetric(float64(gRecall)/float64(len(plants)), "gitleaks-recall")
	}
}

// recallByKind breaks recall down per plant kind, keyhole then gitleaks.
func recallByKind(plants []plant, khOut []byte, report string) string {
	var sb strings.Builder
	sb.WriteString("recall by kind (keyhole, gitleaks):\n")
	for _, k := range plantKinds {
		var of []plant
		for _, p := range plants {
			if p.Kind == k {
				of = append(of, p)
			}
		}
		kr, _ := recallKeyhole(of, khOut)
		gr, _ := recallGitleaks(of, report)
		fmt.Fprintf(&sb, "  %-20s %2d/%-2d %2d/%d\n", k, kr, len(of), gr, len(of))
	}
	return sb.String()
}

func runGitB(b *testing.B, dir string, args ...string) string {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = gitEnv(os.Environ(), false)
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("git %v: %v", args, err)
	}
	return string(out)
}

func cacheDir(sub string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "keyhole", sub), nil
}

// cachedBenchRepo generates the repository once per shape.
func cachedBenchRepo(s benchShape) (string, []plant, error) {
	base, err := cacheDir("bench")
	if err != nil {
		return "", nil, err
	}
	dir := filepath.Join(base, fmt.Sprintf("repo-%d-%d-%d-%d-%d-%d-v1", s.Commits, s.Manifests, s.Plants, s.BigBlobs, s.BigBlobLen, s.Seed))
	plantsFile := dir + ".plants.json"
	if plants, err := readPlants(plantsFile); err == nil {
		return dir, plants, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", nil, err
	}
	start := time.Now()
	plants, err := genBenchRepo(dir, s)
	if err != nil {
		return "", nil, err
	}
	fmt.Printf("generated %s in %s\n", dir, time.Since(start).Round(time.Second))
	// Written last: its presence says the repository is complete.
	return dir, plants, writePlants(plantsFile, plants)
}

// gitleaksBinary finds or installs gitleaks.
func gitleaksBinary() (string, error) {
	if p := os.Getenv(gitleaksEnv); p != "" {
		return p, nil
	}
	tools, err := cacheDir("tools")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(tools, "gitleaks")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	cmd := exec.Command("go", "install", "github.com/zricethezav/gitleaks/v8@"+gitleaksVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+tools, "GOFLAGS=-mod=mod")
	cmd.Dir = os.TempDir() // outside this module
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("installing gitleaks: %v: %s", err, out)
	}
	return bin, nil
}
