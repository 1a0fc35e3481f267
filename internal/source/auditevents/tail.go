package auditevents

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
)

// Defaults of TailOptions.
const (
	DefaultTailPoll = time.Second
	// maxLine bounds one line of the log: an event at Metadata level is
	// about a kilobyte; a longer line (a RequestResponse event of
	// another policy) is skipped, never buffered whole.
	maxLine = 1 << 20
	// tailBatch is how many reads the tail hands over at once.
	tailBatch = 256
)

// TailOptions configure Tail.
type TailOptions struct {
	// Path is the audit log file (--audit-log-path of the apiserver).
	Path string
	// Poll is how often the end of the file is checked for more and
	// the path for a rotation; DefaultTailPoll when zero.
	Poll time.Duration
	// FromStart reads the file from its beginning instead of its end.
	// Off in keyhole serve: what was logged before it started may have
	// been counted by a previous run already.
	FromStart bool
}

// Tail follows an audit log written by the apiserver's log backend
// (--audit-log-format=json: one event per line) until ctx ends, feeding
// the receiver's queue. It follows rotation: when the path names another
// file (renamed by the apiserver or logrotate) it reads the old one to
// its end, then the new one from its beginning; a file truncated in place
// is read again from its beginning. A path that does not exist yet is
// waited for. Unlike the webhook, the tail waits for room in the queue:
// falling behind a file holds nobody up.
func (r *Receiver) Tail(ctx context.Context, opts TailOptions) error {
	if opts.Poll <= 0 {
		opts.Poll = DefaultTailPoll
	}
	t := &tailer{r: r, opts: opts, fromStart: opts.FromStart}
	defer t.close()
	for {
		if err := t.step(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(opts.Poll):
		}
	}
}

type tailer struct {
	r         *Receiver
	opts      TailOptions
	f         *os.File
	info      os.FileInfo
	rd        *bufio.Reader
	offset    int64
	partial   []byte
	skipping  bool // inside a line longer than maxLine
	fromStart bool
	batch     []auditlog.Read
	events    int
	warned    bool
}

func (t *tailer) close() {
	if t.f != nil {
		_ = t.f.Close()
		t.f = nil
	}
}

// step reads what is there, then checks the path for a rotation.
func (t *tailer) step(ctx context.Context) error {
	if t.f == nil && !t.open() {
		return nil
	}
	if err := t.drain(ctx); err != nil {
		return err
	}
	st, err := os.Stat(t.opts.Path)
	switch {
	case err != nil:
		// Rotated away and not recreated yet: keep the old file open,
		// its writer may still append.
		return nil
	case !os.SameFile(st, t.info):
		// The old file is read to its end above; the new one is read
		// from its beginning.
		t.close()
		t.fromStart = true
		if t.open() {
			return t.drain(ctx)
		}
	case st.Size() < t.offset:
		// Truncated in place (copytruncate).
		if _, err := t.f.Seek(0, io.SeekStart); err == nil {
			t.offset = 0
			t.partial, t.skipping = t.partial[:0], false
			t.rd.Reset(t.f)
		}
	}
	return nil
}

func (t *tailer) open() bool {
	f, err := os.Open(t.opts.Path)
	if err != nil {
		if !t.warned && !errors.Is(err, os.ErrNotExist) {
			t.r.opts.Logger.Warn("audit log: cannot open; retrying", "path", t.opts.Path, "err", err)
			t.warned = true
		}
		return false
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return false
	}
	t.offset = 0
	if !t.fromStart {
		if t.offset, err = f.Seek(0, io.SeekEnd); err != nil {
			_ = f.Close()
			return false
		}
	}
	t.warned = false
	t.f, t.info = f, info
	t.rd = bufio.NewReaderSize(f, 64<<10)
	t.partial, t.skipping = t.partial[:0], false
	return true
}

// drain reads every complete line now in the file.
func (t *tailer) drain(ctx context.Context) error {
	for {
		chunk, err := t.rd.ReadSlice('\n')
		t.offset += int64(len(chunk))
		complete := len(chunk) > 0 && chunk[len(chunk)-1] == '\n'
		switch {
		case t.skipping:
			if complete {
				t.skipping = false
			}
		case len(t.partial)+len(chunk) > maxLine:
			t.partial = t.partial[:0]
			t.skipping = !complete
		case complete && len(t.partial) == 0:
			t.line(chunk)
		default:
			t.partial = append(t.partial, chunk...)
			if complete {
				t.line(t.partial)
				t.partial = t.partial[:0]
			}
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			return t.flush(ctx)
		}
		if len(t.batch) >= tailBatch {
			if err := t.flush(ctx); err != nil {
				return err
			}
		}
	}
}

func (t *tailer) line(b []byte) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return
	}
	t.events++
	ev, err := auditlog.DecodeEvent(b)
	if err != nil {
		return
	}
	if rd, ok := auditlog.ReadOf(ev); ok {
		t.batch = append(t.batch, rd)
	}
}

func (t *tailer) flush(ctx context.Context) error {
	if t.events == 0 && len(t.batch) == 0 {
		return nil
	}
	t.r.opts.Recorder.Received(t.events, len(t.batch))
	t.events = 0
	if len(t.batch) == 0 {
		return nil
	}
	batch := t.batch
	t.batch = nil
	if err := t.r.push(ctx, batch); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return nil
}
