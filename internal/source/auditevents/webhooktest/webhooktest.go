// Package webhooktest is what tests of the audit webhook share: a
// throwaway PKI (a CA, a serving certificate for 127.0.0.1 and a client
// certificate, as the apiserver presents one), the apiserver's webhook
// kubeconfig and the recommended audit policy as kube-apiserver flags,
// and audit events to send. It holds no keyhole logic.
package webhooktest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// PKI is a CA with a serving and a client certificate, written to files.
type PKI struct {
	Dir                           string
	CAFile                        string
	ServerCertFile, ServerKeyFile string
	ClientCertFile, ClientKeyFile string
	// Pool trusts the CA.
	Pool *x509.CertPool
	// Client is the client certificate, for a tls.Config.
	Client tls.Certificate
}

// NewPKI writes a fresh PKI into dir (a t.TempDir()).
func NewPKI(dir string) (*PKI, error) {
	p := &PKI{
		Dir:            dir,
		CAFile:         filepath.Join(dir, "ca.crt"),
		ServerCertFile: filepath.Join(dir, "webhook.crt"), ServerKeyFile: filepath.Join(dir, "webhook.key"),
		ClientCertFile: filepath.Join(dir, "apiserver-client.crt"), ClientKeyFile: filepath.Join(dir, "apiserver-client.key"),
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keyhole-audit-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p.Pool = x509.NewCertPool()
	p.Pool.AddCert(caCert)
	if err := writePEM(p.CAFile, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, certFile, keyFile string) (tls.Certificate, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return tls.Certificate{}, err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return tls.Certificate{}, err
		}
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return tls.Certificate{}, err
		}
		if err := writePEM(keyFile, "EC PRIVATE KEY", keyDER); err != nil {
			return tls.Certificate{}, err
		}
		return tls.LoadX509KeyPair(certFile, keyFile)
	}
	if _, err := issue(2, "keyhole-audit-webhook", x509.ExtKeyUsageServerAuth, p.ServerCertFile, p.ServerKeyFile); err != nil {
		return nil, err
	}
	if p.Client, err = issue(3, "kube-apiserver", x509.ExtKeyUsageClientAuth, p.ClientCertFile, p.ClientKeyFile); err != nil {
		return nil, err
	}
	return p, nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// WriteToken writes a bearer token file and returns its path.
func WriteToken(dir, token string) (string, error) {
	path := filepath.Join(dir, "webhook-token")
	return path, os.WriteFile(path, []byte(token+"\n"), 0o600)
}

// Kubeconfig writes the apiserver's webhook kubeconfig: the server's URL
// (https://ADDR/audit/webhook), its CA, and the client certificate when
// token is empty, else the token. It returns the file's path.
func (p *PKI) Kubeconfig(addr, token string) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["keyhole"] = &clientcmdapi.Cluster{Server: "https://" + addr + "/audit/webhook", CertificateAuthority: p.CAFile}
	user := &clientcmdapi.AuthInfo{Token: token}
	if token == "" {
		user = &clientcmdapi.AuthInfo{ClientCertificate: p.ClientCertFile, ClientKey: p.ClientKeyFile}
	}
	cfg.AuthInfos["kube-apiserver"] = user
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "keyhole", AuthInfo: "kube-apiserver"}
	cfg.CurrentContext = "default"
	path := filepath.Join(p.Dir, "audit-webhook.kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// PolicyFile is the path of the recommended audit policy in the
// repository, relative to a package directory two levels down
// (internal/X).
const PolicyFile = "deploy/audit/policy.yaml"

// APIServerFlags are the kube-apiserver flags that send audit events to
// the webhook of kubeconfig, with the policy at policy: batches sent at
// least every second, and retried a second after a failure. Batch mode,
// not blocking: the apiserver starts before keyhole does, and its own
// reads of Secrets must not wait for a webhook that is not up yet.
func APIServerFlags(policy, kubeconfig string) []string {
	return []string{
		"--audit-policy-file=" + policy,
		"--audit-webhook-config-file=" + kubeconfig,
		"--audit-webhook-mode=batch",
		"--audit-webhook-batch-max-wait=1s",
		"--audit-webhook-initial-backoff=1s",
	}
}

// Event is a successful read of Secrets as the apiserver logs it at
// Metadata level: get when name is set, else list.
func Event(i int, user, namespace, name string, at time.Time) map[string]any {
	verb, uri := "get", fmt.Sprintf("/api/v1/namespaces/%s/secrets/%s", namespace, name)
	if name == "" {
		verb, uri = "list", fmt.Sprintf("/api/v1/namespaces/%s/secrets?limit=500", namespace)
	}
	ts := at.UTC().Format("2006-01-02T15:04:05.000000Z")
	return map[string]any{
		"level": "Metadata", "auditID": fmt.Sprintf("00000000-0000-0000-0000-%012d", i), "stage": "ResponseComplete",
		"requestURI": uri, "verb": verb,
		"user":      map[string]any{"username": user, "uid": "uid-" + user, "groups": []string{"system:authenticated"}},
		"sourceIPs": []string{"10.0.0.7"}, "userAgent": "kubectl/v1.34.4 (linux/amd64) kubernetes/abcdef",
		"objectRef":                map[string]any{"resource": "secrets", "namespace": namespace, "name": name, "apiVersion": "v1"},
		"responseStatus":           map[string]any{"metadata": map[string]any{}, "code": 200},
		"requestReceivedTimestamp": ts, "stageTimestamp": ts,
		"annotations": map[string]any{"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed"},
	}
}

// EventList encodes events as the webhook backend sends them.
func EventList(events []map[string]any) []byte {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(map[string]any{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": map[string]any{}, "items": events})
	return b.Bytes()
}
