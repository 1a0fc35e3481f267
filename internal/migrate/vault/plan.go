// Package vault owns `keyhole migrate vault`: the plan that maps each
// Secret to a HashiCorp Vault KV v2 path, the manifests of the in-cluster
// consumer that reads it back (External Secrets Operator, Vault Secrets
// Operator or the Vault Agent injector), the JSON patches that move
// workloads from environment variables to files, and the --apply step
// that writes the values to Vault with check-and-set and verifies them.
//
// Values stay in memory. A Plan holds them behind a pointer that fmt
// prints as an address; nothing this package renders (plan text,
// plan.json, manifests, patches, results, errors) contains a value, only
// key names. Values are compared as HMAC-SHA256 under a random key drawn
// for each run, never as plain values or plain hashes.
package vault

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"

	"github.com/keyhole-sec/keyhole/internal/migrate"
)

// Consumer is what reads a migrated value back inside the cluster.
type Consumer string

// The consumers `--consumer` accepts.
const (
	// ConsumerESO is the External Secrets Operator: an ExternalSecret
	// and a vault ClusterSecretStore. ESO writes a Kubernetes Secret.
	ConsumerESO Consumer = "eso"
	// ConsumerVSO is the Vault Secrets Operator: a VaultStaticSecret with
	// a VaultAuth and VaultConnection. VSO writes a Kubernetes Secret.
	ConsumerVSO Consumer = "vso"
	// ConsumerAgent is the Vault Agent injector: pod annotations. The
	// value is rendered into the pod's memory volume and never sits in
	// etcd.
	ConsumerAgent Consumer = "agent"
)

// Consumers lists the valid consumers, for flag help and errors.
var Consumers = []Consumer{ConsumerESO, ConsumerVSO, ConsumerAgent}

// DefaultPathTemplate is the default --path-template.
const DefaultPathTemplate = "{{.Namespace}}/{{.Name}}"

// DefaultMount is the default --kv-mount: the KV v2 engine `vault server
// -dev` mounts.
const DefaultMount = "secret"

// Options are what a plan is made of besides the Secrets.
type Options struct {
	// Address is Vault's address, written into the consumer manifests.
	Address string
	// Mount is the KV v2 mount path, without slashes at either end.
	Mount string
	// PathTemplate renders each Secret's path under Mount; see PathData.
	PathTemplate string
	// Consumer selects the consumer manifests.
	Consumer Consumer
}

// PathData is what --path-template sees for each Secret.
type PathData struct {
	Namespace string
	Name      string
	// Type is the Secret's type, e.g. "Opaque" or "kubernetes.io/tls".
	Type   string
	Labels map[string]string
}

// Encoding says how a key's value is stored in Vault.
type Encoding string

const (
	// EncodingNone stores the value as a JSON string as it is: every
	// value that is valid UTF-8.
	EncodingNone Encoding = ""
	// EncodingBase64 stores the value base64-encoded (standard encoding):
	// a value that is not valid UTF-8 cannot be a JSON string. The
	// consumer manifests decode it.
	EncodingBase64 Encoding = "base64"
)

// Key is one data key of a migrated Secret: its name and how its value
// is stored. Never its value.
type Key struct {
	Name     string   `json:"name"`
	Encoding Encoding `json:"encoding,omitempty"`
}

// Entry is one Secret's migration: where it goes in Vault and which keys
// it carries.
type Entry struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	// Origin is where the Secret was read, for messages.
	Origin string `json:"origin"`
	// Path is the secret's path under the mount, as `vault kv put
	// -mount=MOUNT PATH` takes it.
	Path string `json:"path"`
	// APIPath is the KV v2 HTTP path of its data: MOUNT/data/PATH, which
	// Vault Agent templates and policies name.
	APIPath string `json:"apiPath"`
	Keys    []Key  `json:"keys"`

	// values is behind a pointer so that fmt's %v and %+v of an Entry
	// print an address, never the map.
	values *values
}

// Ref is the Secret's "namespace/name".
func (e *Entry) Ref() string { return e.Namespace + "/" + e.Name }

// values are the data to write to Vault: each key's value, encoded as its
// Key says.
type values struct{ m map[string]any }

