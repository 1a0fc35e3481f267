package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/keyhole-sec/keyhole/internal/finding"
)

// sarifSchemaFile is the OASIS SARIF 2.1.0 schema (with Errata 01), as
// published; see testdata/sarif/README.md for where the copy comes from.
const sarifSchemaFile = "../../testdata/sarif/sarif-schema-2.1.0.json"

func compileSARIFSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(sarifSchemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", sarifSchemaFile, err)
	}
	if m, _ := doc.(map[string]any); m["title"] != "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema" {
		t.Fatalf("%s: title %q: not the SARIF 2.1.0 schema", sarifSchemaFile, m["title"])
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	// Registered under its own id, so that nothing is fetched.
	if err := c.AddResource(sarifSchema, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(sarifSchema)
	if err != nil {
		t.Fatalf("compiling %s: %v", sarifSchemaFile, err)
	}
	return sch
}

func validateSARIF(t *testing.T, sch *jsonschema.Schema, name string, out []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("%s: not JSON: %v", name, err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("%s does not validate against SARIF 2.1.0:\n%v", name, err)
	}
}

func renderSARIF(t *testing.T, r *Report) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, "sarif", r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// richReport exercises every branch of the SARIF sink: suppressed findings
// of both kinds, findings from a live cluster (no file), a path that is
// not a plain URI, a rule this build does not know, and input errors.
func richReport() *Report {
	yes := true
	return &Report{
		APIVersion: APIVersion, Kind: Kind,
		Tool:     Tool{Name: "keyhole", Version: "v0.1.0"},
		Coverage: Coverage{Authorizers: AuthorizersNote},
		Summary: Summary{
			Secrets:            1,
			FindingsBySeverity: map[string]int{"critical": 1, "high": 0, "medium": 1, "low": 0, "info": 1},
			FindingsByRule:     map[string]int{"KH101": 1, "KH103": 1, "KH999": 1},
			SecretsBySeverity:  map[string]int{"critical": 1, "high": 0, "medium": 0, "low": 0, "info": 0},
			Suppressed:         2,
		},
		Secrets: []Secret{},
		Findings: []Finding{
			{Rule: "KH101", Severity: "critical", Title: "Secret readable by everyone",
				Message: "Secret/prod/db is readable by everyone: Group/system:authenticated",
				Object:  ObjectRef{Kind: "Secret", Namespace: "prod", Name: "db"},
				// From a live cluster: no file.
				Fingerprint: "0123456789abcdef0123456789abcdef"},
			{Rule: "KH102", Severity: "high", Title: "Secret readable from outside its namespace",
				Message:     "Secret/prod/api is readable from outside namespace prod",
				Object:      ObjectRef{Kind: "Secret", Namespace: "prod", Name: "api"},
				Location:    &Location{Path: `deploy\prod dir\secrets.yaml`, Line: 12},
				Fingerprint: "11111111111111111111111111111111",
				Suppressed:  &Suppressed{By: "baseline", Reason: "accepted in baseline keyhole-baseline.yaml"}},
			{Rule: "KH110", Severity: "high", Title: "Binding grants Secret reads in every namespace",
				Message:     "ClusterRoleBinding/ops lets Group/ops read every Secret",
				Object:      ObjectRef{Kind: "ClusterRoleBinding", Name: "ops"},
				Location:    &Location{Path: "rbac/ops.yaml"},
				Fingerprint: "22222222222222222222222222222222",
				Suppressed:  &Suppressed{By: "annotation", Reason: "break-glass binding, reviewed 2024-05"}},
			{Rule: "KH103", Severity: "medium", Title: "Secret readable by many principals",
				Message:     "Secret/prod/db is readable by 40 principals",
				Object:      ObjectRef{Kind: "Secret", Namespace: "prod", Name: "db"},
				Location:    &Location{Path: "history/old.yaml", Line: 3, Commit: "abc123", PresentAtHead: &yes, RemovedIn: "def456"},
				Fingerprint: "33333333333333333333333333333333",
				ValueHash:   "5e2bf57d3f40c4b6df69daf1936cb766f832374b4fc0259a7cbff06e2f70f269"},
			{Rule: "KH999", Severity: "info", Title: "A rule from a newer keyhole",
				Message:     "something newer",
				Object:      ObjectRef{Kind: "Namespace", Name: "prod"},
				Fingerprint: "44444444444444444444444444444444"},
		},
		Errors: []Error{
			{Source: "manifests", Message: "bad.yaml: document 2: yaml: line 3: mapping values are not allowed here",
				Location: &Location{Path: "bad.yaml", Line: 3}},
			{Source: "cluster", Message: "cannot list rolebindings.rbac.authorization.k8s.io: forbidden",
				Resource: "rolebindings.rbac.authorization.k8s.io", Impact: "readers through RoleBindings are missing"},
			{Source: "analysis", Message: "RoleBinding/prod/x: roleRef kind Foo is not Role or ClusterRole",
				Object: &ObjectRef{Kind: "RoleBinding", Namespace: "prod", Name: "x"}},
		},
	}
}

func TestSARIFValidatesAgainstSchema(t *testing.T) {
	sch := compileSARIFSchema(t)

	// The validator must be able to fail, or the test proves nothing.
	bad := renderSARIF(t, richReport())
	bad = bytes.Replace(bad, []byte(`"level": "error"`), []byte(`"level": "fatal"`), 1)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	if sch.Validate(inst) == nil {
		t.Fatal("a SARIF log with level \"fatal\" validates: the schema check is not working")
	}

	validateSARIF(t, sch, "rich report", renderSARIF(t, richReport()))
	validateSARIF(t, sch, "empty report", renderSARIF(t, &Report{Tool: Tool{Name: "keyhole", Version: "dev"}}))

	// The demo, both as rendered now from its JSON report and as pinned
	// by the CLI's golden file.
	demoJSON, err := os.ReadFile(filepath.Join("..", "..", "testdata", "golden", "demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var demo Report
	if err := json.Unmarshal(demoJSON, &demo); err != nil {
		t.Fatal(err)
	}
	validateSARIF(t, sch, "demo report", renderSARIF(t, &demo))
	golden := filepath.Join("..", "..", "testdata", "golden", "demo.sarif")
	demoSARIF, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run TestGolden -update)", err)
	}
	validateSARIF(t, sch, golden, demoSARIF)
}

func TestSARIFContent(t *testing.T) {
	var log sarifLog
	if err := json.Unmarshal(renderSARIF(t, richReport()), &log); err != nil {
		t.Fatal(err)
	}
	if len(log.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(log.Runs))
	}
	run := log.Runs[0]
	rules := run.Tool.Driver.Rules

	// Every catalog rule is described, in catalog order, then the unknown
	// rule from the report.
	catalog := finding.Catalog()
	if len(rules) != len(catalog)+1 {
		t.Fatalf("%d rules, want the %d of the catalog plus KH999", len(rules), len(catalog))
	}
	wantSecSev := map[finding.Severity]string{finding.Critical: "9.5", finding.High: "8.0", finding.Medium: "5.5", finding.Low: "3.0", finding.Info: "1.0"}
	wantLevel := map[finding.Severity]string{finding.Critical: "error", finding.High: "error", finding.Medium: "warning", finding.Low: "note", finding.Info: "note"}
	for i, cr := range catalog {
		sr := rules[i]
		if sr.ID != cr.ID || sr.ShortDescription.Text != cr.Title || sr.FullDescription.Text != cr.Summary || sr.HelpURI != cr.HelpURI() {
			t.Errorf("rule %d = %+v, want %s described from the catalog", i, sr, cr.ID)
		}
		if sr.DefaultConfiguration.Level != wantLevel[cr.Severity] {
			t.Errorf("%s: level %q, want %q", cr.ID, sr.DefaultConfiguration.Level, wantLevel[cr.Severity])
		}
		if sr.Properties.SecuritySeverity != wantSecSev[cr.Severity] || strings.Join(sr.Properties.Tags, ",") != "security" {
			t.Errorf("%s: properties %+v", cr.ID, sr.Properties)
		}
		if sr.Name == "" || strings.ContainsAny(sr.Name, " /") {
			t.Errorf("%s: name %q is not identifier-like", cr.ID, sr.Name)
		}
	}
	if last := rules[len(rules)-1]; last.ID != "KH999" || last.ShortDescription.Text != "A rule from a newer keyhole" || last.HelpURI != "" {
		t.Errorf("unknown rule described as %+v", last)
	}

	res := run.Results
	if len(res) != 5 {
		t.Fatalf("%d results, want 5", len(res))
	}
	for _, r := range res {
		if rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("%s: ruleIndex %d points at %s", r.RuleID, r.RuleIndex, rules[r.RuleIndex].ID)
		}
	}

	// KH101 from a live cluster: a logical location only.
	live := res[0]
	if live.Level != "error" || live.PartialFingerprints[fingerprintKey] != "0123456789abcdef0123456789abcdef" || live.Suppressions != nil {
		t.Errorf("live result = %+v", live)
	}
	if len(live.Locations) != 1 || live.Locations[0].PhysicalLocation != nil ||
		len(live.Locations[0].LogicalLocations) != 1 || live.Locations[0].LogicalLocations[0].FullyQualifiedName != "Secret/prod/db" ||
		live.Locations[0].LogicalLocations[0].Name != "db" || live.Locations[0].LogicalLocations[0].Kind != "Secret" {
		t.Errorf("live result locations = %+v", live.Locations)
	}

	// The baseline suppression, from a file whose path needs escaping.
	based := res[1]
	if based.Level != "error" || len(based.Suppressions) != 1 || based.Suppressions[0] != (sarifSuppression{Kind: "external", Justification: "accepted in baseline keyhole-baseline.yaml"}) {
		t.Errorf("baseline-suppressed result = %+v", based)
	}
	if pl := based.Locations[0].PhysicalLocation; pl == nil || pl.ArtifactLocation.URI != "deploy/prod%20dir/secrets.yaml" || pl.Region == nil || pl.Region.StartLine != 12 {
		t.Errorf("baseline-suppressed result physical location = %+v", pl)
	}

	// The annotation suppression, from a file without a line.
	annotated := res[2]
	if len(annotated.Suppressions) != 1 || annotated.Suppressions[0].Kind != "inSource" || annotated.Suppressions[0].Justification != "break-glass binding, reviewed 2024-05" {
		t.Errorf("annotation-suppressed result = %+v", annotated)
	}
	if pl := annotated.Locations[0].PhysicalLocation; pl == nil || pl.ArtifactLocation.URI != "rbac/ops.yaml" || pl.Region != nil {
		t.Errorf("annotation-suppressed result physical location = %+v", pl)
	}
	if got := annotated.Locations[0].LogicalLocations[0].FullyQualifiedName; got != "ClusterRoleBinding/ops" {
		t.Errorf("cluster-scoped object named %q", got)
	}

	// A git finding's facts that SARIF has no field for are properties.
	wantProps := map[string]any{"commit": "abc123", "presentAtHead": true, "removedIn": "def456",
		"valueHash": "5e2bf57d3f40c4b6df69daf1936cb766f832374b4fc0259a7cbff06e2f70f269"}
	if !reflect.DeepEqual(res[3].Properties, wantProps) {
		t.Errorf("git result properties %v, want %v", res[3].Properties, wantProps)
	}
	for _, i := range []int{0, 1, 2, 4} {
		if res[i].Properties != nil {
			t.Errorf("%s: properties %v, want none", res[i].RuleID, res[i].Properties)
		}
	}
	if res[3].Level != "warning" || res[4].Level != "note" {
		t.Errorf("levels %q, %q; want warning (medium), note (info)", res[3].Level, res[4].Level)
	}

	// Errors make the invocation unsuccessful, one notification each.
	if len(run.Invocations) != 1 {
		t.Fatalf("%d invocations, want 1", len(run.Invocations))
	}
	inv := run.Invocations[0]
	if inv.ExecutionSuccessful || len(inv.ToolExecutionNotifications) != 3 {
		t.Fatalf("invocation = %+v, want unsuccessful with 3 notifications", inv)
	}
	for _, n := range inv.ToolExecutionNotifications {
		if n.Level != "error" || n.Properties["source"] == "" {
			t.Errorf("notification = %+v", n)
		}
	}
	if n := inv.ToolExecutionNotifications[0]; len(n.Locations) != 1 || n.Locations[0].PhysicalLocation.ArtifactLocation.URI != "bad.yaml" {
		t.Errorf("file error notification = %+v", n)
	}
	if n := inv.ToolExecutionNotifications[1]; n.Message.Text != "cannot list rolebindings.rbac.authorization.k8s.io: forbidden (readers through RoleBindings are missing)" || n.Locations != nil {
		t.Errorf("cluster error notification = %+v", n)
	}
	if n := inv.ToolExecutionNotifications[2]; len(n.Locations) != 1 || n.Locations[0].LogicalLocations[0].FullyQualifiedName != "RoleBinding/prod/x" {
		t.Errorf("object error notification = %+v", n)
	}
}

