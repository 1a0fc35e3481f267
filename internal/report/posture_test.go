package report

import (
	"bytes"
	"strings"
	"testing"
)

// TestEncryptionAtRestShown: the table and the Markdown summary show the
// provider and the evidence, and why it is unknown when it is; a report
// that did not read it (offline) shows nothing.
func TestEncryptionAtRestShown(t *testing.T) {
	base := func() *Report {
		return &Report{APIVersion: APIVersion, Kind: Kind, Summary: Summary{FindingsBySeverity: map[string]int{}}}
	}
	known := base()
	known.Posture = &Posture{EncryptionAtRest: &EncryptionAtRest{Provider: "aescbc", Source: "apiserver-metrics", Evidence: "kube-apiserver v1.34.4 wrote Secrets to etcd with aescbc"}}
	unknown := base()
	unknown.Posture = &Posture{EncryptionAtRest: &EncryptionAtRest{Provider: "unknown", Source: "apiserver-metrics",
		Evidence: "the API server's /metrics could not be read", Error: `GET /metrics forbidden: User "u" cannot get path "/metrics"`}}
	for _, tt := range []struct {
		name   string
		r      *Report
		want   []string
		absent []string
	}{
		{"known", known, []string{"aescbc", "wrote Secrets to etcd with aescbc"}, []string{"error"}},
		{"unknown", unknown, []string{"unknown", "could not be read", "cannot get path"}, nil},
		{"offline", base(), nil, []string{"ENCRYPTION AT REST", "Encryption at rest"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var table, md bytes.Buffer
			if err := WriteTable(&table, tt.r); err != nil {
				t.Fatal(err)
			}
			if err := WriteMarkdown(&md, tt.r); err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !strings.Contains(table.String(), "ENCRYPTION AT REST") {
				t.Errorf("table has no encryption section:\n%s", table.String())
			}
			if tt.want != nil && !strings.Contains(md.String(), "**Encryption at rest of Secrets:**") {
				t.Errorf("markdown has no encryption line:\n%s", md.String())
			}
			for _, s := range tt.want {
				if !strings.Contains(table.String(), s) {
					t.Errorf("table lacks %q:\n%s", s, table.String())
				}
				// Markdown escapes some punctuation; compare letters only.
				if !strings.Contains(strings.ReplaceAll(md.String(), `\`, ""), s) {
					t.Errorf("markdown lacks %q:\n%s", s, md.String())
				}
			}
			for _, s := range tt.absent {
				if strings.Contains(table.String(), s) || strings.Contains(md.String(), s) {
					t.Errorf("output has %q:\n%s\n%s", s, table.String(), md.String())
				}
			}
		})
	}
}
