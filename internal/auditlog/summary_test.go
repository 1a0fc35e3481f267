package auditlog

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func read(user, ns, name string, verb rbac.Verbs, at time.Time) Read {
	return Read{User: user, Groups: []string{"system:authenticated"}, Namespace: ns, Name: name, Verb: verb, Time: at, UserAgent: "kubectl", SourceIP: "10.0.0.1"}
}

func find(s *Snapshot, user string, t Target) *ReadSummary {
	for i := range s.Reads {
		if s.Reads[i].User == user && s.Reads[i].Target == t {
			return &s.Reads[i]
		}
	}
	return nil
}

func TestSummaryRecordsLastSeenCountsAndVerbs(t *testing.T) {
	c := &clock{now: t0}
	s := NewSummary(Options{Window: 48 * time.Hour, Now: c.Now})
	s.Add(read("alice", "shop", "db", rbac.VerbGet, t0.Add(-30*time.Hour)))
	s.Add(read("alice", "shop", "db", rbac.VerbGet, t0.Add(-time.Hour)))
	late := read("alice", "shop", "db", rbac.VerbList, t0.Add(-2*time.Hour)) // out of order
	late.UserAgent = "client-go"
	s.Add(late)
	s.Add(read("bob", "shop", "", rbac.VerbWatch, t0.Add(-time.Minute)))

	snap := s.Snapshot()
	a := find(snap, "alice", Target{"shop", "db"})
	if a == nil {
		t.Fatalf("no entry for alice: %+v", snap.Reads)
	}
	if !a.LastSeen.Equal(t0.Add(-time.Hour)) || a.Count != 3 || a.Verbs != rbac.VerbGet|rbac.VerbList {
		t.Errorf("alice: last %v count %d verbs %v", a.LastSeen, a.Count, a.Verbs.Names())
	}
	if strings.Join(a.UserAgents, ",") != "kubectl,client-go" || strings.Join(a.SourceIPs, ",") != "10.0.0.1" {
		t.Errorf("alice: agents %v addresses %v", a.UserAgents, a.SourceIPs)
	}
	if b := find(snap, "bob", Target{"shop", ""}); b == nil || !b.Covers("shop", "anything") || b.Covers("other", "x") {
		t.Errorf("bob's watch of shop: %+v", b)
	}

	// 40 hours on, the window starts on t0's day: the read of the day
	// before is out (counts are to a day), the others are in.
	c.set(t0.Add(40 * time.Hour))
	if a := find(s.Snapshot(), "alice", Target{"shop", "db"}); a == nil || a.Count != 2 {
		t.Errorf("after 40h: %+v, want 2 reads in the window", a)
	}
	c.set(t0.Add(48 * time.Hour))
	if snap := s.Snapshot(); len(snap.Reads) != 0 {
		t.Errorf("after the window: %d entries still read", len(snap.Reads))
	}
	s.Prune()
	if st := s.Stats(); st.Entries != 0 {
		t.Errorf("Prune kept %d entries older than the window", st.Entries)
	}
}

func TestSummaryStaysBounded(t *testing.T) {
	c := &clock{now: t0}
	s := NewSummary(Options{MaxEntries: 100, Now: c.Now})
	for i := range 1000 {
		s.Add(read(fmt.Sprintf("user-%d", i), "ns", "s", rbac.VerbGet, t0.Add(time.Duration(i)*time.Second)))
	}
	st := s.Stats()
	if st.Entries != 100 || st.Evicted != 900 || st.Reads != 1000 {
		t.Errorf("stats %+v, want 100 entries, 900 evicted, 1000 reads", st)
	}
	// Sampled LRU: the newest read is never the one evicted.
	if find(s.Snapshot(), "user-999", Target{"ns", "s"}) == nil {
		t.Error("the newest entry was evicted")
	}
	d := s.TakeDelta()
	if d.Len() > 100 {
		t.Errorf("the delta holds %d entries, over the bound", d.Len())
	}
}

func TestTopKeepsFrequent(t *testing.T) {
	var tp top
	for i := range 50 {
		tp.add("frequent", 1)
		tp.add(fmt.Sprintf("rare-%d", i), 1)
	}
	l := tp.list()
	if len(l) != maxTop || l[0].s != "frequent" || l[0].n != 50 {
		t.Errorf("top %+v, want frequent first with 50", l)
	}
}

func TestCovered(t *testing.T) {
	c := &clock{now: t0}
	s := NewSummary(Options{Window: 24 * time.Hour, Now: c.Now})
	if s.Snapshot().Covered() {
		t.Error("covered at the start")
	}
	c.set(t0.Add(24 * time.Hour))
	if !s.Snapshot().Covered() {
		t.Error("not covered after a whole window")
	}
	var nilSnap *Snapshot
	if nilSnap.Covered() {
		t.Error("a nil snapshot is covered")
	}
}

