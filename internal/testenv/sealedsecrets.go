package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// SealedSecretsVersion is the Sealed Secrets controller that
// build-sealed-secrets.sh builds (`make sealed-secrets`). It must match
// the script's default, the CRD copied into testdata/sealed-secrets/ and
// the github.com/bitnami-labs/sealed-secrets version in go.mod, so that
// keyhole seals with the same code the controller unseals with
// (TestSealedSecretsVersions checks all three).
const SealedSecretsVersion = "v0.27.1"

// Where kubeseal looks for the controller by default (its
// --controller-namespace and --controller-name), and the names the
// upstream manifests (controller.jsonnet) give its objects.
const (
	SealedSecretsNamespace = "kube-system"
	SealedSecretsName      = "sealed-secrets-controller"
	// SealedSecretsKeyLabel labels the Secrets holding the controller's
	// sealing keys (value "active").
	SealedSecretsKeyLabel = "sealedsecrets.bitnami.com/sealed-secrets-key"
	// sealedSecretsPortName is the Service's first (and only) port name,
	// which kubeseal reads to build the proxy path
	// services/http:<name>:<port name>/proxy/v1/cert.pem.
	sealedSecretsPortName = "http"
)

// sealedSecretsCRDFile is the CRD, relative to the repository root.
const sealedSecretsCRDFile = "testdata/sealed-secrets/bitnami.com_sealedsecrets.yaml"

// serviceAccountDir is where rest.InClusterConfig reads the token and CA.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// sealedSecretsWrapper runs as `sh -c` inside a private mount namespace
// (unshare -m): it puts the controller's service-account files where
// rest.InClusterConfig reads them, points it at the test kube-apiserver and
// execs it, so the controller keeps the wrapper's pid, process group and
// parent-death signal. When the directory does not exist, a tmpfs over
// /var/run (only in this namespace) gives a place to create it without
// touching the host's file system. Arguments: the service-account
// directory, kube-apiserver's port, the namespace, then the controller's
// command line.
const sealedSecretsWrapper = `set -eu
sa=$1 port=$2 ns=$3
shift 3
dst=` + serviceAccountDir + `
if [ ! -d "$dst" ]; then
	mount -t tmpfs -o mode=0755 keyhole-testenv /var/run
	mkdir -p "$dst"
fi
mount --bind "$sa" "$dst"
export KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="$port" POD_NAMESPACE="$ns"
exec "$@"
`

var (
	crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	// SealedSecretsGVR is the SealedSecret resource, for dynamic clients.
	SealedSecretsGVR = schema.GroupVersionResource{Group: "bitnami.com", Version: "v1alpha1", Resource: "sealedsecrets"}
)

// SealedSecretsController is the real Sealed Secrets controller
// (SealedSecretsVersion) running against a ControlPlane, as it would in a
// cluster: as the ServiceAccount Namespace/Name with the upstream RBAC,
// with the SealedSecret CRD installed, and reachable the way kubeseal
// reaches it, through kube-apiserver's service proxy to the Service
// Namespace/Name. The test control plane has no kubelet, so a Pod object
// of that name stands in for the controller's pod (the service proxy only
// proxies to pod IPs) and the Service has hand-written Endpoints pointing
// at the controller process on this host's non-loopback address.
type SealedSecretsController struct {
	// Namespace and Name are kubeseal's --controller-namespace and
	// --controller-name: kube-system and sealed-secrets-controller.
	Namespace string
	Name      string
	// CertPEM is the sealing certificate the controller served through the
	// service proxy when it became ready. It is public.
	CertPEM []byte
	// Addr is the host:port the controller's HTTP server listens on.
	Addr string
	// LogPath is the controller's log (stdout and stderr). It never holds
	// a Secret value: the controller logs names, not data.
	LogPath string

	dir  string // this controller's files, inside the control plane's Dir
	mu   sync.Mutex
	proc *process
}

// SealedSecretsControllerBinary returns the controller binary:
// $KEYHOLE_SEALED_SECRETS_CONTROLLER, else the one build-sealed-secrets.sh
// caches. The error says how to build it.
func SealedSecretsControllerBinary() (string, error) {
	p, err := sealedSecretsControllerBinary()
	if err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	return p, nil
}

