package workload

import (
	"math"
	"net/url"
	"regexp"
	"strings"
	"unicode"
)

// Detection says why a literal value looks like a credential. It never
// holds the value, nor any part of it.
type Detection struct {
	// Reason is one of a fixed set of phrases, e.g. "AWS access key ID".
	Reason string
	// Field is set when the credential sits inside a structured value (a
	// configuration file, JAVA_OPTS, a connection string): the name of the
	// field that holds it, as written there, e.g. "spring.datasource.password".
	Field string
	// Length is the length of the credential in bytes.
	Length int
}

// LengthClass describes a length coarsely enough to say nothing useful
// about the value.
func LengthClass(n int) string {
	switch {
	case n < 16:
		return "under 16 characters"
	case n < 64:
		return "16 to 63 characters"
	default:
		return "64 characters or more"
	}
}

// valuePattern is a credential format recognisable whatever the name it
// is stored under.
type valuePattern struct {
	reason string
	re     *regexp.Regexp
	// random, when set, also requires the match to look random, for
	// formats whose shape alone is not distinctive enough.
	random bool
	// group is the submatch that holds the credential (0: the whole match).
	group int
}

var valuePatterns = []valuePattern{
	{reason: "private key", re: regexp.MustCompile(`-----BEGIN[ A-Z0-9]*PRIVATE KEY( BLOCK)?-----`)},
	{reason: "AWS access key ID", re: regexp.MustCompile(`\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b`)},
	{reason: "GitHub token", re: regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b`)},
	{reason: "GitLab token", re: regexp.MustCompile(`\bglpat-[A-Za-z0-9_\-]{20,}`)},
	{reason: "Slack token", re: regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9\-]{10,}`)},
	{reason: "Slack webhook URL", re: regexp.MustCompile(`https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_\-/]{20,}`)},
	{reason: "Google API key", re: regexp.MustCompile(`\bAIza[0-9A-Za-z_\-]{35}\b`)},
	{reason: "Stripe live key", re: regexp.MustCompile(`\b(?:sk|rk)_live_[0-9A-Za-z]{16,}\b`)},
	{reason: "npm token", re: regexp.MustCompile(`\bnpm_[A-Za-z0-9]{36}\b`)},
	{reason: "JSON Web Token", re: regexp.MustCompile(`\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}`)},
	{reason: "HTTP authorization credential", re: regexp.MustCompile(`(?i)\b(?:bearer|basic)[ \t]+([A-Za-z0-9._~+/\-]{16,}=*)`), random: true, group: 1},
}

// Detect reports whether value, stored under name (an environment
// variable or a ConfigMap key), holds a hard-coded credential. Three
// checks run in turn:
//
//   - credential formats recognisable by the value alone (private keys,
//     cloud and SaaS tokens, JWTs, authorization headers), whatever the
//     name;
//   - a URL whose user information carries a password;
//   - a credential-like name (…PASSWORD, …TOKEN, …SECRET, …API_KEY) with
//     a literal that looks like a credential, for the value itself and
//     for every key=value or key: value field inside it (configuration
//     files, JAVA_OPTS, connection strings).
//
// References are not credentials: $(VAR) and ${VAR} expansions, {{ }}
// templates, secret-manager references, file paths and plain URLs.
// Neither are placeholders (changeme, <password>, xxxx, example values),
// booleans, numbers, durations and quantities.
func Detect(name, value string) (Detection, bool) {
	v := strings.TrimSpace(value)
	if v == "" {
		return Detection{}, false
	}
	for _, p := range valuePatterns {
		for _, m := range p.re.FindAllStringSubmatch(v, -1) {
			cred := m[p.group]
			if isPlaceholder(cred) || (p.random && !looksRandom(cred)) {
				continue
			}
			return Detection{Reason: p.reason, Length: len(cred)}, true
		}
	}
	if n, ok := urlPassword(v); ok {
		return Detection{Reason: "URL with an embedded password", Length: n}, true
	}
	if !strings.ContainsAny(v, "\n\r") {
		if class := nameClass(name); class != noCredential && !hasReference(v) && literalIsCredential(class, v) {
			return Detection{Reason: class.reason(), Length: len(v)}, true
		}
	}
	for _, f := range fields(v) {
		if class := nameClass(f.name); class != noCredential && !hasReference(f.value) && literalIsCredential(class, f.value) {
			return Detection{Reason: class.reason(), Field: f.name, Length: len(f.value)}, true
		}
	}
	return Detection{}, false
}

