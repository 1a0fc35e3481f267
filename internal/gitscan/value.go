package gitscan

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/workload"
)

// site is where a value sits: everything a Leak says except what the
// value itself decides (severity, length, binary, placeholder, digest).
type site struct {
	rule   string
	object inventory.Ref
	key    string
	form   string
	line   int
}

// encoding says how a value is written in the file.
type encoding int

const (
	// plain values are the value itself (stringData, templates, literals).
	plain encoding = iota
	// base64Data values are base64 of the value (a Secret's data).
	base64Data
)

// value is a value read from a file, decoded. It lives only for the
// duration of one check and is never stored.
type value struct {
	bytes         []byte
	binary        bool
	invalidBase64 bool
}

// decode turns a value as written into the value the cluster would hold.
// A data value that is not valid base64 is kept as written: the apiserver
// would refuse it, but it was still committed, and its text is the best
// identity there is for it.
func decode(raw string, enc encoding) value {
	if enc == plain {
		return value{bytes: []byte(raw)}
	}
	// Block scalars and long lines wrap base64; whitespace is not part of
	// it.
	compact := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r':
			return -1
		}
		return r
	}, raw)
	b, err := base64.StdEncoding.DecodeString(compact)
	if err != nil {
		return value{bytes: []byte(strings.TrimSpace(raw)), invalidBase64: true}
	}
	return value{bytes: b, binary: isBinary(b)}
}

// isBinary reports bytes that are not text: invalid UTF-8 or control
// characters other than whitespace. Key stores and DER certificates are.
func isBinary(b []byte) bool {
	if !utf8.Valid(b) {
		return true
	}
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return true
		}
	}
	return false
}

// isReference reports text that is not a value but says where one comes
// from, or a value still encrypted: templates, environment expansion,
// argocd-vault-plugin placeholders, bank-vaults and vals references, and
// SOPS ciphertext.
func isReference(t string) bool {
	t = strings.TrimSpace(t)
	return strings.Contains(t, "{{") || strings.Contains(t, "${") || strings.Contains(t, "<path:") ||
		strings.HasPrefix(t, "vault:") || strings.HasPrefix(t, "ref+") || isSopsCiphertext(t)
}

// isSopsCiphertext recognises a value SOPS encrypted:
// ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]. It is ciphertext wherever it
// appears, and without the file's sops metadata nobody can decrypt it.
func isSopsCiphertext(t string) bool {
	return strings.HasPrefix(t, "ENC[AES256_GCM,data:") && strings.HasSuffix(t, "]") &&
		strings.Contains(t, ",iv:") && strings.Contains(t, ",tag:")
}

// placeholderWords are the obvious "fill me in" values. The list is short
// on purpose: a placeholder is reported as info, so a real value must
// never be taken for one.
var placeholderWords = []string{"changeme", "change_me", "change-me", "replaceme", "replace_me", "replace-me"}

// isPlaceholder reports a value that stands for one to be filled in:
// changeme, REPLACE_ME, <password>. The words count only as whole words,
// so that a password such as "exchange-mexico" is not taken for one.
func isPlaceholder(t string) bool {
	l := strings.ToLower(strings.TrimSpace(t))
	for _, w := range placeholderWords {
		for i := 0; ; {
			j := strings.Index(l[i:], w)
			if j < 0 {
				break
			}
			start, end := i+j, i+j+len(w)
			if (start == 0 || !isAlnum(l[start-1])) && (end == len(l) || !isAlnum(l[end])) {
				return true
			}
			i = start + 1
		}
	}
	if len(l) > 2 && l[0] == '<' && l[len(l)-1] == '>' {
		for _, c := range []byte(l[1 : len(l)-1]) {
			if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
				return false
			}
		}
		return true
	}
	return false
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// leak checks one value as written and, when it is one to report,
// appends its Leak. Empty values and references are not values.
func (s *Scanner) leak(out []Leak, at site, raw string, enc encoding) []Leak {
	if strings.TrimSpace(raw) == "" || isReference(raw) {
		return out
	}
	v := decode(raw, enc)
	if enc == base64Data && !v.binary && !v.invalidBase64 && isReference(string(v.bytes)) {
		return out // bank-vaults and friends also accept references in data
	}
	return s.leakValue(out, at, v)
}

// leakValue reports a decoded value. Placeholders become the info rule,
// whatever rule the site had; only single-line values can be placeholders,
// so that a word in a configuration file's comment does not hide it.
func (s *Scanner) leakValue(out []Leak, at site, v value) []Leak {
	if len(bytes.TrimSpace(v.bytes)) == 0 {
		return out
	}
	l := s.newLeak(at, v)
	if !v.binary && !bytes.ContainsAny(bytes.TrimSpace(v.bytes), "\n\r") && isPlaceholder(string(v.bytes)) {
		l.Rule, l.Severity, l.Placeholder = finding.PlaceholderSecretInGit, finding.Info, true
		return append(out, l)
	}
	l.Severity = rank(at.key, v)
	return append(out, l)
}

// newLeak fills in what every leak carries; the caller sets the severity.
func (s *Scanner) newLeak(at site, v value) Leak {
	return Leak{
		Rule:          at.rule,
		Line:          at.line,
		Object:        at.object,
		Key:           at.key,
		Form:          at.form,
		LengthClass:   workload.LengthClass(len(v.bytes)),
		Binary:        v.binary,
		InvalidBase64: v.invalidBase64,
		Digest:        s.digest(v.bytes),
	}
}

// digest is the value's identity: HMAC-SHA256 under the scanner's key,
// never a plain hash, which a short password could be found from.
func (s *Scanner) digest(b []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(b)
	return m.Sum(nil)
}

