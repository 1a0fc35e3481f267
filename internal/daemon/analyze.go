package daemon

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// snapshot is one analysis, never modified once published. The report is
// encoded for /api/v1/report on each request, not kept encoded: its
// indented JSON is several times the size of the report itself, since
// indirect readers repeat their steps, and would set the daemon's memory.
type snapshot struct {
	report *report.Report
	at     time.Time
	// empty is set when no object at all could be read from the
	// cluster (it was unreachable, or every LIST forbidden): the report
	// then holds only errors, and the replica is not ready.
	empty bool
}

// report is the latest report, or nil before the first analysis.
func (d *daemon) report() *report.Report {
	if s := d.latest.Load(); s != nil {
		return s.report
	}
	return nil
}

// analyzeLoop waits for every informer to settle (synced, or failed once),
// analyses, then analyses again after each quiet period following a
// change.
func (d *daemon) analyzeLoop(ctx context.Context) {
	if err := d.watcher.WaitSettled(ctx); err != nil {
		return
	}
	for {
		// Drain before reading the caches: a change that lands after this
		// point leaves a token, so it is never missed, at worst analysed
		// twice.
		select {
		case <-d.changed:
		default:
		}
		d.analyzeOnce()
		if !d.waitForQuiet(ctx) {
			return
		}
	}
}

// waitForQuiet waits for a change, then for Debounce without one, but no
// longer than maxDebounceFactor debounce periods in all. It returns false
// when ctx ends.
func (d *daemon) waitForQuiet(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-d.changed:
	}
	deadline := time.Now().Add(maxDebounceFactor * d.opts.Debounce)
	quiet := time.NewTimer(d.opts.Debounce)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-d.changed:
			wait := min(d.opts.Debounce, time.Until(deadline))
			if wait <= 0 {
				return true
			}
			quiet.Reset(wait)
		case <-quiet.C:
			return true
		}
	}
}

// analyzeOnce builds an inventory from the informers' caches, analyses it
// and publishes the result. A failed analysis keeps the previous snapshot
// and counts an error: stale numbers with a failing
// keyhole_analysis_errors_total are better than none.
func (d *daemon) analyzeOnce() {
	start := time.Now()
	snap, err := d.analyze(start)
	took := time.Since(start)
	d.self.AnalysisDone(took, time.Now(), err)
	if err != nil {
		d.log.Error("analysis failed; keeping the previous report", "err", err)
		return
	}
	first := d.latest.Swap(snap) == nil
	if d.audit != nil {
		d.audit.explainer.Store(auditlog.NewExplainer(snap.report))
	}
	// The analysis allocates several times the report it keeps, and the
	// previous report is garbage now. Return that memory at once rather
	// than hold the peak until the collector gets to it: a daemon's
	// steady resident set is what its memory limit must cover.
	debug.FreeOSMemory()
	rep := snap.report
	d.log.Info("analysis done", "took", took.Round(time.Millisecond), "secrets", len(rep.Secrets),
		"findings", len(rep.Findings), "errors", len(rep.Errors), "first", first)
}

func (d *daemon) analyze(now time.Time) (snap *snapshot, err error) {
	defer func() {
		// An analyzer bug must not take the daemon down: the previous
		// report stays served and the error is counted.
		if r := recover(); r != nil {
			snap, err = nil, fmt.Errorf("analysis panicked: %v", r)
		}
	}()
	b := inventory.NewBuilder()
	cov, problems := d.watcher.Fill(b)
	opts := d.opts.Analysis
	opts.Now = now
	in := audit.LiveInput(b, cov, problems)
	in.Git = d.gitInput()
	in.Encryption = d.encryptionStatus()
	in.Reads = d.auditSnapshot()
	rep, err := audit.Analyze(in, opts)
	if err != nil {
		return nil, err
	}
	return &snapshot{report: rep, at: now, empty: len(cov.Objects) == 0}, nil
}
