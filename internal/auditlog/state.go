package auditlog

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"sort"
	"time"

	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// StateVersion is the version of the stored form; a State of another
// version is refused rather than misread.
const StateVersion = 1

// State is the stored form of a summary, or of part of one: what a
// replica persists, and what it merges with what others persisted. Its
// JSON is compact; the store compresses it.
type State struct {
	Version int `json:"version"`
	// Since is when observation started: the oldest start merged in.
	Since    time.Time      `json:"since"`
	Subjects []StateSubject `json:"subjects"`
	Entries  []StateEntry   `json:"entries"`
}

// StateSubject is a user name and its groups when it last read.
type StateSubject struct {
	User   string   `json:"user"`
	Groups []string `json:"groups,omitempty"`
	// Seen is in Unix milliseconds.
	Seen int64 `json:"seen"`
}

// StateEntry is one (subject, target) entry.
type StateEntry struct {
	User      string `json:"u"`
	Namespace string `json:"ns,omitempty"`
	Name      string `json:"n,omitempty"`
	// Last is the newest read, in Unix milliseconds.
	Last  int64 `json:"l"`
	Verbs uint8 `json:"v"`
	// Days are [day since the epoch, reads that day] pairs.
	Days   [][2]int64 `json:"d,omitempty"`
	Agents []Counted  `json:"a,omitempty"`
	IPs    []Counted  `json:"i,omitempty"`
}

// Counted is a user agent or source address and how often it was seen.
type Counted struct {
	Value string `json:"s"`
	Count uint32 `json:"c"`
}

// Len is the number of entries.
func (st *State) Len() int {
	if st == nil {
		return 0
	}
	return len(st.Entries)
}

// Empty reports whether st holds no entry and no start time.
func (st *State) Empty() bool { return st == nil || (len(st.Entries) == 0 && st.Since.IsZero()) }

const msPerNano = int64(time.Millisecond)

// toState encodes entries and the subjects they refer to, sorted so that
// the same content always encodes to the same bytes.
func toState(since int64, entries map[key]*entry, subjects map[string]*subject) *State {
	st := &State{Version: StateVersion, Subjects: []StateSubject{}, Entries: make([]StateEntry, 0, len(entries))}
	if since > 0 {
		st.Since = time.Unix(0, since).UTC()
	}
	users := map[string]bool{}
	for k, e := range entries {
		se := StateEntry{User: k.user, Namespace: k.target.Namespace, Name: k.target.Name,
			Last: e.last / msPerNano, Verbs: uint8(e.verbs)}
		for _, d := range e.days {
			se.Days = append(se.Days, [2]int64{int64(d.day), int64(d.n)})
		}
		for _, c := range e.agents.list() {
			se.Agents = append(se.Agents, Counted{c.s, c.n})
		}
		for _, c := range e.ips.list() {
			se.IPs = append(se.IPs, Counted{c.s, c.n})
		}
		st.Entries = append(st.Entries, se)
		users[k.user] = true
	}
	for u := range users {
		if sub := subjects[u]; sub != nil {
			st.Subjects = append(st.Subjects, StateSubject{User: u, Groups: sub.groups, Seen: sub.seen / msPerNano})
		}
	}
	sort.Slice(st.Entries, func(i, j int) bool {
		a, b := &st.Entries[i], &st.Entries[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.User < b.User
	})
	sort.Slice(st.Subjects, func(i, j int) bool { return st.Subjects[i].User < st.Subjects[j].User })
	return st
}

// fromState decodes st into entries and subjects, merging into what they
// hold, and returns st's start in Unix nanoseconds (0 when unset).
func fromState(st *State, entries map[key]*entry, subjects map[string]*subject) int64 {
	for i := range st.Entries {
		se := &st.Entries[i]
		e := &entry{last: se.Last * msPerNano, verbs: rbac.Verbs(se.Verbs) & rbac.AllReadVerbs}
		for _, d := range se.Days {
			if d[1] > 0 {
				e.addDay(clampDay(d[0]), uint32(min(d[1], math.MaxUint32))) //nolint:gosec // G115: positive and clamped
			}
		}
		for _, c := range se.Agents {
			e.agents.add(c.Value, c.Count)
		}
		for _, c := range se.IPs {
			e.ips.add(c.Value, c.Count)
		}
		k := key{se.User, Target{se.Namespace, se.Name}}
		if old := entries[k]; old != nil {
			old.merge(e)
		} else {
			entries[k] = e
		}
	}
	for _, ss := range st.Subjects {
		seen := ss.Seen * msPerNano
		if old := subjects[ss.User]; old == nil || old.seen <= seen {
			subjects[ss.User] = &subject{groups: ss.Groups, seen: seen}
		}
	}
	if st.Since.IsZero() {
		return 0
	}
	return st.Since.UnixNano()
}

func minSince(a, b int64) int64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// Merge returns the union of states: counts add up, last-seen times and
// start times take the newest and the oldest, and each user keeps the
// groups of its newest read. Reads older than window before now are
// dropped. Merging the same delta twice counts it twice: each replica
// merges only what it read since its last successful write (TakeDelta).
func Merge(now time.Time, window time.Duration, states ...*State) *State {
	entries := map[key]*entry{}
	subjects := map[string]*subject{}
	var since int64
	for _, st := range states {
		if st != nil {
			since = minSince(since, fromState(st, entries, subjects))
		}
	}
	prune(entries, subjects, now.UnixNano(), window)
	return toState(since, entries, subjects)
}

// TakeDelta returns the reads added since the last TakeDelta (with the
// summary's start time) and starts a new delta. Persist it, then Rebase
// on the result; if persisting fails, RestoreDelta.
func (s *Summary) TakeDelta() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.delta
	s.delta = map[key]*entry{}
	return toState(s.since, d, s.subjects)
}

