package report

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestWriteJSONMatchesEncoder: the streaming writer must print exactly
// what encoding/json prints for the whole report, whatever is empty.
func TestWriteJSONMatchesEncoder(t *testing.T) {
	full := &Report{
		APIVersion: APIVersion, Kind: Kind, Tool: Tool{Name: "keyhole", Version: "v1"},
		Coverage: Coverage{Sources: []SourceCoverage{{Kind: "manifests", Objects: map[string]int{"Secret": 2}}}, NotAnalysed: []string{"a <b> & c"}},
		Secrets: []Secret{
			{Namespace: "a", Name: "db", Keys: []string{"k"}, Readers: []Reader{{Subject: Subject{Kind: "User", Name: "u"}, Verbs: []string{"get"}, Path: "direct", Via: []Via{{Superuser: true}}, Steps: []Step{}}}},
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
