package manifests

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/source"
)

// canaries are planted as Secret values; none may come out of Load in any
// form: not in a Problem, a note, a count or the inventory.
var canaries = []string{
	"KEYHOLE-CANARY-9f2c",
	"7777123499", // a numeric value: JSON errors quote numbers
	base64.StdEncoding.EncodeToString([]byte("KEYHOLE-CANARY-9f2c")),
}

// leaks returns every string Load produced that holds a canary.
func leaks(t *testing.T, inv *inventory.Inventory, covs []source.Coverage, problems []source.Problem) []string {
	t.Helper()
	var out []string
	check := func(what, s string) {
		for _, c := range canaries {
			if strings.Contains(s, c) {
				out = append(out, fmt.Sprintf("%s: %q", what, s))
			}
		}
	}
	for _, p := range problems {
		check("problem", p.Message)
		check("problem impact", p.Impact)
		check("problem resource", p.Resource)
		check("problem location", p.Location.String())
		if p.Object != nil {
			check("problem object", p.Object.String())
		}
	}
	for _, c := range covs {
		for _, n := range c.Notes {
			check("note", n)
		}
		for k := range c.Ignored {
			check("ignored kind", k)
		}
		for k := range c.Objects {
			check("object kind", k)
		}
	}
	dump, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	check("inventory", string(dump))
	for _, s := range inv.Secrets {
		check("inventory secret", fmt.Sprintf("%#v", *s))
	}
	return out
}

// secretShapes are malformed (and some valid) Secret bodies carrying the
// canary, each one a way a decoder could end up quoting it.
var secretShapes = map[string]string{
	"bad YAML after the value":   "stringData:\n  password: KEYHOLE-CANARY-9f2c\n    broken: indentation\n",
	"mapping in the value":       "stringData:\n  password: KEYHOLE-CANARY-9f2c: x\n",
	"not base64":                 "data:\n  password: KEYHOLE-CANARY-9f2c\n",
	"not base64, second key":     "data:\n  a: YQ==\n  b: KEYHOLE-CANARY-9f2c\n",
	"not base64, quoted":         "data:\n  password: \"KEYHOLE-CANARY-9f2c\"\n",
	"not base64, block scalar":   "data:\n  password: |\n    KEYHOLE-CANARY-9f2c\n",
	"data is a list":             "data: [KEYHOLE-CANARY-9f2c]\n",
	"data is a string":           "data: KEYHOLE-CANARY-9f2c\n",
	"stringData is a string":     "stringData: KEYHOLE-CANARY-9f2c\n",
	"value is a list":            "stringData:\n  password: [KEYHOLE-CANARY-9f2c]\n",
	"value is a map":             "data:\n  password: {KEYHOLE-CANARY-9f2c: KEYHOLE-CANARY-9f2c}\n",
	"numeric data":               "data:\n  pin: 7777123499\n",
	"numeric stringData":         "stringData:\n  pin: 7777123499\n",
	"float stringData":           "stringData:\n  pin: 7777123499.5\n",
	"tag mismatch":               "stringData:\n  password: !!int KEYHOLE-CANARY-9f2c\n",
	"float tag":                  "stringData:\n  password: !!float KEYHOLE-CANARY-9f2c\n",
	"binary tag":                 "stringData:\n  password: !!binary KEYHOLE-CANARY-9f2c\n",
	"custom tag":                 "stringData:\n  password: !secret KEYHOLE-CANARY-9f2c\n",
	"complex key":                "stringData: {[a]: KEYHOLE-CANARY-9f2c}\n",
	"complex key holding it":     "stringData:\n  ? [KEYHOLE-CANARY-9f2c]\n  : x\n",
	"map key holding it":         "stringData:\n  ? {a: KEYHOLE-CANARY-9f2c}\n  : x\n",
	"unterminated double quote":  "stringData:\n  password: \"KEYHOLE-CANARY-9f2c\n",
	"unterminated single quote":  "stringData:\n  password: 'KEYHOLE-CANARY-9f2c\n",
	"unknown escape":             "stringData:\n  password: \"KEYHOLE-CANARY-9f2c\\q\"\n",
	"bad unicode escape":         "stringData:\n  password: \"KEYHOLE-CANARY-9f2c\\uZZZZ\"\n",
	"unknown alias":              "stringData:\n  password: *KEYHOLE-CANARY-9f2c\n",
	"unterminated flow":          "stringData: {password: KEYHOLE-CANARY-9f2c\n",
	"unterminated flow sequence": "stringData:\n  password: [KEYHOLE-CANARY-9f2c\n",
	"block scalar dedent":        "stringData:\n  password: |\n    KEYHOLE-CANARY-9f2c\n   bad: dedent\n",
	"tab after value":            "stringData:\n  password: KEYHOLE-CANARY-9f2c\n\tnext: x\n",
	"control character":          "stringData:\n  password: KEYHOLE-CANARY-9f2c\x01\n",
	"DEL character":              "stringData:\n  password: KEYHOLE-CANARY-9f2c\x7f\n",
	"invalid UTF-8":              "stringData:\n  password: KEYHOLE-CANARY-9f2c\xff\n",
	"NUL byte":                   "stringData:\n  password: KEYHOLE-CANARY-9f2c\x00\n",
	"marker inside value":        "stringData:\n  password: \"KEYHOLE-CANARY-9f2c\n--- x\"\n",
	"time in metadata":           "metadata:\n  name: time\n  namespace: canary\n  creationTimestamp: KEYHOLE-CANARY-9f2c\n",
	"duplicate keys":             "stringData:\n  password: x\n  password: KEYHOLE-CANARY-9f2c\n",
	"valid, with last-applied": "metadata:\n  name: valid\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: " +
		"'{\"stringData\":{\"password\":\"KEYHOLE-CANARY-9f2c\"}}'\n" +
		"data:\n  password: S0VZSE9MRS1DQU5BUlktOWYyYw==\nstringData:\n  token: KEYHOLE-CANARY-9f2c\n",
	"type error after data": "data:\n  password: S0VZSE9MRS1DQU5BUlktOWYyYw==\ntype: [KEYHOLE-CANARY-9f2c]\n",
	"immutable wrong type":  "stringData:\n  password: KEYHOLE-CANARY-9f2c\nimmutable: KEYHOLE-CANARY-9f2c\n",
}

