package cluster

import (
	"testing"

	"k8s.io/client-go/rest"
)

// For the external tests (package cluster_test), which may import what
// imports this package (internal/audit): the package's one control plane,
// and a running Watcher.
var SharedControlPlane = controlPlane

func StartWatcher(tb testing.TB, cfg *rest.Config, via string) *Watcher {
	tb.Helper()
	w, _ := startWatcher(tb, cfg, via)
	return w
}
