// Package testenv owns the real control plane that keyhole's integration
// tests run against: etcd, kube-apiserver (token authentication,
// Node,RBAC authorization, the real bootstrap RBAC policy) and a
// kube-controller-manager running only the controllers that RBAC and
// namespace tests depend on (ClusterRole aggregation, namespace deletion,
// garbage collection, service accounts and their legacy token Secrets).
// It starts them from binaries cached by build-control-plane.sh (`make
// control-plane`), in a temporary directory and on free loopback ports,
// and guarantees that every process is gone when the test ends. It does
// not own the binaries' build nor any keyhole logic.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Versions of the control plane binaries. They must match the defaults in
// build-control-plane.sh, which names the cache directory after them
// (TestScriptVersions checks this).
const (
	KubeVersion = "v1.34.4"
	EtcdVersion = "v3.6.16"
)

const (
	serviceCIDR = "10.0.0.0/24"
	serviceIP   = "10.0.0.1" // first address of serviceCIDR: the kubernetes Service
	issuer      = "https://kubernetes.default.svc"

	// pollInterval is how often readiness is polled. Startup time is paid
	// by every integration test, so poll often; the checks are cheap.
	pollInterval = 100 * time.Millisecond

	// bindAttempts bounds retries when another process takes a free port
	// between freePort and the component binding it.
	bindAttempts = 3
)

// Controllers is what kube-controller-manager runs: just enough for RBAC
// aggregation, namespace deletion and service accounts to behave as in a
// real cluster. v1.34 needs the -controller suffix on these names.
var Controllers = []string{
	"clusterrole-aggregation-controller",
	"namespace-controller",
	"garbage-collector-controller",
	"serviceaccount-token-controller",
	"serviceaccount-controller",
}

// User is a static-token user, written to kube-apiserver's
// --token-auth-file.
type User struct {
	Name   string
	UID    string // defaults to "uid-" + Name
	Groups []string
	// Token defaults to a random one; ControlPlane.Users has the value
	// used.
	Token string
}

// Options configure Start. The zero value is a complete control plane.
type Options struct {
	// Users are extra static-token users, e.g. "system:node:node-1" in
	// group "system:nodes" to exercise the Node authorizer.
	Users []User
	// ExtraAPIServerFlags are appended to kube-apiserver's flags; a later
	// flag overrides an earlier one.
	ExtraAPIServerFlags []string
	// NoControllerManager skips kube-controller-manager. Without it the
	// aggregated admin/edit/view ClusterRoles stay empty, namespaces never
	// finish deleting and no ServiceAccount is created.
	NoControllerManager bool
}

// ControlPlane is a running control plane. All its files live in Dir.
type ControlPlane struct {
	// Config is the admin credential: a token user in group
	// system:masters. TLS is verified against the control plane's own CA.
	Config *rest.Config
	// KubeconfigPath is a kubeconfig file (in Dir) for the admin.
	KubeconfigPath string
	// Dir is the temporary directory holding certificates, tokens,
	// kubeconfigs, etcd's data and every component's log. Stop removes it.
	Dir    string
	BinDir string
	// Admin is the user behind Config.
	Admin User
	// Users are Options.Users with defaults filled in (UID, Token).
	Users []User

	opts      Options
	caPEM     []byte
	etcdURL   string
	apiPort   int
	apiArgs   []string
	userIndex map[string]User

	mu        sync.Mutex
	etcd      *process
	apiserver *process
	kcm       *process
	stopped   bool
}

var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl"}

// BinDir returns the directory holding the control plane binaries:
// $KEYHOLE_CONTROL_PLANE_DIR, else the cache directory that
// build-control-plane.sh fills. The error names every missing binary and
// says how to build them.
func BinDir() (string, error) {
	dir := os.Getenv("KEYHOLE_CONTROL_PLANE_DIR")
	if dir == "" {
		// Same rule as the script (not os.UserCacheDir, which differs on
		// macOS), so both agree on every platform.
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("testenv: locating the control plane binaries: %w; set KEYHOLE_CONTROL_PLANE_DIR", err)
			}
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "keyhole", "control-plane", "kube-"+KubeVersion+"-etcd-"+EtcdVersion)
	}
	var missing []string
	for _, b := range binaries {
		st, err := os.Stat(filepath.Join(dir, b))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return dir, fmt.Errorf("testenv: control plane binaries missing from %s: %s; run `make control-plane` to build them (once, several minutes), or point KEYHOLE_CONTROL_PLANE_DIR at a directory holding %s",
			dir, strings.Join(missing, ", "), strings.Join(binaries, ", "))
	}
	return dir, nil
}

