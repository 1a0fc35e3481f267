package gitscan

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// canaryNeedles are the forms in which a fixture value could leak: the
// marker as written (with and without its hyphen, for formats that allow
// none), and its base64 at the three alignments a value can put it at.
func canaryNeedles() []string {
	out := []string{"KEYHOLE-CANARY", "KEYHOLECANARY"}
	for _, c := range []string{"KEYHOLE-CANARY", "KEYHOLECANARY"} {
		for pad := range 3 {
			enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", pad) + c))
			// The first and last groups depend on the neighbours.
			out = append(out, enc[4:len(enc)-4])
		}
	}
	return out
}

// TestNoValueInResults: every fixture value holds the canary; no Leak or
// Problem field, printed in full, may.
func TestNoValueInResults(t *testing.T) {
	needles := canaryNeedles()
	total := 0
	for _, res := range scanFixtures(t) {
		total += len(res.leaks)
		dump := fmt.Sprintf("%+v %#v %+v %#v", res.leaks, res.leaks, res.problems, res.problems)
		for _, n := range needles {
			if strings.Contains(dump, n) {
				t.Errorf("%s: results hold the canary form %q:\n%s", res.file, n, dump)
			}
		}
	}
	if total < 50 {
		t.Fatalf("only %d leaks over all fixtures: the canary check proves nothing", total)
	}
}

// TestDigest: a value has one identity whatever form it is written in and
// whichever file holds it, under one key; another key gives another
// identity; and the identity is keyed, never a plain hash.
func TestDigest(t *testing.T) {
	const v = "KEYHOLE-CANARY-digest"
	files := map[string]string{
		"stringData.yaml":    "kind: Secret\nmetadata: {name: a}\nstringData:\n  password: " + v + "\n",
		"data.yaml":          "kind: Secret\nmetadata: {name: b}\ndata:\n  password: " + base64.StdEncoding.EncodeToString([]byte(v)) + "\n",
		"wrapped.json":       `{"kind":"Secret","metadata":{"name":"c"},"data":{"other-key":"` + base64.StdEncoding.EncodeToString([]byte(v)) + `"}}`,
		"kustomization.yaml": "secretGenerator:\n  - name: d\n    literals: [\"password=" + v + "\"]\n",
	}
	key := bytes.Repeat([]byte{7}, MinKeyLen)
	s := NewScanner(key)
	var first []byte
	for name, content := range files {
		leaks, problems := s.Scan(name, []byte(content))
		if len(leaks) != 1 || len(problems) != 0 {
			t.Fatalf("%s: %d leaks, problems %v; want one leak", name, len(leaks), problems)
		}
		if first == nil {
			first = leaks[0].Digest
		} else if !bytes.Equal(first, leaks[0].Digest) {
			t.Errorf("%s: the same value has another digest", name)
		}
	}
	want := hmac.New(sha256.New, key)
	want.Write([]byte(v))
	if !bytes.Equal(first, want.Sum(nil)) {
		t.Error("the digest is not HMAC-SHA256 of the decoded value under the scanner's key")
	}
	plainHash := sha256.Sum256([]byte(v))
	if bytes.Equal(first, plainHash[:]) {
		t.Error("the digest is a plain hash of the value")
	}
	other := NewScanner(bytes.Repeat([]byte{8}, MinKeyLen))
	leaks, _ := other.Scan("stringData.yaml", []byte(files["stringData.yaml"]))
	if bytes.Equal(leaks[0].Digest, first) {
		t.Error("another key gives the same digest")
	}
	leaks, _ = s.Scan("x.yaml", []byte("kind: Secret\nstringData:\n  password: "+v+"-2\n"))
	if bytes.Equal(leaks[0].Digest, first) {
		t.Error("another value gives the same digest")
	}
	// The scanner keeps its own copy of the key.
	key[0] ^= 1
	leaks, _ = s.Scan("stringData.yaml", []byte(files["stringData.yaml"]))
	if !bytes.Equal(leaks[0].Digest, first) {
		t.Error("changing the caller's key slice changes the scanner's digests")
	}
}

