package daemon

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Defaults of LeaderElection: client-go's and kube-controller-manager's.
const (
	DefaultLeaseName     = "keyhole"
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// serviceAccountNamespaceFile is where a pod learns its namespace when the
// downward API does not set POD_NAMESPACE.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// LeaderElection configures the coordination.k8s.io Lease that decides
// which replica exports findings.
type LeaderElection struct {
	// Namespace holds the Lease; the pod's own namespace when empty
	// (POD_NAMESPACE, else the ServiceAccount's namespace file).
	Namespace string
	// Name is the Lease's name; DefaultLeaseName when empty.
	Name string
	// Identity names this replica in the Lease; the hostname (the pod's
	// name) plus a random suffix when empty, so that a restarted pod with
	// the same name is a new candidate.
	Identity      string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

func (le LeaderElection) withDefaults() (LeaderElection, error) {
	if le.Namespace == "" {
		le.Namespace = podNamespace()
		if le.Namespace == "" {
			return le, errors.New("--leader-elect: no namespace for the Lease: set --leader-elect-namespace, or POD_NAMESPACE from the downward API")
		}
	}
	if le.Name == "" {
		le.Name = DefaultLeaseName
	}
	if le.Identity == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "keyhole"
		}
		le.Identity = host + "_" + utilrand.String(8)
	}
	if le.LeaseDuration <= 0 {
		le.LeaseDuration = DefaultLeaseDuration
	}
	if le.RenewDeadline <= 0 {
		le.RenewDeadline = DefaultRenewDeadline
	}
	if le.RetryPeriod <= 0 {
		le.RetryPeriod = DefaultRetryPeriod
	}
	// client-go panics on these; say which flag instead.
	if le.LeaseDuration <= le.RenewDeadline {
		return le, errors.New("--leader-elect-lease-duration must be longer than --leader-elect-renew-deadline")
	}
	if float64(le.RenewDeadline) <= leaderelection.JitterFactor*float64(le.RetryPeriod) {
		return le, errors.New("--leader-elect-renew-deadline must be longer than 1.2 × --leader-elect-retry-period")
	}
	return le, nil
}

func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

// elect campaigns for the Lease until ctx ends. A replica that loses the
// Lease (the apiserver was unreachable for longer than the renew deadline)
// goes back to being a candidate rather than exiting: it keeps analysing,
// so that it can lead again at once. On ctx's end the Lease is released,
// so that another replica takes over without waiting for it to expire.
func (d *daemon) elect(ctx context.Context, cs kubernetes.Interface) {
	le := d.opts.LeaderElection
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: le.Namespace, Name: le.Name},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: le.Identity},
	}
	d.setLeader(false)
	for ctx.Err() == nil {
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			Name:            "keyhole",
			LeaseDuration:   le.LeaseDuration,
			RenewDeadline:   le.RenewDeadline,
			RetryPeriod:     le.RetryPeriod,
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {
					d.log.Info("became the leader: exporting findings metrics", "lease", le.Namespace+"/"+le.Name, "identity", le.Identity)
					d.setLeader(true)
				},
				OnStoppedLeading: func() {
					if d.leader.Load() {
						d.log.Info("no longer the leader: findings metrics off", "lease", le.Namespace+"/"+le.Name)
					}
					d.setLeader(false)
				},
				OnNewLeader: func(identity string) {
					if identity != le.Identity {
						d.log.Info("following", "leader", identity)
					}
				},
			},
		})
		if err != nil {
			// Options were validated; this is a bug, not a user error.
			d.log.Error("leader election cannot start", "err", err)
			return
		}
		elector.Run(ctx)
	}
}