// jsonShapes are the same for JSON input, where the JSON decoder (not the
// YAML converter) meets the value first.
var jsonShapes = map[string]string{
	"not base64":         `"data": {"password": "KEYHOLE-CANARY-9f2c"}`,
	"number":             `"data": {"pin": 7777123499}`,
	"float":              `"stringData": {"pin": 7777123499.5}`,
	"syntax after value": `"stringData": {"password": "KEYHOLE-CANARY-9f2c" x}`,
	"unquoted value":     `"stringData": {"password": KEYHOLE-CANARY-9f2c}`,
	"number then junk":   `"stringData": {"pin": 7777123499x}`,
	"bad escape":         `"stringData": {"password": "KEYHOLE-CANARY-9f2c\q"}`,
	"raw tab in string":  "\"stringData\": {\"password\": \"KEYHOLE-CANARY-9f2c\t\"}",
	"unterminated":       `"stringData": {"password": "KEYHOLE-CANARY-9f2c`,
	"value is an object": `"data": {"password": {"KEYHOLE-CANARY-9f2c": 1}}`,
	"true literal typo":  `"immutable": trKEYHOLE-CANARY-9f2c`,
}

func TestSecretValuesNeverLeak(t *testing.T) {
	t.Chdir(t.TempDir())
	var stream strings.Builder
	i := 0
	for name, body := range secretShapes {
		i++
		meta := fmt.Sprintf("metadata: {name: shape-%d, namespace: canary}\n", i)
		if strings.HasPrefix(body, "metadata:") {
			meta = ""
		}
		doc := "apiVersion: v1\nkind: Secret\n" + meta + body
		if !strings.Contains(doc, "KEYHOLE-CANARY-9f2c") && !strings.Contains(doc, "7777123499") && !strings.Contains(doc, "S0VZ") {
			t.Fatalf("shape %q plants no canary", name)
		}
		// Each shape alone, as its own file.
		writeFile(t, fmt.Sprintf("alone/%02d.yaml", i), doc)
		// Each shape as a List item.
		writeFile(t, fmt.Sprintf("list/%02d.yaml", i), "apiVersion: v1\nkind: List\nitems:\n- "+strings.ReplaceAll(doc, "\n", "\n  ")+"\n")
		if binaryReason([]byte(doc)) == "" { // binary input is refused whole
			stream.WriteString(doc + "---\n")
		}
	}
	i = 0
	for _, body := range jsonShapes {
		i++
		writeFile(t, fmt.Sprintf("json/%02d.json", i),
			fmt.Sprintf(`{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "j%d", "namespace": "canary"}, %s}`, i, body))
		// And inside a SecretList, where items inherit their kind.
		writeFile(t, fmt.Sprintf("json/list-%02d.json", i),
			fmt.Sprintf(`{"apiVersion": "v1", "kind": "SecretList", "items": [{"metadata": {"name": "l%d"}, %s}]}`, i, body))
	}
	// The fixtures too, by copy so that this test's directory has them.
	for _, f := range []string{"secrets.yaml", "secrets.json"} {
		data, err := os.ReadFile(filepath.Join(fixturesAbs(t), "canary", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, "fixtures/"+f, string(data))
	}

	b := inventory.NewBuilder()
	covs, problems := Load([]string{"alone", "list", "json", "fixtures", "-"}, b, Options{Stdin: strings.NewReader(stream.String())})
	checkProblems(t, problems)
	inv := b.Build()
	for _, l := range leaks(t, inv, covs, problems) {
		t.Error("canary leaked in", l)
	}
	// The test is only worth something if the shapes were met: most
	// must be problems, and the valid ones must be read.
	if len(problems) < len(secretShapes)+len(jsonShapes) {
		t.Errorf("only %d problems for %d shapes", len(problems), len(secretShapes)+len(jsonShapes))
	}
	if inv.Secret("canary", "valid") == nil {
		t.Error("the valid Secret was not read")
	}
	if testing.Verbose() {
		for _, p := range problems {
			t.Log(p.Message)
		}
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var fixturesDir string

// fixturesAbs returns the absolute fixture directory, for tests that
// change the working directory before reading fixtures.
func fixturesAbs(t *testing.T) string {
	t.Helper()
	if fixturesDir == "" {
		t.Fatal("fixturesDir not set")
	}
	return fixturesDir
}

func TestMain(m *testing.M) {
	if abs, err := filepath.Abs(fixtures); err == nil {
		fixturesDir = abs
	}
	os.Exit(m.Run())
}
