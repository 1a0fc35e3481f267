// Package encryption tells how kube-apiserver stores Secrets in etcd, from
// the API server's own metrics: it reads /metrics through the API
// (nonResource get /metrics), keeps the few families that tell (which
// encryption providers transformed Secrets to and from storage, whether an
// EncryptionConfiguration is loaded, the server's version), and decides
// the provider in use: identity when Secrets are stored as plain base64,
// unknown whenever the metrics cannot tell, and never "encrypted" by
// default. It also turns that Status into the report's encryptionAtRest
// and into findings KH601-KH603, as a pure function, so that the CLI and
// the daemon judge alike. It never holds a Secret value: /metrics has
// none, and the key names and KMS plugin names that transformer prefixes
// carry are dropped as the series are read.
package encryption

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Providers, as keyhole names them in the report and in the provider
// label of keyhole_etcd_encryption.
const (
	// Identity is no encryption: Secrets are stored as plain base64 (the
	// protobuf or JSON encoding of the object).
	Identity  = "identity"
	AESCBC    = "aescbc"
	AESGCM    = "aesgcm"
	Secretbox = "secretbox"
	// KMSv1 is the deprecated KMS v1 API (k8s:enc:kms:v1:).
	KMSv1 = "kms-v1"
	// KMSv2 is KMS v2 (k8s:enc:kms:v2:), the provider upstream
	// recommends.
	KMSv2 = "kms-v2"
	// Other is a k8s:enc: prefix keyhole does not know.
	Other = "other"
	// Unknown means the metrics could not tell, or could not be read.
	Unknown = "unknown"
)

// strength orders the providers, weakest first: when the apiserver's
// counters show several (a configuration reloaded since it started, or
// Secrets written before a provider was added), keyhole reports the
// weakest, since those Secrets are still stored that way.
var strength = []string{Identity, Other, AESCBC, AESGCM, KMSv1, Secretbox, KMSv2}

func rank(p string) int {
	if i := slices.Index(strength, p); i >= 0 {
		return i
	}
	return 1 // as Other
}

// Providers lists every provider name Status may hold, Unknown last.
func Providers() []string { return append(slices.Clone(strength), Unknown) }

// Source names where a Status comes from, for the report.
const Source = "apiserver-metrics"

// Status is what the API server's metrics say about Secrets at rest. The
// counts are cumulative since that apiserver process started: an
// apiserver reports only what it did itself, so behind a load balancer
// each read may come from another replica.
type Status struct {
	// Provider is the provider Secrets are written with (the
	// to_storage transformations); when none was written since the
	// apiserver started, the provider the Secrets it read were stored
	// with; Identity when no encryption provider is configured; Unknown
	// when it cannot be told. With several, the weakest.
	Provider string
	// Configured says whether the apiserver runs with an
	// EncryptionConfiguration (nil when it cannot be told: an apiserver
	// older than v1.34 does not export
	// apiserver_encryption_config_controller_last_config_info). A
	// configuration need not cover Secrets.
	Configured *bool
	// Writes and Reads count the transformations of Secrets to and from
	// etcd by provider, failed ones included: Identity in Reads means
	// Secrets read in plain base64.
	Writes, Reads map[string]float64
	// Unreadable counts reads of Secrets that no configured provider
	// could read (transformer_prefix="unknown").
	Unreadable float64
	// Version is the apiserver's version (kubernetes_build_info), when
	// it exports it.
	Version string
	// Error says why Provider is Unknown when /metrics could not be read
	// or parsed, naming the missing permission when it was forbidden.
	Error string
}

// WrittenWith lists the providers Secrets were written to etcd with,
// weakest first.
func (s Status) WrittenWith() []string { return byStrength(s.Writes) }

// StoredWith lists the providers Secrets were read from etcd with, weakest
// first.
func (s Status) StoredWith() []string { return byStrength(s.Reads) }

func byStrength(m map[string]float64) []string {
	return slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
	})
}

// Same reports whether s and o say the same, counts aside: the daemon
// analyses again only when the conclusion changed.
func (s Status) Same(o Status) bool {
	return s.Provider == o.Provider && boolPtrEqual(s.Configured, o.Configured) && s.Error == o.Error &&
		s.Version == o.Version && (s.Unreadable > 0) == (o.Unreadable > 0) &&
		slices.Equal(s.WrittenWith(), o.WrittenWith()) && slices.Equal(s.StoredWith(), o.StoredWith())
}

func boolPtrEqual(a, b *bool) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Failed is the Status of metrics that could not be read: Unknown,
// because why is in reason.
func Failed(reason string) Status {
	return Status{Provider: Unknown, Error: reason}
}

// facts are what the series said, before any conclusion.
type facts struct {
	configInfo  bool
	version     string
	minor       int // Kubernetes 1.minor; 0 when unknown
	writes      map[string]float64
	reads       map[string]float64
	unreadable  float64
	transformed bool // any Secret transformation series, failed or not
}

// lastConfigInfoSince is the first minor version of Kubernetes that
// exports apiserver_encryption_config_controller_last_config_info. Before
// it, the absence of that series says nothing.
const lastConfigInfoSince = 34

// decide turns the facts into a Status.
func decide(f facts) Status {
	s := Status{Writes: f.writes, Reads: f.reads, Unreadable: f.unreadable, Version: f.version}
	switch {
	case f.configInfo, f.transformed:
		// Only the transformers of an EncryptionConfiguration record
		// transformations: without one, Secrets go to etcd untouched.
		s.Configured = ptr(true)
	case f.minor >= lastConfigInfoSince:
		s.Configured = ptr(false)
	}
	switch {
	case len(f.writes) > 0:
		s.Provider = byStrength(f.writes)[0]
	case len(f.reads) > 0:
		s.Provider = byStrength(f.reads)[0]
	case s.Configured != nil && !*s.Configured:
		s.Provider = Identity
	default:
		s.Provider = Unknown
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// providerOf names the provider of a transformer_prefix label. The
// prefixes are those of k8s.io/apiserver's encryptionconfig:
// k8s:enc:<provider>:v1: and k8s:enc:kms:v{1,2}:<plugin name>:, the
// empty prefix of the identity provider on writes, and "identity" and
// "unknown" on reads. A key's own prefix ("<key name>:", recorded by the
// per-key transformers inside aescbc and aesgcm) is no provider: ok is
// false, and the key name goes no further.
func providerOf(prefix string) (provider string, ok bool) {
	switch prefix {
	case "", Identity:
		return Identity, true
	case Unknown:
		return Unknown, true
	}
	rest, found := strings.CutPrefix(prefix, "k8s:enc:")
	if !found {
		return "", false
	}
	parts := strings.SplitN(rest, ":", 3)
	switch {
	case len(parts) < 2:
		return Other, true
	case parts[0] == "kms" && parts[1] == "v1":
		return KMSv1, true
	case parts[0] == "kms" && parts[1] == "v2":
		return KMSv2, true
	case parts[0] == AESCBC || parts[0] == AESGCM || parts[0] == Secretbox:
		return parts[0], true
	}
	return Other, true
}

// minorOf parses kubernetes_build_info's major and minor labels ("1" and
// "34", or "34+" on some distributions) into the 1.x minor version: 0
// when they do not parse, and lastConfigInfoSince for a major version
// past 1.
func minorOf(major, minor string) int {
	maj, err := strconv.Atoi(strings.TrimRight(major, "+"))
	if err != nil || maj < 1 {
		return 0
	}
	if maj > 1 {
		return lastConfigInfoSince
	}
	n, err := strconv.Atoi(strings.TrimRight(minor, "+"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
