package daemon

import (
	"sync"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
)

// accessLog records, between two analyses, whether the cluster changed in
// what the access stage of the analysis reads (analysis.Access), and
// keeps the access stage of the last analysis for as long as it may stand
// for the next one, and no longer: the first change it cannot stand for
// drops it at once, rather than at the next analysis, so that its memory
// (the inventory it was built from, the policy, the search) is never
// held while that analysis builds a new one.
type accessLog struct {
	mu sync.Mutex
	// why is the first change since the last take that the access stage
	// reads, "" when none.
	why string
	// access is the last analysis's access stage; nil before the first
	// analysis, after a failed one and from the first change recorded.
	access *analysis.Access
	// drop keeps no stage at all (Options.DropAccess).
	drop bool
}

func newAccessLog(drop bool) *accessLog { return &accessLog{why: "first analysis", drop: drop} }

// record notes a change the access stage reads.
func (l *accessLog) record(why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.why == "" {
		l.why = why
	}
	l.access = nil
}

// take hands the analysis that starts the kept access stage, if any, and
// the first change since the last take, and starts a new record.
func (l *accessLog) take() (*analysis.Access, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	acc, why := l.access, l.why
	l.access, l.why = nil, ""
	return acc, why
}

// keep keeps the access stage of a successful analysis for the next one,
// unless a change it cannot stand for was recorded while it ran.
func (l *accessLog) keep(acc *analysis.Access) {
	if l.drop {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.why == "" {
		l.access = acc
	}
}

// failed notes a failed analysis: the next one runs the access stage anew,
// whatever changed.
func (l *accessLog) failed() { l.record("previous analysis failed") }

// accessReads reports whether the access stage reads what a change of the
// cluster changed: any object of a kind it reads, but for a Secret's
// update that keeps its type and ServiceAccount (its labels, other
// annotations, keys).
func accessReads(c cluster.Change) bool {
	if c.Kind == "Secret" && c.Op == cluster.Updated {
		return c.TokenChanged
	}
	return analysis.AccessReads(c.Kind)
}