func sealedSecretsControllerBinary() (string, error) {
	if p := os.Getenv("KEYHOLE_SEALED_SECRETS_CONTROLLER"); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("KEYHOLE_SEALED_SECRETS_CONTROLLER: %w", err)
		}
		return p, nil
	}
	// Same rule as the script (and BinDir).
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("locating the sealed-secrets controller: %w; set KEYHOLE_SEALED_SECRETS_CONTROLLER", err)
		}
		cache = filepath.Join(home, ".cache")
	}
	p := filepath.Join(cache, "keyhole", "tools", "sealed-secrets-controller-"+SealedSecretsVersion, "controller")
	if err := checkExecutable(p); err != nil {
		return "", fmt.Errorf("no sealed-secrets controller: %w; run `make sealed-secrets` to build it (once, about two minutes), or point KEYHOLE_SEALED_SECRETS_CONTROLLER at one", err)
	}
	return p, nil
}

func checkExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// StartSealedSecretsController installs the SealedSecret CRD, the
// controller's ServiceAccount, RBAC, stand-in Pod, Service and Endpoints
// (all idempotently, so a controller can be started again after Stop and
// keeps its sealing key), starts the controller and returns once its
// certificate is served through the service proxy, which proves the whole
// path kubeseal uses. Run at most one per control plane at a time: two
// would both unseal every SealedSecret. On error the process is stopped.
func (cp *ControlPlane) StartSealedSecretsController(ctx context.Context) (_ *SealedSecretsController, err error) {
	c := &SealedSecretsController{Namespace: SealedSecretsNamespace, Name: SealedSecretsName}
	defer func() {
		if err != nil {
			_ = c.Stop()
			err = fmt.Errorf("testenv: starting the sealed-secrets controller: %w", err)
		}
	}()
	if err := platformCheck(); err != nil {
		return nil, err
	}
	bin, err := sealedSecretsControllerBinary()
	if err != nil {
		return nil, err
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return nil, fmt.Errorf("the controller runs in a private mount namespace, which needs util-linux's unshare: %w", err)
	}
	hostIP, err := hostIPv4()
	if err != nil {
		return nil, err
	}
	crd, err := readSealedSecretsCRD()
	if err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(cp.Config)
	// Endpoints are deprecated in favour of EndpointSlices, but the
	// service proxy still reads Endpoints; don't print the warning.
	cfg.WarningHandlerWithContext = rest.NoWarnings{}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}

	if err := installCRD(ctx, dyn, crd); err != nil {
		return nil, err
	}
	if err := c.applyRBAC(ctx, client); err != nil {
		return nil, err
	}
	pod, err := c.ensurePod(ctx, client, hostIP)
	if err != nil {
		return nil, err
	}
	if err := c.ensureService(ctx, client); err != nil {
		return nil, err
	}
	if c.dir, err = os.MkdirTemp(cp.Dir, "sealed-secrets-"); err != nil {
		return nil, err
	}
	saDir := filepath.Join(c.dir, "serviceaccount")
	if err := c.writeServiceAccount(ctx, client, pod, saDir, cp.caPEM); err != nil {
		return nil, err
	}
	c.LogPath = filepath.Join(c.dir, "controller.log")

	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		c.Addr = net.JoinHostPort(hostIP.String(), strconv.Itoa(port))
		if err := c.ensureEndpoints(ctx, client, pod, hostIP, port); err != nil {
			return nil, err
		}
		args := []string{"-m", "--propagation", "private"}
		if os.Geteuid() != 0 {
			// An unprivileged user may mount inside its own user namespace.
			args = append(args, "-r")
		}
		args = append(args, "/bin/sh", "-c", sealedSecretsWrapper, "keyhole-sealed-secrets",
			saDir, strconv.Itoa(cp.apiPort), c.Namespace,
			bin,
			"--listen-addr="+c.Addr,
			// Port 0: parallel tests never collide, and nothing scrapes it.
			"--listen-metrics-addr=127.0.0.1:0",
		)
		p, err := startProcess("sealed-secrets-controller", unshare, c.LogPath, args)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.proc = p
		c.mu.Unlock()
		err = waitFor(ctx, p, "the sealed-secrets certificate through the service proxy", func(ctx context.Context) error {
			// The controller only logs a failed listen and runs on; stop
			// it so that the bind failure below is seen and retried.
			if addrInUse(p.logPath) {
				_ = p.stop()
				return errors.New("address already in use")
			}
			pem, err := c.fetchCert(ctx, client)
			if err != nil {
				return err
			}
			c.CertPEM = pem
			return nil
		})
		if err == nil {
			return c, nil
		}
		if p.exited() && addrInUse(p.logPath) && attempt < bindAttempts {
			// Each attempt's log starts afresh, so that addrInUse only
			// sees its own.
			if err := os.Remove(c.LogPath); err != nil {
				return nil, err
			}
			continue
		}
		return nil, err
	}
}