// RestoreDelta puts back a delta that could not be persisted, so that the
// next attempt includes it.
func (s *Summary) RestoreDelta(d *State) {
	if d == nil {
		return
	}
	entries := map[key]*entry{}
	fromState(d, entries, map[string]*subject{})
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range entries {
		if old := s.delta[k]; old != nil {
			old.merge(e)
			continue
		}
		if len(s.delta) >= s.opts.MaxEntries {
			s.evicted++
			continue
		}
		s.delta[k] = e
	}
}

// Rebase replaces the summary's entries with merged, what the store holds
// once this replica's delta is in it, plus the reads added since
// TakeDelta. It is how reads of the other replicas, and of earlier runs,
// become visible. If merged holds more than MaxEntries, the most recently
// read are kept.
func (s *Summary) Rebase(merged *State) {
	entries := map[key]*entry{}
	subjects := map[string]*subject{}
	since := fromState(merged, entries, subjects)
	if over := len(entries) - s.opts.MaxEntries; over > 0 {
		keys := make([]key, 0, len(entries))
		for k := range entries {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return entries[keys[i]].last < entries[keys[j]].last })
		for _, k := range keys[:over] {
			delete(entries, k)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, d := range s.delta {
		if e := entries[k]; e != nil {
			e.merge(d)
		} else {
			entries[k] = d.clone()
		}
	}
	for u, sub := range s.subjects {
		if old := subjects[u]; old == nil || old.seen <= sub.seen {
			subjects[u] = sub
		}
	}
	s.entries = entries
	s.subjects = subjects
	s.since = minSince(s.since, since)
}

// Shard returns the shard, of n, that an entry belongs to: by its
// target, so that a Secret's entries stay together.
func (se *StateEntry) Shard(n int) int {
	h := fnv.New32a()
	_, _ = io.WriteString(h, se.Namespace)
	_, _ = h.Write([]byte{'/'})
	_, _ = io.WriteString(h, se.Name)
	return int(uint64(h.Sum32()) % uint64(max(n, 1))) //nolint:gosec // G115: below n
}

// Split divides st into n states by Shard, each with st's start time and
// the subjects its entries refer to.
func (st *State) Split(n int) []*State {
	out := make([]*State, n)
	for i := range out {
		out[i] = &State{Version: StateVersion, Since: st.Since, Subjects: []StateSubject{}, Entries: []StateEntry{}}
	}
	users := make([]map[string]bool, n)
	for i := range st.Entries {
		sh := st.Entries[i].Shard(n)
		out[sh].Entries = append(out[sh].Entries, st.Entries[i])
		if users[sh] == nil {
			users[sh] = map[string]bool{}
		}
		users[sh][st.Entries[i].User] = true
	}
	for _, sub := range st.Subjects {
		for i := range out {
			if users[i][sub.User] {
				out[i].Subjects = append(out[i].Subjects, sub)
			}
		}
	}
	return out
}

// DropOldest removes the fraction (0 to 1) of st's entries read least
// recently, at least one, and the subjects left unused; it returns how
// many entries went. The store uses it to fit a shard in one object.
func (st *State) DropOldest(fraction float64) int {
	n := max(1, int(float64(len(st.Entries))*fraction))
	n = min(n, len(st.Entries))
	idx := make([]int, len(st.Entries))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return st.Entries[idx[a]].Last < st.Entries[idx[b]].Last })
	drop := map[int]bool{}
	for _, i := range idx[:n] {
		drop[i] = true
	}
	kept := st.Entries[:0]
	users := map[string]bool{}
	for i, e := range st.Entries {
		if !drop[i] {
			kept = append(kept, e)
			users[e.User] = true
		}
	}
	st.Entries = kept
	subs := st.Subjects[:0]
	for _, s := range st.Subjects {
		if users[s.User] {
			subs = append(subs, s)
		}
	}
	st.Subjects = subs
	return n
}

// Encode writes st as gzip-compressed JSON.
func (st *State) Encode() ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(st); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxDecodedState bounds what DecodeState inflates: far above what a
// stored shard holds, far below what would hurt.
const maxDecodedState = 64 << 20

// DecodeState reads what Encode wrote.
func DecodeState(b []byte) (*State, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decompressing the audit summary: %w", err)
	}
	var st State
	if err := json.NewDecoder(io.LimitReader(zr, maxDecodedState)).Decode(&st); err != nil {
		return nil, fmt.Errorf("decoding the audit summary: %w", err)
	}
	if st.Version != StateVersion {
		return nil, fmt.Errorf("audit summary version %d, want %d", st.Version, StateVersion)
	}
	return &st, nil
}

// SnapshotOf is the snapshot, at now, of a stored state: what an audit
// that reads the store instead of receiving events analyses.
func SnapshotOf(st *State, now time.Time, window time.Duration) *Snapshot {
	s := NewSummary(Options{Window: window, MaxEntries: max(st.Len(), 1), Now: func() time.Time { return now }})
	s.since = 0
	s.Rebase(st)
	return s.Snapshot()
}
