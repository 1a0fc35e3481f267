package testenv

import (
	"context"
	"testing"
	"time"
)

// StartTimeout bounds StartT. Startup takes seconds on an idle machine;
// the margin is for `go test ./...` starting several control planes at
// once on a small CI runner.
var StartTimeout = 3 * time.Minute

// StartT starts a control plane for t and stops it when t ends. It skips
// t only under -short; otherwise any failure, including missing binaries,
// fails t. When t has failed, the components' log tails are logged before
// teardown.
func StartT(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	if testing.Short() {
		t.Skip("testenv: -short: skipping test that needs a control plane")
	}
	ctx, cancel := context.WithTimeout(t.Context(), StartTimeout)
	defer cancel()
	cp, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs:\n%s", cp.Logs())
		}
		if err := cp.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return cp
}