// StartSealedSecretsControllerT starts the controller for t (see
// StartSealedSecretsController) and stops it when t ends, logging the
// tail of its log first if t failed. Call it after StartT, so that the
// controller stops before the control plane.
func StartSealedSecretsControllerT(t testing.TB, cp *ControlPlane) *SealedSecretsController {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), StartTimeout)
	defer cancel()
	c, err := cp.StartSealedSecretsController(ctx)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sealed-secrets controller log:\n%s", c.Logs())
		}
		if err := c.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return c
}

// Stop stops the controller (SIGTERM to its process group, then SIGKILL)
// and removes its service-account token. The objects it and
// StartSealedSecretsController created stay, its sealing key among them,
// as when a controller pod goes away. Stop is idempotent.
func (c *SealedSecretsController) Stop() error {
	c.mu.Lock()
	p := c.proc
	c.proc = nil
	c.mu.Unlock()
	var errs []error
	if err := p.stop(); err != nil {
		errs = append(errs, err)
	}
	if c.dir != "" {
		if err := os.RemoveAll(filepath.Join(c.dir, "serviceaccount")); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("testenv: stopping the sealed-secrets controller: %w", err)
	}
	return nil
}

// Logs returns the tail of the controller's log, for failure messages.
// The control plane's Stop removes it.
func (c *SealedSecretsController) Logs() string {
	if c.LogPath == "" {
		return "(the controller was not started)"
	}
	return "----- sealed-secrets-controller (" + c.LogPath + ") -----\n" + tailFile(c.LogPath, 40)
}

// Pid is the controller's process id (also its process group), or 0 when
// it is not running.
func (c *SealedSecretsController) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil || c.proc.exited() {
		return 0
	}
	return c.proc.cmd.Process.Pid
}

// fetchCert gets the certificate exactly as kubeseal's openCertCluster
// does: through the service proxy, scheme http, by the port's name.
func (c *SealedSecretsController) fetchCert(ctx context.Context, client kubernetes.Interface) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	body, err := client.CoreV1().Services(c.Namespace).
		ProxyGet("http", c.Name, sealedSecretsPortName, "/v1/cert.pem", nil).DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("GET services/%s/%s proxy /v1/cert.pem: %w", c.Namespace, c.Name, err)
	}
	if _, err := certutil.ParseCertsPEM(body); err != nil {
		return nil, fmt.Errorf("services/%s/%s /v1/cert.pem: %w", c.Namespace, c.Name, err)
	}
	return body, nil
}

// hostIPv4 is the first global unicast IPv4 address of an interface that
// is up. kube-apiserver will not proxy to loopback or link-local
// addresses, and Endpoints validation rejects them.
func hostIPv4() (net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipnet, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip := ipnet.IP.To4(); ip != nil && ip.IsGlobalUnicast() {
				return ip, nil
			}
		}
	}
	return nil, errors.New("no interface has a non-loopback, non-link-local IPv4 address, which kube-apiserver's service proxy needs to reach the controller")
}

