package encryption

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/finding"
)

var samples = filepath.Join("testdata", "kube-apiserver-v1.34.4")

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(samples, name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// want is what a Status should say, counts aside.
type want struct {
	provider    string
	configured  string // "true", "false" or "unknown"
	writtenWith []string
	storedWith  []string
	rules       []string
}

func configured(s Status) string {
	if s.Configured == nil {
		return "unknown"
	}
	return fmt.Sprint(*s.Configured)
}

func rules(rs []finding.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Rule)
	}
	return out
}

func check(t *testing.T, st Status, w want, secrets int) {
	t.Helper()
	if st.Provider != w.provider {
		t.Errorf("provider %q, want %q", st.Provider, w.provider)
	}
	if got := configured(st); got != w.configured {
		t.Errorf("configured %s, want %s", got, w.configured)
	}
	if got := st.WrittenWith(); !slices.Equal(got, w.writtenWith) {
		t.Errorf("written with %v, want %v", got, w.writtenWith)
	}
	if got := st.StoredWith(); !slices.Equal(got, w.storedWith) {
		t.Errorf("stored with %v, want %v", got, w.storedWith)
	}
	if got := rules(st.Results(secrets)); !slices.Equal(got, w.rules) {
		t.Errorf("rules %v, want %v", got, w.rules)
	}
}

