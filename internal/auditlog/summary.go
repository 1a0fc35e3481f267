package auditlog

import (
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// Defaults of Options.
const (
	// DefaultWindow is how far back reads count: a grant nobody used for
	// this long is one to remove.
	DefaultWindow = 30 * 24 * time.Hour
	// DefaultMaxEntries bounds the (subject, target) pairs kept. An entry
	// costs about a kilobyte of memory at most, the pending copy that
	// waits to be stored included (BenchmarkWebhook of
	// internal/source/auditevents), and a few dozen bytes once stored.
	DefaultMaxEntries = 50_000
)

const (
	// maxTop is how many user agents and source addresses an entry keeps,
	// the most frequent ones (approximately: see top.add).
	maxTop = 3
	// day is the width of the count buckets. Counts over the window are
	// therefore exact to a day; last-seen times are exact.
	day = 24 * time.Hour
	// evictionSample is how many entries a full summary looks at to pick
	// the least recently read one to evict (sampled LRU, as Redis does):
	// no list to maintain, and the victim is among the oldest few percent.
	evictionSample = 8
)

// Target is what a read reached: one Secret, or, where a field is empty,
// every Secret of a namespace or every namespace.
type Target struct {
	Namespace string
	Name      string
}

// Covers reports whether a read of t reached Secret namespace/name.
func (t Target) Covers(namespace, name string) bool {
	return (t.Namespace == "" || t.Namespace == namespace) && (t.Name == "" || t.Name == name)
}

// Wildcard reports whether t stands for more than one Secret.
func (t Target) Wildcard() bool { return t.Namespace == "" || t.Name == "" }

func (t Target) String() string {
	ns, name := t.Namespace, t.Name
	if ns == "" {
		ns = "*"
	}
	if name == "" {
		name = "*"
	}
	return ns + "/" + name
}

type key struct {
	user   string
	target Target
}

// counted is a string and how often it was seen.
type counted struct {
	s string
	n uint32
}

// top keeps the most frequent strings with the space-saving algorithm: a
// new string takes the place of the least frequent one and inherits its
// count, so that memory is fixed and a string seen often enough always
// makes it in.
type top [maxTop]counted

func (t *top) add(s string, n uint32) {
	if s == "" || n == 0 {
		return
	}
	low := 0
	for i := range t {
		switch {
		case t[i].s == s:
			t[i].n += n
			return
		case t[i].n == 0:
			t[i] = counted{s, n}
			return
		case t[i].n < t[low].n:
			low = i
		}
	}
	t[low] = counted{s, t[low].n + n}
}

// list returns the strings, most frequent first.
func (t *top) list() []counted {
	out := make([]counted, 0, maxTop)
	for _, c := range t {
		if c.n > 0 {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].s < out[j].s
	})
	return out
}

type dayCount struct {
	day int32 // days since the Unix epoch, UTC
	n   uint32
}

// entry is what is known of one subject's reads of one target.
type entry struct {
	last   int64 // Unix nanoseconds of the newest read
	verbs  rbac.Verbs
	days   []dayCount // ascending
	agents top
	ips    top
}

func dayOf(unixNano int64) int32 { return clampDay(unixNano / int64(day)) }

// clampDay fits a day number in an int32: enough for dates from 5.8
// million years before the epoch to as many after.
func clampDay(d int64) int32 {
	return int32(max(min(d, math.MaxInt32), math.MinInt32)) //nolint:gosec // G115: clamped on this line
}

func (e *entry) addDay(d int32, n uint32) {
	i := len(e.days)
	for i > 0 && e.days[i-1].day > d {
		i--
	}
	if i > 0 && e.days[i-1].day == d {
		e.days[i-1].n += n
		return
	}
	e.days = slices.Insert(e.days, i, dayCount{d, n})
}

// pruneDays drops the counts of days before first.
func (e *entry) pruneDays(first int32) {
	i := 0
	for i < len(e.days) && e.days[i].day < first {
		i++
	}
	if i > 0 {
		e.days = append(e.days[:0], e.days[i:]...)
	}
}

