package cluster

// Tests that need no control plane: pagination and its 410 restart, Table
// decoding, error wording, kubeconfig errors, and fatal connection errors
// against local stand-ins (closed port, silent listener, TLS and plain
// HTTP servers).

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// fakePager serves pages of ints and expires continue tokens on demand.
type fakePager struct {
	items   []int
	expire  int // how many continue requests answer 410
	calls   []string
	expired int
}

func (f *fakePager) page(_ context.Context, limit int64, cont string) ([]any, string, error) {
	f.calls = append(f.calls, cont)
	if cont != "" && f.expired < f.expire {
		f.expired++
		return nil, "", apierrors.NewResourceExpired("The provided continue parameter is too old")
	}
	start := 0
	if cont != "" {
		if _, err := fmt.Sscan(cont, &start); err != nil {
			return nil, "", err
		}
	}
	end := min(start+int(limit), len(f.items))
	var out []any
	for _, i := range f.items[start:end] {
		out = append(out, i)
	}
	next := ""
	if end < len(f.items) {
		next = fmt.Sprint(end)
	}
	return out, next, nil
}

func TestListAllPaginates(t *testing.T) {
	f := &fakePager{items: []int{0, 1, 2, 3, 4, 5, 6}}
	got, err := listAll(context.Background(), f.page, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 {
		t.Errorf("got %d objects, want 7", len(got))
	}
	if want := []string{"", "2", "4", "6"}; !reflect.DeepEqual(f.calls, want) {
		t.Errorf("continue tokens sent = %q, want %q", f.calls, want)
	}
}

func TestListAllRestartsOnceOnExpiredToken(t *testing.T) {
	f := &fakePager{items: []int{0, 1, 2, 3, 4}, expire: 1}
	got, err := listAll(context.Background(), f.page, 2)
	if err != nil {
		t.Fatal(err)
	}
	// The objects of the abandoned first pass are not kept twice.
	if len(got) != 5 {
		t.Errorf("got %d objects, want 5: %v", len(got), got)
	}
	if want := []string{"", "2", "", "2", "4"}; !reflect.DeepEqual(f.calls, want) {
		t.Errorf("continue tokens sent = %q, want %q", f.calls, want)
	}

	f = &fakePager{items: []int{0, 1, 2, 3, 4}, expire: 2}
	got, err = listAll(context.Background(), f.page, 2)
	if err == nil || got != nil {
		t.Fatalf("second expiry: got %v, %v; want an error and no objects", got, err)
	}
	msg := listReason(err, true)
	if !strings.Contains(msg, "continue token expired twice") || strings.Contains(msg, "\n") {
		t.Errorf("message = %q", msg)
	}
}

func TestListAllDoesNotRetryOtherErrors(t *testing.T) {
	calls := 0
	_, err := listAll(context.Background(), func(context.Context, int64, string) ([]any, string, error) {
		calls++
		return nil, "", apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("no"))
	}, 2)
	if err == nil || calls != 1 {
		t.Errorf("calls = %d, err = %v", calls, err)
	}
}

func TestListReason(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "",
		errors.New(`User "x" cannot list resource "pods" in API group "" at the cluster scope`))
	ingress := apierrors.NewForbidden(schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}, "",
		errors.New(`User "x" cannot list resource "ingresses" in API group "networking.k8s.io" at the cluster scope`))
	for _, tc := range []struct {
		err          error
		valueBearing bool
		want         string
	}{
		{forbidden, false, `forbidden: User "x" cannot list resource "pods" in API group "" at the cluster scope`},
		{ingress, false, `forbidden: User "x" cannot list resource "ingresses" in API group "networking.k8s.io" at the cluster scope`},
		{apierrors.NewUnauthorized("x"), false, "unauthorized (401): the credentials were rejected"},
		{apierrors.NewNotFound(schema.GroupResource{Resource: "ingresses"}, ""), false, "not served by this API server (404 Not Found)"},
		{apierrors.NewInternalError(errors.New("etcd\nis down")), false, "Internal error occurred: etcd is down (500 InternalError)"},
		{errors.New("invalid character 'K' looking for beginning of value"), true, "the server's answer could not be read"},
		{urlErr, false, "connection refused"},
		{errNoTypeColumn, true, string(errNoTypeColumn)},
	} {
		got := listReason(tc.err, tc.valueBearing)
		if tc.want != "" && got != tc.want {
			t.Errorf("listReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if strings.Contains(got, "\n") {
			t.Errorf("listReason(%v) = %q: more than one line", tc.err, got)
		}
	}
}