// TestSamples decides on /metrics exactly as kube-apiserver v1.34.4 served
// it (testdata/README.md), and says nothing of the key names and the
// configuration digest the text carries.
func TestSamples(t *testing.T) {
	hashRE := regexp.MustCompile(`hash="(sha256:[0-9a-f]+)"`)
	for _, tt := range []struct {
		sample string
		want   want
	}{
		{"no-configuration", want{Identity, "false", nil, nil, []string{finding.SecretsNotEncrypted}}},
		{"aescbc-no-secret", want{Unknown, "true", nil, nil, []string{finding.EncryptionAtRestUnknown}}},
		{"aescbc", want{AESCBC, "true", []string{AESCBC}, []string{AESCBC}, []string{finding.WeakEncryptionProvider}}},
		{"aescbc-restarted", want{AESCBC, "true", nil, []string{AESCBC}, []string{finding.WeakEncryptionProvider}}},
		{"identity-first", want{Identity, "true", []string{Identity}, []string{Identity}, []string{finding.SecretsNotEncrypted}}},
		{"aescbc-with-plaintext", want{AESCBC, "true", []string{AESCBC}, []string{Identity, AESCBC},
			[]string{finding.SecretsNotEncrypted, finding.WeakEncryptionProvider}}},
	} {
		t.Run(tt.sample, func(t *testing.T) {
			text := readSample(t, tt.sample)
			st, err := Parse(bytes.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			check(t, st, tt.want, 1)
			if st.Version != "v1.34.4" || st.Error != "" {
				t.Errorf("version %q, error %q", st.Version, st.Error)
			}
			// Nothing the text names beyond providers goes further.
			said := fmt.Sprintf("%+v", st.Posture())
			for _, r := range st.Results(1) {
				said += "\n" + r.Message + strings.Join(r.Discriminator, " ")
			}
			leaks := []string{"keyhole-key-name-canary"}
			for _, m := range hashRE.FindAllSubmatch(text, -1) {
				leaks = append(leaks, string(m[1]))
			}
			for _, leak := range leaks {
				if strings.Contains(said, leak) {
					t.Errorf("keyhole repeats %q from the exposition:\n%s", leak, said)
				}
			}
		})
	}
}

// TestSamplesMatter: the decisive series are what decides, not the rest
// of the text. Without the transformation family, aescbc is unknown; with
// the configuration family removed but transformations kept, an
// EncryptionConfiguration is still inferred.
func TestSamplesMatter(t *testing.T) {
	without := func(text []byte, family string) []byte {
		var out bytes.Buffer
		for _, line := range bytes.SplitAfter(text, []byte("\n")) {
			if lineName(line) != family {
				out.Write(line)
			}
		}
		return out.Bytes()
	}
	aescbc := readSample(t, "aescbc")
	st, err := Parse(bytes.NewReader(without(aescbc, familyOperations)))
	if err != nil {
		t.Fatal(err)
	}
	check(t, st, want{Unknown, "true", nil, nil, []string{finding.EncryptionAtRestUnknown}}, 1)
	st, err = Parse(bytes.NewReader(without(aescbc, familyConfigInfo)))
	if err != nil {
		t.Fatal(err)
	}
	check(t, st, want{AESCBC, "true", []string{AESCBC}, []string{AESCBC}, []string{finding.WeakEncryptionProvider}}, 1)
	// Without kubernetes_build_info and the configuration family, nothing
	// says that the configuration is absent.
	st, err = Parse(bytes.NewReader(without(readSample(t, "no-configuration"), familyBuildInfo)))
	if err != nil {
		t.Fatal(err)
	}
	check(t, st, want{Unknown, "unknown", nil, nil, []string{finding.EncryptionAtRestUnknown}}, 1)
}

const buildInfo134 = `# TYPE kubernetes_build_info gauge
kubernetes_build_info{git_version="v1.34.4",major="1",minor="34"} 1
`

const buildInfo131 = `kubernetes_build_info{git_version="v1.31.2-eks-1",major="1",minor="31+"} 1
`

const configInfo = `apiserver_encryption_config_controller_last_config_info{apiserver_id_hash="sha256:a",hash="sha256:b"} 1
`

func op(resource, typ, prefix string, v float64) string {
	return fmt.Sprintf("apiserver_storage_transformation_operations_total{resource=%q,status=\"OK\",transformation_type=%q,transformer_prefix=%q} %g\n", resource, typ, prefix, v)
}

// TestDecide covers what the samples cannot: the other providers, KMS
// plugin names, older apiservers, failed reads, other resources.
func TestDecide(t *testing.T) {
	head := "# TYPE apiserver_storage_transformation_operations_total counter\n"
	for _, tt := range []struct {
		name, text string
		secrets    int
		want       want
	}{
		{"kms v2, plugin name dropped", buildInfo134 + configInfo + head +
			op("secrets", "to_storage", "k8s:enc:kms:v2:vault-plugin:", 3) + op("secrets", "from_storage", "k8s:enc:kms:v2:vault-plugin:", 9),
			1, want{KMSv2, "true", []string{KMSv2}, []string{KMSv2}, nil}},
		{"kms v1", buildInfo134 + configInfo + head + op("secrets", "to_storage", "k8s:enc:kms:v1:old:", 1),
			1, want{KMSv1, "true", []string{KMSv1}, nil, []string{finding.WeakEncryptionProvider}}},
		{"secretbox", buildInfo134 + head + op("secrets", "to_storage", "k8s:enc:secretbox:v1:", 1) + op("secrets", "to_storage", "key1:", 1),
			1, want{Secretbox, "true", []string{Secretbox}, nil, []string{finding.WeakEncryptionProvider}}},
		{"aesgcm", buildInfo134 + head + op("secrets", "from_storage", "k8s:enc:aesgcm:v1:", 2),
			1, want{AESGCM, "true", nil, []string{AESGCM}, []string{finding.WeakEncryptionProvider}}},
		{"unknown k8s:enc provider", buildInfo134 + head + op("secrets", "to_storage", "k8s:enc:quantum:v9:", 1),
			1, want{Other, "true", []string{Other}, nil, nil}},
		{"rotation to kms v2 after reload: the weakest written", buildInfo134 + configInfo + head +
			op("secrets", "to_storage", "k8s:enc:aescbc:v1:", 5) + op("secrets", "to_storage", "k8s:enc:kms:v2:p:", 1),
			1, want{AESCBC, "true", []string{AESCBC, KMSv2}, nil, []string{finding.WeakEncryptionProvider}}},
		{"kms v2 writes, plain base64 still stored", buildInfo134 + configInfo + head +
			op("secrets", "to_storage", "k8s:enc:kms:v2:p:", 1) + op("secrets", "from_storage", "identity", 4),
			1, want{KMSv2, "true", []string{KMSv2}, []string{Identity}, []string{finding.SecretsNotEncrypted}}},
		{"other resources do not count", buildInfo134 + configInfo + head +
			op("configmaps", "to_storage", "k8s:enc:aescbc:v1:", 1) + op("", "from_storage", "k8s:enc:aescbc:v1:", 1),
			0, want{Unknown, "true", nil, nil, []string{finding.EncryptionAtRestUnknown}}},
		{"unreadable reads name no provider", buildInfo134 + configInfo + head + op("secrets", "from_storage", "unknown", 2),
			1, want{Unknown, "true", nil, nil, []string{finding.EncryptionAtRestUnknown}}},
		{"v1.31 without series: unknown, not identity", buildInfo131,
			3, want{Unknown, "unknown", nil, nil, []string{finding.EncryptionAtRestUnknown}}},
		{"v1.31 with series", buildInfo131 + op("secrets", "to_storage", "k8s:enc:aescbc:v1:", 1),
			1, want{AESCBC, "true", []string{AESCBC}, nil, []string{finding.WeakEncryptionProvider}}},
		{"a future major version", `kubernetes_build_info{git_version="v2.0.0",major="2",minor="0"} 1` + "\n",
			1, want{Identity, "false", nil, nil, []string{finding.SecretsNotEncrypted}}},
		{"no family at all", "# an empty exposition\n",
			0, want{Unknown, "unknown", nil, nil, []string{finding.EncryptionAtRestUnknown}}},
		{"untyped counters, no trailing newline", buildInfo134 + strings.TrimSuffix(op("secrets", "to_storage", "", 1), "\n"),
			1, want{Identity, "true", []string{Identity}, nil, []string{finding.SecretsNotEncrypted}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Parse(strings.NewReader(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			check(t, st, tt.want, tt.secrets)
			for _, r := range st.Results(tt.secrets) {
				for _, leak := range []string{"vault-plugin", "key1", "quantum"} {
					if strings.Contains(r.Message, leak) {
						t.Errorf("message repeats %q: %s", leak, r.Message)
					}
				}
			}
			if st.Unreadable > 0 && !strings.Contains(st.Posture().Evidence, "could not be read back") {
				t.Errorf("evidence does not mention unreadable Secrets: %s", st.Posture().Evidence)
			}
		})
	}
}

// TestResults: each conclusion's finding says what was seen and what to
// do, and "unknown" never reads as encrypted.
func TestResults(t *testing.T) {
	yes, no := true, false
	for _, tt := range []struct {
		name    string
		st      Status
		secrets int
		rule    string
		says    []string
	}{
		{"no configuration", Status{Provider: Identity, Configured: &no, Version: "v1.34.4"}, 1,
			finding.SecretsNotEncrypted, []string{"without an EncryptionConfiguration", "--encryption-provider-config", "kubectl replace"}},
		{"identity first", Status{Provider: Identity, Configured: &yes, Writes: map[string]float64{Identity: 1}}, 1,
			finding.SecretsNotEncrypted, []string{"lists identity first"}},
		{"plaintext read only", Status{Provider: Identity, Configured: &yes, Reads: map[string]float64{Identity: 1}}, 1,
			finding.SecretsNotEncrypted, []string{"read Secrets stored as plain base64"}},
		{"forbidden", Failed(`GET /metrics forbidden: User "u" cannot get path "/metrics": keyhole needs ` + Permission), 1,
			finding.EncryptionAtRestUnknown, []string{"unknown", `cannot get path "/metrics"`, "system:monitoring"}},
		{"configured, no Secret anywhere", Status{Provider: Unknown, Configured: &yes}, 0,
			finding.EncryptionAtRestUnknown, []string{"runs with an EncryptionConfiguration", "once a Secret is written"}},
		{"configured, Secrets exist", Status{Provider: Unknown, Configured: &yes}, 7,
			finding.EncryptionAtRestUnknown, []string{"holds 7 Secrets", "watch cache", "does not list secrets"}},
		{"old apiserver, Secrets exist", Status{Provider: Unknown, Version: "v1.31.2"}, 7,
			finding.EncryptionAtRestUnknown, []string{"older than v1.34", "no encryption provider covers Secrets"}},
		{"aescbc", Status{Provider: AESCBC, Configured: &yes}, 1, finding.WeakEncryptionProvider, []string{"aescbc", "padding-oracle", "v2"}},
		{"aesgcm", Status{Provider: AESGCM}, 1, finding.WeakEncryptionProvider, []string{"200,000 writes"}},
		{"secretbox", Status{Provider: Secretbox}, 1, finding.WeakEncryptionProvider, []string{"sound cipher", "control-plane host"}},
		{"kms v1", Status{Provider: KMSv1}, 1, finding.WeakEncryptionProvider, []string{"deprecated", "v1.29"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs := tt.st.Results(tt.secrets)
			if len(rs) != 1 || rs[0].Rule != tt.rule || rs[0].Object != Object {
				t.Fatalf("results %+v, want one %s on %s", rs, tt.rule, Object)
			}
			for _, s := range tt.says {
				if !strings.Contains(rs[0].Message, s) {
					t.Errorf("message does not say %q: %s", s, rs[0].Message)
				}
			}
			if tt.rule == finding.EncryptionAtRestUnknown && strings.Contains(tt.st.Posture().Evidence, "encrypted with") {
				t.Errorf("unknown evidence reads as encrypted: %s", tt.st.Posture().Evidence)
			}
		})
	}
	if rs := (Status{Provider: KMSv2}).Results(1); len(rs) != 0 {
		t.Errorf("kms v2 raises %+v, want nothing", rs)
	}
}

func TestProviderOf(t *testing.T) {
	for prefix, want := range map[string]string{
		"":                          Identity,
		"identity":                  Identity,
		"unknown":                   Unknown,
		"k8s:enc:aescbc:v1:":        AESCBC,
		"k8s:enc:aesgcm:v1:":        AESGCM,
		"k8s:enc:secretbox:v1:":     Secretbox,
		"k8s:enc:kms:v1:name:":      KMSv1,
		"k8s:enc:kms:v2:name:with:": KMSv2,
		"k8s:enc:new:v1:":           Other,
		"k8s:enc:":                  Other,
		"key1:":                     "",
		"k8s:enc:kms":               Other,
	} {
		got, ok := providerOf(prefix)
		if want == "" {
			if ok {
				t.Errorf("providerOf(%q) = %q, want no provider", prefix, got)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("providerOf(%q) = %q, %v, want %q", prefix, got, ok, want)
		}
	}
}

// TestReadFailures: an exposition that cannot be read or parsed is an
// error, which Read turns into Unknown.
func TestParseFailures(t *testing.T) {
	defer func(m int64) { maxBytes = m }(maxBytes)
	maxBytes = 1 << 20
	for name, r := range map[string]io.Reader{
		"not the text format": strings.NewReader(op("secrets", "to_storage", "", 1) + "apiserver_storage_transformation_operations_total{resource=\"secrets\" 1\n"),
		"a failing reader":    io.MultiReader(strings.NewReader(buildInfo134), errReader{}),
		"too large":           io.LimitReader(zeroes{}, maxBytes+2),
	} {
		if _, err := Parse(r); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// A long line of another family is skipped whole, and a long line of
	// a family read is read whole.
	maxBytes = MaxBytes
	long := "some_other_family{label=\"" + strings.Repeat("x", 200<<10) + "\"} 1\n"
	st, err := Parse(strings.NewReader(long + buildInfo134 + op("secrets", "to_storage", "k8s:enc:kms:v2:"+strings.Repeat("p", 100<<10)+":", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Provider != KMSv2 {
		t.Errorf("after long lines: provider %q", st.Provider)
	}
	if f := Failed("x"); f.Provider != Unknown || f.Posture().Error != "x" || rules(f.Results(0))[0] != finding.EncryptionAtRestUnknown {
		t.Errorf("Failed: %+v", f)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '\n'
	}
	return len(p), nil
}

// TestSame: counts going up change nothing; a new provider, a new stored
// provider or an error does.
func TestSame(t *testing.T) {
	yes := true
	a := Status{Provider: AESCBC, Configured: &yes, Writes: map[string]float64{AESCBC: 1}, Reads: map[string]float64{AESCBC: 1}}
	b := a
	b.Writes = map[string]float64{AESCBC: 9}
	if !a.Same(b) {
		t.Error("counts alone changed the conclusion")
	}
	for name, o := range map[string]Status{
		"provider":   {Provider: KMSv2, Configured: &yes, Writes: map[string]float64{KMSv2: 1}, Reads: map[string]float64{AESCBC: 1}},
		"stored":     {Provider: AESCBC, Configured: &yes, Writes: map[string]float64{AESCBC: 1}, Reads: map[string]float64{AESCBC: 1, Identity: 1}},
		"configured": {Provider: AESCBC, Writes: map[string]float64{AESCBC: 1}, Reads: map[string]float64{AESCBC: 1}},
		"error":      Failed("forbidden"),
	} {
		if a.Same(o) {
			t.Errorf("%s changed, Same says not", name)
		}
	}
}

// FuzzParse: whatever the text, Parse does not panic, and a Status it
// returns names a known provider and raises only KH60x findings.
func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir(samples)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(samples, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(buildInfo131 + op("secrets", "to_storage", "k8s:enc:kms:v2:x:", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		if !slices.Contains(Providers(), st.Provider) {
			t.Errorf("provider %q is not one of %v", st.Provider, Providers())
		}
		for _, r := range st.Results(1) {
			if !strings.HasPrefix(r.Rule, "KH60") {
				t.Errorf("rule %s", r.Rule)
			}
		}
		_ = st.Posture()
	})
}

func BenchmarkParseSample(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(samples, "aescbc-with-plaintext.txt"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