// credentialClass is what a name says about its value.
type credentialClass int

const (
	noCredential credentialClass = iota
	// passwordName: people choose passwords, so any literal that is not
	// a placeholder counts.
	passwordName
	// tokenName: tokens, secrets and keys are generated, so the literal
	// must also look random. Names like SECRET_NAME never get here, but
	// DB_SECRET=db-credentials (a Secret's name) does.
	tokenName
)

func (c credentialClass) reason() string {
	if c == passwordName {
		return "literal value under a password name"
	}
	return "random-looking literal under a token, secret or key name"
}

// harmlessSuffixes may follow the credential word without changing what
// the name holds: DB_PASSWORD_PROD, TOKEN_2, SECRET_KEY_BASE, a
// kubeconfig's client-key-data.
var harmlessSuffixes = map[string]bool{
	"value": true, "val": true, "str": true, "string": true, "raw": true, "plain": true, "plaintext": true,
	"b64": true, "base64": true, "hex": true, "base": true, "data": true,
	"prod": true, "production": true, "dev": true, "development": true, "staging": true, "stage": true,
	"qa": true, "uat": true, "test": true, "old": true, "new": true, "current": true, "previous": true,
	"prev": true, "next": true, "primary": true, "secondary": true, "main": true, "backup": true, "default": true,
}

var passwordWords = map[string]bool{"password": true, "passwd": true, "pwd": true, "pass": true, "passphrase": true, "passcode": true}

var tokenWords = map[string]bool{
	"secret": true, "token": true, "apikey": true, "privatekey": true, "accesskey": true, "secretkey": true,
	"credential": true, "credentials": true, "creds": true, "auth": true, "bearer": true,
}

// nameClass classifies a name by its last word, ignoring harmless
// suffixes: the word that ends a name says what it holds, so TOKEN_TTL,
// PASSWORD_FILE and SECRET_NAME are not credentials while DB_PASSWORD and
// CLIENT_SECRET are.
func nameClass(name string) credentialClass {
	ws := words(name)
	for len(ws) > 1 && (harmlessSuffixes[ws[len(ws)-1]] || isVersionOrNumber(ws[len(ws)-1])) {
		ws = ws[:len(ws)-1]
	}
	if len(ws) == 0 {
		return noCredential
	}
	last := ws[len(ws)-1]
	switch {
	case passwordWords[last], strings.HasSuffix(last, "password"), strings.HasSuffix(last, "passwd"):
		return passwordName
	case tokenWords[last], last == "key" && len(ws) > 1,
		strings.HasSuffix(last, "token"), strings.HasSuffix(last, "secret"), strings.HasSuffix(last, "apikey"):
		return tokenName
	}
	return noCredential
}

// words splits a name into lower-case words at punctuation and camelCase
// boundaries: "spring.datasource.password" → [spring datasource password],
// "clientSecret" → [client secret], "APIKey" → [api key].
func words(name string) []string {
	var out []string
	rs := []rune(name)
	start := -1
	flush := func(end int) {
		if start >= 0 && end > start {
			out = append(out, strings.ToLower(string(rs[start:end])))
		}
		start = -1
	}
	for i, r := range rs {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			flush(i)
			continue
		}
		if start >= 0 && unicode.IsUpper(r) {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				flush(i)
			}
		}
		if start < 0 {
			start = i
		}
	}
	flush(len(rs))
	return out
}

func isVersionOrNumber(w string) bool {
	w = strings.TrimPrefix(w, "v")
	if w == "" {
		return false
	}
	for _, r := range w {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// literalIsCredential reports whether a literal stored under a credential
// name is a credential rather than a setting, a reference or a placeholder.
func literalIsCredential(class credentialClass, v string) bool {
	v = strings.TrimSpace(v)
	if len(v) < 4 || strings.ContainsAny(v, "\n\r") {
		return false
	}
	if isPlaceholder(v) || isSetting(v) || isPath(v) || isReference(v) {
		return false
	}
	if isURL(v) {
		return false // with a password, urlPassword has reported it
	}
	if class == tokenName {
		return looksRandom(v)
	}
	return true
}

var (
	// $(VAR) is the kubelet's expansion ($$(VAR) escapes it, and is not
	// a literal credential either); ${VAR} a shell's or envsubst's; {{ }}
	// a template's. Only the opening is matched: a field scanned out of a
	// file may have lost its closing brace.
	referenceRE = regexp.MustCompile(`\$\$?\([A-Za-z_]|\$\{|\{\{|%\{`)
	numberRE    = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?$`)
	durationRE  = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h|d|w|y))+$`)
	quantityRE  = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?([KMGTPE]i?|[KMGT]B|k)$`)
	pathRE      = regexp.MustCompile(`^(/|\./|\.\./|~/|file:|[A-Za-z]:\\)[A-Za-z0-9._\-/\\@: ]*$`)
	uuidRE      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	hexRE       = regexp.MustCompile(`^[0-9a-fA-F]+$`)
	// dnsLikeRE matches lower-case names made of words: object names
	// (db-credentials), hosts and identifiers, not generated tokens.
	dnsLikeRE = regexp.MustCompile(`^[a-z][a-z0-9]*([\-._][a-z0-9]+)+$`)
	urlRE     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.\-]*://`)
)

