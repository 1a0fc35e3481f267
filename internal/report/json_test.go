package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestWriteJSONMatchesEncoder: the streaming writer must print exactly
// what encoding/json prints for the whole report, whatever is empty.
func TestWriteJSONMatchesEncoder(t *testing.T) {
	full := &Report{
		APIVersion: APIVersion, Kind: Kind, Tool: Tool{Name: "keyhole", Version: "v1"},
		Coverage: Coverage{Sources: []SourceCoverage{{Kind: "manifests", Objects: map[string]int{"Secret": 2}}}, NotAnalysed: []string{"a <b> & c"}},
		Secrets: []Secret{
			{Namespace: "a", Name: "db", Keys: []string{"k"}, Readers: Readers([]Reader{{Subject: Subject{Kind: "User", Name: "u"}, Verbs: []string{"get"}, Path: "direct", Via: []Via{{Superuser: true}}, Steps: []Step{}}}...)},
			{Namespace: "b", Name: "x", Keys: []string{}},
		},
		Findings: []Finding{{Rule: "KH101", Severity: "critical", Message: "m", Fingerprint: "f"}},
		Errors:   []Error{},
		Posture:  &Posture{EncryptionAtRest: &EncryptionAtRest{Provider: "identity"}},
	}
	for name, r := range map[string]*Report{
		"full":      full,
		"zero":      {},
		"nil lists": {APIVersion: APIVersion, Secrets: nil, Findings: []Finding{}},
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := WriteJSON(&got, r); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%s: WriteJSON differs from encoding/json:\ngot:\n%s\nwant:\n%s", name, got.String(), want.String())
		}
	}
}

// TestSharedChainsNameTheirSecret writes two Secrets that share one chain
// whose last step leaves its Secret implicit, as the analysis builds them:
// each Secret's JSON names itself, and the shared chain is left as it was.
func TestSharedChainsNameTheirSecret(t *testing.T) {
	steps := []Step{
		{Kind: "impersonate", Subject: Subject{Kind: "User", Name: "alice"}, Reaches: Subject{Kind: "ServiceAccount", Namespace: "ns", Name: "reader"}},
		{Kind: "direct", Subject: Subject{Kind: "ServiceAccount", Namespace: "ns", Name: "reader"}},
	}
	readers := []Reader{{Subject: Subject{Kind: "User", Name: "alice"}, Path: "impersonate", Steps: steps}}
	r := &Report{APIVersion: APIVersion, Kind: Kind, Secrets: []Secret{
		{Namespace: "ns", Name: "a", Readers: Readers(readers...)},
		{Namespace: "ns", Name: "b", Readers: Readers(readers...)},
	}}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a", "b"} {
		last := got.Secrets[i].Readers.Slice()[0].Steps[1].Reaches
		if want := (Subject{Kind: "Secret", Namespace: "ns", Name: name}); last != want {
			t.Errorf("Secret %s: last step reaches %+v, want %+v", name, last, want)
		}
		if first := got.Secrets[i].Readers.Slice()[0].Steps[0].Reaches; first != steps[0].Reaches {
			t.Errorf("Secret %s: first step reaches %+v, want it unchanged", name, first)
		}
	}
	if steps[1].Reaches != (Subject{}) {
		t.Errorf("writing the report filled in the shared chain: %+v", steps[1].Reaches)
	}
	var explained bytes.Buffer
	if err := WriteExplainJSON(&explained, &r.Secrets[1]); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(explained.String(), `"name": "b"`) || strings.Count(explained.String(), `"kind": "Secret"`) != 1 {
		t.Errorf("explain JSON does not name the Secret in the last step:\n%s", explained.String())
	}
}
