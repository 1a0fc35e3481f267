package report

import "fmt"

// writeEncryptionAtRest prints how the API server stores Secrets, when the
// report read it (live audits): the provider, the evidence, and why it is
// unknown when it is.
func writeEncryptionAtRest(ew *errWriter, p *Posture) {
	if p == nil || p.EncryptionAtRest == nil {
		return
	}
	e := p.EncryptionAtRest
	ew.printf("\nENCRYPTION AT REST (Secrets in etcd)\n  provider: %s\n  evidence: %s\n", e.Provider, e.Evidence)
	if e.Error != "" {
		ew.printf("  error: %s\n", e.Error)
	}
}

// mdEncryptionAtRest is the Markdown line of the same, "" when the report
// did not read it.
func mdEncryptionAtRest(p *Posture) string {
	if p == nil || p.EncryptionAtRest == nil {
		return ""
	}
	e := p.EncryptionAtRest
	s := fmt.Sprintf("**Encryption at rest of Secrets:** %s. %s.", mdCodeCell(clip(e.Provider, mdMaxName)), mdText(clip(e.Evidence, mdMaxMessage)))
	if e.Error != "" {
		s += " " + mdText(clip(e.Error, mdMaxMessage))
	}
	return s + "\n\n"
}