// hasReference reports whether the value is built from references: the
// credential then comes from elsewhere, whatever literal text surrounds it.
func hasReference(v string) bool { return referenceRE.MatchString(v) }

// placeholders are whole values that stand for a credential to be filled
// in, or for no credential at all.
var placeholders = map[string]bool{
	"test": true, "testing": true, "secret": true, "password": true, "passwd": true, "pass": true,
	"token": true, "apikey": true, "api_key": true, "api-key": true, "key": true, "none": true, "null": true,
	"nil": true, "undefined": true, "empty": true, "default": true, "n/a": true, "tbd": true, "todo": true,
	"foo": true, "bar": true, "baz": true, "foobar": true, "unset": true, "notset": true, "not-set": true,
	"secretvalue": true, "secret-value": true, "mysecret": true, "my-secret": true, "mypassword": true,
	"yourpassword": true, "sample": true, "demo": true,
}

// placeholderParts are substrings that mark a value as a placeholder.
var placeholderParts = []string{
	"changeme", "change_me", "change-me", "changeit", "change_it", "change-it",
	"replaceme", "replace_me", "replace-me", "replace with", "replace_with", "replace-with",
	"xxxx", "****", "....", "example", "dummy", "placeholder", "redacted", "fixme", "fake",
	"not-a-real", "notreal", "not_real", "insert_", "insert-",
}

// isPlaceholder reports whether a value stands for a credential rather
// than being one: changeme, <password>, [REDACTED], your-token-here, a
// masked xxxx, AWS's documented AKIAIOSFODNN7EXAMPLE.
func isPlaceholder(v string) bool {
	l := strings.ToLower(strings.Trim(strings.TrimSpace(v), `"'`))
	if l == "" || placeholders[l] {
		return true
	}
	if (strings.HasPrefix(l, "<") && strings.HasSuffix(l, ">")) ||
		(strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]")) ||
		(strings.HasPrefix(l, "%") && strings.HasSuffix(l, "%")) {
		return true
	}
	for _, p := range []string{"your-", "your_", "your ", "<your", "my-", "my_"} {
		if strings.HasPrefix(l, p) && (strings.Contains(l, "here") || strings.Contains(l, "password") ||
			strings.Contains(l, "token") || strings.Contains(l, "secret") || strings.Contains(l, "key")) {
			return true
		}
	}
	for _, p := range placeholderParts {
		if strings.Contains(l, p) {
			return true
		}
	}
	// The same character throughout: 0000, ----, ********.
	return len(l) >= 3 && strings.Count(l, l[:1]) == len(l)
}

// isSetting reports values that are settings whatever their name:
// booleans, numbers, durations, quantities. TOKEN_TTL=3600 is not a
// token, and a password made of digits only goes unreported.
func isSetting(v string) bool {
	switch strings.ToLower(v) {
	case "true", "false", "yes", "no", "on", "off", "enabled", "disabled", "enable", "disable", "required", "optional":
		return true
	}
	return numberRE.MatchString(v) || durationRE.MatchString(v) || quantityRE.MatchString(v)
}

// isPath reports a file path: DB_PASSWORD_FILE=/run/secrets/db names the
// file that holds the credential.
func isPath(v string) bool { return pathRE.MatchString(v) }

func isURL(v string) bool { return urlRE.MatchString(v) }

// secretManagerPrefixes introduce references that tools such as
// bank-vaults, vals, the AWS, Google and Azure secret managers and
// 1Password resolve at run time.
var secretManagerPrefixes = []string{
	"vault:", "ref+", "arn:aws:", "arn:aws-", "secretsmanager:", "ssm:", "sm://", "gcpsm://", "gcp:secretmanager:",
	"azurekeyvault://", "akv://", "op://", "@microsoft.keyvault(", "projects/", "secret://", "k8s://",
}

