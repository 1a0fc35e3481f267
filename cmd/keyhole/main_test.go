package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
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