var urlErr = func() error {
	_, err := http.Get("http://" + closedAddr())
	return err
}()

// closedAddr returns a loopback address where nothing listens.
func closedAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestSecretsFromTable(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	written := metav1.NewTime(created.Add(time.Hour))
	meta := func(name string, fields string, annotations map[string]string) []byte {
		m := metav1.PartialObjectMetadata{
			TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"},
			ObjectMeta: metav1.ObjectMeta{
				Namespace: "ns", Name: name, CreationTimestamp: created,
				Labels: map[string]string{"app": name}, Annotations: annotations,
			},
		}
		if fields != "" {
			m.ManagedFields = []metav1.ManagedFieldsEntry{{
				Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, Time: &written,
				FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(fields),
			}}
		}
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	// Columns in an unusual order, to prove they are found by name.
	table := fmt.Sprintf(`{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"continue":"next"},
	  "columnDefinitions":[{"name":"Age","type":"string"},{"name":"Data","type":"string"},{"name":"Type","type":"string"},{"name":"Name","type":"string"}],
	  "rows":[
	    {"cells":["1h",2,"kubernetes.io/tls","cert"],"object":%s},
	    {"cells":["1h",0,"Opaque","empty"],"object":%s},
	    {"cells":["1h",3,"Opaque","partial"],"object":%s},
	    {"cells":["1h",1,"","nomf"],"object":%s}
	  ]}`,
		meta("cert", `{"f:data":{".":{},"f:tls.crt":{},"f:tls.key":{}},"f:type":{}}`,
			map[string]string{inventory.LastAppliedAnnotation: `{"data":{"tls.key":"S0VZSE9MRS1DQU5BUlk="}}`, "team": "x"}),
		meta("empty", `{"f:type":{}}`, nil),
		meta("partial", `{"f:data":{"f:a":{}}}`, nil),
		meta("nomf", "", nil),
	)
	l, err := decodeSecretTable([]byte(table), &tableColumns{})
	if err != nil {
		t.Fatal(err)
	}
	objs, next := l.inventory(), l.Continue
	if next != "next" || len(objs) != 4 {
		t.Fatalf("continue %q, %d objects", next, len(objs))
	}
	cert := objs[0].(*inventory.Secret)
	want := &inventory.Secret{
		Namespace: "ns", Name: "cert", Type: corev1.SecretTypeTLS,
		Keys: []string{"tls.crt", "tls.key"}, KeysKnown: true,
		Labels: map[string]string{"app": "cert"}, Annotations: map[string]string{"team": "x"},
		HadLastApplied: true, CreatedAt: created.Time, DataWrittenAt: written.Time,
	}
	if !reflect.DeepEqual(normalize(cert), normalize(want)) {
		t.Errorf("cert:\n got %+v\nwant %+v", cert, want)
	}
	for _, tc := range []struct {
		i     int
		keys  []string
		known bool
		typ   corev1.SecretType
	}{
		{1, []string{}, true, corev1.SecretTypeOpaque},
		{2, []string{"a"}, false, corev1.SecretTypeOpaque}, // 3 keys printed, 1 recorded
		{3, []string{}, false, corev1.SecretTypeOpaque},    // empty type defaults like the API
	} {
		s := objs[tc.i].(*inventory.Secret)
		if !reflect.DeepEqual(s.Keys, tc.keys) || s.KeysKnown != tc.known || s.Type != tc.typ {
			t.Errorf("%s: keys %q known %v type %q; want %q %v %q", s.Name, s.Keys, s.KeysKnown, s.Type, tc.keys, tc.known, tc.typ)
		}
	}
	raw, _ := json.Marshal(objs)
	if strings.Contains(string(raw), "S0VZSE9MRS1DQU5BUlk") {
		t.Errorf("the last-applied value reached the inventory: %s", raw)
	}

	noType := strings.Replace(table, `{"name":"Type","type":"string"},`, "", 1)
	if _, err := decodeSecretTable([]byte(noType), &tableColumns{}); !errors.Is(err, errNoTypeColumn) {
		t.Errorf("without a Type column: err = %v", err)
	}
}

func normalize(s *inventory.Secret) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestOneLine(t *testing.T) {
	if got := OneLine("a\n  b\tc "); got != "a b c" {
		t.Errorf("oneLine = %q", got)
	}
	long := strings.Repeat("é", 400)
	got := OneLine(long)
	if !strings.HasSuffix(got, "…") || len(got) > 310 || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
		t.Errorf("oneLine cut badly: %d bytes", len(got))
	}
}

