package auditevents

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/source/auditevents/webhooktest"
)

// logLines are n log backend lines (one event each) of user's gets.
func logLines(n int, user string) string {
	var b strings.Builder
	for i := range n {
		ev := withBody(webhooktest.Event(i, user, "shop", "db", time.Now()))
		ev["kind"], ev["apiVersion"] = "Event", "audit.k8s.io/v1"
		line, _ := json.Marshal(ev)
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readsOf(s *auditlog.Summary, user string) int {
	n := 0
	for _, r := range s.Snapshot().Reads {
		if r.User == user {
			n += r.Count
		}
	}
	return n
}

// TestTailFollowsRotation writes an audit log as the apiserver and
// logrotate would: lines before keyhole starts (not read), appends, a
// line written in two parts, a line too long to keep, a rename and a new
// file, and a truncation in place.
func TestTailFollowsRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	appendTo(t, path, logLines(3, "before"))

	summary := auditlog.NewSummary(auditlog.Options{})
	rec := newCounts()
	recv, err := NewReceiver(ReceiverOptions{Summary: summary, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { recv.Run(ctx); done <- nil }()
	go func() { done <- recv.Tail(ctx, TailOptions{Path: path, Poll: 20 * time.Millisecond}) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("tail: %v", err)
			}
		}
	})
	wait := func(what, user string, want int) {
		t.Helper()
		probe.Eventually(t, 20*time.Second, what, func() (bool, string) {
			got := readsOf(summary, user)
			return got == want, fmt.Sprintf("%d reads by %s", got, user)
		})
	}
	// The tail starts at the end: wait until it has opened the file,
	// which a first append then shows.
	probe.Eventually(t, 20*time.Second, "the tail picks up appends", func() (bool, string) {
		appendTo(t, path, logLines(1, "probe"))
		time.Sleep(50 * time.Millisecond)
		return readsOf(summary, "probe") > 0, "no read by probe yet"
	})

	appendTo(t, path, logLines(4, "alice"))
	wait("appended lines", "alice", 4)

	line := logLines(1, "split")
	appendTo(t, path, line[:40])
	time.Sleep(100 * time.Millisecond)
	appendTo(t, path, line[40:])
	wait("a line written in two parts", "split", 1)

	huge := webhooktest.Event(0, "huge", "shop", "db", time.Now())
	huge["userAgent"] = strings.Repeat("a", maxLine)
	hugeLine, _ := json.Marshal(huge)
	appendTo(t, path, string(hugeLine)+"\n"+logLines(1, "after-huge"))
	wait("the line after one too long", "after-huge", 1)

	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path+".1", logLines(2, "late-old")) // the apiserver's last lines to the old file
	appendTo(t, path, logLines(5, "bob"))
	wait("the new file after a rotation", "bob", 5)
	wait("the old file's last lines", "late-old", 2)

	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, logLines(1, "carol"))
	wait("a truncated file from its start", "carol", 1)

	if got := readsOf(summary, "before"); got != 0 {
		t.Errorf("%d reads of lines written before the tail started", got)
	}
	if got := readsOf(summary, "huge"); got != 0 {
		t.Errorf("the line longer than %d bytes was read", maxLine)
	}
	snap := fmt.Sprintf("%+v", summary.Snapshot())
	if strings.Contains(snap, canary) {
		t.Error("the summary holds the canary")
	}
}
