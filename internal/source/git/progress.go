package git

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// Progress is a snapshot of a running Scan.
type Progress struct {
	// Phase is what is being read: "history", "generator inputs",
	// "HEAD", "index" or "worktree".
	Phase string
	// Commits is the number of commits listed so far.
	Commits int
	// Blobs is the number of file versions scanned so far, out of Queued
	// asked for so far (Queued grows while the commits are listed).
	Blobs, Queued int
	Elapsed       time.Duration
	// Done is set on the last call.
	Done bool
}

// progressInterval is how often Options.Progress is called.
const progressInterval = 200 * time.Millisecond

// tracker counts a Scan's work; the counters are updated by the pipeline
// goroutines and read by the reporting one.
type tracker struct {
	commits, queued, blobs atomic.Int64
	phase                  atomic.Value // string
	begin                  time.Time
}

func (t *tracker) setPhase(p string) { t.phase.Store(p) }

func (t *tracker) snapshot() Progress {
	p, _ := t.phase.Load().(string)
	return Progress{
		Phase:   p,
		Commits: int(t.commits.Load()),
		Blobs:   int(t.blobs.Load()),
		Queued:  int(t.queued.Load()),
		Elapsed: time.Since(t.begin),
	}
}

// start calls report every progressInterval until stop is called, then
// once more with Done. report is only ever called from one goroutine.
func (t *tracker) start(report func(Progress)) (stop func()) {
	t.begin = time.Now()
	if report == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(progressInterval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				report(t.snapshot())
			case <-done:
				last := t.snapshot()
				last.Done = true
				report(last)
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// renderInterval is the least time between two redraws: more often than
// this a terminal only flickers.
const renderInterval = 250 * time.Millisecond

// NewProgressRenderer returns an Options.Progress that redraws one status
// line on w ("\r" and padding, no other escape sequence) at most four
// times a second, and ends it with a newline when the scan is done. When
// isTTY is false it returns a function that writes nothing: progress is
// for people watching a terminal, never for a log or a pipe. Use
// IsTerminal to decide isTTY. The line holds counts and rates only.
func NewProgressRenderer(w io.Writer, isTTY bool) func(Progress) {
	if !isTTY {
		return func(Progress) {}
	}
	var last time.Time
	width := 0
	return func(p Progress) {
		now := time.Now()
		if !p.Done && now.Sub(last) < renderInterval {
			return
		}
		last = now
		line := progressLine(p)
		pad := ""
		if n := width - len(line); n > 0 {
			pad = strings.Repeat(" ", n)
		}
		width = len(line)
		end := ""
		if p.Done {
			end = "\n"
		}
		// A failed write to the terminal is not worth stopping a scan for.
		_, _ = fmt.Fprintf(w, "\r%s%s%s", line, pad, end)
	}
}

func progressLine(p Progress) string {
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(p.Blobs) / s
	}
	var b strings.Builder
	fmt.Fprintf(&b, "git %s: ", p.Phase)
	if p.Commits > 0 {
		fmt.Fprintf(&b, "%d commits, ", p.Commits)
	}
	fmt.Fprintf(&b, "%d/%d files scanned (%.0f/s), %s", p.Blobs, p.Queued, rate, p.Elapsed.Truncate(100*time.Millisecond))
	return b.String()
}

// IsTerminal reports whether w is a terminal: an *os.File on a tty.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) //nolint:gosec // G115: a file descriptor fits an int.
}
