// Package gitscan finds plaintext Kubernetes Secret values in the contents
// of one file, as committed to git: Secret manifests (YAML, JSON, lists,
// multi-document files), the last-applied annotation that repeats them,
// kustomize secretGenerator inputs, Helm chart templates and values,
// SOPS files committed decrypted, SealedSecret and ExternalSecret
// templates, and ConfigMaps holding credentials. It owns the KH3xx
// detection; reading history (commits, blobs) is the git source's job, and
// the facts that come with it (first commit, removed in, present at HEAD)
// are the driver's.
//
// A Leak never holds a value. A value is identified across commits, and
// against live Secrets, by an HMAC-SHA256 under a key the caller holds, so
// that a report cannot be used to guess short values.
package gitscan

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// Leak is one plaintext value found in one file. It never holds the value.
type Leak struct {
	Rule     string // a KH3xx id from internal/finding
	Severity finding.Severity
	Line     int // 1-based line of the value (or of its key) in the file
	// Object is the document holding the value: Secret, ConfigMap,
	// SealedSecret, ExternalSecret, SopsSecret, Kustomization (Name: the
	// generated Secret's name), or a Helm chart file (Kind "HelmValues" or
	// "HelmTemplate", Name: the chart-relative file). Namespace may be "".
	Object inventory.Ref
	Key    string // the data key (never the value)
	// Form is where the value sat; see the Form* constants.
	Form string
	// LengthClass is workload.LengthClass of the (decoded) value, or of
	// the credential the detector found inside it.
	LengthClass string
	Binary      bool // base64 that decodes to binary (keystore, DER)
	Placeholder bool // "changeme", "REPLACE_ME"...: reported as info at most
	// Digest is HMAC-SHA256 of the (decoded) value under the Scanner's
	// key: the identity of a value across commits; never the value itself.
	Digest []byte

	// InvalidBase64 is set for a data value that is not valid base64: it
	// is still reported, and its digest is that of the text as written.
	InvalidBase64 bool
	// Reason says why a value that is not secret by its place (a
	// ConfigMap entry, a Helm value, a template default) was taken for a
	// credential: one of the detector's fixed phrases, never the value.
	Reason string
	// Field is the field inside the value (a configuration file, a
	// connection string) that holds the credential, when the detector
	// found it there.
	Field string
	// Annotations are the object's keyhole.io/ annotations (ignore,
	// ignore-reason), so that the driver can honour exemptions written on
	// the committed object. Nil when there are none.
	Annotations map[string]string
}

// Forms: where a value sat.
const (
	FormData                   = "data"
	FormStringData             = "stringData"
	FormLastApplied            = "last-applied"
	FormKustomizeLiteral       = "kustomize-literal"
	FormKustomizeEnv           = "kustomize-env"
	FormKustomizeFile          = "kustomize-file"
	FormHelmValues             = "helm-values"
	FormHelmTemplate           = "helm-template"
	FormHelmDefault            = "helm-default"
	FormSopsUnencrypted        = "sops-unencrypted"
	FormSealedSecretTemplate   = "sealedsecret-template"
	FormExternalSecretTemplate = "externalsecret-template"
	FormConfigMap              = "configmap"
)

// Problem is a document that could not be parsed, or a blob that was
// skipped; it never includes file content.
type Problem struct {
	// Line is where the document's syntax error is, or 0 when the whole
	// blob was skipped.
	Line    int
	Message string
}

// Scanner detects leaks and keys their digests. It holds no state between
// calls, so one Scanner may be used from several goroutines.
type Scanner struct {
	key []byte
}

// MinKeyLen is the shortest HMAC key NewScanner accepts.
const MinKeyLen = 32

// NewScanner hashes values under key: an operator-held key, or random
// bytes held only in memory. It panics when len(key) < MinKeyLen, because
// a short key would let a report's digests be brute-forced; callers check
// the key file's length first.
func NewScanner(key []byte) *Scanner {
	if len(key) < MinKeyLen {
		panic("gitscan: HMAC key shorter than 32 bytes")
	}
	return &Scanner{key: append([]byte(nil), key...)}
}

// MaxBlobSize is the largest blob Scan reads: manifests are small, and a
// larger file is generated data or an artifact.
const MaxBlobSize = 10 << 20

