package vault

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// API versions of the consumer manifests.
//
// ESO serves external-secrets.io/v1 since v0.16 and stopped serving
// v1beta1 in v0.17 (its v0.17.0 release notes: "Stops serving v1beta1
// apis"), so v1 is the version every current ESO accepts. VSO's CRDs
// have been secrets.hashicorp.com/v1beta1 since its first GA release and
// still are.
const (
	esoAPIVersion = "external-secrets.io/v1"
	vsoAPIVersion = "secrets.hashicorp.com/v1beta1"
)

// fillIn marks a field the user must fill in before applying a manifest.
// The marker is a valid DNS name, so that the manifest still passes
// schema validation and a forgotten field fails loudly at login (no such
// role, no such service account) rather than at apply time.
const fillIn = "fill-in-"

// Names keyhole gives the objects it creates beside the consumer objects.
const (
	vsoObjectName      = "keyhole-vault"
	kubernetesAuthPath = "kubernetes"
	secretMountRoot    = "/etc/secrets"
	agentSecretsDir    = "/vault/secrets"
	agentAnnotation    = "vault.hashicorp.com/"
)

// object builds an unstructured Kubernetes object; namespace may be empty
// for a cluster-scoped one.
func object(apiVersion, kind, namespace, name string, spec map[string]any) map[string]any {
	meta := map[string]any{"name": name}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	meta["labels"] = map[string]any{"app.kubernetes.io/created-by": "keyhole"}
	return map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta, "spec": spec}
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// dnsLabel turns s into a DNS-1123 label (for object and volume names),
// keeping it readable: lower case, runs of other characters as one '-',
// and a hash suffix when it had to be shortened.
func dnsLabel(prefix, s string) string {
	l := notDNS.ReplaceAllString(strings.ToLower(prefix+s), "-")
	l = strings.Trim(l, "-")
	if len(l) > validation.DNS1123LabelMaxLength {
		sum := sha256.Sum256([]byte(prefix + s))
		l = strings.TrimRight(l[:validation.DNS1123LabelMaxLength-9], "-") + "-" + hex.EncodeToString(sum[:4])
	}
	return l
}

// storeName names the ClusterSecretStore of a mount.
func storeName(mount string) string { return dnsLabel("vault-", mount) }

// esoStore is the ClusterSecretStore every ExternalSecret of the plan
// reads through: Vault's KV v2 engine at the mount, with Kubernetes auth
// whose role and service account the user fills in.
func esoStore(p *Plan) map[string]any {
	return object(esoAPIVersion, "ClusterSecretStore", "", storeName(p.Mount), map[string]any{
		"provider": map[string]any{
			"vault": map[string]any{
				"server":  p.Address,
				"path":    p.Mount,
				"version": "v2",
				"auth": map[string]any{
					"kubernetes": map[string]any{
						"mountPath": kubernetesAuthPath,
						"role":      fillIn + "vault-role",
						"serviceAccountRef": map[string]any{
							"name":      fillIn + "service-account",
							"namespace": fillIn + "namespace",
						},
					},
				},
			},
		},
	})
}

// esoExternalSecret reads every key of e back into a Secret of the same
// name and type, which ESO owns (creationPolicy Owner).
func esoExternalSecret(p *Plan, e *Entry) map[string]any {
	data := make([]any, 0, len(e.Keys))
	for _, k := range e.Keys {
		ref := map[string]any{"key": e.Path, "property": k.Name}
		if k.Encoding == EncodingBase64 {
			ref["decodingStrategy"] = "Base64"
		}
		data = append(data, map[string]any{"secretKey": k.Name, "remoteRef": ref})
	}
	target := map[string]any{"name": e.Name, "creationPolicy": "Owner"}
	if e.Type != "Opaque" {
		target["template"] = map[string]any{"type": e.Type}
	}
	return object(esoAPIVersion, "ExternalSecret", e.Namespace, e.Name, map[string]any{
		"refreshInterval": "1h",
		"secretStoreRef":  map[string]any{"kind": "ClusterSecretStore", "name": storeName(p.Mount)},
		"target":          target,
		"data":            data,
	})
}

// vsoConnection and vsoAuth are the per-namespace objects every
// VaultStaticSecret of the namespace refers to.
func vsoConnection(p *Plan, namespace string) map[string]any {
	return object(vsoAPIVersion, "VaultConnection", namespace, vsoObjectName, map[string]any{
		"address": p.Address,
	})
}

func vsoAuth(namespace string) map[string]any {
	return object(vsoAPIVersion, "VaultAuth", namespace, vsoObjectName, map[string]any{
		"vaultConnectionRef": vsoObjectName,
		"method":             "kubernetes",
		"mount":              kubernetesAuthPath,
		"kubernetes": map[string]any{
			"role":           fillIn + "vault-role",
			"serviceAccount": fillIn + "service-account",
		},
	})
}

