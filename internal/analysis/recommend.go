package analysis

import (
	"fmt"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/remediation"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// recommend fills every report Secret's recommendation
// (internal/remediation), once the exposure, the workloads and git are
// known, and raises KH501 for each Secret whose value should move: to
// Sealed Secrets, Vault, or out of etcd. A migrated Secret, or one whose
// fix is RBAC, a file mount or a bound token (the exposure, KH201 and
// KH402 findings say so), raises none.
func (a *analyzer) recommend() {
	facts := make([]remediation.Facts, len(a.report.Secrets))
	for i := range a.report.Secrets {
		s := &a.report.Secrets[i]
		sev, _ := finding.ParseSeverity(s.Exposure.Severity)
		f := remediation.Facts{
			Namespace: s.Namespace, Name: s.Name, Type: s.Type, Keys: s.Keys, ManagedBy: s.ManagedBy,
			Severity: sev, Principals: s.Exposure.Principals, EnvInjections: s.EnvInjections,
		}
		if s.Git != nil {
			f.InGit, f.LiveValueInGit = s.Git.Plaintext, s.Git.LiveValueInGit
		}
		if is := a.inv.Secret(s.Namespace, s.Name); is != nil {
			f.Replicated = remediation.Replicated(is.Annotations)
		}
		facts[i] = f
	}
	copies := remediation.Copies(facts)
	for i := range a.report.Secrets {
		s := &a.report.Secrets[i]
		f := facts[i]
		f.Copies = copies[[2]string{f.Namespace, f.Name}]
		s.Recommendation = remediation.Recommend(f)
		if moves(s.Recommendation) {
			a.addResult(migrationResult(inventory.Ref{Kind: "Secret", Namespace: f.Namespace, Name: f.Name}, s.Recommendation))
		}
	}
	for _, obj := range a.gitOnly.order {
		first := a.gitOnly.first[obj]
		rec := remediation.Recommend(remediation.Facts{Namespace: obj.Namespace, Name: obj.Name, Keys: a.gitOnly.keys[obj], InGit: true})
		if !moves(rec) {
			continue
		}
		f := newFinding(migrationResult(obj, rec))
		f.Location = gitLocation(first)
		f.Suppressed = annotationSuppression(f.Rule, first.Leak.Annotations)
		a.report.Findings = append(a.report.Findings, f)
	}
}

// migrationResult is KH501 for obj, which rec moves.
func migrationResult(obj inventory.Ref, rec report.Recommendation) finding.Result {
	return finding.Result{Rule: finding.MigrationSuggested, Object: obj, Discriminator: []string{rec.Target},
		Message: fmt.Sprintf("%s should move to %s (%s): %s", obj, storeName(rec.Target), rec.Rule, rec.Reason)}
}

// moves reports whether a recommendation moves the value to another store
// (KH501).
func moves(r report.Recommendation) bool {
	if r.Status != remediation.StatusSuggested {
		return false
	}
	switch r.Target {
	case remediation.TargetSealedSecrets, remediation.TargetVault, remediation.TargetVaultAgent:
		return true
	}
	return false
}

// storeName is how messages name a target.
func storeName(target string) string {
	switch target {
	case remediation.TargetSealedSecrets:
		return "Sealed Secrets"
	case remediation.TargetVault:
		return "Vault"
	case remediation.TargetVaultAgent:
		return "Vault, delivered by the Vault Agent injector or the CSI driver"
	}
	return target
}
