package auditevents

import (
	"context"
	"log/slog"
	"time"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
)

// PersistRecorder counts the store's work; internal/metrics implements
// it.
type PersistRecorder interface {
	// Persisted records a flush: its error (nil on success) and the
	// entries dropped to fit the shards.
	Persisted(err error, dropped int)
}

// Persister runs the summary's life cycle: it loads what earlier runs and
// other replicas stored, then, every Interval, merges the new reads into
// the store and rebases the summary on the result (so reads received by
// other replicas become visible here), and once more at shutdown. Without
// a store it only forgets reads older than the window.
type Persister struct {
	Summary *auditlog.Summary
	// Store is nil when the summary lives in memory only.
	Store    *Store
	Interval time.Duration
	// OnChange is called after a flush that changed what the summary
	// holds, to have the analysis run again.
	OnChange func()
	Recorder PersistRecorder
	Logger   *slog.Logger

	loaded    bool
	lastState fingerprint
}

// fingerprint tells a changed summary from an unchanged one cheaply.
type fingerprint struct {
	reads   uint64
	entries int
	newest  int64
}

// shutdownFlush bounds the last flush, taken from the process's grace
// period.
const shutdownFlush = 5 * time.Second

// Run flushes every Interval until ctx ends, then flushes once more with
// a fresh timeout.
func (p *Persister) Run(ctx context.Context) {
	if p.Interval <= 0 {
		p.Interval = DefaultFlushInterval
	}
	p.Flush(ctx)
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), shutdownFlush)
			defer cancel()
			p.Flush(fctx)
			return
		case <-t.C:
			p.Flush(ctx)
		}
	}
}

// Flush loads the store if that has not succeeded yet, merges the reads
// received since the last flush into it and rebases the summary on the
// result. It returns whether the summary is now in step with the store.
func (p *Persister) Flush(ctx context.Context) bool {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	ok := p.flush(ctx)
	fp := p.fingerprint()
	if fp != p.lastState {
		p.lastState = fp
		if p.OnChange != nil {
			p.OnChange()
		}
	}
	return ok
}

func (p *Persister) flush(ctx context.Context) bool {
	if p.Store == nil {
		p.Summary.Prune()
		return true
	}
	if !p.loaded {
		st, err := p.Store.Load(ctx)
		if err != nil {
			p.record(err, 0)
			p.Logger.Warn("audit summary: cannot load what was stored; reads are kept in memory until it can be", "err", err)
			p.Summary.Prune()
			return false
		}
		// Rebase first: what is stored was written by earlier runs and
		// the other replicas, and this replica's delta is not in it.
		p.Summary.Rebase(st)
		p.loaded = true
		p.Logger.Info("audit summary loaded", "entries", st.Len(), "since", st.Since)
	}
	delta := p.Summary.TakeDelta()
	res, err := p.Store.Save(ctx, delta)
	p.record(err, res.Dropped)
	if err != nil {
		p.Summary.RestoreDelta(res.Unsaved)
		p.Summary.Prune()
		p.Logger.Warn("audit summary: cannot store the new reads; retrying at the next flush", "err", err)
		return false
	}
	p.Summary.Rebase(res.Merged)
	p.Summary.Prune()
	return true
}

func (p *Persister) record(err error, dropped int) {
	if p.Recorder != nil {
		p.Recorder.Persisted(err, dropped)
	}
}

func (p *Persister) fingerprint() fingerprint {
	st := p.Summary.Stats()
	return fingerprint{reads: st.Reads, entries: st.Entries, newest: st.Newest.UnixNano()}
}