// Skip is a Secret left out of the plan, and why.
type Skip struct {
	Ref    string `json:"secret"`
	Reason string `json:"reason"`
}

// Plan is the whole migration: one Entry per Secret, in a stable order
// (namespace, then name), the workloads to change, and notes for people.
type Plan struct {
	Options
	Entries   []*Entry
	Skipped   []Skip
	Workloads []*WorkloadChange
	// Notes are things the reader must know before applying the
	// manifests, e.g. that ESO still writes a Kubernetes Secret.
	Notes []string
}

// CheckOptions validates the options alone, before any Secret is read, so
// that a bad flag fails fast. Its errors name the flag.
func CheckOptions(o Options) error {
	if err := checkMount(o.Mount); err != nil {
		return err
	}
	if _, err := parsePathTemplate(o.PathTemplate); err != nil {
		return err
	}
	switch o.Consumer {
	case ConsumerESO, ConsumerVSO, ConsumerAgent:
	default:
		return fmt.Errorf("--consumer: unknown consumer %q (want one of eso, vso, agent)", o.Consumer)
	}
	if o.Address == "" {
		return errors.New("--vault-addr: Vault's address is needed (or set VAULT_ADDR)")
	}
	if u, err := url.Parse(o.Address); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("--vault-addr: %q is not an http or https URL such as https://vault.example:8200", o.Address)
	}
	return nil
}

// segment is one path segment keyhole writes: letters, digits, and
// . _ - (not "." or ".."). Vault accepts more, but every consumer, policy
// glob and shell handles these without quoting.
var segment = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func checkSegments(what, p string) error {
	if p == "" {
		return fmt.Errorf("%s is empty", what)
	}
	for _, s := range strings.Split(p, "/") {
		switch {
		case s == "":
			return fmt.Errorf("%s %q has an empty segment (a leading, trailing or double slash)", what, p)
		case s == "." || s == "..":
			return fmt.Errorf("%s %q has a %q segment", what, p, s)
		case !segment.MatchString(s):
			return fmt.Errorf("%s %q: segment %q may hold only letters, digits, '.', '_' and '-'", what, p, s)
		}
	}
	return nil
}

func checkMount(mount string) error {
	if err := checkSegments("--kv-mount", mount); err != nil {
		return err
	}
	return nil
}

func parsePathTemplate(text string) (*template.Template, error) {
	if text == "" {
		return nil, errors.New("--path-template is empty")
	}
	t, err := template.New("path").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("--path-template: %v", err)
	}
	return t, nil
}

// renderPath executes the template for one Secret and validates the path.
// Its errors quote the rendered path, which holds names, never values.
func renderPath(t *template.Template, d PathData) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("--path-template: %v", err)
	}
	p := b.String()
	if err := checkSegments("--path-template rendered", p); err != nil {
		return "", err
	}
	return p, nil
}