func TestSARIFEmptyReport(t *testing.T) {
	out := string(renderSARIF(t, &Report{Tool: Tool{Name: "keyhole", Version: "dev"}}))
	// An empty results list says "analysed, nothing found"; null or a
	// missing list would say "results not computed".
	for _, want := range []string{`"results": []`, `"executionSuccessful": true`} {
		if !strings.Contains(out, want) {
			t.Errorf("empty report SARIF lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "toolExecutionNotifications") {
		t.Errorf("notifications without errors:\n%s", out)
	}
}

func TestArtifactURI(t *testing.T) {
	for in, want := range map[string]string{
		"testdata/demo/ci/deployer.yaml": "testdata/demo/ci/deployer.yaml",
		"./x.yaml":                       "./x.yaml",
		`dir\sub\x.yaml`:                 "dir/sub/x.yaml",
		"a b/c#d?.yaml":                  "a%20b/c%23d%3F.yaml",
		"/abs/x.yaml":                    "/abs/x.yaml",
		`C:\work\x.yaml`:                 "file:///C:/work/x.yaml",
		"ab:c/x.yaml":                    "./ab:c/x.yaml",
		"a:b/x.yaml":                     "./a:b/x.yaml",
	} {
		if got := artifactURI(in); got != want {
			t.Errorf("artifactURI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRuleName(t *testing.T) {
	for in, want := range map[string]string{
		"Secret readable by everyone":                    "SecretReadableByEveryone",
		"Binding grants Secret reads in every namespace": "BindingGrantsSecretReadsInEveryNamespace",
		"Secret in a ConfigMap's data (plaintext)":       "SecretInAConfigMapsDataPlaintext",
	} {
		if got := ruleName(in); got != want {
			t.Errorf("ruleName(%q) = %q, want %q", in, got, want)
		}
	}
}
