package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// TestBinary builds keyhole and runs it as users do: the process exit code
// is the CLI's, and stdout carries the report.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "keyhole")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "audit", "--manifests", "../../testdata/demo", "--format", "json")
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want 1 (the demo has high findings)", err)
	}
	var report struct {
		APIVersion string `json:"apiVersion"`
		Secrets    []any  `json:"secrets"`
	}
	if err := json.Unmarshal(out, &report); err != nil || report.APIVersion != "keyhole.io/v1alpha1" || len(report.Secrets) == 0 {
		t.Fatalf("stdout is not the report (%v): %.200s", err, out)
	}
	if err := exec.Command(bin, "version").Run(); err != nil {
		t.Errorf("keyhole version: %v", err)
	}
	err = exec.Command(bin, "audit", "--no-such-flag").Run()
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("unknown flag: %v, want exit 2", err)
	}
}

// TestKubectlPlugin installs the binary as kubectl-keyhole: run as such
// it names itself `kubectl keyhole`, and the real kubectl (the control
// plane's; not under -short) finds it on PATH and runs it.
func TestKubectlPlugin(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "kubectl-keyhole")
	if out, err := exec.Command("go", "build", "-o", plugin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(plugin, "audit", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kubectl keyhole audit [flags]") {
		t.Errorf("kubectl-keyhole audit --help: %v\n%s", err, out)
	}
	if testing.Short() {
		return
	}
	bins, err := testenv.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	kubectl := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bins, "kubectl"), args...)
		cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := kubectl("plugin", "list"); !strings.Contains(out, plugin) {
		t.Errorf("kubectl plugin list does not list %s:\n%s", plugin, out)
	}
	if out := kubectl("keyhole", "version"); !strings.HasPrefix(out, "keyhole ") {
		t.Errorf("kubectl keyhole version: %q", out)
	}
	cmd := exec.Command(filepath.Join(bins, "kubectl"), "keyhole", "audit", "--manifests", "../../testdata/demo", "--format", "json")
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	var exit *exec.ExitError
	if out, err := cmd.Output(); !errors.As(err, &exit) || exit.ExitCode() != 1 || !json.Valid(out) {
		t.Errorf("kubectl keyhole audit: %v (want exit 1, kubectl passing keyhole's code on), valid JSON %v", err, json.Valid(out))
	}
}
