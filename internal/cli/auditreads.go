package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/source/auditevents"
)

// auditReadsOptions add to a live audit the audit log summary that
// keyhole serve keeps in ConfigMaps (docs/audit.md): who did read each
// Secret, next to who could.
type auditReadsOptions struct {
	namespace string
	window    time.Duration
}

func (o *auditReadsOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.namespace, "audit-namespace", "", "namespace where keyhole serve keeps its audit log summary: adds who did read each Secret (actualReaders, KH620, KH621) to a live audit")
	f.DurationVar(&o.window, "audit-window", auditlog.DefaultWindow, "how far back reads count, as keyhole serve's --audit-window")
}

func (o *auditReadsOptions) check(offline bool) error {
	if o.namespace != "" && offline {
		return usageError("--audit-namespace reads a live cluster: it cannot be combined with --manifests")
	}
	if o.window < time.Hour {
		return usageError("--audit-window: must be at least 1h, not %s", o.window)
	}
	return nil
}

// load reads the stored summary (get on the ConfigMaps
// keyhole-audit-reads-0 to -7 of the namespace).
func (o *auditReadsOptions) load(ctx context.Context, cfg *rest.Config) (*auditlog.Snapshot, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	store, err := auditevents.NewStore(auditevents.StoreOptions{Client: cs, Namespace: o.namespace, Window: o.window})
	if err != nil {
		return nil, err
	}
	st, err := store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("--audit-namespace: %w", err)
	}
	if st.Since.IsZero() {
		return nil, fmt.Errorf("--audit-namespace %s: no audit log summary there (keyhole serve with an audit source writes it)", o.namespace)
	}
	return auditlog.SnapshotOf(st, time.Now(), o.window), nil
}