// Candidate is a cheap filter on a path alone: could this file hold a
// manifest, a Helm chart file, a kustomization, a SOPS file or a kustomize
// env file? History scanning filters millions of paths with it, so it errs
// on inclusion. It admits, case-insensitively:
//   - *.yaml, *.yml and *.json (manifests, values*.yaml, *.sops.yaml,
//     kustomization.yaml);
//   - a file named Kustomization;
//   - every file under a templates/ directory (Helm templates and helpers);
//   - *.env, .env and .env.* (kustomize env files).
//
// The other files a secretGenerator reads (files: tls.key=…) have no name
// of their own: the driver finds them with GeneratorInputs, by path.
func Candidate(path string) bool {
	p := strings.ToLower(path)
	base := baseName(p)
	switch {
	case strings.HasSuffix(p, ".yaml"), strings.HasSuffix(p, ".yml"), strings.HasSuffix(p, ".json"):
		return true
	case base == "kustomization":
		return true
	case strings.HasPrefix(p, "templates/") || strings.Contains(p, "/templates/"):
		return true
	case strings.HasSuffix(p, ".env"), strings.HasPrefix(base, ".env."):
		return true
	}
	return false
}

// Scan finds leaks in one file. path is repository-relative and decides
// how the file is read, since history has no directory listing:
//   - under a templates/ directory: a Helm template, read by a tolerant
//     line tokenizer (kind HelmTemplate);
//   - values*.yaml: a Helm values file; documents with a kind are still
//     read as manifests;
//   - kustomization.yaml: its secretGenerator literals;
//   - *.sops.yaml (or .yml, .json): every string, when the file has no
//     sops metadata;
//   - anything else: YAML or JSON manifests, document by document.
//
// Env files are only read through ScanGeneratorInput. Blobs over
// MaxBlobSize, and binary blobs (NUL bytes), are skipped with a Problem
// saying so. Leaks come in file order.
func (s *Scanner) Scan(path string, content []byte) ([]Leak, []Problem) {
	switch {
	case len(content) > MaxBlobSize:
		return nil, []Problem{{Message: fmt.Sprintf("skipped: larger than %d MiB", MaxBlobSize>>20)}}
	case bytes.IndexByte(content, 0) >= 0:
		return nil, []Problem{{Message: "skipped: binary content (NUL bytes)"}}
	}
	f := &file{
		s:             s,
		path:          path,
		sopsPath:      isSopsPath(path),
		values:        isValuesPath(path),
		kustomization: isKustomizationPath(path),
	}
	switch {
	case isTemplatePath(path):
		f.helmTemplate(content)
	case isEnvPath(path):
	default:
		f.manifests(content)
	}
	sort.SliceStable(f.leaks, func(i, j int) bool { return f.leaks[i].Line < f.leaks[j].Line })
	return f.leaks, f.problems
}

func baseName(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

func isTemplatePath(p string) bool {
	return strings.HasPrefix(p, "templates/") || strings.Contains(p, "/templates/")
}

func isValuesPath(p string) bool {
	b := strings.ToLower(baseName(p))
	return strings.HasPrefix(b, "values") && (strings.HasSuffix(b, ".yaml") || strings.HasSuffix(b, ".yml")) && !isTemplatePath(p)
}

func isKustomizationPath(p string) bool {
	switch baseName(p) {
	case "kustomization.yaml", "kustomization.yml", "Kustomization":
		return true
	}
	return false
}

// isSopsPath reports a file named to be committed SOPS-encrypted:
// secret.sops.yaml. .sops.yaml itself is SOPS's configuration.
func isSopsPath(p string) bool {
	b := strings.ToLower(baseName(p))
	return b != ".sops.yaml" && b != ".sops.yml" && strings.Contains(b, ".sops.")
}

func isEnvPath(p string) bool {
	b := strings.ToLower(baseName(p))
	return strings.HasSuffix(b, ".env") || strings.HasPrefix(b, ".env.")
}

// GeneratorInput is one file a kustomize secretGenerator reads.
type GeneratorInput struct {
	// Path is relative to the repository root, resolved against the
	// kustomization's directory.
	Path string
	// Kind is "env" (KEY=VALUE lines) or "file" (the whole file is one
	// value).
	Kind string
	// Key is, for files, the key the file's content is stored under.
	Key string
	// Generator names the generated Secret: Kind "Kustomization", Name
	// the generator's name.
	Generator inventory.Ref
}