// NewPlan maps each Secret to its Vault path and keys. Secrets that must
// not move (service-account tokens, Helm release records, Secrets without
// data, Secrets a manager already writes) are listed in Plan.Skipped. An
// error names the Secret at fault and never quotes a value.
func NewPlan(secrets []migrate.Secret, o Options) (*Plan, error) {
	if err := CheckOptions(o); err != nil {
		return nil, err
	}
	o.Address = strings.TrimRight(o.Address, "/")
	t, err := parsePathTemplate(o.PathTemplate)
	if err != nil {
		return nil, err
	}
	p := &Plan{Options: o}
	// In namespace and name order, so that which of two Secrets an error
	// names first does not depend on the input's order.
	secrets = append([]migrate.Secret(nil), secrets...)
	sort.SliceStable(secrets, func(i, j int) bool {
		a, b := secrets[i].Secret, secrets[j].Secret
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	byPath := map[string]string{}
	for _, s := range secrets {
		sec := s.Secret
		ref := s.Ref()
		if reason := skipReason(s); reason != "" {
			p.Skipped = append(p.Skipped, Skip{Ref: ref, Reason: reason})
			continue
		}
		if sec.Namespace == "" {
			return nil, fmt.Errorf("secret %s (%s) has no namespace", ref, s.Origin)
		}
		typ := string(sec.Type)
		if typ == "" {
			typ = string(corev1.SecretTypeOpaque)
		}
		path, err := renderPath(t, PathData{Namespace: sec.Namespace, Name: sec.Name, Type: typ, Labels: sec.Labels})
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", ref, err)
		}
		if other, dup := byPath[path]; dup {
			return nil, fmt.Errorf("secrets %s and %s both render to path %s/%s: make --path-template tell them apart", other, ref, o.Mount, path)
		}
		byPath[path] = ref
		e := &Entry{
			Namespace: sec.Namespace,
			Name:      sec.Name,
			Type:      typ,
			Origin:    s.Origin.String(),
			Path:      path,
			APIPath:   o.Mount + "/data/" + path,
			values:    &values{m: make(map[string]any, len(sec.Data))},
		}
		for _, k := range s.Keys() {
			v := sec.Data[k]
			key := Key{Name: k}
			if utf8.Valid(v) {
				e.values.m[k] = string(v)
			} else {
				key.Encoding = EncodingBase64
				e.values.m[k] = base64.StdEncoding.EncodeToString(v)
			}
			e.Keys = append(e.Keys, key)
		}
		p.Entries = append(p.Entries, e)
	}
	p.Notes = consumerNotes(o.Consumer)
	if p.hasBase64() {
		p.Notes = append(p.Notes, "Keys marked base64 hold values that are not UTF-8 text; Vault stores them base64-encoded and the consumer manifests decode them.")
	}
	return p, nil
}

func (p *Plan) hasBase64() bool {
	for _, e := range p.Entries {
		for _, k := range e.Keys {
			if k.Encoding == EncodingBase64 {
				return true
			}
		}
	}
	return false
}

// Labels and annotations by which the Secret managers mark the Secrets
// they write (the same internal/analysis reads), for a Secret no
// controller ownerReference names (Origin.ControlledBy): its value is to
// be changed at its source, not moved.
var managedMarks = []struct{ key, value, manager string }{
	{"reconcile.external-secrets.io/managed", "true", "the External Secrets Operator"},
	{"reconcile.external-secrets.io/data-hash", "", "the External Secrets Operator"},
	{"app.kubernetes.io/managed-by", "hashicorp-vso", "the Vault Secrets Operator"},
	{"sealedsecrets.bitnami.com/managed", "true", "the Sealed Secrets controller"},
	{"sealedsecrets.bitnami.com/skip-set-owner-references", "true", "the Sealed Secrets controller"},
}

func skipReason(ms migrate.Secret) string {
	if why := migrate.Unmovable(&ms); why != "" {
		return why
	}
	s := ms.Secret
	if s.Type == corev1.SecretTypeBootstrapToken {
		return "a bootstrap token: kubeadm and the apiserver read it from kube-system"
	}
	if len(s.Data) == 0 {
		return "no data keys: nothing to move"
	}
	for _, m := range managedMarks {
		for _, set := range []map[string]string{s.Annotations, s.Labels} {
			if v, ok := set[m.key]; ok && (m.value == "" || v == m.value) {
				return "already written by " + m.manager
			}
		}
	}
	return ""
}

func consumerNotes(c Consumer) []string {
	switch c {
	case ConsumerESO:
		return []string{
			"ESO still writes a Kubernetes Secret (target.creationPolicy: Owner adopts the existing one): the values stay in etcd, now with Vault as the source of truth. Use --consumer agent to keep them out of etcd.",
			"Replace every fill-in- value of the ClusterSecretStore (the Vault role and the service account ESO logs in with) before applying it.",
		}
	case ConsumerVSO:
		return []string{
			"VSO still writes a Kubernetes Secret (destination.create with overwrite takes over the existing one): the values stay in etcd, now with Vault as the source of truth. Use --consumer agent to keep them out of etcd.",
			"Replace every fill-in- value of the VaultAuth (the Vault role and the service account VSO logs in with) before applying it.",
		}
	case ConsumerAgent:
		return []string{
			"The Vault Agent injector renders each key into a file under /vault/secrets in the pod's memory: the value never sits in etcd. Delete the Kubernetes Secret once every workload reads the files.",
			"Replace the fill-in- Vault role of the annotations (a role bound to the workload's service account) before applying them.",
		}
	}
	return nil
}