// writeFile writes content to name in a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: KEYHOLE-CANARY-kubeconfig-token}
contexts:
- name: dev
  context: {cluster: c, user: u}
- name: broken
  context: {cluster: nowhere, user: u}
current-context: dev
`

func TestRESTConfig(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	good := writeFile(t, "config", goodKubeconfig)
	missing := filepath.Join(t.TempDir(), "nope")
	invalid := writeFile(t, "invalid", "apiVersion: v1\nkind: Config\nclusters: [\n")
	typeErr := writeFile(t, "typeerr", "KEYHOLE-CANARY-not-a-map\n")
	noCurrent := writeFile(t, "nocurrent", strings.Replace(goodKubeconfig, "current-context: dev", "", 1))
	empty := writeFile(t, "empty", "")

	cfg, err := RESTConfig(good, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:6443" || cfg.UserAgent != "keyhole/"+Version || cfg.QPS != 50 || cfg.Burst != 100 {
		t.Errorf("config: host %q, agent %q, qps %v, burst %d", cfg.Host, cfg.UserAgent, cfg.QPS, cfg.Burst)
	}

	for _, tc := range []struct {
		name, kubeconfig, context, env, home string
		want                                 string
	}{
		{name: "missing file", kubeconfig: missing, want: "kubeconfig " + missing + ": no such file"},
		{name: "invalid yaml", kubeconfig: invalid, want: "kubeconfig " + invalid + ": not a valid kubeconfig: "},
		{name: "not a map", kubeconfig: typeErr, want: "kubeconfig " + typeErr + ": not a valid kubeconfig: "},
		{name: "unknown context", kubeconfig: good, context: "foo", want: `context "foo" not found in kubeconfig ` + good},
		{name: "context without cluster", kubeconfig: good, context: "broken",
			want: `context "broken" in kubeconfig ` + good + ` names cluster "nowhere", which is not defined there`},
		{name: "no current context", kubeconfig: noCurrent, want: "kubeconfig " + noCurrent + " has no current-context: pass --context"},
		{name: "empty file", kubeconfig: empty, want: "kubeconfig " + empty + " defines no contexts"},
		{name: "no config at all", home: missing, want: "no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run in a pod"},
		{name: "KUBECONFIG names nothing", env: missing, home: good, want: "no kubeconfig: KUBECONFIG names " + missing + ", which does not exist"},
		{name: "KUBECONFIG unknown context", env: missing + string(filepath.ListSeparator) + good, context: "foo",
			want: `context "foo" not found in kubeconfig ` + good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			if tc.home != "" {
				old := homeKubeconfig
				homeKubeconfig = tc.home
				t.Cleanup(func() { homeKubeconfig = old })
			}
			_, err := RESTConfig(tc.kubeconfig, tc.context)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			t.Logf("%s", msg)
			if !strings.HasPrefix(msg, tc.want) {
				t.Errorf("error = %q, want prefix %q", msg, tc.want)
			}
			if strings.Contains(msg, "\n") || strings.Contains(msg, "KEYHOLE-CANARY") {
				t.Errorf("error is not one clean line: %q", msg)
			}
		})
	}

	t.Run("in a pod without a token", func(t *testing.T) {
		if _, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token"); err == nil {
			t.Skip("running in a pod")
		}
		t.Setenv("KUBECONFIG", "")
		t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
		t.Setenv("KUBERNETES_SERVICE_PORT", "443")
		old := homeKubeconfig
		homeKubeconfig = missing
		t.Cleanup(func() { homeKubeconfig = old })
		_, err := RESTConfig("", "")
		want := "running in a pod, but its service account cannot be used: open /var/run/secrets/kubernetes.io/serviceaccount/token: no such file or directory"
		if err == nil || err.Error() != want {
			t.Errorf("error = %v, want %q", err, want)
		}
	})
	t.Run("KUBECONFIG used", func(t *testing.T) {
		t.Setenv("KUBECONFIG", missing+string(filepath.ListSeparator)+good)
		cfg, err := RESTConfig("", "")
		if err != nil || cfg.Host != "https://127.0.0.1:6443" {
			t.Fatalf("%v, %v", cfg, err)
		}
	})
}

// loadErr runs Load against cfg and returns the fatal error.
func loadErr(t *testing.T, cfg *rest.Config, opts Options) error {
	t.Helper()
	b := inventory.NewBuilder()
	_, problems, err := Load(context.Background(), cfg, b, opts)
	if err == nil {
		t.Fatalf("Load succeeded, problems %v", problems)
	}
	if b.Len() != 0 || len(problems) != 0 {
		t.Errorf("a fatal error came with %d objects and %d problems", b.Len(), len(problems))
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	t.Logf("%s", err)
	return err
}

func TestLoadFatalErrors(t *testing.T) {
	t.Run("closed port", func(t *testing.T) {
		addr := closedAddr()
		err := loadErr(t, &rest.Config{Host: "https://" + addr, BearerToken: "t"}, Options{})
		want := "cannot reach the Kubernetes API at https://" + addr + ": connection refused"
		var ce *ConnectError
		if err.Error() != want || !errors.As(err, &ce) {
			t.Errorf("error = %q, want %q (a *ConnectError)", err, want)
		}
	})
	t.Run("no such host", func(t *testing.T) {
		err := loadErr(t, &rest.Config{Host: "https://keyhole-no-such-host.invalid:6443"}, Options{})
		if !strings.HasPrefix(err.Error(), "cannot reach the Kubernetes API at https://keyhole-no-such-host.invalid:6443: ") {
			t.Errorf("error = %q", err)
		}
	})
	t.Run("silent server", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		start := time.Now()
		err = loadErr(t, &rest.Config{Host: "https://" + l.Addr().String()}, Options{ConnectTimeout: 300 * time.Millisecond})
		if want := "cannot reach the Kubernetes API at https://" + l.Addr().String() + ": no answer within 300ms"; err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("unknown authority", func(t *testing.T) {
		srv := quietTLSServer()
		defer srv.Close()
		err := loadErr(t, &rest.Config{Host: srv.URL}, Options{})
		want := "the Kubernetes API at " + srv.URL + " presented a certificate signed by an unknown authority (x509): check certificate-authority in the kubeconfig"
		if err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
	})
	t.Run("wrong host name", func(t *testing.T) {
		srv := quietTLSServer()
		defer srv.Close()
		cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{ServerName: "elsewhere.example"}}
		cfg.CAData = pemOf(srv)
		err := loadErr(t, cfg, Options{})
		if !strings.HasPrefix(err.Error(), "TLS with the Kubernetes API at "+srv.URL+" failed: x509: certificate is valid for ") {
			t.Errorf("error = %q", err)
		}
	})
	t.Run("plain http", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		defer srv.Close()
		url := strings.Replace(srv.URL, "http://", "https://", 1)
		err := loadErr(t, &rest.Config{Host: url}, Options{})
		want := "the Kubernetes API at " + url + " answered an HTTPS request in plain HTTP: check the server URL's scheme"
		if err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
	})
	t.Run("401", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`)
		}))
		defer srv.Close()
		err := loadErr(t, &rest.Config{Host: srv.URL, BearerToken: "KEYHOLE-CANARY-token"}, Options{})
		want := "the Kubernetes API at " + srv.URL + " rejected the credentials (401 Unauthorized): the token may be expired"
		if err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
		if !apierrors.IsUnauthorized(errors.Unwrap(err)) {
			t.Errorf("Unwrap does not give the API error")
		}
	})
	t.Run("credential plugin", func(t *testing.T) {
		srv := quietTLSServer()
		defer srv.Close()
		cfg := &rest.Config{Host: srv.URL, ExecProvider: &clientcmdapi.ExecConfig{
			Command: "/nonexistent/kubelogin", APIVersion: "client.authentication.k8s.io/v1",
			InteractiveMode: clientcmdapi.NeverExecInteractiveMode}}
		cfg.CAData = pemOf(srv)
		err := loadErr(t, cfg, Options{})
		want := "cannot get credentials for the Kubernetes API at " + srv.URL + ": exec: fork/exec /nonexistent/kubelogin: no such file or directory"
		if err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, _, err := Load(ctx, &rest.Config{Host: "https://" + closedAddr()}, inventory.NewBuilder(), Options{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("bad strategy", func(t *testing.T) {
		_, _, err := Load(context.Background(), &rest.Config{Host: "https://" + closedAddr()}, inventory.NewBuilder(), Options{SecretsVia: "values"})
		if err == nil || !strings.Contains(err.Error(), `unknown way to read Secrets "values"`) {
			t.Errorf("err = %v", err)
		}
	})
}

func pemOf(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// quietTLSServer is an httptest TLS server that does not log the failed
// handshakes these tests cause on purpose.
func quietTLSServer() *httptest.Server {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	return srv
}