// Start starts etcd, kube-apiserver and (unless opts.NoControllerManager)
// kube-controller-manager, and returns once kube-apiserver's /readyz is ok
// and the bootstrap RBAC policy exists. It does not wait for the
// controller manager's work: see WaitForAggregation and
// WaitForServiceAccount. On error nothing is left running or on disk.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	if err := platformCheck(); err != nil {
		return nil, err
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	admin := User{Name: "keyhole-testenv-admin", Groups: []string{"system:masters"}}
	users, err := fillUsers(append([]User{admin}, opts.Users...))
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	dir, err := os.MkdirTemp("", "keyhole-testenv-")
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	cp := &ControlPlane{
		Dir:       dir,
		BinDir:    bin,
		Admin:     users[0],
		Users:     users[1:],
		opts:      opts,
		userIndex: make(map[string]User, len(users)),
	}
	for _, u := range users {
		cp.userIndex[u.Name] = u
	}
	defer func() {
		if err != nil {
			_ = cp.Stop()
			err = fmt.Errorf("testenv: %w", err)
		}
	}()

	if cp.caPEM, err = writePKI(dir); err != nil {
		return nil, err
	}
	if err := writeTokens(filepath.Join(dir, "tokens.csv"), users); err != nil {
		return nil, err
	}
	if err := cp.startEtcd(ctx); err != nil {
		return nil, err
	}
	if err := cp.startAPIServerFresh(ctx); err != nil {
		return nil, err
	}
	if cp.KubeconfigPath, err = cp.writeKubeconfig("admin.kubeconfig", cp.Admin); err != nil {
		return nil, err
	}
	if !opts.NoControllerManager {
		if err := cp.startControllerManager(); err != nil {
			return nil, err
		}
	}
	if err := cp.waitForBootstrapPolicy(ctx); err != nil {
		return nil, err
	}
	if !opts.NoControllerManager {
		if err := cp.controllerManagerExited(); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// controllerManagerExited returns why kube-controller-manager exited, or
// nil while it runs (or was never started). Waits on its work report this,
// since a dead controller manager otherwise looks like a slow one.
func (cp *ControlPlane) controllerManagerExited() error {
	if cp.opts.NoControllerManager {
		return errors.New("kube-controller-manager is not running (Options.NoControllerManager)")
	}
	cp.mu.Lock()
	p := cp.kcm
	cp.mu.Unlock()
	if p != nil && p.exited() {
		return p.exitError()
	}
	return nil
}

func fillUsers(users []User) ([]User, error) {
	seenName := map[string]bool{}
	seenToken := map[string]bool{}
	out := make([]User, len(users))
	for i, u := range users {
		if u.Name == "" {
			return nil, fmt.Errorf("Options.Users[%d] has no Name", i-1)
		}
		if seenName[u.Name] {
			return nil, fmt.Errorf("user %q is defined twice (the admin is %q)", u.Name, users[0].Name)
		}
		seenName[u.Name] = true
		for _, g := range u.Groups {
			// The token file separates groups with commas and has no escape.
			if g == "" || strings.Contains(g, ",") {
				return nil, fmt.Errorf("user %q: group %q cannot be written to a token file", u.Name, g)
			}
		}
		if u.UID == "" {
			u.UID = "uid-" + u.Name
		}
		if u.Token == "" {
			u.Token = randomToken()
		}
		if seenToken[u.Token] {
			return nil, fmt.Errorf("user %q reuses another user's token", u.Name)
		}
		seenToken[u.Token] = true
		u.Groups = append([]string(nil), u.Groups...)
		out[i] = u
	}
	return out, nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails on supported platforms
	return hex.EncodeToString(b)
}

// writeTokens writes kube-apiserver's --token-auth-file:
// token,user,uid,"group1,group2". kube-apiserver reads it with
// encoding/csv, so encoding/csv's quoting is exactly right.
func writeTokens(path string, users []User) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for _, u := range users {
		rec := []string{u.Token, u.Name, u.UID}
		if len(u.Groups) > 0 {
			rec = append(rec, strings.Join(u.Groups, ","))
		}
		if err := w.Write(rec); err != nil {
			return err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

func (cp *ControlPlane) path(name string) string { return filepath.Join(cp.Dir, name) }

func (cp *ControlPlane) startEtcd(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		clientPort, err := freePort()
		if err != nil {
			return err
		}
		peerPort, err := freePort()
		if err != nil {
			return err
		}
		client := "http://127.0.0.1:" + strconv.Itoa(clientPort)
		peer := "http://127.0.0.1:" + strconv.Itoa(peerPort)
		args := []string{
			"--name=testenv",
			"--data-dir=" + cp.path("etcd"),
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=testenv=" + peer,
			// Data only needs to survive the test; fsync dominates etcd's
			// write latency and so kube-apiserver's startup.
			"--unsafe-no-fsync=true",
			"--log-level=warn",
		}
		p, err := startProcess("etcd", filepath.Join(cp.BinDir, "etcd"), cp.path("etcd.log"), args)
		if err != nil {
			return err
		}
		cp.mu.Lock()
		cp.etcd = p
		cp.etcdURL = client
		cp.mu.Unlock()
		err = waitFor(ctx, p, "etcd /health", func(ctx context.Context) error { return etcdHealthy(ctx, client) })
		if err == nil {
			return nil
		}
		if p.exited() && addrInUse(p.logPath) && attempt < bindAttempts {
			if err := os.RemoveAll(cp.path("etcd")); err != nil {
				return err
			}
			continue
		}
		return err
	}
}

func etcdHealthy(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"health":"true"`)) {
		return fmt.Errorf("etcd /health: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// startAPIServerFresh picks the port, which stays fixed for the control
// plane's life so that restarts keep every kubeconfig valid.
func (cp *ControlPlane) startAPIServerFresh(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		cp.apiPort = port
		cp.apiArgs = cp.apiServerArgs()
		cp.Config = cp.configWithToken(cp.Admin.Token)
		p, err := cp.runAPIServer(ctx)
		if err == nil {
			return nil
		}
		if p != nil && p.exited() && addrInUse(p.logPath) && attempt < bindAttempts {
			continue
		}
		return err
	}
}

func (cp *ControlPlane) apiServerArgs() []string {
	args := []string{
		"--etcd-servers=" + cp.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(cp.apiPort),
		// Unused while --tls-cert-file is set, but keeps anything the
		// server might write inside Dir.
		"--cert-dir=" + cp.path("apiserver-certs"),
		"--tls-cert-file=" + cp.path(servingCertFile),
		"--tls-private-key-file=" + cp.path(servingKeyFile),
		"--token-auth-file=" + cp.path("tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=" + issuer,
		"--service-account-key-file=" + cp.path(saPubFile),
		"--service-account-signing-key-file=" + cp.path(saKeyFile),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--allow-privileged=true",
		"--profiling=false",
		// The lease reconciler would publish 127.0.0.1 as the endpoint of
		// the kubernetes Service, which validation rejects (loopback), so
		// it only logs an error every 10s.
		"--endpoint-reconciler-type=none",
		// On SIGTERM, kube-apiserver otherwise waits up to --request-timeout
		// (60s) for the controller manager's watch connections to close;
		// this mode caps that at 2s, which keeps StopAPIServer quick.
		"--shutdown-send-retry-after=true",
	}
	return append(args, cp.opts.ExtraAPIServerFlags...)
}

// runAPIServer starts kube-apiserver with cp.apiArgs and waits for
// /readyz. On failure the process is stopped; it is returned so the
// caller can inspect its log.
func (cp *ControlPlane) runAPIServer(ctx context.Context) (*process, error) {
	p, err := startProcess("kube-apiserver", filepath.Join(cp.BinDir, "kube-apiserver"), cp.path("kube-apiserver.log"), cp.apiArgs)
	if err != nil {
		return nil, err
	}
	cp.mu.Lock()
	cp.apiserver = p
	cp.mu.Unlock()
	poll := rest.CopyConfig(cp.Config)
	poll.Timeout = 2 * time.Second
	client, err := kubernetes.NewForConfig(poll)
	if err != nil {
		_ = p.stop()
		return p, err
	}
	err = waitFor(ctx, p, "kube-apiserver /readyz", func(ctx context.Context) error {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return err
		}
		if string(body) != "ok" {
			return fmt.Errorf("/readyz: %q", body)
		}
		return nil
	})
	if err != nil {
		_ = p.stop()
		return p, err
	}
	return p, nil
}

// waitForBootstrapPolicy waits for objects the rbac/bootstrap-roles
// post-start hook creates. /readyz already waits for the hook; this
// guards against a future readyz that does not.
func (cp *ControlPlane) waitForBootstrapPolicy(ctx context.Context) error {
	poll := rest.CopyConfig(cp.Config)
	poll.Timeout = 2 * time.Second
	client, err := kubernetes.NewForConfig(poll)
	if err != nil {
		return err
	}
	cp.mu.Lock()
	p := cp.apiserver
	cp.mu.Unlock()
	return waitFor(ctx, p, "bootstrap RBAC policy", func(ctx context.Context) error {
		if _, err := client.RbacV1().ClusterRoles().Get(ctx, "cluster-admin", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("clusterrole/cluster-admin: %w", err)
		}
		if _, err := client.RbacV1().Roles("kube-system").Get(ctx, "system:controller:bootstrap-signer", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("role/kube-system/system:controller:bootstrap-signer: %w", err)
		}
		return nil
	})
}

func (cp *ControlPlane) startControllerManager() error {
	kubeconfig, err := cp.writeKubeconfig("kube-controller-manager.kubeconfig", cp.Admin)
	if err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + strings.Join(Controllers, ","),
		"--service-account-private-key-file=" + cp.path(saKeyFile),
		"--root-ca-file=" + cp.path(caCertFile),
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--secure-port=0",
	}
	p, err := startProcess("kube-controller-manager", filepath.Join(cp.BinDir, "kube-controller-manager"), cp.path("kube-controller-manager.log"), args)
	if err != nil {
		return err
	}
	cp.mu.Lock()
	cp.kcm = p
	cp.mu.Unlock()
	return nil
}

// waitFor polls check every pollInterval until it succeeds, p exits or ctx
// ends. Errors carry the last check error and p's log tail.
func waitFor(ctx context.Context, p *process, what string, check func(context.Context) error) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("waiting for %s: %w", what, p.exitError())
		}
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last check: %v); last lines of %s:\n%s",
				what, ctx.Err(), last, p.logPath, tailFile(p.logPath, 30))
		case <-p.done:
		case <-t.C:
		}
	}
}

func (cp *ControlPlane) configWithToken(token string) *rest.Config {
	return &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(cp.apiPort),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), cp.caPEM...)},
		// Tests create objects in bursts; client-side throttling would
		// only slow them down.
		QPS:   200,
		Burst: 400,
	}
}

func (cp *ControlPlane) writeKubeconfig(name string, u User) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testenv"] = &clientcmdapi.Cluster{
		Server:                   "https://127.0.0.1:" + strconv.Itoa(cp.apiPort),
		CertificateAuthorityData: cp.caPEM,
	}
	cfg.AuthInfos[u.Name] = &clientcmdapi.AuthInfo{Token: u.Token}
	cfg.Contexts["testenv"] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: u.Name}
	cfg.CurrentContext = "testenv"
	path := cp.path(name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return path, nil
}

func (cp *ControlPlane) lookupUser(u User) (User, bool) {
	got, ok := cp.userIndex[u.Name]
	return got, ok
}

// KubeconfigFor writes a kubeconfig for u, which must be the admin or
// one of Options.Users (matched by Name), and returns its path.
func (cp *ControlPlane) KubeconfigFor(u User) (string, error) {
	got, ok := cp.lookupUser(u)
	if !ok {
		return "", fmt.Errorf("testenv: user %q is not in Options.Users", u.Name)
	}
	name := strings.NewReplacer(":", "_", "/", "_").Replace(got.Name)
	return cp.writeKubeconfig(filepath.Join("users", name+".kubeconfig"), got)
}

// ConfigFor returns a rest.Config authenticating with u's token. u must be
// the admin or one of Options.Users (matched by Name; its Token may be
// left empty); anything else is a bug in the test and panics.
func (cp *ControlPlane) ConfigFor(u User) *rest.Config {
	got, ok := cp.lookupUser(u)
	if !ok {
		panic(fmt.Sprintf("testenv: ConfigFor: user %q is not in Options.Users", u.Name))
	}
	return cp.configWithToken(got.Token)
}

// Impersonate returns the admin config impersonating user and groups.
// kube-apiserver adds system:authenticated itself.
func (cp *ControlPlane) Impersonate(user string, groups ...string) *rest.Config {
	c := rest.CopyConfig(cp.Config)
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append([]string(nil), groups...)}
	return c
}

// StopAPIServer stops kube-apiserver, leaving etcd and the controller
// manager running, for tests of clients that must survive a restart.
func (cp *ControlPlane) StopAPIServer() error {
	cp.mu.Lock()
	p := cp.apiserver
	cp.apiserver = nil
	cp.mu.Unlock()
	if p == nil {
		return errors.New("testenv: kube-apiserver is not running")
	}
	if err := p.stop(); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return nil
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, on the
// same port, with the same etcd and flags, and waits for /readyz.
func (cp *ControlPlane) StartAPIServer(ctx context.Context) error {
	cp.mu.Lock()
	switch {
	case cp.stopped:
		cp.mu.Unlock()
		return errors.New("testenv: control plane is stopped")
	case cp.apiserver != nil:
		cp.mu.Unlock()
		return errors.New("testenv: kube-apiserver is already running")
	}
	cp.mu.Unlock()
	if _, err := cp.runAPIServer(ctx); err != nil {
		cp.mu.Lock()
		cp.apiserver = nil
		cp.mu.Unlock()
		return fmt.Errorf("testenv: restarting kube-apiserver: %w", err)
	}
	return nil
}

// Stop stops every component (SIGTERM, then SIGKILL after a grace period)
// and removes Dir. It is idempotent and safe on a partly started control
// plane.
func (cp *ControlPlane) Stop() error {
	cp.mu.Lock()
	if cp.stopped {
		cp.mu.Unlock()
		return nil
	}
	cp.stopped = true
	kcm, api, etcd := cp.kcm, cp.apiserver, cp.etcd
	cp.mu.Unlock()

	// Clients of etcd first, in parallel: kube-apiserver shuts down
	// faster while etcd still answers.
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range []*process{kcm, api} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := etcd.stop(); err != nil {
		errs = append(errs, err)
	}
	if cp.Dir != "" {
		if err := os.RemoveAll(cp.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("testenv: stopping control plane: %w", err)
	}
	return nil
}

// Logs returns the tail of each component's log, for test failure
// messages. Stop removes the logs, so call it before.
func (cp *ControlPlane) Logs() string {
	cp.mu.Lock()
	stopped := cp.stopped
	cp.mu.Unlock()
	if stopped {
		return "(no logs: Stop removed " + cp.Dir + ")"
	}
	var b strings.Builder
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		path := cp.path(name + ".log")
		if _, err := os.Stat(path); err != nil {
			continue
		}
		fmt.Fprintf(&b, "----- %s (%s) -----\n%s\n", name, path, tailFile(path, 40))
	}
	return b.String()
}

// WaitForServiceAccount waits until the serviceaccount controller has
// created the "default" ServiceAccount in namespace.
func (cp *ControlPlane) WaitForServiceAccount(ctx context.Context, namespace string) error {
	client, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return err
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		// Any error is retried: the apiserver may be restarting.
		_, err := client.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if kerr := cp.controllerManagerExited(); kerr != nil {
			return fmt.Errorf("testenv: waiting for serviceaccount/%s/default: %w", namespace, kerr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv: waiting for serviceaccount/%s/default: %w (last error: %v)", namespace, ctx.Err(), err)
		case <-t.C:
		}
	}
}