func isReference(v string) bool {
	l := strings.ToLower(v)
	for _, p := range secretManagerPrefixes {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

// urlPassword finds a URL whose user information holds a literal
// password (postgres://app:s3cret@db/app), and returns the password's
// length.
func urlPassword(v string) (int, bool) {
	for _, word := range strings.FieldsFunc(v, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune(`"',;=()<>`, r)
	}) {
		i := strings.Index(word, "://")
		if i <= 0 {
			continue
		}
		// The scheme starts after the last character a scheme cannot hold.
		start := strings.LastIndexFunc(word[:i], func(r rune) bool { return !isSchemeChar(r) }) + 1
		u, err := url.Parse(word[start:])
		if err != nil || u.User == nil {
			continue
		}
		pw, set := u.User.Password()
		if !set || len(pw) < 3 || hasReference(pw) || isPlaceholder(pw) {
			continue
		}
		return len(pw), true
	}
	return 0, false
}

func isSchemeChar(r rune) bool {
	return r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '+' || r == '.' || r == '-')
}

// looksRandom reports whether a value looks generated rather than chosen
// by a person: a UUID, a long hex string, or a long string of high
// entropy that is not a lower-case name made of words.
func looksRandom(v string) bool {
	if uuidRE.MatchString(v) {
		return true
	}
	if len(v) < 16 || strings.ContainsAny(v, " \t") {
		return false
	}
	if hexRE.MatchString(v) {
		return len(v) >= 20
	}
	if dnsLikeRE.MatchString(v) {
		return false
	}
	var lower, upper, digit, other int
	for _, r := range v {
		switch {
		case unicode.IsLower(r):
			lower = 1
		case unicode.IsUpper(r):
			upper = 1
		case unicode.IsDigit(r):
			digit = 1
		default:
			other = 1
		}
	}
	classes := lower + upper + digit + other
	h := entropy(v)
	return (classes >= 2 && h >= 3.5) || (classes >= 3 && h >= 3.0)
}

// entropy is the Shannon entropy of s in bits per byte.
func entropy(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	var h float64
	n := float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// field is one key=value or key: value pair found inside a value.
type field struct{ name, value string }

var (
	// fieldRE finds assignments in configuration files (YAML, JSON,
	// properties, INI, TOML, .env), command lines (-Dkey=value, --key=value)
	// and connection strings or query strings (key=value;key=value).
	fieldRE = regexp.MustCompile(`(?:^|[\s;&,?{("'])(?:-D|--?)?["']?([A-Za-z_][A-Za-z0-9_.\-]{0,63})["']?[ \t]*[:=][ \t]*(?:"([^"\n]*)"|'([^'\n]*)'|([^\s;&,"'}<]+))`)
	// xmlFieldRE finds <name>value</name> elements.
	xmlFieldRE = regexp.MustCompile(`<([A-Za-z_][A-Za-z0-9_.\-]{0,63})>([^<\n]+)</([A-Za-z_][A-Za-z0-9_.\-]{0,63})>`)
)

// maxFieldScan bounds the text scanned for fields: a ConfigMap can hold a
// megabyte, and the credential formats above are searched in all of it.
const maxFieldScan = 256 << 10

func fields(v string) []field {
	if !strings.ContainsAny(v, ":=>") {
		return nil
	}
	if len(v) > maxFieldScan {
		v = v[:maxFieldScan]
	}
	var out []field
	for _, m := range fieldRE.FindAllStringSubmatch(v, -1) {
		out = append(out, field{name: m[1], value: m[2] + m[3] + m[4]})
	}
	for _, m := range xmlFieldRE.FindAllStringSubmatch(v, -1) {
		if m[1] == m[3] {
			out = append(out, field{name: m[1], value: m[2]})
		}
	}
	return out
}

// IsCredentialName reports whether a key or variable name says it holds a
// credential (…PASSWORD, …TOKEN, …SECRET, …API_KEY, a kubeconfig's
// client-key-data), by the same reading of its last word as Detect.
func IsCredentialName(name string) bool { return nameClass(name) != noCredential }

// NameWords splits a name into lower-case words at punctuation and
// camelCase boundaries, as Detect reads names: "DB_PASSWORD" → [db
// password], "clientSecret" → [client secret].
func NameWords(name string) []string { return words(name) }