func (e *entry) add(r *Read, at int64, windowDays int32) {
	e.last = max(e.last, at)
	e.verbs |= r.Verb
	d := dayOf(at)
	e.addDay(d, 1)
	e.pruneDays(dayOf(e.last) - windowDays)
	e.agents.add(r.UserAgent, 1)
	e.ips.add(r.SourceIP, 1)
}

// merge adds o into e.
func (e *entry) merge(o *entry) {
	e.last = max(e.last, o.last)
	e.verbs |= o.verbs
	for _, d := range o.days {
		e.addDay(d.day, d.n)
	}
	for _, c := range o.agents {
		e.agents.add(c.s, c.n)
	}
	for _, c := range o.ips {
		e.ips.add(c.s, c.n)
	}
}

func (e *entry) clone() *entry {
	c := *e
	c.days = slices.Clone(e.days)
	return &c
}

func (e *entry) count(firstDay int32) int {
	n := 0
	for _, d := range e.days {
		if d.day >= firstDay {
			n += int(d.n)
		}
	}
	return n
}

// subject is what is known of a user name: its groups when it last read.
type subject struct {
	groups []string
	seen   int64
}

// Options configure a Summary.
type Options struct {
	// Window is how far back reads count; DefaultWindow when zero.
	Window time.Duration
	// MaxEntries bounds the (subject, target) pairs kept;
	// DefaultMaxEntries when zero.
	MaxEntries int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Summary is the bounded record of Secret reads: per (subject, target),
// the last read, the verbs used, counts per day over the window, and the
// most frequent user agents and source addresses. It never grows past
// MaxEntries: a new pair evicts one of the least recently read. It keeps
// apart the reads added since the last TakeDelta, so that replicas can
// merge their reads into one stored State without counting any twice.
// It is safe for concurrent use.
type Summary struct {
	opts Options

	mu       sync.Mutex
	since    int64 // Unix nanoseconds: when observation started
	entries  map[key]*entry
	delta    map[key]*entry
	subjects map[string]*subject
	evicted  uint64
	reads    uint64 // reads added, ever: tells a changed summary
}

// NewSummary returns an empty summary whose observation starts now.
func NewSummary(opts Options) *Summary {
	opts = opts.withDefaults()
	return &Summary{
		opts:     opts,
		since:    opts.Now().UnixNano(),
		entries:  map[key]*entry{},
		delta:    map[key]*entry{},
		subjects: map[string]*subject{},
	}
}

// Window is the summary's window.
func (s *Summary) Window() time.Duration { return s.opts.Window }

func (s *Summary) windowDays() int32 { return clampDay(int64(s.opts.Window/day)) + 1 }

// Add records one read. A read without a time is taken to be now.
func (s *Summary) Add(r Read) {
	at := r.Time.UnixNano()
	if r.Time.IsZero() {
		at = s.opts.Now().UnixNano()
	}
	k := key{r.User, Target{r.Namespace, r.Name}}
	wd := s.windowDays()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	e := s.entries[k]
	if e == nil {
		if len(s.entries) >= s.opts.MaxEntries {
			s.evicted++
			evictOldest(s.entries)
		}
		e = &entry{}
		s.entries[k] = e
	}
	e.add(&r, at, wd)
	d := s.delta[k]
	if d == nil {
		if len(s.delta) >= s.opts.MaxEntries {
			// Counted once, with the entries above: the delta is as
			// large at most.
			evictOldest(s.delta)
		}
		d = &entry{}
		s.delta[k] = d
	}
	d.add(&r, at, wd)
	s.noteSubject(r.User, r.Groups, at)
}

// noteSubject keeps the groups of the newest read of user. An unchanged
// list keeps its slice, so that repeated reads allocate nothing here.
func (s *Summary) noteSubject(user string, groups []string, at int64) {
	sub := s.subjects[user]
	if sub == nil {
		if len(s.subjects) >= s.opts.MaxEntries {
			// Subjects without entries go at the next Prune; until
			// then, the groups of new ones are not kept.
			return
		}
		s.subjects[user] = &subject{groups: slices.Clone(groups), seen: at}
		return
	}
	if at < sub.seen {
		return
	}
	sub.seen = at
	if !slices.Equal(sub.groups, groups) {
		sub.groups = slices.Clone(groups)
	}
}

// evictOldest removes the least recently read of a few entries.
func evictOldest(m map[key]*entry) {
	var victim key
	oldest := int64(-1)
	n := 0
	for k, e := range m {
		if oldest < 0 || e.last < oldest {
			victim, oldest = k, e.last
		}
		if n++; n >= evictionSample {
			break
		}
	}
	if oldest >= 0 {
		delete(m, victim)
	}
}

// Prune forgets the reads older than the window and the subjects no
// entry refers to.
func (s *Summary) Prune() {
	now := s.opts.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	prune(s.entries, s.subjects, now, s.opts.Window)
}

func prune(entries map[key]*entry, subjects map[string]*subject, now int64, window time.Duration) {
	cutoff := now - int64(window)
	firstDay := dayOf(cutoff)
	used := map[string]bool{}
	for k, e := range entries {
		if e.last < cutoff {
			delete(entries, k)
			continue
		}
		e.pruneDays(firstDay)
		used[k.user] = true
	}
	for u := range subjects {
		if !used[u] {
			delete(subjects, u)
		}
	}
}

// Stats are a summary's sizes.
type Stats struct {
	Entries int
	// Evicted counts the entries dropped to stay within MaxEntries.
	Evicted uint64
	// Reads counts the reads added.
	Reads uint64
	// Newest is the time of the newest read held.
	Newest time.Time
}

// Stats returns the summary's sizes.
func (s *Summary) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var newest int64
	for _, e := range s.entries {
		newest = max(newest, e.last)
	}
	return Stats{Entries: len(s.entries), Evicted: s.evicted, Reads: s.reads, Newest: time.Unix(0, newest).UTC()}
}

