package cli

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// unsetEnv unsets name for the test, restoring it after.
func unsetEnv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "")
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

// TestSetMemoryLimit: serve gives the Go runtime ratio of the container's
// memory limit; no limit leaves it unlimited, an unreadable one is logged
// and changes nothing, and an explicit GOMEMLIMIT wins.
func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	unsetEnv(t, "GOMEMLIMIT")
	unsetEnv(t, "AUTOMEMLIMIT")
	const start = 3 << 30
	for _, tc := range []struct {
		name     string
		limit    memlimit.Provider
		env      string
		want     int64
		wantLogs string
	}{
		{"a limit", memlimit.Limit(1 << 30), "", 1 << 29, "GOMEMLIMIT=536870912"},
		{"no limit", func() (uint64, error) { return 0, memlimit.ErrNoLimit }, "", math.MaxInt64, ""},
		{"unreadable", func() (uint64, error) { return 0, errors.New("no cgroup mount") }, "", start, "no cgroup mount"},
		{"GOMEMLIMIT set", memlimit.Limit(1 << 30), "GOMEMLIMIT", start, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(start)
			if tc.env != "" {
				t.Setenv(tc.env, "3GiB")
			}
			var logs bytes.Buffer
			setMemoryLimit(slog.New(slog.NewTextHandler(&logs, nil)), 0.5, tc.limit)
			if got := debug.SetMemoryLimit(-1); got != tc.want {
				t.Errorf("memory limit %d, want %d", got, tc.want)
			}
			if tc.wantLogs == "" && logs.Len() > 0 || !strings.Contains(logs.String(), tc.wantLogs) {
				t.Errorf("logs %q, want %q", logs.String(), tc.wantLogs)
			}
		})
	}
}

// TestMemLimitRatioUsage: a ratio out of (0, 1] is a usage error naming
// the flag, before any cluster is reached.
func TestMemLimitRatioUsage(t *testing.T) {
	for _, v := range []string{"0", "-0.5", "1.5", "NaN"} {
		code, _, stderr := run(t, "", "serve", "--kubeconfig", "does/not/exist", "--auto-gomemlimit.ratio", v)
		if code != ExitError || !strings.Contains(stderr, "--auto-gomemlimit.ratio: must be in (0, 1]") {
			t.Errorf("ratio %s: exit %d, want %d naming the flag; stderr:\n%s", v, code, ExitError, stderr)
		}
	}
}