// readSealedSecretsCRD finds the CRD under the repository root, looking
// up from the working directory (a test's package directory).
func readSealedSecretsCRD() (*unstructured.Unstructured, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for dir := wd; ; {
		path := filepath.Join(dir, sealedSecretsCRDFile)
		b, err := os.ReadFile(path)
		if err == nil {
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(b, &obj.Object); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if obj.GetKind() != "CustomResourceDefinition" || obj.GetName() != SealedSecretsGVR.GroupResource().String() {
				return nil, fmt.Errorf("%s: want the CustomResourceDefinition %s, found %s %q", path, SealedSecretsGVR.GroupResource(), obj.GetKind(), obj.GetName())
			}
			return obj, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		parent := filepath.Dir(dir)
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil || parent == dir {
			return nil, fmt.Errorf("%s not found in %s or its parents up to the module root", sealedSecretsCRDFile, wd)
		}
		dir = parent
	}
}

// installCRD creates the CRD unless it exists and waits until it is
// Established, after which SealedSecrets can be created.
func installCRD(ctx context.Context, dyn dynamic.Interface, crd *unstructured.Unstructured) error {
	crds := dyn.Resource(crdGVR)
	if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating customresourcedefinition/%s: %w", crd.GetName(), err)
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		got, err := crds.Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err == nil && crdEstablished(got) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for customresourcedefinition/%s to be Established: %w (last error: %v)", crd.GetName(), ctx.Err(), err)
		case <-t.C:
		}
	}
}

func crdEstablished(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// applyRBAC creates the controller's ServiceAccount and the RBAC of the
// upstream controller.jsonnet at SealedSecretsVersion: unsealing in every
// namespace, key management in its own, and the service proxy open to
// every authenticated user, whom kubeseal runs as.
func (c *SealedSecretsController) applyRBAC(ctx context.Context, client kubernetes.Interface) error {
	ns := c.Namespace
	sa := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: c.Name}
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	rbac := client.RbacV1()

	steps := []struct {
		what   string
		create func() error
	}{
		{"serviceaccount/" + ns + "/" + c.Name, func() error {
			_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta(c.Name)}, metav1.CreateOptions{})
			return err
		}},
		{"clusterrole/secrets-unsealer", func() error {
			_, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: "secrets-unsealer"},
				Rules: []rbacv1.PolicyRule{
					{APIGroups: []string{"bitnami.com"}, Resources: []string{"sealedsecrets"}, Verbs: []string{"get", "list", "watch"}},
					{APIGroups: []string{"bitnami.com"}, Resources: []string{"sealedsecrets/status"}, Verbs: []string{"update"}},
					{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "create", "update", "delete", "watch"}},
					{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
					{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get"}},
				},
			}, metav1.CreateOptions{})
			return err
		}},
		{"clusterrolebinding/" + c.Name, func() error {
			_, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: c.Name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "secrets-unsealer"},
				Subjects:   []rbacv1.Subject{sa},
			}, metav1.CreateOptions{})
			return err
		}},
		{"role/" + ns + "/sealed-secrets-key-admin", func() error {
			_, err := rbac.Roles(ns).Create(ctx, &rbacv1.Role{
				ObjectMeta: meta("sealed-secrets-key-admin"),
				// Keys are named on the fly, so create cannot be limited
				// by name.
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create", "list"}}},
			}, metav1.CreateOptions{})
			return err
		}},
		{"rolebinding/" + ns + "/" + c.Name, func() error {
			_, err := rbac.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: meta(c.Name),
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "sealed-secrets-key-admin"},
				Subjects:   []rbacv1.Subject{sa},
			}, metav1.CreateOptions{})
			return err
		}},
		{"role/" + ns + "/sealed-secrets-service-proxier", func() error {
			_, err := rbac.Roles(ns).Create(ctx, &rbacv1.Role{
				ObjectMeta: meta("sealed-secrets-service-proxier"),
				Rules: []rbacv1.PolicyRule{
					// kubeseal reads the Service for its port name...
					{APIGroups: []string{""}, Resources: []string{"services"}, ResourceNames: []string{c.Name}, Verbs: []string{"get"}},
					// ...then proxies to scheme:name:port.
					{
						APIGroups: []string{""}, Resources: []string{"services/proxy"},
						ResourceNames: []string{"http:" + c.Name + ":", "http:" + c.Name + ":" + sealedSecretsPortName, c.Name},
						Verbs:         []string{"create", "get"},
					},
				},
			}, metav1.CreateOptions{})
			return err
		}},
		{"rolebinding/" + ns + "/sealed-secrets-service-proxier", func() error {
			_, err := rbac.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: meta("sealed-secrets-service-proxier"),
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "sealed-secrets-service-proxier"},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:authenticated"}},
			}, metav1.CreateOptions{})
			return err
		}},
	}
	for _, s := range steps {
		if err := s.create(); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s: %w", s.what, err)
		}
	}
	return nil
}