// Since is when the summary's observation started: its creation, or the
// oldest start of a State merged into it.
func (s *Summary) Since() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Unix(0, s.since).UTC()
}

// ReadSummary is what the summary knows of one subject's reads of one
// target within the window.
type ReadSummary struct {
	User   string
	Groups []string
	Target
	Verbs    rbac.Verbs
	LastSeen time.Time
	// Count is the number of reads in the window, to a day.
	Count int
	// UserAgents and SourceIPs are the most frequent ones, most frequent
	// first.
	UserAgents []string
	SourceIPs  []string
}

// Snapshot is an immutable copy of a summary at one time, for an
// analysis.
type Snapshot struct {
	At     time.Time
	Since  time.Time
	Window time.Duration
	Stats  Stats
	// Reads are the entries read within the window, sorted by target,
	// then user.
	Reads []ReadSummary
}

// Covered reports whether the summary has observed a whole window, so
// that a subject without a read in it truly read nothing for that long.
func (s *Snapshot) Covered() bool {
	return s != nil && !s.At.Before(s.Since.Add(s.Window))
}

// Snapshot copies the reads within the window.
func (s *Summary) Snapshot() *Snapshot {
	now := s.opts.Now()
	cutoff := now.Add(-s.opts.Window).UnixNano()
	firstDay := dayOf(cutoff)
	s.mu.Lock()
	snap := &Snapshot{At: now.UTC(), Since: time.Unix(0, s.since).UTC(), Window: s.opts.Window,
		Stats: Stats{Entries: len(s.entries), Evicted: s.evicted, Reads: s.reads}}
	snap.Reads = make([]ReadSummary, 0, len(s.entries))
	for k, e := range s.entries {
		if e.last < cutoff {
			continue
		}
		rs := ReadSummary{User: k.user, Target: k.target, Verbs: e.verbs, LastSeen: time.Unix(0, e.last).UTC(), Count: e.count(firstDay)}
		if sub := s.subjects[k.user]; sub != nil {
			rs.Groups = sub.groups // never modified in place: replaced
		}
		for _, c := range e.agents.list() {
			rs.UserAgents = append(rs.UserAgents, c.s)
		}
		for _, c := range e.ips.list() {
			rs.SourceIPs = append(rs.SourceIPs, c.s)
		}
		snap.Reads = append(snap.Reads, rs)
	}
	s.mu.Unlock()
	sort.Slice(snap.Reads, func(i, j int) bool {
		a, b := &snap.Reads[i], &snap.Reads[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.User < b.User
	})
	return snap
}