// Key names, lower-cased, that say what a Secret entry holds.
var (
	privateKeyNames = map[string]bool{
		"tls.key": true, "ssh-privatekey": true, "id_rsa": true, "id_dsa": true, "id_ecdsa": true,
		"id_ed25519": true, "identity": true, "key.pem": true, "privkey.pem": true,
	}
	keyStoreExts    = map[string]bool{".jks": true, ".p12": true, ".pfx": true, ".keystore": true, ".bcfks": true, ".jceks": true}
	publicNames     = map[string]bool{"ca.crt": true, "tls.crt": true, "ssh-publickey": true, "known_hosts": true, "ca-bundle": true, "ca.pem": true, "cert.pem": true, "fullchain.pem": true, "chain.pem": true}
	publicExts      = map[string]bool{".crt": true, ".cer": true, ".pub": true, ".der": true}
	identifierNames = map[string]bool{
		"username": true, "user": true, "login": true, "host": true, "hostname": true, "port": true,
		"database": true, "db": true, "dbname": true, "region": true, "email": true, "namespace": true,
		"server": true, "endpoint": true, "account": true, "realm": true,
	}
)

// rank orders a Secret value by what it can do once leaked: a private key
// (critical) above a credential (high) above an identifier such as a user
// name (medium) above public material such as ca.crt (low). The content
// wins over the name: a private key PEM is critical under any key, a
// certificate chain low under any key.
func rank(key string, v value) finding.Severity {
	k := strings.ToLower(key)
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		k = k[i+1:] // SopsSecret keys are template/key
	}
	ext := path.Ext(k)
	if v.binary {
		switch {
		case keyStoreExts[ext] || isPrivateKeyName(k) || ext == ".key":
			return finding.Critical
		case publicExts[ext] || publicNames[k]:
			return finding.Low
		}
		return finding.High
	}
	text := string(v.bytes)
	if strings.Contains(text, "PRIVATE KEY") || strings.Contains(text, "PuTTY-User-Key-File") {
		return finding.Critical
	}
	if isPublicPEM(text) {
		return finding.Low
	}
	if isPrivateKeyName(k) {
		return finding.Critical
	}
	if isPublicName(k, ext) {
		return finding.Low
	}
	if identifierNames[lastWord(key)] {
		// A user name is not a credential, unless the detector finds one
		// in it (a URL with a password, a token format). Short plain
		// names cannot hold either, and are most of them.
		if len(text) < 20 && !strings.Contains(text, "://") {
			return finding.Medium
		}
		if _, ok := workload.Detect(key, text); !ok {
			return finding.Medium
		}
	}
	return finding.High
}

// isPrivateKeyName reports the names private keys are stored under. A
// *.key name alone (api.key) is not enough for text: a PEM private key
// says so in its content, so only a binary *.key (DER) is taken for one.
func isPrivateKeyName(k string) bool {
	return privateKeyNames[k] ||
		strings.Contains(strings.NewReplacer("-", "", "_", "", ".", "").Replace(k), "privatekey")
}

func isPublicName(k, ext string) bool {
	if publicNames[k] || publicExts[ext] {
		return true
	}
	n := strings.NewReplacer("-", "", "_", "", ".", "").Replace(k)
	return strings.Contains(n, "publickey") || (strings.Contains(n, "cert") && !strings.Contains(n, "key"))
}

// isPublicPEM reports text made only of certificates and public keys.
func isPublicPEM(text string) bool {
	t := strings.TrimSpace(text)
	return strings.HasPrefix(t, "-----BEGIN ") &&
		(strings.Contains(t, "-----BEGIN CERTIFICATE-----") || strings.Contains(t, "PUBLIC KEY-----")) &&
		!strings.Contains(t, "PRIVATE")
}

// lastWord is a key's last word, lower-cased, at separators and
// camelCase: "db-username" → "username", "dbUser" → "user".
func lastWord(key string) string {
	w := key[strings.LastIndexAny(key, "-_./")+1:]
	for i := len(w) - 1; i > 0; i-- {
		if isUpper(w[i]) && !isUpper(w[i-1]) {
			w = w[i:]
			break
		}
	}
	return strings.ToLower(w)
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// maxDetect bounds the text the credential detector searches: the
// apiserver refuses ConfigMaps over 1 MiB, and the detector's patterns
// cost time in proportion to the text over a history of blobs.
const maxDetect = 1 << 20

// detected reports a value that is not secret by its place (a ConfigMap
// entry, a Helm value) when the credential detector of the workload rules
// takes it for a credential, so that git and the cluster agree on what a
// credential is. name is what the detector reads the value's role from.
func (s *Scanner) detected(out []Leak, at site, name string, v value) []Leak {
	var det workload.Detection
	switch {
	case v.binary:
		// Binary entries are only recognised by name, as key stores.
		if !keyStoreExts[path.Ext(strings.ToLower(name))] {
			return out
		}
		det = workload.Detection{Reason: "key store", Length: len(v.bytes)}
	case isSopsCiphertext(strings.TrimSpace(string(v.bytes))):
		return out
	default:
		text := v.bytes
		if len(text) > maxDetect {
			text = text[:maxDetect]
		}
		var ok bool
		if det, ok = workload.Detect(name, string(text)); !ok {
			return out
		}
	}
	l := s.newLeak(at, v)
	l.Reason, l.Field = det.Reason, det.Field
	// The detector measures the credential, which may be a field of a
	// larger value: its length is the one that says something.
	l.LengthClass = workload.LengthClass(det.Length)
	l.Severity = finding.High
	if det.Reason == "private key" || det.Reason == "key store" {
		l.Severity = finding.Critical
	}
	return append(out, l)
}
