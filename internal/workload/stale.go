package workload

import (
	"strconv"
	"time"

	"github.com/keyhole-sec/keyhole/internal/finding"
)

// staleSecrets reports Secrets whose data was last written more than
// StaleAfter before Now (KH411). The time of the last write comes from
// managedFields; creation time says nothing about rotation and is not
// used. Secrets whose last write is unknown, and those rotated or
// expired by their own mechanism (ServiceAccount and bootstrap tokens,
// Helm records, sealing keys), are not judged.
func (a *analyzer) staleSecrets() {
	if a.opts.Now.IsZero() {
		return
	}
	for _, s := range a.inv.Secrets {
		if s.DataWrittenAt.IsZero() {
			continue
		}
		if selfRotating(s) {
			continue
		}
		if a.opts.Now.Sub(s.DataWrittenAt) <= a.opts.StaleAfter {
			continue
		}
		a.add(finding.Result{
			Rule:   finding.StaleSecret,
			Object: s.Ref(),
			Message: s.Ref().String() + "'s data was last written on " + s.DataWrittenAt.UTC().Format("2006-01-02") +
				", more than " + days(a.opts.StaleAfter) + " before the audit",
		})
	}
}

// days writes a duration in days when it is a whole number of them.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d%day == 0:
		return strconv.Itoa(int(d/day)) + " days"
	}
	return d.String()
}
