package daemon

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/keyhole-sec/keyhole/internal/analysis"
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
	// accessWhy is why the analysis ran the access stage anew (the first
	// change it reads since the previous analysis, or "first analysis"),
	// "" when it reused the previous one's.
	accessWhy string
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
		// twice. What changed is taken at the same point, for the same
		// reason: a change recorded after it counts for the next analysis.
		select {
		case <-d.changed:
		default:
		}
		d.analyzeOnce(d.access.take())
		// The analysis allocates several times the report it keeps, and
		// the previous report is garbage now. Return that memory at once
		// rather than hold the peak until the collector gets to it: a
		// daemon's steady resident set is what its memory limit must
		// cover. This runs once analyzeOnce has returned, so that its
		// run (the inventory, and the access stage unless kept) is no
		// longer live: counted live, it would set the collector's next
		// goal, twice what is live, and scrapes would grow the heap to it.
		debug.FreeOSMemory()
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
// keyhole_analysis_errors_total are better than none. prev is the access
// stage of the previous analysis, if it may stand for this one, and why
// the first change since that the access stage reads, if any.
func (d *daemon) analyzeOnce(prev *analysis.Access, why string) {
	start := time.Now()
	run, err := d.analyze(start, prev, why)
	took := time.Since(start)
	d.self.AnalysisDone(took, time.Now(), err)
	if err != nil {
		d.access.failed()
		d.log.Error("analysis failed; keeping the previous report", "err", err)
		return
	}
	d.access.keep(run.access)
	snap := run.snapshot
	first := d.latest.Swap(snap) == nil
	if d.audit != nil {
		d.audit.explainer.Store(auditlog.NewExplainer(snap.report))
	}
	if d.opts.analyzed != nil {
		d.opts.analyzed(run)
	}
	rep := snap.report
	attrs := []any{"took", took.Round(time.Millisecond), "inventory_took", run.inventoryTook.Round(time.Millisecond), "secrets", len(rep.Secrets),
		"findings", len(rep.Findings), "errors", len(rep.Errors), "first", first}
	if snap.accessWhy == "" {
		attrs = append(attrs, "access", "reused")
	} else {
		attrs = append(attrs, "access", "recomputed", "because", snap.accessWhy, "access_took", run.accessTook.Round(time.Millisecond))
	}
	d.log.Info("analysis done", attrs...)
}

// analysisRun is one analysis: what it was given, what it made, and
// whether it reused the access stage of the previous one.
type analysisRun struct {
	in       analysis.Input
	opts     audit.Options
	access   *analysis.Access
	snapshot *snapshot
	// inventoryTook is how long the inventory took to build from the
	// informers' caches, and accessTook the access stage, when it ran
	// anew: the log line breaks the analysis down with them.
	inventoryTook, accessTook time.Duration
}

func (d *daemon) analyze(now time.Time, prev *analysis.Access, why string) (run analysisRun, err error) {
	defer func() {
		// An analyzer bug must not take the daemon down: the previous
		// report stays served and the error is counted.
		if r := recover(); r != nil {
			run, err = analysisRun{}, fmt.Errorf("analysis panicked: %v", r)
		}
	}()
	b := inventory.NewBuilder()
	cov, problems := d.watcher.Fill(b)
	opts := d.opts.Analysis
	opts.Now = now
	in := audit.LiveInput(b, cov, problems)
	inventoryTook := time.Since(now)
	in.Git = d.gitInput()
	in.Encryption = d.encryptionStatus()
	in.Reads = d.auditSnapshot()
	aopts, err := audit.AnalysisOptions(opts)
	if err != nil {
		return analysisRun{}, err
	}
	switch {
	case prev == nil && why == "":
		why = "no access stage kept"
	case prev != nil && why == "":
		// The informers update their caches before they deliver the
		// events: a change may be in the inventory and not yet recorded.
		// Comparing what the stage reads catches it.
		why = prev.Stale(in, aopts)
	}
	acc := prev
	var accessTook time.Duration
	if why != "" {
		// prev is not used past this point, so the collector may free it
		// while the new stage is built.
		start := time.Now()
		acc = analysis.NewAccess(in, aopts)
		accessTook = time.Since(start)
	}
	rep := analysis.RunWith(in, aopts, acc)
	return analysisRun{in: in, opts: opts, access: acc, inventoryTook: inventoryTook, accessTook: accessTook,
		snapshot: &snapshot{report: rep, at: now, empty: len(cov.Objects) == 0, accessWhy: why}}, nil
}
