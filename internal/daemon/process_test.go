package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/testenv"
	"github.com/keyhole-sec/keyhole/internal/testlog"
)

// keyholeBinary builds cmd/keyhole: replicas and signals are properties
// of the process, so they are tested on one.
func keyholeBinary(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "cmd", "keyhole"))
	must(t, err)
	bin := filepath.Join(t.TempDir(), "keyhole")
	if out, err := exec.Command("go", "build", "-o", bin, dir).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// replica is keyhole serve running as a process.
type replica struct {
	name string
	cmd  *exec.Cmd
	logs *testlog.Buffer
	addr string
	done chan error
}

var listeningRe = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

func startReplica(t testing.TB, name, bin string, args ...string) *replica {
	t.Helper()
	r := &replica{name: name, logs: &testlog.Buffer{}, done: make(chan error, 1)}
	r.cmd = exec.Command(bin, args...)
	r.cmd.Stderr = r.logs
	r.cmd.Stdout = r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			t.Logf("%s killed at the end of the test: %v", name, <-r.done)
		}
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, r.logs)
		}
	})
	probe.Eventually(t, 30*time.Second, name+" listening", func() (bool, string) {
		m := listeningRe.FindStringSubmatch(r.logs.String())
		if m == nil {
			return false, r.logs.String()
		}
		r.addr = m[1]
		return true, ""
	})
	return r
}

func (r *replica) url(path string) string { return "http://" + r.addr + path }

// leading says whether the replica reports itself leader and exports
// findings.
func (r *replica) leading() (leader bool, findings int, err error) {
	fams, _, err := scrape(r.url("/metrics"))
	if err != nil {
		return false, 0, err
	}
	v, ok := fams.value("keyhole_leader", nil)
	if !ok {
		return false, 0, errors.New("no keyhole_leader")
	}
	return v == 1, fams.findingsSeries(), nil
}

const (
	leaseName     = "keyhole-test"
	leaseDuration = 4 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

// testReplicas runs two replicas with leader election: exactly one
// exports findings; killing it hands over within the lease duration; and
// SIGTERM makes the new leader exit 0 within 10 s, releasing the Lease.
func testReplicas(ctx context.Context, t *testing.T, cp *testenv.ControlPlane, c kubernetes.Interface) {
	bin := keyholeBinary(t)
	args := []string{"serve", "--kubeconfig", cp.KubeconfigPath,
		"--leader-elect", "--leader-elect-namespace", "default", "--leader-elect-lease-name", leaseName,
		"--leader-elect-lease-duration", leaseDuration.String(), "--leader-elect-renew-deadline", "3s",
		"--leader-elect-retry-period", retryPeriod.String(),
		"--web.listen-address", "127.0.0.1:0", "--debounce", "200ms"}
	replicas := []*replica{startReplica(t, "replica-a", bin, args...), startReplica(t, "replica-b", bin, args...)}

	var leader, follower *replica
	probe.Eventually(t, 60*time.Second, "one leader exporting findings, one follower exporting none", func() (bool, string) {
		leader, follower = nil, nil
		seen := ""
		for _, r := range replicas {
			code, _, err := probe.Get(r.url("/readyz"), "")
			if err != nil || code != http.StatusOK {
				return false, fmt.Sprintf("%s not ready: %d %v", r.name, code, err)
			}
			lead, n, err := r.leading()
			if err != nil {
				return false, err.Error()
			}
			seen += fmt.Sprintf("%s leader=%v findings=%d; ", r.name, lead, n)
			switch {
			case lead && n > 0:
				leader = r
			case !lead && n == 0:
				follower = r
			}
		}
		return leader != nil && follower != nil, seen
	})

	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s after SIGKILL: %v", leader.name, <-leader.done)
	killed := time.Now()
	probe.Eventually(t, 30*time.Second, follower.name+" takes over", func() (bool, string) {
		lead, n, err := follower.leading()
		return err == nil && lead && n > 0, fmt.Sprintf("leader=%v findings=%d err=%v", lead, n, err)
	})
	// The lease was renewed at most a retry period before the kill, so a
	// candidate retrying every retry period acquires it within the lease
	// duration plus one period, plus scrape polling.
	if took, limit := time.Since(killed), leaseDuration+2*retryPeriod+time.Second; took > limit {
		t.Errorf("failover took %s, want under %s (lease duration %s)", took.Round(10*time.Millisecond), limit, leaseDuration)
	} else {
		t.Logf("failover after SIGKILL of the leader: %s (lease duration %s)", took.Round(10*time.Millisecond), leaseDuration)
	}

	if err := follower.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	termed := time.Now()
	select {
	case err := <-follower.done:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
		t.Logf("exit after SIGTERM: %s", time.Since(termed).Round(10*time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit within 10 s of SIGTERM")
	}
	lease, err := c.CoordinationV1().Leases("default").Get(ctx, leaseName, metav1.GetOptions{})
	must(t, err)
	if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("the Lease is still held by %q after a clean shutdown: it was not released", *h)
	}
}
