package analysis

import (
	"github.com/keyhole-sec/keyhole/internal/encryption"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// encryptionAtRest records how the API server stores Secrets, and raises
// KH601-KH603 (internal/encryption judges; the analysis only places the
// findings). Offline audits have no Status, and say nothing of it.
func (a *analyzer) encryptionAtRest(st *encryption.Status) {
	if st == nil {
		return
	}
	if a.report.Posture == nil {
		a.report.Posture = &report.Posture{}
	}
	a.report.Posture.EncryptionAtRest = st.Posture()
	for _, res := range st.Results(len(a.inv.Secrets)) {
		a.addResult(res)
	}
}