func TestNewScannerRefusesShortKeys(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewScanner accepted a 31-byte key")
		}
	}()
	NewScanner(make([]byte, MinKeyLen-1))
}

func TestCandidate(t *testing.T) {
	for path, want := range map[string]bool{
		"deploy/secret.yaml":                   true,
		"deploy/SECRET.YML":                    true,
		"k8s/list.json":                        true,
		"charts/app/values-prod.yaml":          true,
		"charts/app/templates/secret.yaml":     true,
		"charts/app/templates/_helpers.tpl":    true,
		"templates/NOTES.txt":                  true,
		"overlays/prod/kustomization.yaml":     true,
		"overlays/prod/Kustomization":          true,
		"overlays/prod/secrets.env":            true,
		".env":                                 true,
		"config/.env.production":               true,
		"secrets/db.sops.yaml":                 true,
		"main.go":                              false,
		"README.md":                            false,
		"assets/logo.png":                      false,
		"mytemplates/x.txt":                    false,
		"overlays/prod/kustomization.yaml.bak": false,
	} {
		if got := Candidate(path); got != want {
			t.Errorf("Candidate(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestScanSkipsHugeAndBinaryBlobs(t *testing.T) {
	s := NewScanner(fixtureKey)
	secret := "kind: Secret\nstringData:\n  password: KEYHOLE-CANARY-skip\n"
	huge := []byte(secret + strings.Repeat("# padding\n", MaxBlobSize/10+1))
	binary := []byte(secret + "\x00")
	for name, content := range map[string][]byte{"huge": huge, "binary": binary} {
		leaks, problems := s.Scan("x.yaml", content)
		if len(leaks) != 0 || len(problems) != 1 || !strings.HasPrefix(problems[0].Message, "skipped: ") {
			t.Errorf("%s blob: leaks %d, problems %+v; want it skipped with one problem", name, len(leaks), problems)
		}
	}
	if leaks, _ := s.Scan("x.yaml", []byte(secret)); len(leaks) != 1 {
		t.Fatalf("the same Secret, small and text, gives %d leaks", len(leaks))
	}
}

func TestGeneratorInputs(t *testing.T) {
	content := []byte(`namespace: shop
secretGenerator:
  - name: app
    env: legacy.env
    envs: [secrets.env, ../shared/common.env, ../../../outside.env, /etc/abs.env]
    files:
      - tls.key=certs/server.key
      - certs/ca.crt
      - https://example.com/remote.key
  - name: other
    namespace: edge
    files: [id_rsa]
configMapGenerator:
  - name: settings
    envs: [settings.env]
`)
	got := GeneratorInputs("overlays/prod/kustomization.yaml", content)
	app := inventory.Ref{Kind: "Kustomization", Namespace: "shop", Name: "app"}
	want := []GeneratorInput{
		{Path: "overlays/prod/legacy.env", Kind: "env", Generator: app},
		{Path: "overlays/prod/secrets.env", Kind: "env", Generator: app},
		{Path: "overlays/shared/common.env", Kind: "env", Generator: app},
		{Path: "overlays/prod/certs/server.key", Kind: "file", Key: "tls.key", Generator: app},
		{Path: "overlays/prod/certs/ca.crt", Kind: "file", Key: "ca.crt", Generator: app},
		{Path: "overlays/prod/id_rsa", Kind: "file", Key: "id_rsa", Generator: inventory.Ref{Kind: "Kustomization", Namespace: "edge", Name: "other"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GeneratorInputs:\ngot  %+v\nwant %+v", got, want)
	}
	if got := GeneratorInputs("deploy/secret.yaml", []byte("kind: Secret\n")); got != nil {
		t.Errorf("a manifest lists generator inputs: %+v", got)
	}
	// kind: Kustomization under another name is still read when its
	// apiVersion is kustomize's.
	if got := GeneratorInputs("base/kust.yaml", []byte("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nsecretGenerator: [{name: a, envs: [a.env]}]\n")); len(got) != 1 || got[0].Path != "base/a.env" {
		t.Errorf("kustomize apiVersion under another file name: %+v", got)
	}
}

// TestRank pins the severity order by key and content: private keys above
// credentials above identifiers above public material.
func TestRank(t *testing.T) {
	pemKey := "-----BEGIN OPENSSH PRIVATE KEY-----\nKEYHOLE-CANARY\n-----END OPENSSH PRIVATE KEY-----\n"
	pemCert := "-----BEGIN CERTIFICATE-----\nKEYHOLE-CANARY\n-----END CERTIFICATE-----\n"
	for _, c := range []struct {
		key  string
		v    value
		want finding.Severity
	}{
		{"tls.key", value{bytes: []byte(pemKey)}, finding.Critical},
		{"ssh-privatekey", value{bytes: []byte(pemKey)}, finding.Critical},
		{"ssh-privatekey", value{bytes: []byte("KEYHOLE-CANARY")}, finding.Critical},
		{"anything", value{bytes: []byte(pemKey)}, finding.Critical},
		{"server.key", value{bytes: []byte{0x30, 0x82, 0xff}, binary: true}, finding.Critical},
		{"truststore.jks", value{bytes: []byte{0xfe, 0xed}, binary: true}, finding.Critical},
		{"password", value{bytes: []byte("KEYHOLE-CANARY")}, finding.High},
		{"api.key", value{bytes: []byte("KEYHOLE-CANARY")}, finding.High},
		{".dockerconfigjson", value{bytes: []byte(`{"auths":{}}`)}, finding.High},
		{"blob", value{bytes: []byte{0xff}, binary: true}, finding.High},
		{"db-username", value{bytes: []byte("KEYHOLE-CANARY")}, finding.Medium},
		{"dbUser", value{bytes: []byte("KEYHOLE-CANARY")}, finding.Medium},
		{"host", value{bytes: []byte("postgres://app:KEYHOLE-CANARY@db/app")}, finding.High},
		{"ca.crt", value{bytes: []byte(pemCert)}, finding.Low},
		{"tls.crt", value{bytes: []byte("KEYHOLE-CANARY")}, finding.Low},
		{"bundle", value{bytes: []byte(pemCert)}, finding.Low},
		{"ca.crt", value{bytes: []byte(pemCert + pemKey)}, finding.Critical},
		{"ssh-publickey", value{bytes: []byte("ssh-ed25519 KEYHOLE-CANARY")}, finding.Low},
	} {
		if got := rank(c.key, c.v); got != c.want {
			t.Errorf("rank(%q, binary=%v) = %v, want %v", c.key, c.v.binary, got, c.want)
		}
	}
	if rank("tls.key", value{bytes: []byte(pemKey)}) <= rank("ca.crt", value{bytes: []byte(pemCert)}) {
		t.Error("tls.key does not rank above ca.crt")
	}
}

func TestPlaceholderAndReference(t *testing.T) {
	for v, want := range map[string]bool{
		"changeme": true, "CHANGEME": true, "REPLACE_ME": true, "replace-me-please": true, "<password>": true,
		"KEYHOLE-CANARY": false, "<path:kv/data/db#password>": false, "a<b>": false, "exchange-mexico": false,
	} {
		if got := isPlaceholder(v); got != want {
			t.Errorf("isPlaceholder(%q) = %v, want %v", v, got, want)
		}
	}
	for v, want := range map[string]bool{
		"{{ .Values.x }}": true, "${DB}": true, "<path:kv/data/db#password>": true, "vault:secret/db#pw": true,
		"ref+awsssm://db": true, "ENC[AES256_GCM,data:Zm9v,iv:aXY=,tag:dGFn,type:str]": true,
		"ENC[KEYHOLE-CANARY]": false, "$KEYHOLE-CANARY": false, "KEYHOLE-CANARY": false,
	} {
		if got := isReference(v); got != want {
			t.Errorf("isReference(%q) = %v, want %v", v, got, want)
		}
	}
}