// ensurePod creates the stand-in for the controller's pod and gives it
// ip as its pod IP: the service proxy only proxies to an Endpoints
// address whose targetRef is a Pod holding that IP. Nothing schedules or
// runs it (the control plane has no scheduler nor kubelet).
func (c *SealedSecretsController) ensurePod(ctx context.Context, client kubernetes.Interface, ip net.IP) (*corev1.Pod, error) {
	pods := client.CoreV1().Pods(c.Namespace)
	what := "pod/" + c.Namespace + "/" + c.Name
	pod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: c.Name, Namespace: c.Namespace,
			Labels: map[string]string{"app.kubernetes.io/name": "sealed-secrets"},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName:           c.Name,
			AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{
				Name:    "controller",
				Image:   "docker.io/bitnami/sealed-secrets-controller:" + SealedSecretsVersion[1:],
				Command: []string{"controller"},
				Ports:   []corev1.ContainerPort{{Name: sealedSecretsPortName, ContainerPort: 8080}},
			}},
		},
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		pod, err = pods.Get(ctx, c.Name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", what, err)
	}
	if len(pod.Status.PodIPs) == 1 && pod.Status.PodIPs[0].IP == ip.String() {
		return pod, nil
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = ip.String()
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip.String()}}
	pod, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("setting the pod IP of %s: %w", what, err)
	}
	return pod, nil
}

// ensureService creates the Service kubeseal looks up. It has no
// selector: its Endpoints are written by ensureEndpoints.
func (c *SealedSecretsController) ensureService(ctx context.Context, client kubernetes.Interface) error {
	_, err := client.CoreV1().Services(c.Namespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace},
		Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{
				Name: sealedSecretsPortName, Port: 8080, TargetPort: intstr.FromString(sealedSecretsPortName), Protocol: corev1.ProtocolTCP,
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating service/%s/%s: %w", c.Namespace, c.Name, err)
	}
	return nil
}

// ensureEndpoints points the Service at ip:port. kube-apiserver v1.34's
// service proxy reads Endpoints (not EndpointSlices), picks an address
// whose port has the requested name, and checks its targetRef Pod.
//
//nolint:staticcheck // Endpoints are deprecated, but the service proxy reads nothing else.
func (c *SealedSecretsController) ensureEndpoints(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, ip net.IP, port int) error {
	subsets := []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{
			IP:        ip.String(),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		}},
		Ports: []corev1.EndpointPort{{Name: sealedSecretsPortName, Port: int32(port), Protocol: corev1.ProtocolTCP}}, //nolint:gosec // a TCP port fits
	}}
	endpoints := client.CoreV1().Endpoints(c.Namespace)
	_, err := endpoints.Create(ctx, &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace},
		Subsets:    subsets,
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var ep *corev1.Endpoints
		if ep, err = endpoints.Get(ctx, c.Name, metav1.GetOptions{}); err == nil {
			ep.Subsets = subsets
			_, err = endpoints.Update(ctx, ep, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("writing endpoints/%s/%s: %w", c.Namespace, c.Name, err)
	}
	return nil
}

// writeServiceAccount writes what a kubelet would mount for the
// controller's pod: a token bound to the pod, the cluster CA and the
// namespace. The directory is private to this user; Stop removes it.
func (c *SealedSecretsController) writeServiceAccount(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, dir string, caPEM []byte) error {
	tr, err := client.CoreV1().ServiceAccounts(c.Namespace).CreateToken(ctx, c.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			// Longer than any test; the controller does not renew it.
			ExpirationSeconds: ptr.To(int64(24 * 60 * 60)),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("requesting a token for serviceaccount/%s/%s: %w", c.Namespace, c.Name, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		corev1.ServiceAccountTokenKey:     []byte(tr.Status.Token),
		corev1.ServiceAccountRootCAKey:    caPEM,
		corev1.ServiceAccountNamespaceKey: []byte(c.Namespace),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