// TestDeltasMergeOnce: two replicas that each merge only their delta into
// a shared state count every read once, whatever the order; a restored
// delta is merged at the next attempt; Rebase shows a replica the other's
// reads.
func TestDeltasMergeOnce(t *testing.T) {
	c := &clock{now: t0}
	a := NewSummary(Options{Now: c.Now})
	c.set(t0.Add(time.Minute))
	b := NewSummary(Options{Now: c.Now})
	a.Add(read("alice", "shop", "db", rbac.VerbGet, t0.Add(2*time.Minute)))
	a.Add(read("alice", "shop", "db", rbac.VerbGet, t0.Add(3*time.Minute)))
	b.Add(read("alice", "shop", "db", rbac.VerbGet, t0.Add(4*time.Minute)))
	b.Add(read("carol", "shop", "", rbac.VerbList, t0.Add(5*time.Minute)))

	var stored *State
	stored = Merge(c.Now(), DefaultWindow, stored, a.TakeDelta())
	failed := b.TakeDelta()
	b.RestoreDelta(failed) // the write failed: try again later
	stored = Merge(c.Now(), DefaultWindow, stored, b.TakeDelta())
	// Nothing new: merging the empty deltas changes nothing.
	stored = Merge(c.Now(), DefaultWindow, stored, a.TakeDelta(), b.TakeDelta())

	c.set(t0.Add(10 * time.Minute))
	a.Rebase(stored)
	a.Add(read("alice", "shop", "db", rbac.VerbGet, t0.Add(6*time.Minute)))
	snap := a.Snapshot()
	if r := find(snap, "alice", Target{"shop", "db"}); r == nil || r.Count != 4 || !r.LastSeen.Equal(t0.Add(6*time.Minute)) {
		t.Errorf("alice after rebase: %+v, want 4 reads, last at +6m", r)
	}
	if r := find(snap, "carol", Target{"shop", ""}); r == nil || r.Count != 1 {
		t.Errorf("carol (read through b) after rebase: %+v", r)
	}
	if !snap.Since.Equal(t0) {
		t.Errorf("since %v, want the older start %v", snap.Since, t0)
	}
	// The read added after the rebase is still pending: the next delta
	// holds it alone.
	if d := a.TakeDelta(); d.Len() != 1 || d.Entries[0].Days[0][1] != 1 {
		t.Errorf("delta after rebase: %+v", d.Entries)
	}
}

func TestStateRoundTripAndShards(t *testing.T) {
	c := &clock{now: t0}
	s := NewSummary(Options{Now: c.Now})
	for i := range 200 {
		s.Add(read(fmt.Sprintf("system:serviceaccount:ns%d:sa", i%7), fmt.Sprintf("ns%d", i%5), fmt.Sprintf("s%d", i), rbac.VerbGet, t0))
	}
	st := s.TakeDelta()
	data, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.Len() != 200 || len(back.Subjects) != 7 || !back.Since.Equal(t0) {
		t.Errorf("decoded %d entries, %d subjects, since %v", back.Len(), len(back.Subjects), back.Since)
	}
	parts := back.Split(8)
	total := 0
	for i, p := range parts {
		total += p.Len()
		for _, e := range p.Entries {
			if e.Shard(8) != i {
				t.Errorf("entry %s/%s in shard %d, belongs to %d", e.Namespace, e.Name, i, e.Shard(8))
			}
		}
		for _, sub := range p.Subjects {
			found := false
			for _, e := range p.Entries {
				found = found || e.User == sub.User
			}
			if !found {
				t.Errorf("shard %d carries subject %s that none of its entries names", i, sub.User)
			}
		}
	}
	if total != 200 {
		t.Errorf("shards hold %d entries, want 200", total)
	}
	if n := back.DropOldest(0.25); n != 50 || back.Len() != 150 {
		t.Errorf("DropOldest dropped %d, left %d", n, back.Len())
	}
	if _, err := DecodeState([]byte("not gzip")); err == nil {
		t.Error("decoded garbage")
	}
}

// TestStateHoldsNoBody: the summary of an event whose response carried a
// Secret's data holds no trace of it, encoded or not.
func TestStateHoldsNoBody(t *testing.T) {
	list, err := DecodeEventList(strings.NewReader(eventListJSON))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSummary(Options{Now: func() time.Time { return t0 }})
	for i := range list.Items {
		if r, ok := ReadOf(&list.Items[i]); ok {
			s.Add(r)
		}
	}
	st := s.TakeDelta()
	data, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, _ := DecodeState(data)
	text := fmt.Sprintf("%+v %+v", back, s.Snapshot())
	for _, leak := range []string{"S0VZSE9MRS1DQU5BUlk", "KEYHOLE-CANARY", "password"} {
		if strings.Contains(text, leak) || bytes.Contains(data, []byte(leak)) {
			t.Errorf("the summary holds %q", leak)
		}
	}
}

// TestSnapshotOf: a stored state reads back as the summary it came from.
func TestSnapshotOf(t *testing.T) {
	c := &clock{now: t0}
	s := NewSummary(Options{Window: 48 * time.Hour, Now: c.Now})
	s.Add(read("alice", "shop", "db", rbac.VerbGet, t0.Add(-time.Hour)))
	s.Add(read("bob", "shop", "", rbac.VerbList, t0.Add(-50*time.Hour))) // out of the window
	st := Merge(t0, DefaultWindow, s.TakeDelta())
	snap := SnapshotOf(st, t0.Add(time.Hour), 48*time.Hour)
	if len(snap.Reads) != 1 || snap.Reads[0].User != "alice" || !snap.Since.Equal(t0) || snap.Window != 48*time.Hour || snap.Covered() {
		t.Errorf("snapshot %+v", snap)
	}
	if !SnapshotOf(st, t0.Add(49*time.Hour), 48*time.Hour).Covered() {
		t.Error("not covered after a window")
	}
}