// vsoStaticSecret syncs e's path into a Secret of the same name and type,
// and restarts the workloads found reading it. overwrite is true: the destination is the Secret being migrated, which
// exists, and VSO refuses to write over a Secret it does not own
// otherwise.
func vsoStaticSecret(p *Plan, e *Entry) map[string]any {
	dest := map[string]any{"name": e.Name, "create": true, "overwrite": true}
	if e.Type != "Opaque" {
		dest["type"] = e.Type
	}
	if entryHasBase64(e) {
		// Raw data would land base64-encoded; render every key through a
		// template instead, decoding those stored as base64.
		templates := map[string]any{}
		for _, k := range e.Keys {
			text := fmt.Sprintf(`{{- get .Secrets %q -}}`, k.Name)
			if k.Encoding == EncodingBase64 {
				text = fmt.Sprintf(`{{- get .Secrets %q | b64dec -}}`, k.Name)
			}
			templates[k.Name] = map[string]any{"text": text}
		}
		// Templates are always rendered; the exclude pattern drops the
		// raw (still encoded) fields.
		dest["transformation"] = map[string]any{"excludes": []any{".*"}, "templates": templates}
	}
	spec := map[string]any{
		"vaultAuthRef": vsoObjectName,
		"mount":        p.Mount,
		"type":         "kv-v2",
		"path":         e.Path,
		"refreshAfter": "1h",
		"destination":  dest,
	}
	if targets := p.restartTargets(e); len(targets) > 0 {
		spec["rolloutRestartTargets"] = targets
	}
	return object(vsoAPIVersion, "VaultStaticSecret", e.Namespace, e.Name, spec)
}

// restartTargets are the workloads VSO restarts when e changes in Vault:
// those of the kinds VSO supports that read e (once patched, as files
// that an application may read only at start).
func (p *Plan) restartTargets(e *Entry) []any {
	var out []any
	for _, w := range p.Workloads {
		if w.Namespace != e.Namespace {
			continue
		}
		switch w.Kind {
		case "Deployment", "DaemonSet", "StatefulSet":
		default:
			continue
		}
		for _, u := range w.Uses {
			if u.Secret == e.Name {
				out = append(out, map[string]any{"kind": w.Kind, "name": w.Name})
				break
			}
		}
	}
	return out
}

func entryHasBase64(e *Entry) bool {
	for _, k := range e.Keys {
		if k.Encoding == EncodingBase64 {
			return true
		}
	}
	return false
}

// agentFile is where the Vault Agent injector renders one key, and the
// annotations that make it do so.
type agentFile struct {
	// id is the suffix of the agent-inject-secret- and
	// agent-inject-template- annotations.
	id string
	// name is the file's name under /vault/secrets.
	name string
}

// agentFileFor names the file of one key of a Secret: "<secret>-<key>",
// which cannot collide between two Secrets injected into one pod. When
// that is not a valid annotation suffix (too long, or ending in '.'),
// the suffix is shortened with a hash and an agent-inject-file-
// annotation keeps the file name.
func agentFileFor(secret, key string) agentFile {
	name := secret + "-" + key
	if validAnnotation("agent-inject-template-" + name) {
		return agentFile{id: name, name: name}
	}
	sum := sha256.Sum256([]byte(secret + "/" + key))
	id := dnsLabel("", name)
	if limit := qualifiedNameMax - len("agent-inject-template-") - 9; len(id) > limit {
		id = strings.TrimRight(id[:limit], "-")
	}
	return agentFile{id: id + "-" + hex.EncodeToString(sum[:4]), name: name}
}

// qualifiedNameMax is the longest name part of an annotation key (the
// part after "vault.hashicorp.com/").
const qualifiedNameMax = 63

func validAnnotation(name string) bool {
	return len(validation.IsQualifiedName(agentAnnotation+name)) == 0
}

// agentAnnotations are the pod-template annotations that render the given
// keys of e into files.
func agentAnnotations(e *Entry, keys []Key) map[string]string {
	a := map[string]string{
		agentAnnotation + "agent-inject": "true",
		agentAnnotation + "role":         fillIn + "vault-role",
	}
	for _, k := range keys {
		f := agentFileFor(e.Name, k.Name)
		value := fmt.Sprintf("index .Data.data %q", k.Name)
		if k.Encoding == EncodingBase64 {
			value += " | base64Decode"
		}
		a[agentAnnotation+"agent-inject-secret-"+f.id] = e.APIPath
		a[agentAnnotation+"agent-inject-template-"+f.id] = fmt.Sprintf("{{- with secret %q -}}{{ %s }}{{- end -}}", e.APIPath, value)
		if f.id != f.name {
			a[agentAnnotation+"agent-inject-file-"+f.id] = f.name
		}
	}
	return a
}

// agentSnippet is the strategic-merge patch that adds the annotations for
// every key of e to a pod template: `kubectl patch deployment NAME
// --patch-file FILE` applies it.
func agentSnippet(e *Entry) map[string]any {
	ann := map[string]any{}
	for k, v := range agentAnnotations(e, e.Keys) {
		ann[k] = v
	}
	return map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{"annotations": ann}}}}
}
